// green/lock.hpp — mutual exclusion between green threads (and plain
// threads): Lock and the re-entrant RLock (gevent.lock).
//
//   green::Lock mu;
//   {
//     std::lock_guard g(mu);       // or std::unique_lock, std::scoped_lock
//     ++shared_counter;
//   }
//
// Blocking. lock() suspends only the calling green thread (a plain OS thread
// blocks on a futex). While the lock is busy a caller on a multi-worker
// runtime first spins very briefly, since the holder is most likely running
// on another worker and about to release it, then parks. lock() honours
// green::Timeout scopes and kill: the waiter leaves the queue and throws;
// a green thread killed while waiting never gets the lock.
//
// Fairness. Like Go's sync.Mutex, the lock is not strictly FIFO: a party
// that arrives while the lock is free may take it ahead of a waiter that
// was just woken (which then queues again, at the front). That keeps a hot
// lock fast. A waiter that has waited longer than about a millisecond is
// handed the lock directly on the next unlock(), so nobody starves.
//
// Thread safety: any member from any green thread or plain thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>

#include "green/current.hpp"
#include "green/detail/park_on.hpp"
#include "green/errors.hpp"

namespace green {

// A non-recursive lock with no owner: any party may unlock it (gevent's
// Lock is a Semaphore(1)). Runtime::dump() still names the green thread that
// took it last, from a frame address each acquisition records (one store). Unlocking a Lock that is not locked throws
// green::Error. Locking it twice from one green thread deadlocks that green
// thread (use RLock for re-entrancy).
class Lock {
 public:
  Lock() = default;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  // Waits until the lock is free and takes it.
  void lock() {
    std::uint32_t s = 0;
    // acquire: pairs with unlock()'s release; the critical section starts here.
    if (!state_.compare_exchange_weak(s, kLocked, std::memory_order_acquire,
                                      std::memory_order_relaxed))
      lock_slow(detail::kNoDeadline);
    held_by_.set(__builtin_frame_address(0));  // for Runtime::dump(): who holds it
  }
  // Takes the lock if it is free now.
  bool try_lock() noexcept {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    while (!(s & kLocked)) {
      if (state_.compare_exchange_weak(s, s | kLocked, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        held_by_.set(__builtin_frame_address(0));
        return true;
      }
    }
    return false;
  }
  // Waits at most `timeout`; false if the lock was not free in time.
  bool try_lock_for(Clock::duration timeout);
  // gevent's spelling: acquire() blocks; acquire(timeout) as try_lock_for.
  bool acquire() {
    lock();
    return true;
  }
  bool acquire(Clock::duration timeout) { return try_lock_for(timeout); }

  // Releases the lock (and lets the front waiter compete for it).
  void unlock() {
    std::uint32_t s = kLocked;
    // release: publishes the critical section to the next holder.
    if (state_.compare_exchange_strong(s, 0, std::memory_order_release,
                                       std::memory_order_relaxed))
      return;
    unlock_slow();
  }
  void release() { unlock(); }

  bool locked() const noexcept { return state_.load(std::memory_order_relaxed) & kLocked; }

 private:
  static constexpr std::uint32_t kLocked = 1;   // somebody holds it
  static constexpr std::uint32_t kWaiters = 2;  // waiters_ is not empty
  static constexpr std::uint32_t kWoken = 4;    // a woken waiter is on its way

  bool lock_slow(detail::Deadline deadline);
  void unlock_slow();
  void pass_on_wake() noexcept;

  std::atomic<std::uint32_t> state_{0};
  detail::HeldBy held_by_;  // a frame of the party that took it last
  detail::SpinLock wait_lock_;  // guards waiters_ and the kWaiters/kWoken bits
  detail::WaitList waiters_;    // Waiter.tag: when it first queued (ns)
};

// A re-entrant lock owned by a green thread (or a plain thread): its owner
// may lock it again, and it is released when unlock() has been called as
// many times as lock(). Ownership belongs to the green thread, not the OS
// thread, so it stays with the green thread when it migrates between
// workers. unlock() by anybody but the owner throws green::Error.
class RLock {
 public:
  RLock() = default;
  RLock(const RLock&) = delete;
  RLock& operator=(const RLock&) = delete;

  void lock();
  bool try_lock();
  bool try_lock_for(Clock::duration timeout);
  bool acquire() {
    lock();
    return true;
  }
  bool acquire(Clock::duration timeout) { return try_lock_for(timeout); }
  void unlock();
  void release() { unlock(); }

  bool locked() const noexcept { return inner_.locked(); }
  // True when the caller owns it (gevent's _is_owned()).
  bool is_owned() const noexcept;
  // How many times the owner holds it (0 when free); meaningful to the owner.
  unsigned count() const noexcept { return is_owned() ? count_ : 0; }

 private:
  Lock inner_;
  // Written only by the owner while it holds inner_; others read it only to
  // see that it is not them, so relaxed suffices.
  std::atomic<std::uint64_t> owner_{0};
  unsigned count_ = 0;  // touched only by the owner
};

}  // namespace green
