// green/detail/park_on.hpp — the wait step every sync/ primitive shares.
//
// A primitive guards its state and its wait lists with one SpinLock. A
// caller that must wait holds that lock, decides to wait, and calls
// park_on(). The lock is released only once the caller is parked (for a
// green thread: after its switch, on the worker's side; see park.hpp), so a
// waker that takes the lock next always finds the waiter on the list and can
// wake it: no wake-up is ever lost between "decide to wait" and "wait".
//
// The waker's side of the deal: it removes the waiter from the list and
// calls wake() while holding the lock, and does its part of the exchange
// (hands over an item, a permit, ownership) before wake(), undoing it when
// wake() returns false. A waiter that timed out or was interrupted takes the
// lock to unlink itself, so its Waiter (on its stack) stays alive for as long
// as any waker can see it.
#pragma once

#include <cstdint>
#include <mutex>

#include "green/detail/park.hpp"
#include "green/detail/spin_lock.hpp"

namespace green::detail {

// Parks the caller on `list` (at the back, or the front when `front`).
// Precondition: `lk` holds the lock that guards `list`. Returns with `lk`
// unlocked: true when a waker took the waiter off the list and woke it,
// false when the deadline passed first (the waiter is then off the list).
// An interrupt (kill, Timeout) is thrown once the waiter is off the list;
// if one was already pending, park() throws before parking and `lk` is still
// held (the caller's unique_lock releases it while unwinding).
inline bool park_on(std::unique_lock<SpinLock>& lk, WaitList& list, Waiter& w, Deadline deadline,
                    const char* what, bool front = false) {
  auto publish = [&](Waiter& me) {
    if (front) {
      list.push_front(me);
    } else {
      list.push_back(me);
    }
    lk.unlock();
  };
  const WakeReason r = park(w, deadline, PublishFn(publish), what);
  if (r == WakeReason::notified) return true;
  lk.lock();
  list.remove(w);
  lk.unlock();
  if (r == WakeReason::interrupted) throw_if_interrupted();
  return false;
}

// Identifies the caller as an owner (RLock): green threads by their id,
// plain OS threads by a number of their own (high bit set, so the two never
// collide). Never 0.
std::uint64_t current_owner_id() noexcept;

}  // namespace green::detail
