// runtime_core.hpp — what a Runtime shares between its workers.
//
//   * the workers themselves;
//   * the injection queue: spawns and wakes from plain threads;
//   * the idle set and the spinning count (Go's rule): a new runnable green
//     thread wakes at most one parked worker, and only when no worker is
//     already spinning in search of work; a spinner that finds work wakes the
//     next one, so parallelism ramps up one worker at a time;
//   * the registry of live green threads (for shutdown), sharded by the
//     worker that spawned them so that spawns on different workers do not
//     contend on one lock;
//   * the stack pool.
//
// The idle protocol (spinning, parking, the two fences that exclude lost
// wake-ups) is idle.cpp; placement (schedule, submit_new, inject) is
// placement.cpp; the rest is runtime_core.cpp.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "green/detail/fiber.hpp"
#include "green/runtime.hpp"
#include "green/detail/spin_lock.hpp"
#include "injection_queue.hpp"
#include "monitor.hpp"
#include "stack.hpp"
#include "worker.hpp"

namespace green::detail {

struct RuntimeConfig {
  unsigned workers = 0;
  std::size_t stack_size = 0;
  std::chrono::steady_clock::duration trim_interval{};  // zero: never give memory back
  int dump_on_signal = 0;
  bool green_thread_stats = false;
  std::chrono::milliseconds max_blocking_time{0};  // zero: the detector is off
  std::function<void(const BlockingReport&)> on_blocking;
};

// For tests: called on the dumping thread while a dump holds a parked green
// thread still to walk its stack (dump.cpp, STACKS), after the walk.
extern std::atomic<void (*)(Fiber*)> dump_walk_hook;

class RuntimeCore {
 public:
  explicit RuntimeCore(const RuntimeConfig& cfg);
  ~RuntimeCore();

  // Registers f (the runtime takes a reference) and makes it runnable;
  // `here` is the calling worker of this runtime, or null.
  void submit_new(Fiber* f, Worker* here);
  // Makes a woken green thread runnable, from any thread.
  void schedule(Fiber* f) noexcept;
  // A parked worker that should search for work, if none is searching.
  void wake_one_idle() noexcept;
  // Kills every live green thread, waits for all to end, stops the workers.
  void shutdown();

  bool stopping() const noexcept { return stopping_.load(std::memory_order_acquire); }
  bool workers_stopping() const noexcept { return stop_workers_.load(std::memory_order_acquire); }
  unsigned worker_count() const noexcept { return static_cast<unsigned>(workers_.size()); }
  unsigned configured_workers() const noexcept { return configured_workers_; }
  Worker& worker(unsigned i) noexcept { return *workers_[i]; }
  StackPool& stacks() noexcept { return stacks_; }
  std::size_t live() const noexcept;
  // Runtime::dump() and the deadlock report (dump.cpp).
  std::string dump();
  // Runtime::stats() (stats.cpp).
  RuntimeStats stats();
  // The monitor thread and the deadlock check (monitor.hpp).
  Monitor& monitor() noexcept { return monitor_; }
  // The blocking detector's threshold (blocking.hpp); zero: off.
  std::chrono::milliseconds max_blocking_time() const noexcept { return max_blocking_time_; }

  InjectionQueue& injected() noexcept { return injected_; }
  void inject(Fiber* f) noexcept;

  // Idle protocol (idle.cpp).
  void enter_idle(Worker* w);
  bool leave_idle(Worker* w);  // true if it was still listed
  bool any_work_visible() const noexcept;
  std::atomic<int> spinning{0};
  std::atomic<int> idle_count{0};

  // Registry of live green threads.
  // Calls fn(f) for every live fiber, under its shard's lock (fn must not
  // block or touch the registry).
  template <class Fn>
  void for_each_live(Fn&& fn) {
    for (unsigned i = 0; i < shard_count_; ++i) {
      std::lock_guard lock(shards_[i].lock);
      for (Fiber* f = shards_[i].head; f; f = f->registry_next) fn(f);
    }
  }
  void register_fiber(Fiber* f, unsigned shard);
  void unregister_fiber(Fiber* f) noexcept;
  std::uint64_t allocate_ids(std::uint64_t n) noexcept {
    return next_id_.fetch_add(n, std::memory_order_relaxed);
  }

 private:
  struct alignas(64) Shard {
    SpinLock lock;
    Fiber* head = nullptr;
    std::atomic<std::size_t> count{0};  // written under lock, read without
  };

  unsigned configured_workers_;
  std::chrono::milliseconds max_blocking_time_{0};
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<Shard[]> shards_;
  unsigned shard_count_;
  StackPool stacks_;
  InjectionQueue injected_;
  std::mutex idle_mu_;
  std::vector<Worker*> idle_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> stop_workers_{false};
  std::mutex shutdown_mu_;  // one shutdown at a time
  SpinLock done_lock_;      // with done_waiters_: "the last fiber ended"
  WaitList done_waiters_;
  std::atomic<std::uint64_t> next_id_{1};
  std::atomic<int> outside_wakes_{0};  // schedule() calls from off the workers in progress
  // stats(): TSC ticks to nanoseconds, calibrated against the clock since
  // the runtime started.
  std::uint64_t started_tsc_ = 0;
  Clock::time_point started_at_{};
  void notify_if_all_done() noexcept;
  Monitor monitor_{*this};  // last: it reads the registry while it runs
};

}  // namespace green::detail
