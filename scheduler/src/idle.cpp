// idle.cpp — a worker with nothing to run: searching (spinning), parking
// in its hub, and being woken. Go's rules (proc.go, "Worker thread parking/
// unparking"), which Tokio's idle.rs follows too:
//
//   * Spinning. A worker that runs dry searches before it sleeps: its own
//     queues, its timers and hub, every 16th round a steal and the busy
//     peers' hubs, for up to 50 µs (kSpinFor), with a PAUSE between rounds.
//     `RuntimeCore::spinning` counts the searchers.
//   * Waking one. New runnable work wakes at most one parked worker, and
//     only when nobody is spinning already (wake_one_idle): a searcher will
//     find it. A searcher that finds work stops spinning, and the last one
//     to stop wakes another (stop_spinning), so parallelism ramps up one
//     worker at a time and a burst of work never wakes every worker at once.
//   * Parking. A worker lists itself idle, then re-checks every queue once
//     more, then sleeps in epoll_wait on its hub, bounded by its next timer
//     and the stack pool's next housekeeping pass, and by 1 ms while a busy
//     peer has fds registered (it polls that hub for it on the way back).
//
// No lost wake-up. Two parties, two fences, one rule: each side publishes,
// issues a full fence, then looks at the other side.
//
//   producer (announce_work, post, inject)     parking worker (park_in_hub)
//   ---------------------------------------    -------------------------------
//   make the work visible (deque, inbox,       enter_idle(): idle_count += 1,
//     injection queue)                           parked_ = true (seq_cst)
//   FENCE 1 (full_fence, or the seq_cst        FENCE 2 (full_fence)
//     RMW of the push itself)
//   read idle_count / parked_: if someone      re-check every queue; sleep only
//     idles, wake_one_idle() / hub.wake()        if all are empty
//
// With both fences, at least one side sees the other's write: either the
// producer sees the worker idle and wakes it (a hub wake that comes before
// epoll_wait is not lost: the eventfd stays readable), or the worker sees
// the work on its re-check and does not sleep. Fence 1 is the full_fence()
// in announce_work() for the owner's deque pushes, and the seq_cst
// operations of Inbox::push and the injection queue's size update for the
// others (post() then reads parked_ with seq_cst); fence 2 is the
// full_fence() in park_in_hub(), after parked_ is stored.
#include <algorithm>
#include <chrono>
#include <mutex>

#include "fence.hpp"
#include "runtime_core.hpp"
#include "stack.hpp"
#include "worker.hpp"

namespace green::detail {

namespace {
constexpr auto kSpinFor = std::chrono::microseconds(50);
}  // namespace

// ---------------------------------------------------------------------------
// Producers

void Worker::announce_work() noexcept {
  // Fence 1 (see the top of this file).
  full_fence();
  if (rt_->idle_count.load(std::memory_order_relaxed) > 0) rt_->wake_one_idle();
}

void RuntimeCore::wake_one_idle() noexcept {
  if (idle_count.load(std::memory_order_seq_cst) == 0) return;
  // Only one searcher at a time: a spinning worker will find the work.
  int expected = 0;
  if (!spinning.compare_exchange_strong(expected, 1, std::memory_order_seq_cst)) return;
  Worker* w = nullptr;
  {
    std::lock_guard lock(idle_mu_);
    if (!idle_.empty()) {
      w = idle_.back();
      idle_.pop_back();
      idle_count.fetch_sub(1, std::memory_order_seq_cst);
      // Set under the lock: leave_idle() reads it there when it finds itself
      // already taken off the list.
      w->woken_to_spin.store(true, std::memory_order_relaxed);
    }
  }
  if (!w) {
    spinning.fetch_sub(1, std::memory_order_seq_cst);
    return;
  }
  w->hub().wake();
}

// ---------------------------------------------------------------------------
// Searching

void Worker::stop_spinning() noexcept {
  if (!spinning_) return;
  spinning_ = false;
  // The last spinner to find work wakes another, so that if more work is
  // queued, a second worker comes looking (Go's "spinning M" rule).
  if (rt_->spinning.fetch_sub(1, std::memory_order_seq_cst) == 1) rt_->wake_one_idle();
}

Fiber* Worker::find_runnable() {
  // The search polls cheap, mostly-local state (our inbox, the injection
  // queue's size, our timers) every round with one PAUSE in between, so a
  // wake from another worker is picked up within a fraction of a
  // microsecond. Stealing reads other workers' deques, whose cache lines
  // their owners write constantly, so it is tried only every kStealEvery
  // rounds: a spinning thief must not slow down the worker it waits on.
  constexpr unsigned kStealEvery = 16;
  Deadline spin_until{};
  for (unsigned round = 0;; ++round) {
    if (rt_->workers_stopping()) return nullptr;
    Fiber* f = pick_local();
    if (!f && fire_timers()) continue;
    if (!f && hub_.has_watchers() && poll_hub(hub_, 0) > 0) continue;
    if (!f && round % kStealEvery == 0) {
      f = steal_work();
      if (f && !prepare_to_run(f)) continue;
      if (!f && poll_busy_hubs() > 0) continue;
    }
    if (f) {
      stop_spinning();
      return f;
    }
    if (round % kStealEvery == 0) {
      const Deadline now = Clock::now();
      if (spin_until == Deadline{}) spin_until = now + kSpinFor;
      if (now >= spin_until) {
        park_in_hub();
        spin_until = Deadline{};
        round = ~0u;  // steal right after waking
        continue;
      }
    }
    __builtin_ia32_pause();
  }
}

// ---------------------------------------------------------------------------
// Parking

void Worker::park_in_hub() {
  if (spinning_) {
    spinning_ = false;
    rt_->spinning.fetch_sub(1, std::memory_order_seq_cst);
  }
  // Housekeeping (stack.hpp): out of work, so give back what the last
  // burst left cached if a pass is due. One clock read per park, next to
  // an epoll_wait; never on the spawn or finish path.
  rt_->stacks().housekeep(Clock::now());
  rt_->enter_idle(this);
  // A new epoch before parked_: a deadlock check that sees this sleep also
  // sees that the worker has been awake since its last look (monitor.hpp).
  idle_epoch_.store(idle_epoch_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  parked_.store(true, std::memory_order_seq_cst);
  full_fence();  // fence 2 (see the top of this file)
  const bool work = rt_->any_work_visible() ||
                    !inbox_.empty() || !urgent_.empty() || rt_->workers_stopping();
  if (!work) {
    // Back for the next pass while the pool holds free stacks to give back.
    const Deadline next = std::min(timers_.next_deadline(), rt_->stacks().next_housekeeping());
    int timeout_ms = -1;
    if (next != kNoDeadline) {
      const auto left = next - Clock::now();
      timeout_ms = left <= Clock::duration::zero()
                       ? 0
                       : static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count());
    }
    // A busy worker does not poll its own hub while it runs a long green
    // thread: while one has fds registered, come back every millisecond to
    // poll its hub for it (as Go's sysmon polls the network). With every
    // worker idle nobody needs this and the sleep is unbounded.
    if (busy_peer_with_fds() && (timeout_ms < 0 || timeout_ms > kBusyHubPollMs))
      timeout_ms = kBusyHubPollMs;
    // Only while a plain thread waits in a join (Runtime::run): the last
    // worker to sleep asks the monitor to look for a deadlock.
    if (Monitor::anyone_watching()) rt_->monitor().worker_sleeping();
    poll_hub(hub_, timeout_ms);
    poll_busy_hubs();
  }
  parked_.store(false, std::memory_order_relaxed);
  rt_->leave_idle(this);
  if (woken_to_spin.exchange(false, std::memory_order_acq_rel)) spinning_ = true;
}

void RuntimeCore::enter_idle(Worker* w) {
  std::lock_guard lock(idle_mu_);
  idle_.push_back(w);
  idle_count.fetch_add(1, std::memory_order_seq_cst);
}

bool RuntimeCore::leave_idle(Worker* w) {
  std::lock_guard lock(idle_mu_);
  auto it = std::find(idle_.begin(), idle_.end(), w);
  if (it == idle_.end()) return false;
  idle_.erase(it);
  idle_count.fetch_sub(1, std::memory_order_seq_cst);
  return true;
}

bool RuntimeCore::any_work_visible() const noexcept {
  if (!injected_.empty()) return true;
  for (const auto& w : workers_)
    if (w->queued_approx() > 0) return true;
  return false;
}

}  // namespace green::detail
