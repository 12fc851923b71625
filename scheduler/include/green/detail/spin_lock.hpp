// green/detail/spin_lock.hpp — a tiny test-and-test-and-set lock.
//
// Used only around a handful of pointer updates (a green thread's link list,
// a wait list's head and tail), never around a switch or a system call, so a
// holder is never descheduled by green itself and spinning is short. A plain
// OS thread may hold it too, which is why it is not a green lock.
#pragma once

#include <sched.h>

#include <atomic>

namespace green::detail {

class SpinLock {
 public:
  void lock() noexcept {
    for (;;) {
      // acquire: the holder's writes before its unlock() are visible to us.
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
      // The holder may be a plain thread the OS preempted: after a short
      // spin, give the CPU away rather than burn the holder's time slice.
      for (unsigned spins = 0; locked_.load(std::memory_order_relaxed); ++spins) {
        if (spins < 128) {
          __builtin_ia32_pause();
        } else {
          sched_yield();
        }
      }
    }
  }
  bool try_lock() noexcept {
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  // release: publishes everything written while holding the lock.
  void unlock() noexcept { locked_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> locked_{false};
};

}  // namespace green::detail
