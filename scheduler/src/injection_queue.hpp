// injection_queue.hpp — the runtime's shared queue of runnable green threads.
//
// Fed by plain threads (spawn, wake) and by workers whose deque is full; read
// by every worker every kFairTick picks and whenever it runs dry. It is a
// cold path next to the deques, so a mutex is fine, but it moves work in
// batches (half a deque at a time) to keep that mutex off the per-green-thread
// cost. `size` is kept outside the lock so that "is there anything?" costs
// one load.
#pragma once

#include <atomic>
#include <cstddef>
#include <deque>
#include <mutex>

namespace green::detail {

class Fiber;

class InjectionQueue {
 public:
  void push(Fiber* f) {
    std::lock_guard g(mu_);
    items_.push_back(f);
    size_.fetch_add(1, std::memory_order_seq_cst);
  }
  template <class It>
  void push_batch(It first, It last) {
    std::lock_guard g(mu_);
    std::size_t n = 0;
    for (; first != last; ++first, ++n) items_.push_back(*first);
    size_.fetch_add(n, std::memory_order_seq_cst);
  }
  // Moves up to `max` green threads, oldest first, into out[]; returns how
  // many. The caller queues them after the lock is dropped (queueing may
  // overflow back into this queue).
  std::size_t pop_batch(std::size_t max, Fiber** out) {
    if (empty()) return 0;
    std::lock_guard g(mu_);
    std::size_t n = 0;
    while (n < max && !items_.empty()) {
      out[n++] = items_.front();
      items_.pop_front();
    }
    size_.fetch_sub(n, std::memory_order_relaxed);
    return n;
  }
  bool empty() const noexcept { return size_.load(std::memory_order_acquire) == 0; }
  std::size_t size() const noexcept { return size_.load(std::memory_order_acquire); }

 private:
  std::mutex mu_;
  std::deque<Fiber*> items_;
  std::atomic<std::size_t> size_{0};
};

}  // namespace green::detail
