// green/detail/park.hpp — parking and waking: the one wait mechanism.
//
// Every blocking call in green (join, sleep, Queue.get, Lock, fd readiness)
// is a park. The caller builds a Waiter (on its own stack), and park() makes
// it visible to wakers through a `publish` callback, then blocks:
//
//   * a green thread switches away first; `publish` runs afterwards on the
//     worker's side of the switch, once its stack is no longer in use, so no
//     waker can resume a green thread that is still running;
//   * a plain OS thread runs `publish` inline and sleeps on a futex.
//
// Each park has a sequence number. A party is woken by one compare-and-swap
// of its park word from "parked in wait seq" to "running": a normal wake, the
// timer of its deadline and an interrupt (kill, Timeout) race on that CAS and
// exactly one wins; the losers do nothing. A stale waker that still holds an
// old Waiter fails the CAS because the sequence moved on.
//
// After park() returns anything but `notified`, the waiter may still be on
// the primitive's wait list: the caller removes it (under the primitive's
// lock) before returning or throwing. A waker removes a waiter from its list
// before calling wake(), and tries the next one when wake() returns false.
#pragma once

#include <atomic>
#include <cstdint>

#include "green/detail/fiber.hpp"
#include "green/detail/waiter.hpp"

namespace green::detail {

// A non-owning reference to a callable, for park()'s publish step.
class PublishFn {
 public:
  template <class F>
  PublishFn(F& f) noexcept  // NOLINT: implicit on purpose
      : obj_(&f), call_([](void* o, Waiter& w) { (*static_cast<F*>(o))(w); }) {}
  void operator()(Waiter& w) const { call_(obj_, w); }

 private:
  void* obj_;
  void (*call_)(void*, Waiter&);
};

// Blocks the caller until a wake(), the deadline, or an interrupt.
// Returns notified, timed_out (the deadline given here passed) or
// interrupted (a kill or a Timeout scope is pending: call
// throw_if_interrupted() once the waiter is off the wait list).
// Throws without parking if an interrupt is already pending; then `publish`
// is not called. `what` names the wait for dumps ("join", "Queue.get").
WakeReason park(Waiter& w, Deadline deadline, PublishFn publish, const char* what);

// Throws the pending kill exception or the TimeoutError of the expired
// Timeout scope, if any. Every blocking call is such a point.
void throw_if_interrupted();

// Workers of the caller's runtime (0 on a plain thread).
unsigned current_worker_count() noexcept;

// Whether a short spin before parking may pay off: the caller is a plain
// thread, or a green thread whose runtime has other workers (one of them
// may be running the holder) and whose own worker has nothing else to run.
// With local work queued the holder may well be in that queue, waiting for
// this worker, so spinning would only delay it (Go's sync.Mutex spins on
// the same condition).
bool spinning_may_pay() noexcept;

// Park with nothing to wait for but the deadline and interrupts.
// Returns true when the deadline passed.
bool sleep_until(Deadline deadline, const char* what);

}  // namespace green::detail
