// stats.cpp — Runtime::stats(): the workers' counters, summed on read, and
// per green thread figures.
#include <sys/mman.h>
#include <unistd.h>
#include <x86intrin.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "fiber_internal.hpp"
#include "runtime_core.hpp"
#include "stack.hpp"

namespace green {

WorkerStats RuntimeStats::total() const {
  WorkerStats t;
  for (const WorkerStats& w : workers) {
    t.green_threads_run += w.green_threads_run;
    t.steals += w.steals;
    t.stolen += w.stolen;
    t.hub_polls += w.hub_polls;
    t.parks += w.parks;
    t.cross_worker_wakes += w.cross_worker_wakes;
    t.timers_fired += w.timers_fired;
  }
  return t;
}

std::string RuntimeStats::to_string() const {
  std::string out = "worker        run     steals     stolen  hub polls      parks  x-wakes   timers\n";
  char line[160];
  auto row = [&](const std::string& who, const WorkerStats& w) {
    std::snprintf(line, sizeof line, "%-6s %10llu %10llu %10llu %10llu %10llu %8llu %8llu\n", who.c_str(),
                  static_cast<unsigned long long>(w.green_threads_run), static_cast<unsigned long long>(w.steals),
                  static_cast<unsigned long long>(w.stolen), static_cast<unsigned long long>(w.hub_polls),
                  static_cast<unsigned long long>(w.parks), static_cast<unsigned long long>(w.cross_worker_wakes),
                  static_cast<unsigned long long>(w.timers_fired));
    out += line;
  };
  for (std::size_t i = 0; i < workers.size(); ++i) row(std::to_string(i), workers[i]);
  row("total", total());
  out += "green threads: " + std::to_string(green_threads.size()) + " live\n";
  return out;
}

namespace detail {

namespace {

// Resident bytes of [base, top) counted down from the top until the first
// page never touched: the deepest the stack has been (pages stay resident
// once touched, until the pool gives them back).
std::size_t touched_from_top(std::uintptr_t base, std::uintptr_t top) {
  const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const auto low = base & ~(page - 1);
  const std::size_t pages = (top - low + page - 1) / page;
  std::vector<unsigned char> resident(pages);
  // Fails (0) if the stack was given back and unmapped meanwhile.
  if (::mincore(reinterpret_cast<void*>(low), top - low, resident.data()) != 0) return 0;
  std::size_t n = 0;
  while (n < pages && (resident[pages - 1 - n] & 1)) ++n;
  return std::min(n * page, static_cast<std::size_t>(top - base));
}

}  // namespace

RuntimeStats RuntimeCore::stats() {
  RuntimeStats out;
  for (unsigned i = 0; i < worker_count(); ++i) {
    const Worker& w = worker(i);
    const Worker::Counters& c = w.counters();
    WorkerStats ws;
    ws.green_threads_run = w.green_threads_run();
    ws.steals = c.steals.load(std::memory_order_relaxed);
    ws.stolen = c.stolen.load(std::memory_order_relaxed);
    ws.hub_polls = c.hub_polls.load(std::memory_order_relaxed);
    ws.parks = w.idle_epoch();
    ws.cross_worker_wakes = c.cross_wakes.load(std::memory_order_relaxed);
    ws.timers_fired = c.timers_fired.load(std::memory_order_relaxed);
    out.workers.push_back(ws);
  }
  // TSC ticks per nanosecond over the runtime's life so far.
  const double elapsed_ns =
      static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - started_at_).count());
  const double ticks = static_cast<double>(__rdtsc() - started_tsc_);
  const double ns_per_tick = ticks > 0 ? elapsed_ns / ticks : 0;

  std::vector<Fiber*> fibers;
  for_each_live([&](Fiber* f) {
    f->add_ref();
    fibers.push_back(f);
  });
  std::sort(fibers.begin(), fibers.end(), [](const Fiber* a, const Fiber* b) { return a->id < b->id; });
  for (Fiber* f : fibers) {
    GreenThreadStats g;
    g.id = f->id;
    g.name = f->name;
    g.switches = f->switches_in.load(std::memory_order_relaxed);
    g.run_time = std::chrono::nanoseconds(
        static_cast<std::int64_t>(static_cast<double>(f->run_ticks.load(std::memory_order_relaxed)) * ns_per_tick));
    // Only while it is parked does its stack stay put (see dump.cpp).
    const std::uint64_t word = f->park_word.load(std::memory_order_acquire);
    if (f->started() && (word & 1)) {
      const std::uintptr_t low = f->stack_low.load(std::memory_order_relaxed);
      const std::uintptr_t high = f->stack_high.load(std::memory_order_relaxed);
      if (low && f->stack_guarded.load(std::memory_order_relaxed)) g.stack_high_water = touched_from_top(low, high);
    }
    out.green_threads.push_back(std::move(g));
  }
  for (Fiber* f : fibers) f->release();
  return out;
}

}  // namespace detail
}  // namespace green
