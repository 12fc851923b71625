// green/detail/hub.hpp — what the hub offers io/: registering an fd with a
// worker's epoll instance and hearing about its readiness.
//
// Not part of the user's API. Each worker owns a hub (epoll + a wake-up
// eventfd + its timers, see scheduler/src/hub.hpp). io/ registers an fd once,
// edge-triggered, with the hub of the worker it first waits on, under a
// 64-bit token of its choosing. Whenever a hub is polled (by its worker, or
// by an idle worker polling a busy worker's hub without blocking) the
// process-wide ready handler is called with the token and the epoll events,
// on the polling thread. The handler must be thread-safe and must not block.
#pragma once

#include <cstdint>

namespace green::detail {

class Hub;

using ReadyFn = void (*)(std::uint64_t token, std::uint32_t epoll_events) noexcept;

// Installs the ready handler (io/ does this once, before its first add).
void set_ready_handler(ReadyFn fn) noexcept;

// The hub of the worker running the caller; null on a plain thread.
Hub* current_hub() noexcept;

// Registers fd with `hub`, edge-triggered, for `epoll_events`. `token` must
// be non-zero and have bit 63 clear. Throws SystemError.
void hub_add(Hub* hub, int fd, std::uint32_t epoll_events, std::uint64_t token);
// Unregisters fd (before it is closed). Never throws.
void hub_remove(Hub* hub, int fd) noexcept;

}  // namespace green::detail
