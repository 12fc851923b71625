// runtime_core.cpp — a runtime's workers, its registry of live green
// threads, and shutdown. Placement is placement.cpp, idling idle.cpp.
#include "runtime_core.hpp"

#include <x86intrin.h>

#include <algorithm>
#include <thread>

#include "fiber_internal.hpp"
#include "green/detail/park.hpp"
#include "green/errors.hpp"
#include "signal_dump.hpp"
#include "stack_capture.hpp"
#include "unwind.hpp"

namespace green::detail {

RuntimeCore::RuntimeCore(const RuntimeConfig& cfg)
    : configured_workers_(cfg.workers), shard_count_(cfg.workers + 1), stacks_(cfg.stack_size, cfg.trim_interval) {
  shards_ = std::make_unique<Shard[]>(shard_count_);
  workers_.reserve(cfg.workers);
  for (unsigned i = 0; i < cfg.workers; ++i) workers_.push_back(std::make_unique<Worker>(this, i));
  if (cfg.green_thread_stats)
    for (auto& w : workers_) w->track_green_threads();
  prepare_unwinder();  // unwind.hpp: libunwind's pipe now, not at the first dump
  if (cfg.max_blocking_time > std::chrono::milliseconds::zero()) {
    // Before the workers start: the handler must be there by the first
    // capture, and each worker unblocks its signal as it starts.
    install_stack_capture_handler();
    for (auto& w : workers_) w->allow_stack_capture();
  }
  started_tsc_ = __rdtsc();
  started_at_ = Clock::now();
  for (auto& w : workers_) w->start();
  try {
    if (cfg.dump_on_signal) dump_on_signal(this, cfg.dump_on_signal);
    if (cfg.max_blocking_time > std::chrono::milliseconds::zero()) {
      monitor_.watch_blocking(cfg.max_blocking_time, cfg.on_blocking);
      max_blocking_time_ = cfg.max_blocking_time;
    }
  } catch (...) {
    shutdown();
    throw;
  }
}

RuntimeCore::~RuntimeCore() {
  shutdown();
  // No fiber can still be queued here: shutdown() waited until every
  // registered fiber completed.
}

// ---------------------------------------------------------------------------
// Placement

// ---------------------------------------------------------------------------
// Idle workers

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
  std::lock_guard lock(done_lock_);
  done_waiters_.wake_all();
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
    wait_until(done_lock_, done_waiters_, deadline_after(std::chrono::milliseconds(50)), "shutdown",
               [this] { return live() == 0; });
  }

  // A wake from outside (placement.cpp) may still be leaving schedule().
  while (outside_wakes_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
  monitor_.stop();  // it reads the workers, as a dump does
  stop_dump_on_signal(this);
  stop_workers_.store(true, std::memory_order_seq_cst);
  for (auto& w : workers_) w->hub().wake();
  for (auto& w : workers_) w->join();
  workers_.clear();
}

}  // namespace green::detail
