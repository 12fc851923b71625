// green/detail/park.hpp — the wait protocol: how a party blocks and how
// others wake it. Every wait in green goes through this header: join, sleep,
// spawn_later, the sync/ primitives, fd readiness, offload's completion,
// Nursery's close, the tests' Baton. The implementation is
// scheduler/src/park.cpp; no other file writes a park word (timers and
// dumps read it through fiber_internal.hpp's parked_in() and is_parked()).
//
// PARTIES. A green thread parks by switching away, so its worker runs other
// work; a plain OS thread parks on a futex. Wakers see both the same way: a
// Waiter (waiter.hpp), which lives on the parker's stack and names the party
// and the number of this wait.
//
// THE PARK WORD. Each party has a 64-bit park word and a park sequence
// number that only the party itself advances:
//
//     (seq << 1) | 1    parked in wait number seq
//     (seq << 1)        running, or woken from wait seq
//
// A wait ends with one compare-and-swap from "parked in seq" to "woken from
// seq". Three kinds of waker race for that CAS: a primitive's wake()
// (reason `notified`), the timer of the wait's deadline (`timed_out`) and an
// interrupt: a kill, or the expiry of a green::Timeout scope
// (`interrupted`). Exactly one wins. The winner records the reason, then
// makes the party runnable; the losers do nothing. A waker holding a stale
// Waiter (from an earlier wait of the same party) loses because seq moved
// on, which is why timers are never cancelled: a stale one fails its CAS.
//
// WHO TOUCHES WHAT.
//   park word            stored by the parker (or by its worker on its
//                        behalf, while publishing); CAS by any waker.
//   park seq; a Waiter's fiber, thread and seq
//                        the parker, before publishing.
//   wake_reason          the CAS winner, before it makes the party runnable;
//                        the party reads it once it runs (the run queue's
//                        hand-off, or the futex word, orders the two).
//   a Waiter's links     the primitive's lock.
//   interrupt, interrupt_pending
//                        set under the fiber's lock (kill); taken and
//                        cleared by the fiber itself when it throws.
//
// PUBLISHING. A parker must not be findable before it has stopped running,
// or a waker on another worker could resume a green thread whose stack is
// still in use. So a green thread parks in three steps:
//   1. On its own stack: throw at once if an interrupt is pending or a
//      Timeout scope has expired; take seq = ++park_seq and fill in the
//      Waiter; switch away (Worker::suspend).
//   2. On the worker, past the switch, with the old stack idle: set
//      `publishing`; arm the timer for the earlier of the wait's deadline and
//      the earliest unfired Timeout scope; store the park word "parked in
//      seq" (seq_cst); run the caller's publish step, which links the Waiter
//      where wakers look and releases the primitive's lock; load
//      interrupt_pending (seq_cst) and, if set, CAS the park word itself;
//      clear `publishing` (release).
//   3. Resumed, possibly on another worker: spin while `publishing` is set.
//      A waker can win the CAS during step 2 (the primitive's lock is free
//      once publish released it, and a kill reads the park word directly),
//      and the Waiter on our stack must outlive the publish step using it.
// A plain thread runs the same steps inline (there is nothing to switch
// away from), then sleeps on its futex. When its deadline passes it races
// the wakers for its own park word as a timer would; if it loses, the
// winner is about to set the futex word, and it waits for that.
//
// KILL AGAINST PARK. kill() stores the exception and sets
// interrupt_pending (seq_cst) under the fiber's lock, then loads the park
// word (seq_cst) and CASes it if it shows a park. Step 2 stores the park
// word before it loads interrupt_pending. All four are seq_cst, so at least
// one side sees the other: a kill racing a park is never lost. A Timeout
// scope arms nothing by itself; the park's timer covers it, and when that
// timer fires for a scope the scope is marked fired and park() reports
// `interrupted`, so throw_if_interrupted() throws its TimeoutError.
//
// WHAT A WAKER MUST DO. Under the lock that guards the wait list: take the
// Waiter off the list, do its part of the exchange (hand over the item, the
// permit, the ownership), then call wake(). When wake() returns false the
// party had already left (timed out or interrupted): undo the exchange and
// try the next Waiter. The lock keeps the Waiter alive: a party that was not
// woken by wake() takes the same lock to unlink itself before its stack
// frame goes.
//
// WHAT THE PARKER MUST DO. After anything but `notified`: take the lock,
// unlink the Waiter (it may still be listed), release the lock and, for
// `interrupted`, call throw_if_interrupted(). park_on() and park_unlocked()
// below do exactly this; call the raw park() only from park.cpp.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

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

// The parker's side after park() (see WHAT THE PARKER MUST DO): true when
// notified; otherwise unlinks `w` under `lock` and returns false, or throws
// the interrupt.
template <class Lock, class Unlist>
bool leave_park(WakeReason r, Lock& lock, Waiter& w, Unlist&& unlist) {
  if (r == WakeReason::notified) return true;
  {
    std::lock_guard g(lock);
    unlist(w);
  }
  if (r == WakeReason::interrupted) throw_if_interrupted();
  return false;
}

// Parks the caller on `list` (at the back, or the front when `front`).
// Precondition: `lk` holds the lock that guards `list`, and the caller has
// decided under it to wait. The lock is released only once the caller is
// parked (in the publish step), so a waker that takes it next always finds
// the Waiter: no wake-up is lost between "decide to wait" and "wait".
// Returns with `lk` unlocked: true when a waker took the Waiter off the list
// and woke it, false when the deadline passed first (then it is off the
// list). An interrupt is thrown once the Waiter is off the list; if one was
// already pending, this throws before parking with `lk` still held (the
// caller's unique_lock releases it while unwinding).
//
// The lock is held across the switch, so it must be one the scheduler never
// takes while it picks the next green thread (a sync/ primitive's own lock,
// never a Fiber's or an fd's): use park_unlocked() for those.
//
// Always inlined: it is every sync/ primitive's wait, and a call here costs
// a measurable share of a Queue hand-off.
template <class Lock>
[[gnu::always_inline]] inline bool park_on(std::unique_lock<Lock>& lk, WaitList& list, Waiter& w,
                                           Deadline deadline, const char* what, bool front = false) {
  auto publish = [&](Waiter& me) {
    if (front) {
      list.push_front(me);
    } else {
      list.push_back(me);
    }
    lk.unlock();
  };
  if (!w.object) w.object = WaitObject::plain(&list);
  const WakeReason r = park(w, deadline, PublishFn(publish), what);
  return leave_park(r, *lk.mutex(), w, [&](Waiter& me) { list.remove(me); });
}

// The publish step of park_unlocked() and park_unlocked_status(): runs
// `enlist` under `lock`; when it declines, the wait ends at once, woken
// outside the lock (`me` is on no list, so no waker can see it).
template <class Lock, class Enlist>
auto enlist_under(Lock& lock, Enlist& enlist) {
  return [&lock, &enlist](Waiter& me) {
    bool wait;
    {
      std::lock_guard g(lock);
      wait = enlist(me);
    }
    if (!wait) wake(me);
  };
}

// Parks the caller on a condition guarded by `lock`, which the caller does
// NOT hold. Once parked, `enlist(w)` runs under `lock` and re-checks: it
// returns false when there is nothing to wait for any more (the wait then
// ends at once, as notified), or links `w` where wakers will find it and
// returns true. `unlist(w)` runs under `lock` when the wait ended other than
// by a wake and must unlink `w` if it is still linked. Returns true when
// woken (or enlist declined), false when the deadline passed; throws an
// interrupt as park_on() does.
template <class Lock, class Enlist, class Unlist>
bool park_unlocked(Lock& lock, Waiter& w, Deadline deadline, const char* what, Enlist&& enlist,
                   Unlist&& unlist) {
  auto publish = enlist_under(lock, enlist);
  const WakeReason r = park(w, deadline, PublishFn(publish), what);
  return leave_park(r, lock, w, unlist);
}

// The common case of park_unlocked(): waits on `list` until `ready()`,
// checked under `lock`, holds; a waker wakes the list under `lock` once it
// made ready() true. One park: returns true when ready() held or a wake
// came, false when the deadline passed. `ready` may consume what it finds.
template <class Lock, class Ready>
bool wait_until(Lock& lock, WaitList& list, Deadline deadline, const char* what, Ready&& ready) {
  Waiter w;
  w.object = WaitObject::plain(&list);  // a join: the dump names the green thread
  return park_unlocked(
      lock, w, deadline, what,
      [&](Waiter& me) {
        if (ready()) return false;
        list.push_back(me);
        return true;
      },
      [&](Waiter& me) { list.remove(me); });
}

// Park with nothing to wait for but the deadline and interrupts.
// Returns true when the deadline passed.
bool sleep_until(Deadline deadline, const char* what);

// ---- Waits that must not throw ----------------------------------------------
// green::monkey's hooks run under a C library's frames (libpq's, libcurl's),
// through which no C++ exception may pass. They wait with the variants
// below, which report an interrupt instead of throwing it, and leave it
// pending: the green thread's next throwing blocking call (or
// throw_if_interrupted()) raises it.

// What interrupt the calling green thread has pending, checking its Timeout
// scopes' deadlines now. `token` tells one pending interrupt from the next:
// for a kill, the count of kills delivered to this green thread; for a
// Timeout, the scope's id. {none, 0} on a plain thread.
struct PendingInterrupt {
  enum Kind : std::uint8_t { none, kill, timeout };
  Kind kind = none;
  std::uint64_t token = 0;
};
PendingInterrupt pending_interrupt() noexcept;

// park() that never throws an interrupt: one pending before the park is
// reported as `interrupted` without parking (`publish` is not called).
// Call it only through park_unlocked_status() or sleep_until_nothrow().
WakeReason park_nothrow(Waiter& w, Deadline deadline, PublishFn publish, const char* what);

// park_unlocked() that reports how the wait ended instead of throwing:
// notified (woken, or enlist declined), timed_out or interrupted. After
// anything but notified, `unlist(w)` has run under `lock`.
template <class Lock, class Enlist, class Unlist>
WakeReason park_unlocked_status(Lock& lock, Waiter& w, Deadline deadline, const char* what,
                                Enlist&& enlist, Unlist&& unlist) {
  auto publish = enlist_under(lock, enlist);
  const WakeReason r = park_nothrow(w, deadline, PublishFn(publish), what);
  if (r != WakeReason::notified) {
    std::lock_guard g(lock);
    unlist(w);
  }
  return r;
}

// sleep_until() that reports `timed_out` (slept to the deadline) or
// `interrupted` instead of throwing.
WakeReason sleep_until_nothrow(Deadline deadline, const char* what);

// Runs fn(arg), a wait made under a C library's frames (a monkey hook). On
// a green thread the wait ends on the worker it began on, since the C code
// may hold its OS thread's &errno or thread-locals across the call; under
// ThreadSanitizer it also runs outside the state of TSan's blocking
// interceptor the hook is inside (see switch.cpp). On a plain thread: fn(arg).
void run_wait_under_c_frames(void (*fn)(void*), void* arg);

// Workers of the caller's runtime (0 on a plain thread).
unsigned current_worker_count() noexcept;

// Whether a short spin before parking may pay off: the caller is a plain
// thread, or a green thread whose runtime has other workers (one of them
// may be running the holder) and whose own worker has nothing else to run.
// With local work queued the holder may well be in that queue, waiting for
// this worker, so spinning would only delay it (Go's sync.Mutex spins on
// the same condition).
bool spinning_may_pay() noexcept;

}  // namespace green::detail
