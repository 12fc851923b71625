// runtime_core.cpp — injection queue, idle workers, registry and shutdown.
#include "runtime_core.hpp"

#include <algorithm>
#include <thread>

#include "fiber_internal.hpp"
#include "green/detail/park.hpp"
#include "green/errors.hpp"

namespace green::detail {

RuntimeCore::RuntimeCore(const RuntimeConfig& cfg)
    : configured_workers_(cfg.workers), shard_count_(cfg.workers + 1), stacks_(cfg.stack_size, cfg.trim_interval) {
  shards_ = std::make_unique<Shard[]>(shard_count_);
  workers_.reserve(cfg.workers);
  for (unsigned i = 0; i < cfg.workers; ++i) workers_.push_back(std::make_unique<Worker>(this, i));
  for (auto& w : workers_) w->start();
}

RuntimeCore::~RuntimeCore() {
  shutdown();
  // No fiber can still be queued here: shutdown() waited until every
  // registered fiber completed.
}

// ---------------------------------------------------------------------------
// Placement

void RuntimeCore::inject(Fiber* f) noexcept {
  injected_.push(f);  // its seq_cst size update orders the push before the idle check
  wake_one_idle();
}

void RuntimeCore::schedule(Fiber* f) noexcept {
  Worker* w = current_worker();
  const bool on_worker = w && w->runtime() == this;
  // Urgent, or woken by a kill: ahead of everything queued on the worker it
  // must run on (a plain thread's wake of an unpinned one is injected, where
  // an idle worker takes it at once and a busy one on its next fair tick).
  if ((f->urgent || f->wake_reason == WakeReason::interrupted) && (f->pinned || on_worker)) {
    (f->pinned ? f->pinned : w)->post_urgent(f);
    return;
  }
  if (on_worker) {
    w->schedule_local(f);
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
    f->interrupt = std::make_exception_ptr(GreenletExit());
    f->interrupt_pending.store(true, std::memory_order_seq_cst);
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

// ---------------------------------------------------------------------------
// Idle workers

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

// ---------------------------------------------------------------------------
// Registry of live fibers

void RuntimeCore::register_fiber(Fiber* f, unsigned shard) {
  f->runtime = this;
  f->registry_shard = shard;
  // The runtime's reference, dropped after the final switch. Until now only
  // the spawner's handle knew f, so a plain store does (no atomic RMW).
  f->refs.store(f->refs.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  Shard& s = shards_[shard];
  std::lock_guard lock(s.lock);
  f->registry_prev = nullptr;
  f->registry_next = s.head;
  if (s.head) s.head->registry_prev = f;
  s.head = f;
  s.count.store(s.count.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

void RuntimeCore::unregister_fiber(Fiber* f) noexcept {
  Shard& s = shards_[f->registry_shard];
  {
    std::lock_guard lock(s.lock);
    if (f->registry_prev) f->registry_prev->registry_next = f->registry_next;
    else s.head = f->registry_next;
    if (f->registry_next) f->registry_next->registry_prev = f->registry_prev;
    s.count.store(s.count.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  }
  if (stopping()) notify_if_all_done();
}

std::size_t RuntimeCore::live() const noexcept {
  std::size_t n = 0;
  for (unsigned i = 0; i < shard_count_; ++i) n += shards_[i].count.load(std::memory_order_relaxed);
  return n;
}

void RuntimeCore::notify_if_all_done() noexcept {
  if (live() != 0) return;
  std::lock_guard lock(done_mu_);
  all_done_.notify_all();
}

// ---------------------------------------------------------------------------
// Shutdown

void RuntimeCore::shutdown() {
  if (Worker* w = current_worker(); w && w->runtime() == this)
    throw Error("green::Runtime::shutdown() called from one of its own green threads");
  std::lock_guard once(shutdown_mu_);
  if (stop_workers_.load(std::memory_order_acquire)) return;
  stopping_.store(true, std::memory_order_seq_cst);

  // Kill every live fiber, then wait. One that swallows GreenletExit and
  // blocks again is killed again on the next round.
  while (live() != 0) {
    std::vector<Fiber*> victims;
    for_each_live([&](Fiber* f) {
      f->add_ref();
      victims.push_back(f);
    });
    for (Fiber* f : victims) {
      f->kill(nullptr, false, kNoDeadline);  // ignored while one is pending
      f->release();
    }
    std::unique_lock lock(done_mu_);
    all_done_.wait_for(lock, std::chrono::milliseconds(50), [this] { return live() == 0; });
  }

  stop_workers_.store(true, std::memory_order_seq_cst);
  for (auto& w : workers_) w->hub().wake();
  for (auto& w : workers_) w->join();
  workers_.clear();
}

}  // namespace green::detail
