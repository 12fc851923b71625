// timers.hpp — a worker's deadlines: parked green threads with a timeout.
//
// Owned by one worker and touched only on its thread, so it needs no lock: a
// green thread that parks with a deadline arms its timer on the worker it
// parked on (in the park's after-switch step), whichever worker wakes it.
//
// Cancellation is lazy. An entry records the park sequence it was armed for;
// when the green thread is woken some other way the sequence moves on, the
// entry becomes stale, and it is dropped the moment it reaches the top of the
// heap, before the worker computes how long it may sleep. So a timeout that
// never fires never wakes a worker. Each entry holds a reference on its
// fiber so that reading the park word of a finished fiber stays safe.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "fiber_internal.hpp"
#include "green/detail/fiber.hpp"

namespace green::detail {

class TimerHeap {
 public:
  struct Entry {
    Deadline at;
    Fiber* fiber;
    std::uint64_t seq;
  };

  ~TimerHeap() { clear(); }

  void push(Deadline at, Fiber* f, std::uint64_t seq) {
    f->add_ref();
    heap_.push_back({at, f, seq});
    std::push_heap(heap_.begin(), heap_.end(), later);
  }

  bool empty() const noexcept { return heap_.empty(); }

  // Earliest live deadline, dropping stale entries on top.
  Deadline next_deadline() {
    while (!heap_.empty() && is_stale(heap_.front())) pop();
    return heap_.empty() ? kNoDeadline : heap_.front().at;
  }

  // Calls fire(fiber, seq) for every entry due by `now` (stale ones too:
  // their wake simply loses). Returns how many were due.
  template <class Fire>
  int fire_due(Deadline now, Fire&& fire) {
    int n = 0;
    while (!heap_.empty() && heap_.front().at <= now) {
      const Entry e = take_top();
      fire(e.fiber, e.seq);
      e.fiber->release();
      ++n;
    }
    return n;
  }

  void clear() noexcept {
    for (auto& e : heap_) e.fiber->release();
    heap_.clear();
  }

 private:
  static bool later(const Entry& a, const Entry& b) noexcept { return a.at > b.at; }
  static bool is_stale(const Entry& e) noexcept {
    // acquire pairs with the CAS that woke it: nothing else is read here,
    // relaxed would do, but stale-or-not must not be reordered before push.
    return !parked_in(e.fiber, e.seq);
  }
  Entry take_top() noexcept {
    std::pop_heap(heap_.begin(), heap_.end(), later);
    const Entry e = heap_.back();
    heap_.pop_back();
    return e;
  }
  void pop() noexcept { take_top().fiber->release(); }

  std::vector<Entry> heap_;
};

}  // namespace green::detail
