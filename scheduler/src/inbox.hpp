// inbox.hpp — a worker's inbox: green threads other threads hand to it.
//
// What arrives here: a pinned green thread woken by another worker or a
// plain thread, and a spawn placed on this worker from elsewhere. Many
// producers, one consumer (the owning worker).
//
// Producers push onto an intrusive lock-free stack: one compare-and-swap on
// one cache line, with the link kept in the Fiber itself (the waker has just
// written that Fiber's park word, so its line is already at hand). The owner
// takes the whole stack with one exchange and reverses it into a private
// FIFO, so green threads run in the order they were posted. Compared with a
// locked std::deque this saves the lock's line and the deque's node lines
// that every cross-worker wake used to pull from the other core.
//
// ABA cannot occur: the only pop is the owner's exchange of the whole stack,
// and a Fiber is runnable (so posted) at most once at a time, so its link is
// never rewritten while it sits here.
#pragma once

#include <atomic>

#include "green/detail/fiber.hpp"

namespace green::detail {

class Inbox {
 public:
  // Any thread. seq_cst: the caller's "is the owner parked?" check that
  // follows must not be ordered before this push (see Worker::post).
  void push(Fiber* f) noexcept {
    Fiber* top = top_.load(std::memory_order_relaxed);
    do {
      f->inbox_next = top;
    } while (!top_.compare_exchange_weak(top, f, std::memory_order_seq_cst,
                                         std::memory_order_relaxed));
  }

  // Any thread: whether producers have pushed something the owner has not
  // taken yet (the owner's private FIFO is not visible here).
  bool has_posted() const noexcept { return top_.load(std::memory_order_relaxed) != nullptr; }

  // Owner only: anything to pop, private FIFO included.
  bool empty() const noexcept {
    return !taken_ && top_.load(std::memory_order_relaxed) == nullptr;
  }

  // Owner only: the oldest green thread posted, or nullptr.
  Fiber* pop() noexcept {
    if (!taken_) {
      if (top_.load(std::memory_order_relaxed) == nullptr) return nullptr;
      // acquire: pairs with push(); what the producers wrote to the Fibers
      // (their links included) is visible from here on.
      Fiber* newest_first = top_.exchange(nullptr, std::memory_order_acquire);
      while (newest_first) {
        Fiber* older = newest_first->inbox_next;
        newest_first->inbox_next = taken_;
        taken_ = newest_first;
        newest_first = older;
      }
    }
    Fiber* f = taken_;
    if (f) {
      taken_ = f->inbox_next;
      f->inbox_next = nullptr;
    }
    return f;
  }

 private:
  // Producers' line, apart from the owner's private FIFO.
  alignas(64) std::atomic<Fiber*> top_{nullptr};
  alignas(64) Fiber* taken_ = nullptr;  // oldest first
};

}  // namespace green::detail
