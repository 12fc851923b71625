// steal.cpp — taking work that other workers or plain threads queued: half
// of a random victim's deque, a fair share of the injection queue, and the
// readiness events of a busy worker's hub.
//
// A thief takes from the front of a victim's deque (the oldest entries: the
// largest pieces of work, and the least likely to share a cache with the
// victim) through its Stealer handle, one CAS an item. Pinned green threads
// never sit in a deque (placement.cpp), so whatever is stolen may run here.
#include <algorithm>

#include "runtime_core.hpp"
#include "worker.hpp"

namespace green::detail {

Fiber* Worker::steal_work() {
  const unsigned n = rt_->worker_count();
  if (n < 2) return nullptr;
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 17;
  rng_ ^= rng_ << 5;
  const unsigned start = rng_ % n;
  for (unsigned i = 0; i < n; ++i) {
    Worker& victim = rt_->worker((start + i) % n);
    if (&victim == this) continue;
    const WorkDeque::Stealer thief = victim.stealer();
    const std::uint32_t available = thief.size_approx();
    if (available == 0) continue;
    Fiber* first = nullptr;
    for (std::uint32_t k = 0; k < (available + 1) / 2; ++k) {
      Fiber* f = thief.steal();
      if (!f) break;
      bump(counters_.stolen);
      if (!first) {
        first = f;
      } else {
        place(f, Place::back);
      }
    }
    if (first) {
      bump(counters_.steals);
      return first;
    }
  }
  return nullptr;
}

Fiber* Worker::take_injected() noexcept {
  InjectionQueue& q = rt_->injected();
  if (q.empty()) return nullptr;
  // Our fair share, at most half a deque; the first one runs now.
  const std::size_t share =
      std::min<std::size_t>(q.size() / rt_->worker_count() + 1, WorkDeque::kCapacity / 2);
  Fiber* batch[WorkDeque::kCapacity / 2];
  const std::size_t n = q.pop_batch(share, batch);
  if (n == 0) return nullptr;
  for (std::size_t i = 1; i < n; ++i) place(batch[i], Place::back);
  return batch[0];
}

bool Worker::busy_peer_with_fds() noexcept {
  const unsigned n = rt_->worker_count();
  for (unsigned i = 0; i < n; ++i) {
    Worker& v = rt_->worker(i);
    if (&v != this && !v.parked_.load(std::memory_order_relaxed) && v.hub_.has_watchers()) return true;
  }
  return false;
}

int Worker::poll_busy_hubs() noexcept {
  // Readiness events are edge-triggered, so each goes to exactly one of the
  // pollers (the owner or us); the ready handler is thread-safe, and what it
  // wakes lands on our queues (wakes from a worker stay local).
  int dispatched = 0;
  const unsigned n = rt_->worker_count();
  for (unsigned i = 0; i < n; ++i) {
    Worker& v = rt_->worker(i);
    if (&v != this && !v.parked_.load(std::memory_order_relaxed) && v.hub_.has_watchers())
      dispatched += poll_hub(v.hub_, 0, /*owner=*/false);
  }
  return dispatched;
}

}  // namespace green::detail
