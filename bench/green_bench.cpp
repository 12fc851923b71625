// green_bench — the scheduler's scaling table.
//
// Each case runs `runs` times at every worker count 1..nproc (or the counts
// given with --workers) in a fresh Runtime, and the table shows the median
// and the min–max over the runs. Cases:
//
//   spawn+join cold   first run in a new runtime: fresh stacks, cold caches
//   spawn+join warm   later runs in the same runtime (hot stack pool); both
//                     spawn batches of 1,000 and join them
//   yield             two green threads alternating green::yield() on one worker
//   hand-off 1 worker one-way park/unpark between two green threads on a worker
//   hand-off 2 workers the same, the two green threads pinned to workers 0 and 1
//   skynet 1M         a 10-ary tree of spawns with 1,000,000 leaves, summed by
//                     join; also reports the most green threads holding a stack
//   idle CPU          CPU time the runtime uses per wall second with nothing to do
//
// Usage: green_bench [--quick] [--runs N] [--workers a,b,c] [--csv FILE]
#include <green/green.hpp>
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "baton.hpp"

using Clock = std::chrono::steady_clock;
using green::testing::Baton;

namespace {

struct Config {
  bool quick = false;
  int runs = 5;
  std::vector<unsigned> workers;
  std::string csv;
};

double ns_since(Clock::time_point t0, double ops) {
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / ops;
}

// ---- cases: each returns one measurement --------------------------------------

// Spawns n green threads in batches of kBatch and joins each batch: the cost
// of one green thread's whole life (control block, stack binding, two
// switches, completion, join), with the batch kept small enough to stay in
// cache. "spawn 1M, then join 1M" is measured by the memory case instead.
constexpr int kBatch = 1000;
double spawn_join(green::Runtime& rt, int n) {
  return rt.run([n] {
    std::vector<green::Greenlet<void>> gs;
    gs.reserve(kBatch);
    const auto t0 = Clock::now();
    for (int done = 0; done < n; done += kBatch) {
      for (int i = 0; i < kBatch; ++i) gs.push_back(green::spawn([] {}));
      for (auto& g : gs) g.join();
      gs.clear();
    }
    return ns_since(t0, n);
  });
}

double yield_pair(green::Runtime& rt, int n) {
  return rt.run([n] {
    auto body = [n] {
      for (int i = 0; i < n; ++i) green::yield();
    };
    const auto t0 = Clock::now();
    auto a = green::spawn({.worker = 0, .pinned = true}, body);
    auto b = green::spawn({.worker = 0, .pinned = true}, body);
    a.join();
    b.join();
    return ns_since(t0, 2.0 * n);
  });
}

double hand_off(green::Runtime& rt, int n, int worker_a, int worker_b) {
  Baton to_a, to_b;
  const auto t0 = Clock::now();
  auto a = rt.spawn({.worker = worker_a, .pinned = true}, [&] {
    for (int i = 0; i < n; ++i) {
      to_b.post();
      to_a.wait();
    }
  });
  auto b = rt.spawn({.worker = worker_b, .pinned = true}, [&] {
    for (int i = 0; i < n; ++i) {
      to_b.wait();
      to_a.post();
    }
  });
  a.get();
  b.get();
  return ns_since(t0, 2.0 * n);  // one-way hand-offs
}

long skynet(long num, long size, long div) {
  if (size == 1) return num;
  green::Greenlet<long> children[10];
  const long sub = size / div;
  for (long i = 0; i < div; ++i) children[i] = green::spawn(skynet, num + i * sub, sub, div);
  long sum = 0;
  for (long i = 0; i < div; ++i) sum += children[i].get();
  return sum;
}

double skynet_ms(green::Runtime& rt, long leaves, std::size_t* peak_stacks) {
  std::atomic<bool> done{false};
  std::size_t peak = 0;
  std::thread monitor([&] {
    while (!done.load()) {
      peak = std::max(peak, rt.green_threads_with_stack());
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  });
  const auto t0 = Clock::now();
  const long sum = rt.run([leaves] { return skynet(0, leaves, 10); });
  const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  done = true;
  monitor.join();
  if (sum != leaves * (leaves - 1) / 2) {
    std::fprintf(stderr, "skynet: wrong sum %ld\n", sum);
    std::exit(1);
  }
  *peak_stacks = std::max(*peak_stacks, peak);
  return ms;
}

double idle_cpu_percent(green::Runtime& rt, std::chrono::milliseconds window) {
  rt.spawn([] {}).get();
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  timespec a{}, b{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
  const auto t0 = Clock::now();
  std::this_thread::sleep_for(window);
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
  const double cpu = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
  return 100.0 * cpu / std::chrono::duration<double>(Clock::now() - t0).count();
}

// ---- table ---------------------------------------------------------------------

struct Row {
  std::string name;
  unsigned workers;
  std::vector<double> samples;
  std::string unit;
  std::string note;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void print_row(const Row& r) {
  auto [lo, hi] = std::minmax_element(r.samples.begin(), r.samples.end());
  std::printf("%-22s %7u %12.1f %12.1f – %-10.1f %-6s %s\n", r.name.c_str(), r.workers,
              median(r.samples), *lo, *hi, r.unit.c_str(), r.note.c_str());
  std::fflush(stdout);
}

Config parse(int argc, char** argv) {
  Config c;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) {
      c.quick = true;
    } else if (!std::strcmp(argv[i], "--runs") && i + 1 < argc) {
      c.runs = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--workers") && i + 1 < argc) {
      for (char* tok = std::strtok(argv[++i], ","); tok; tok = std::strtok(nullptr, ","))
        c.workers.push_back(static_cast<unsigned>(std::atoi(tok)));
    } else if (!std::strcmp(argv[i], "--csv") && i + 1 < argc) {
      c.csv = argv[++i];
    } else if (!std::strcmp(argv[i], "--help")) {
      std::puts("usage: green_bench [--quick] [--runs N] [--workers a,b,c] [--csv FILE]");
      std::exit(0);
    } else {
      std::fprintf(stderr, "green_bench: unknown argument %s (try --help)\n", argv[i]);
      std::exit(2);
    }
  }
  if (c.runs < 1) {
    std::fprintf(stderr, "green_bench: --runs must be >= 1\n");
    std::exit(2);
  }
  if (c.workers.empty())
    for (unsigned w = 1; w <= std::max(1u, std::thread::hardware_concurrency()); ++w) c.workers.push_back(w);
  for (unsigned w : c.workers) {
    if (w == 0) {
      std::fprintf(stderr, "green_bench: worker counts must be >= 1\n");
      std::exit(2);
    }
  }
  if (c.quick) c.runs = std::min(c.runs, 3);
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  const Config cfg = parse(argc, argv);
  const int spawn_n = cfg.quick ? 20'000 : 100'000;
  const int switch_n = cfg.quick ? 200'000 : 1'000'000;
  const long skynet_leaves = 1'000'000;

  std::printf("green_bench: %d runs per case, %u hardware threads%s\n", cfg.runs,
              std::thread::hardware_concurrency(), cfg.quick ? " (quick)" : "");
  std::printf("%-22s %7s %12s %25s %-6s\n", "case", "workers", "median", "min – max", "unit");
  std::vector<Row> rows;
  auto emit = [&](Row r) {
    print_row(r);
    rows.push_back(std::move(r));
  };

  for (unsigned w : cfg.workers) {
    Row cold{"spawn+join cold", w, {}, "ns", "per green thread, first batch"};
    Row warm{"spawn+join warm", w, {}, "ns", "per green thread, later batches"};
    Row yield{"yield", w, {}, "ns", "two green threads on one worker"};
    Row same{"hand-off 1 worker", w, {}, "ns", "one-way park/unpark"};
    Row cross{"hand-off 2 workers", w, {}, "ns", "one-way park/unpark"};
    Row sky{"skynet 1M", w, {}, "ms", ""};
    Row idle{"idle CPU", w, {}, "%", "of one core, runtime with nothing to do"};
    std::size_t peak_stacks = 0;
    for (int r = 0; r < cfg.runs; ++r) {
      {
        green::Runtime rt({.workers = w});
        cold.samples.push_back(spawn_join(rt, spawn_n));
        std::vector<double> later;
        for (int k = 0; k < 5; ++k) later.push_back(spawn_join(rt, spawn_n));
        warm.samples.push_back(median(later));
        yield.samples.push_back(yield_pair(rt, switch_n));
        same.samples.push_back(hand_off(rt, switch_n / 2, 0, 0));
        if (w >= 2) cross.samples.push_back(hand_off(rt, switch_n / 4, 0, 1));
      }
      {
        green::Runtime rt({.workers = w});
        sky.samples.push_back(skynet_ms(rt, skynet_leaves, &peak_stacks));
        if (r == 0) idle.samples.push_back(idle_cpu_percent(rt, std::chrono::milliseconds(cfg.quick ? 300 : 1000)));
      }
    }
    sky.note = "peak green threads holding a stack: " + std::to_string(peak_stacks);
    emit(cold);
    emit(warm);
    emit(yield);
    emit(same);
    if (!cross.samples.empty()) emit(cross);
    emit(sky);
    emit(idle);
  }

  if (!cfg.csv.empty()) {
    std::ofstream out(cfg.csv);
    out << "case,workers,median,min,max,unit\n";
    for (const Row& r : rows) {
      auto [lo, hi] = std::minmax_element(r.samples.begin(), r.samples.end());
      out << r.name << ',' << r.workers << ',' << median(r.samples) << ',' << *lo << ',' << *hi << ','
          << r.unit << '\n';
    }
  }
  return 0;
}
