// green/nursery.hpp — green threads tied to a scope (structured concurrency).
//
//   void handle(green::Socket& sock, const green::Address&) {
//     green::Nursery helpers;                        // this connection's helpers
//     auto w = green::spawn([&] { write_loop(sock); });  // uses sock and locals
//     read_loop(sock);
//   }  // helpers: w is killed (if still running) and waited for, however
//      // handle is left: return, exception or kill
//
// A Nursery makes every green thread that the calling green thread spawns
// while it lives a member: green::spawn, spawn_later, a Group's or Pool's
// spawn, and, transitively, whatever the members spawn. When the Nursery is
// destroyed, members still running are killed (GreenletExit) and the
// destructor waits until every member has ended. So a helper green thread
// that captured references to the scope's locals (a socket, a buffer, a
// queue) can never run after they are gone: the talk's "one green thread per
// direction of I/O" is safe by construction. StreamServer opens one around
// every handler (green/server.hpp), so handlers get this without asking.
//
// Opting out. SpawnOptions::detached, and everything Runtime::spawn starts,
// never joins a Nursery: such a green thread may outlive the scope, and must
// not use its locals.
//
// Blocking. The destructor suspends the owning green thread until the
// members have ended. A member that catches GreenletExit and blocks again
// is killed again every 100 ms. A kill or Timeout that reaches the owner
// while it waits there does not cut the wait short (the members still use
// its stack): it is kept and raised at the owner's next blocking call.
//
// Rules. Create a Nursery in a green thread (green::Error otherwise) and
// destroy it on the same green thread, innermost first when nested (as any
// local). A Nursery is neither copyable nor movable. size() may be called
// from anywhere.
#pragma once

#include <cstddef>

#include "green/detail/fiber.hpp"
#include "green/detail/spin_lock.hpp"
#include "green/detail/waiter.hpp"

namespace green {

class Nursery final : detail::SpawnScope {
 public:
  Nursery();
  ~Nursery();
  Nursery(const Nursery&) = delete;
  Nursery& operator=(const Nursery&) = delete;

  // Members that have not ended yet.
  std::size_t size() const noexcept;

 private:
  void adopt(detail::Fiber& child) noexcept override;
  void release(detail::Fiber& child) noexcept override;
  // Kills the members and waits for every one to end.
  void close() noexcept;

  detail::Fiber* owner_;
  detail::SpawnScope* outer_;  // the owner's scope before this one
  mutable detail::SpinLock lock_;
  detail::Fiber* members_ = nullptr;  // intrusive list through scope_prev/next
  std::size_t size_ = 0;
  detail::WaitList closer_;           // the owner, waiting for size_ == 0
};

}  // namespace green
