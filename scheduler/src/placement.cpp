// placement.cpp — where a runnable green thread goes. Every queueing of a
// green thread in the scheduler comes through here: a spawn, a wake, a
// yield, an I/O wake, the extras of a steal or of an injection batch.
//
// The places, cheapest first (worker.hpp says in which order they are read):
//   * the `next` slot of the waking worker: hand-off without a queue trip,
//     for the first wake of a turn (later ones queue behind, in order);
//   * the current burst of spawns (pushed to the deque in reverse);
//   * the deque: stealable, newest first at its back, "after everything
//     queued here" at its front;
//   * the private yield FIFO: only its worker reads it;
//   * a worker's inbox: the only way onto another worker from outside;
//   * a worker's urgent inbox: kills and urgent green threads, first of all;
//   * the runtime's injection queue: spawns and wakes from plain threads, and
//     a full deque's overflow.
//
// Invariants:
//   * A green thread is in at most one place (running, a slot, a queue, or
//     parked and owned by whatever will wake it); moving it is a hand-over.
//   * A pinned green thread runs only on its own worker, so it never enters
//     a deque (a thief could take it): Worker::place() is the single door
//     into the deque, and it checks once. A pinned green thread of another
//     worker goes to that worker's inbox; one of ours to our next slot, our
//     private FIFO or our own inbox, none of which is ever stolen from.
#include <algorithm>

#include "fiber_internal.hpp"
#include "green/greenlet.hpp"
#include "runtime_core.hpp"
#include "worker.hpp"

namespace green::detail {

// ---------------------------------------------------------------------------
// On the worker's own thread

bool Worker::place(Fiber* f, Place where) noexcept {
  if (where == Place::woken) {
    if (dispatching_io_) {
      // Queued in readiness order after the poll; past the reserved room
      // (more wakes than one poll usually brings), queued now, never lost.
      if (io_wakes_.size() < kIoWakesMax) {
        io_wakes_.push_back(f);
        return false;
      }
      return place(f, Place::io);
    }
    if (f->join_worker == this && f->wake_reason == WakeReason::notified &&
        static_cast<std::int32_t>(deque_.bottom_index() - f->join_mark) > 0) {
      deferred_.push_back(f);  // see "Deferred joiners" in worker.hpp
      return false;
    }
    if (!next_ && next_streak_ < kNextStreak && (!f->pinned || f->pinned == this)) {
      next_ = f;
      return false;
    }
    // The slot holds an earlier wake of this turn: behind it and the local
    // work, first woken first, so a burst of wakes runs in the order it was
    // woken, as in gevent (had each wake taken the slot and pushed the one
    // before onto the deque's LIFO end, five released waiters would run
    // 4, 3, 2, 1, 0). Past the streak, the same: two green threads waking
    // each other cannot starve the rest. after_all announces what it makes
    // stealable.
    place(f, Place::after_all);
    return false;
  }

  // The one check: a deque is stealable, and a pinned green thread must
  // not leave its worker.
  if (f->pinned) {
    if (f->pinned == this && where == Place::after_all) {
      yielded_.push(f);
    } else {
      f->pinned->post(f);
    }
    return false;
  }
  bool queued;
  switch (where) {
    case Place::back:
      queued = deque_.push_back(f);
      break;
    case Place::io:
      queued = deque_.push_front(f);
      break;
    default:  // after_all
      if (keep_yielder_private(f)) {
        yielded_.push(f);
        return false;
      }
      queued = deque_.push_front(f);
      break;
  }
  if (!queued) push_overflow(f);
  // Workers are idle or searching: a parked one must hear of stealable work.
  // (The other places batch their announcements: a burst, a poll's wakes.)
  if (where == Place::after_all) announce_work();
  return true;
}

bool Worker::keep_yielder_private(const Fiber* f) const noexcept {
  // Nobody is looking for work (or f may not leave us anyway): the private
  // FIFO costs no atomics. Otherwise the stealable end of the deque.
  return f->pinned == this ||
         (!f->pinned && rt_->idle_count.load(std::memory_order_relaxed) == 0 &&
          rt_->spinning.load(std::memory_order_relaxed) == 0);
}

void Worker::push_overflow(Fiber* f) noexcept {
  // The deque is full: move its older half and f to the injection queue in
  // one batch, as Go does, so that other workers can take them and the
  // cost per green thread stays small.
  Fiber* batch[WorkDeque::kCapacity / 2 + 1];
  std::size_t n = 0;
  while (n < WorkDeque::kCapacity / 2) {
    Fiber* old = deque_.take_oldest();
    if (!old) break;
    batch[n++] = old;
  }
  batch[n++] = f;
  rt_->injected().push_batch(batch, batch + n);
  rt_->wake_one_idle();
}

void Worker::spawn_local(Fiber* f) noexcept {
  burst_.push_back(f);
  if (burst_.size() >= kBurstMax) flush_burst(0);
}

void Worker::flush_burst(std::size_t from) noexcept {
  // Reverse, so that LIFO popping starts the first-spawned sibling first.
  // Announced only if some of it is stealable: a burst of one whose green
  // thread runs now (flush_burst(1)), or only pinned ones, gives an idle
  // worker nothing to take.
  bool stealable = false;
  for (std::size_t i = burst_.size(); i-- > from;) stealable |= place(burst_[i], Place::back);
  burst_.clear();
  if (stealable) announce_work();
}

// ---------------------------------------------------------------------------
// From any thread

void Worker::post(Fiber* f) noexcept {
  // seq_cst push, then a seq_cst load, paired with park_in_hub() (idle.cpp):
  // either we see it parked and wake it, or it sees the inbox non-empty
  // before it sleeps.
  inbox_.push(f);
  if (parked_.load(std::memory_order_seq_cst)) hub_.wake();
  if (Worker* from = current_worker(); from && from != this) bump(from->counters_.cross_wakes);
}

void Worker::post_urgent(Fiber* f) noexcept {
  // The same handshake with park_in_hub() as post().
  urgent_.push(f);
  if (parked_.load(std::memory_order_seq_cst)) hub_.wake();
  if (Worker* from = current_worker(); from && from != this) bump(from->counters_.cross_wakes);
}

void RuntimeCore::inject(Fiber* f) noexcept {
  injected_.push(f);  // its seq_cst size update orders the push before the idle check
  wake_one_idle();
}

void RuntimeCore::schedule(Fiber* f) noexcept {
  Worker* w = current_worker();
  const bool on_worker = w && w->runtime() == this;
  // A wake from outside the runtime (a pool thread finishing a job, a plain
  // thread's set()) may still be in here, touching this runtime, after the
  // green thread it woke has run and ended and shutdown has seen none left:
  // shutdown waits for it (ThreadSanitizer caught ~Runtime under a blocking
  // pool thread's wake_one_idle()).
  struct OutsideWake {
    std::atomic<int>* count;
    ~OutsideWake() {
      if (count) count->fetch_sub(1, std::memory_order_release);
    }
  } outside{on_worker ? nullptr : &outside_wakes_};
  if (!on_worker) outside_wakes_.fetch_add(1, std::memory_order_relaxed);
  // Urgent, or woken by a kill: ahead of everything queued on the worker it
  // must run on (a plain thread's wake of an unpinned one is injected, where
  // an idle worker takes it at once and a busy one on its next fair tick).
  if ((f->urgent || f->wake_reason == WakeReason::interrupted) && (f->pinned || on_worker)) {
    (f->pinned ? f->pinned : w)->post_urgent(f);
    return;
  }
  if (on_worker) {
    w->place(f, Worker::Place::woken);
  } else if (f->pinned) {
    f->pinned->post(f);
  } else {
    inject(f);
  }
}

void RuntimeCore::submit_new(Fiber* f, Worker* here) {
  register_fiber(f, here ? here->index() + 1 : 0);
  if (stopping()) {
    // Spawned during shutdown: it starts, sees GreenletExit, never runs its body.
    hold_interrupt(*f, std::make_exception_ptr(GreenletExit()));
  }
  Worker* target = f->start_on;
  if (f->pinned) target = f->pinned;
  if (f->urgent && (target || here)) {
    (target ? target : here)->post_urgent(f);
  } else if (target && target != here) {
    target->post(f);
  } else if (here) {
    here->spawn_local(f);
  } else {
    inject(f);
  }
}

}  // namespace green::detail
