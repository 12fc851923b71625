// fiber_internal.hpp — the steps of a green thread's life that the files of
// scheduler/src share: parking internals (park.cpp), completion
// (lifecycle.cpp), locals (locals.cpp).
#pragma once

#include <cstdint>
#include <exception>

#include "green/detail/fiber.hpp"

namespace green::detail {

class Worker;

// ---- park.cpp ---------------------------------------------------------------
// One CAS on the park word (see park.hpp); on success records `reason` and
// makes f runnable.
bool try_wake_fiber(Fiber* f, std::uint64_t seq, WakeReason reason) noexcept;
// Parks a spawn_later green thread on w's timers until `at`, before its first
// run. A kill wakes it early; it then starts, sees the interrupt and never
// runs its body.
void park_until_start(Fiber* f, Worker* w, Deadline at);
// Makes `e` f's pending interrupt (unless one is pending: the first wins),
// without waking it; thrown at its next blocking call. False if f is done.
bool hold_interrupt(Fiber& f, std::exception_ptr e);
// hold_interrupt(), then wakes f if it is parked (kill).
void deliver_interrupt(Fiber& f, std::exception_ptr e);
// Cheap pre-check for the common case: nothing to throw.
inline bool has_interrupt(const Fiber* f) noexcept {
  return f->interrupt_pending.load(std::memory_order_relaxed) || f->expired_scope != 0;
}
// Read-only views of the park word, for timers (a stale entry) and dumps.
inline bool parked_in(const Fiber* f, std::uint64_t seq) noexcept {
  return f->park_word.load(std::memory_order_acquire) == ((seq << 1) | 1);
}
// acquire: a dump() that shows a green thread parked comes after what that
// green thread did before parking, and tests that synchronise on dump()
// (wait_parked) are then ordered for ThreadSanitizer too (a test closing an
// fd a hooked read registered with the hub: the close comes after the
// registration's epoll_ctl).
inline bool is_parked(const Fiber* f) noexcept {
  return f->park_word.load(std::memory_order_acquire) & 1;
}
// The check of a blocking call that does not park (yield): raises a pending
// kill, or a Timeout scope that expired while the green thread ran. Inline:
// yield pays two of these, and the common case is nothing to look at.
void check_scopes_and_interrupts(Fiber* self);
inline void interruption_point(Fiber* self) {
  if (self->scopes || has_interrupt(self)) check_scopes_and_interrupts(self);
}

// A plain thread's standing for the deadlock check (monitor.hpp). A plain
// thread parked in a join that the check watches is the one waiting, not a
// possible waker: enter_watched_join() detaches it until
// leave_watched_join(). A pool thread detaches after each job
// (detach_plain_thread): its jobs are counted while they run.
void enter_watched_join() noexcept;
void leave_watched_join() noexcept;
void detach_plain_thread() noexcept;

// ---- lifecycle.cpp ----------------------------------------------------------
// Runs the body (unless killed before starting) and completes the fiber:
// stores the result, wakes joiners, runs links, leaves the registry.
// Runs on the fiber's own stack.
void run_fiber(Fiber* self) noexcept;
// Completes a fiber that could not start (no stack): runs on the caller.
void complete_unstarted(Fiber* f, std::exception_ptr error) noexcept;

// ---- locals.cpp -------------------------------------------------------------
// Destroys f's green::local values, newest first (a later one may refer to
// an earlier one).
void destroy_locals(Fiber& f) noexcept;

}  // namespace green::detail
