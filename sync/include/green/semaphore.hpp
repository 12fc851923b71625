// green/semaphore.hpp — counting semaphores (gevent.lock.Semaphore and
// BoundedSemaphore).
//
//   green::Semaphore downloads(20);          // at most 20 at once
//   {
//     std::lock_guard slot(downloads);        // acquire ... release
//     fetch(url);
//   }
//
// A Semaphore holds a count of permits. acquire() takes one, waiting while
// there are none; release() gives one back. Waiters are served first come,
// first served: release() hands its permit straight to the longest waiting
// party, so a caller that arrives later and finds the count at zero cannot
// take a permit that a woken waiter was given. A waiter that times out or is
// killed leaves the queue without a permit; the permit goes to the next one
// (nothing is leaked, nothing is taken twice).
//
// Blocking. acquire() suspends only the calling green thread; on a plain OS
// thread it blocks that thread (futex). It honours green::Timeout scopes and
// kill: it then throws (TimeoutError / GreenletExit) without a permit.
//
// Thread safety: every member may be called from any green thread or plain
// thread, on any worker. release() never blocks.
#pragma once

#include <cstddef>
#include <limits>
#include <mutex>

#include "green/current.hpp"
#include "green/detail/park_on.hpp"
#include "green/errors.hpp"

namespace green {

class Semaphore {
 public:
  // Starts with `value` permits; a negative value throws green::Error.
  explicit Semaphore(std::ptrdiff_t value = 1);
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;
  // Destroying a Semaphore that somebody still waits on is a bug in the
  // caller, as for std::mutex.
  ~Semaphore() = default;

  // Takes a permit, waiting as long as it takes. Always returns true.
  bool acquire();
  // Takes a permit, waiting at most `timeout`; false if none came in time.
  // A timeout <= 0 only tries.
  bool acquire(Clock::duration timeout);
  // Takes a permit if one is free right now and nobody waits for one.
  bool try_acquire() noexcept;
  // Gives one permit back: to the longest waiting party if any, else to the
  // count. BoundedSemaphore throws green::Error past its initial value.
  void release();
  // Gives `n` permits back, as n release() calls.
  void release(std::ptrdiff_t n);

  // Free permits now (a snapshot).
  std::ptrdiff_t value() const noexcept;
  // True if acquire() would wait now.
  bool locked() const noexcept { return value() <= 0; }

  // BasicLockable and Lockable, for std::lock_guard / std::unique_lock.
  void lock() { acquire(); }
  bool try_lock() noexcept { return try_acquire(); }
  void unlock() { release(); }

 protected:
  Semaphore(std::ptrdiff_t value, std::ptrdiff_t bound);

 private:
  bool acquire_until(detail::Deadline deadline);

  mutable detail::SpinLock lock_;
  std::ptrdiff_t count_;         // free permits; never > 0 while waiters wait
  const std::ptrdiff_t bound_;   // release() beyond this throws
  detail::WaitList waiters_;
};

// A Semaphore whose count may never exceed its initial value: a release()
// without a matching acquire() throws green::Error instead of silently
// adding a permit (it catches double releases).
class BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(std::ptrdiff_t value = 1) : Semaphore(value, value) {}
};

}  // namespace green
