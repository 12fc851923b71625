// cases.hpp — the measurements green_bench runs. Each function runs one
// measurement on the runtime it is given and returns it (ns per operation
// unless its comment says otherwise). green_bench.cpp repeats them and
// prints the table.
#pragma once

#include <green/green.hpp>

#include <chrono>
#include <cstddef>
#include <utility>

namespace bench {

using Clock = std::chrono::steady_clock;

inline double ns_since(Clock::time_point t0, double ops) {
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / ops;
}

// ---- scheduler (scheduler_cases.cpp) ---------------------------------------
constexpr int kBatch = 1000;
// n spawn+join, in batches of kBatch spawns then kBatch joins.
double spawn_join(green::Runtime& rt, int n);
// Two green threads on worker 0 alternating yield(), n times each.
double yield_pair(green::Runtime& rt, int n);
// Where the two sides of a ping-pong run: pinned to workers a and b (the
// same worker when a == b), or unpinned: both spawned by one green thread
// and free to move, which is all Go and Tokio can express.
struct Placement {
  int worker_a = -1;
  int worker_b = -1;
  bool pinned = false;
  static Placement on(int a, int b) { return {a, b, true}; }
  static Placement unpinned() { return {}; }
};
// Runs `a` and `b` as green threads placed as `where` (spawned from one
// green thread of `rt`) and returns ns per op until both have ended.
template <class A, class B>
double ping_pong(green::Runtime& rt, Placement where, A a, B b, double ops) {
  return rt.run([&] {
    const auto t0 = Clock::now();
    auto ga = green::spawn({.worker = where.worker_a, .pinned = where.pinned}, std::move(a));
    auto gb = green::spawn({.worker = where.worker_b, .pinned = where.pinned}, std::move(b));
    ga.get();
    gb.get();
    return ns_since(t0, ops);
  });
}

// One-way park/unpark between two green threads placed as `where`: n round
// trips; ns per one-way hand-off.
double hand_off(green::Runtime& rt, int n, Placement where);
// The hardware's floor for a hand-off between two cores: two OS threads
// passing a turn through one atomic word, spinning. ns one-way.
double core_to_core_ns(int n);
// skynet with `leaves` leaves; milliseconds. Updates *peak_stacks.
double skynet_ms(green::Runtime& rt, long leaves, std::size_t* peak_stacks);
// CPU used by an idle runtime, percent of one core.
double idle_cpu_percent(green::Runtime& rt, std::chrono::milliseconds window);

// ---- sync (sync_cases.cpp) ---------------------------------------------------
// One-way Queue hand-off between two green threads placed as `where`: n
// round trips.
double queue_ping_pong(green::Runtime& rt, int n, Placement where);
// `threads` green threads each taking a Lock `per_thread` times around an
// increment; ns per acquisition.
double contended_lock(green::Runtime& rt, int threads, int per_thread);
// n green threads fanned out under a Semaphore(permits): the parent takes a
// permit before each spawn, the child yields once and gives it back; ns per
// green thread.
double semaphore_fan_out(green::Runtime& rt, int n, int permits);
// Pool(pool_size).map of n trivial calls; ns per call.
double pool_map(green::Runtime& rt, int n, std::size_t pool_size);

// ---- memory (memory_case.cpp) -------------------------------------------------
struct ParkedMemory {
  double rss_bytes = 0;         // resident set growth per parked green thread
  double page_table_bytes = 0;  // page-table growth per parked green thread
};
// n green threads parked on one Event, in a runtime of `workers` workers.
// Meaningful only in a fresh process (green_bench runs it in a child).
ParkedMemory parked_memory(unsigned workers, int n);

}  // namespace bench
