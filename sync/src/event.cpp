// event.cpp — Event: a flag plus a wait list under one lock.
//
// The flag changes only under the lock, and a waiter decides to wait under
// it, so set() either finds the waiter on the list or the waiter sees the
// flag: no wake is lost. set() wakes all waiters under the lock; a woken
// waiter returns true without looking at the flag again, which is what makes
// "set(); clear();" wake everybody who was waiting.
#include "green/event.hpp"

namespace green {

void Event::set() {
  std::lock_guard g(lock_);
  flag_.store(true, std::memory_order_release);
  waiters_.wake_all();
}

void Event::clear() noexcept {
  std::lock_guard g(lock_);
  flag_.store(false, std::memory_order_relaxed);
}

bool Event::wait() { return wait_until(detail::kNoDeadline); }

bool Event::wait(Clock::duration timeout) { return wait_until(detail::deadline_after(timeout)); }

bool Event::wait_until(detail::Deadline deadline) {
  if (is_set()) return true;  // as join() on a finished green thread: no switch
  std::unique_lock lk(lock_);
  if (flag_.load(std::memory_order_relaxed)) return true;
  detail::Waiter w;
  if (detail::park_on(lk, waiters_, w, deadline, "Event.wait")) return true;
  return is_set();
}

}  // namespace green
