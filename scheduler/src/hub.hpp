// hub.hpp — a worker's hub: its epoll instance and its wake-up eventfd.
//
// An idle worker parks here, in epoll_wait, until an fd it watches is ready,
// its next timer is due, or another thread wakes it. wake() is de-duplicated:
// only the first wake after the worker last drained the eventfd writes to it,
// so a burst of wakes costs one system call.
//
// The hub knows nothing of sockets. io/ registers an fd under a token (see
// green/detail/hub.hpp); readiness is dispatched to the process-wide ready
// handler on whichever worker polls this hub: its owner, or an idle worker
// polling it without blocking so that a busy owner does not delay
// readiness. Only the owner drains the wake-up eventfd (a wake is meant for
// the owner), which is registered level-triggered so that a foreign poll
// never hides it.
#pragma once

#include <atomic>
#include <cstdint>

#include "green/detail/hub.hpp"

namespace green::detail {

class Hub {
 public:
  Hub();  // throws SystemError
  ~Hub();
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  // Wakes the owner if it is (or is about to be) parked in poll().
  void wake() noexcept;

  // Waits up to timeout_ms (-1: no limit, 0: just look) and dispatches what is
  // ready. Returns the number of fd events dispatched (wakes excluded).
  // `owner` is false when another worker polls this hub (timeout 0 only).
  int poll(int timeout_ms, bool owner = true) noexcept;

  // Registers fd edge-triggered for `events` (see green/detail/hub.hpp).
  void add(int fd, std::uint32_t events, std::uint64_t token);
  void remove(int fd) noexcept;

  int epoll_fd() const noexcept { return epfd_; }
  bool has_watchers() const noexcept { return watched_.load(std::memory_order_relaxed) > 0; }

 private:
  int epfd_ = -1;
  int eventfd_ = -1;
  std::atomic<bool> wake_pending_{false};
  std::atomic<int> watched_{0};
};

}  // namespace green::detail
