// semaphore.cpp — Semaphore: a count and a FIFO of waiters under one lock.
//
// Invariant: while anybody waits, count_ is 0. release() therefore either
// hands its permit to the front waiter (the count does not change) or, when
// nobody accepts it, adds it to the count. A woken waiter owns its permit
// before it even runs again, which is what makes the queue fair (gevent's
// test_fair_or_hangs) and what keeps a killed waiter from leaking one: its
// wake() fails and the permit moves on to the next waiter.
#include "green/semaphore.hpp"

#include <string>

namespace green {

namespace {
std::ptrdiff_t checked(std::ptrdiff_t value) {
  if (value < 0)
    throw Error("green::Semaphore: initial value must be >= 0, got " + std::to_string(value));
  return value;
}
}  // namespace

Semaphore::Semaphore(std::ptrdiff_t value)
    : count_(checked(value)), bound_(std::numeric_limits<std::ptrdiff_t>::max()) {}

Semaphore::Semaphore(std::ptrdiff_t value, std::ptrdiff_t bound)
    : count_(checked(value)), bound_(bound) {}

bool Semaphore::acquire() { return acquire_until(detail::kNoDeadline); }

bool Semaphore::acquire(Clock::duration timeout) {
  if (timeout <= Clock::duration::zero()) return try_acquire();
  return acquire_until(detail::deadline_after(timeout));
}

bool Semaphore::acquire_until(detail::Deadline deadline) {
  std::unique_lock lk(lock_);
  if (count_ > 0) {
    --count_;
    return true;
  }
  detail::Waiter w;
  // Woken means handed a permit by release(); false means the deadline.
  return detail::park_on(lk, waiters_, w, deadline, "Semaphore.acquire");
}

bool Semaphore::try_acquire() noexcept {
  std::lock_guard g(lock_);
  if (count_ <= 0) return false;
  --count_;
  return true;
}

void Semaphore::release() {
  std::lock_guard g(lock_);
  if (waiters_.wake_one()) return;  // the permit went to a waiter
  if (count_ >= bound_)
    throw Error("green::BoundedSemaphore: released more times than acquired (bound " +
                std::to_string(bound_) + ")");
  ++count_;
}

void Semaphore::release(std::ptrdiff_t n) {
  if (n < 0) throw Error("green::Semaphore::release: negative count " + std::to_string(n));
  for (std::ptrdiff_t i = 0; i < n; ++i) release();
}

std::ptrdiff_t Semaphore::value() const noexcept {
  std::lock_guard g(lock_);
  return count_;
}

}  // namespace green
