// fd_table.hpp — the readiness state of every fd green waits on.
//
// One FdState per fd number, in a table that only grows (chunks are never
// freed or moved), so a readiness event can always look its state up, even
// one that arrives after the fd was closed. Each state carries a
// generation: registering an fd with a hub encodes (generation, fd) in the
// epoll token, and close_fd() bumps the generation, so an event for an fd
// that was closed (and whose number may already belong to a new fd) fails
// the generation check and is dropped.
//
// All fields of a state are guarded by its SpinLock; the ready handler
// (called by whichever worker polls the hub) takes it too. Wakes happen
// under it, per park.hpp's rule.
#pragma once

#include <atomic>
#include <cstdint>

#include "green/detail/park.hpp"
#include "green/detail/spin_lock.hpp"

namespace green::io_detail {

enum class Direction { read, write };

struct FdState {
  detail::SpinLock lock;
  std::uint32_t generation = 1;  // never 0, so that no token is 0
  bool registered = false;       // with some hub, in this generation
  // Set (under `lock`) the first time the number is registered, and never
  // cleared: until then no waiter, readiness or generation of it matters,
  // and close_fd_with() touches nothing but this flag. That keeps closes of
  // fds green never saw (most of a program's) off the lock, and keeps the
  // hooked close() that a sanitizer's own runtime makes while it writes a
  // report (its symbolizer closes files) out of instrumented code, which
  // would report again inside the report and deadlock.
  std::atomic<bool> ever_registered{false};
  bool readable = false;         // an edge nobody consumed yet
  bool writable = false;
  // The peer hung up or the socket failed (RDHUP/HUP/ERR seen): a read
  // returns at once from now on, so read waits never block again. No edge
  // follows a hang-up; a reader that waits after it for any reason must not
  // wait for one.
  bool read_closed = false;
  detail::Waiter* reader = nullptr;
  detail::Waiter* writer = nullptr;
};

// The state of fd (fd >= 0; throws Error past the table's size).
FdState& fd_state(int fd);
// The state of fd if its part of the table exists, else null; allocates
// nothing and never throws.
FdState* find_fd_state(int fd) noexcept;

// Waits for `dir` readiness of fd until `deadline`; false when it passed.
// `op` names the operation for errors ("recv", "accept").
bool wait_fd(int fd, Direction dir, detail::Deadline deadline, const char* op);

}  // namespace green::io_detail
