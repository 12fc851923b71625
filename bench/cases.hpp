// cases.hpp — the measurements green_bench runs. Each function runs one
// measurement on the runtime it is given and returns it (ns per operation
// unless its comment says otherwise). green_bench.cpp repeats them and
// prints the table.
#pragma once

#include <green/green.hpp>

#include <chrono>
#include <cstddef>

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
// One-way park/unpark between green threads pinned on two workers.
double hand_off(green::Runtime& rt, int n, int worker_a, int worker_b);
// skynet with `leaves` leaves; milliseconds. Updates *peak_stacks.
double skynet_ms(green::Runtime& rt, long leaves, std::size_t* peak_stacks);
// CPU used by an idle runtime, percent of one core.
double idle_cpu_percent(green::Runtime& rt, std::chrono::milliseconds window);

// ---- sync (sync_cases.cpp) ---------------------------------------------------
// One-way Queue hand-off between green threads pinned on two workers
// (the same worker when worker_a == worker_b): n round trips.
double queue_ping_pong(green::Runtime& rt, int n, int worker_a, int worker_b);
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
