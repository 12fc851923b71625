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
//   hand-off 1 worker one-way park/unpark between two green threads pinned on
//                     one worker
//   hand-off unpinned the same, both unpinned in a runtime of W workers (what
//                     Go's and Tokio's "cross" cases can express: they cannot
//                     pin, so the scheduler decides where each side runs)
//   hand-off pinned 0/1 the same, pinned to workers 0 and 1: every hand-off
//                     crosses cores (green only)
//   core-to-core floor two OS threads passing a turn through one atomic
//                     word: what any hand-off between two cores costs here
//   skynet 1M         a 10-ary tree of spawns with 1,000,000 leaves, summed by
//                     join; also reports the most green threads holding a stack
//   idle CPU          CPU time the runtime uses per wall second with nothing to do
//   queue ping-pong   one-way Queue<int> hand-off between two green threads
//                     pinned on one worker, unpinned, and pinned to 0 and 1
//   contended lock    1,000 green threads x 1,000 Lock acquisitions each
//                     (around an increment); ns per acquisition
//   semaphore fan-out 100,000 green threads spawned under a Semaphore(16):
//                     the parent takes a permit before each spawn, the child
//                     yields once and releases it; ns per green thread
//   pool.map 1M       Pool(1000).map of 1,000,000 trivial calls; ns per call,
//                     and its ratio to spawn+join warm in the same run
//   memory 100k/1M    resident memory per green thread with 100,000 and
//                     1,000,000 of them parked on one Event, each measured
//                     in a fresh child process (memory_case.cpp); page
//                     tables in the note. Quick mode measures 100k only.
//
// The cases themselves are in scheduler_cases.cpp and sync_cases.cpp.
// Usage: green_bench [--quick] [--runs N] [--workers a,b,c] [--csv FILE]
//        green_bench --memory-child WORKERS N   (one memory measurement)
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include <unistd.h>

#include "cases.hpp"
#include "cli.hpp"

using namespace bench;

namespace {

struct Config {
  bool quick = false;
  int runs = 5;
  std::vector<unsigned> workers;
  std::string csv;
};

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

// The configuration, or the code main returns (0 after --help, 2 after a bad flag).
std::variant<Config, int> parse(int argc, char** argv) {
  Config c;
  green_cli::App app("green_bench",
                     "The scheduler's scaling table: every case, --runs times at each worker count,\n"
                     "as median and min-max.");
  app.add_flag("--quick", c.quick, "smaller cases and at most 3 runs");
  green_cli::add_count(app, "--runs", c.runs, "runs per case and worker count");
  app.add_option("--workers", c.workers, "worker counts, comma-separated (default: 1 to one per core)")
      ->delimiter(',')
      ->transform(green_cli::whole_number(1, green_cli::kMaxWorkers))
      ->type_name("a,b,c")
      ->default_str("");  // not "[]": the default is in the help text
  app.add_option("--csv", c.csv, "also write the table to FILE as CSV")->type_name("FILE");
  app.footer("Also: green_bench --memory-child WORKERS N   (one memory measurement, run by the memory case)");
  if (auto code = green_cli::parse(app, argc, argv)) return *code;
  if (c.workers.empty())
    for (unsigned w = 1; w <= std::max(1u, std::thread::hardware_concurrency()); ++w) c.workers.push_back(w);
  if (c.quick) c.runs = std::min(c.runs, 3);
  return c;
}

// One memory measurement in a fresh process: this program, run again with
// --memory-child. Returns false (and says why) if the child failed.
bool measure_memory_in_child(unsigned workers, int n, ParkedMemory* out) {
  const std::string cmd =
      "/proc/" + std::to_string(getpid()) + "/exe --memory-child " + std::to_string(workers) + " " + std::to_string(n);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return false;
  char line[256] = {};
  const bool got = std::fgets(line, sizeof line, p) != nullptr;
  const int status = pclose(p);
  if (!got || status != 0 ||
      std::sscanf(line, "rss_bytes=%lf page_table_bytes=%lf", &out->rss_bytes, &out->page_table_bytes) != 2) {
    std::fprintf(stderr, "green_bench: memory case (%u workers, %d green threads) failed: %s\n", workers, n,
                 got ? line : "no output");
    return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 4 && !std::strcmp(argv[1], "--memory-child")) {
    const auto m = parked_memory(static_cast<unsigned>(std::atoi(argv[2])), std::atoi(argv[3]));
    std::printf("rss_bytes=%.1f page_table_bytes=%.1f\n", m.rss_bytes, m.page_table_bytes);
    return 0;
  }
  const auto parsed = parse(argc, argv);
  if (const int* code = std::get_if<int>(&parsed)) return *code;
  const Config& cfg = std::get<Config>(parsed);
  const int spawn_n = cfg.quick ? 20'000 : 100'000;
  const int switch_n = cfg.quick ? 200'000 : 1'000'000;
  const long skynet_leaves = 1'000'000;
  const int lock_per_thread = cfg.quick ? 200 : 1000;
  const int fan_n = cfg.quick ? 20'000 : 100'000;
  const int map_n = cfg.quick ? 200'000 : 1'000'000;

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
    Row free{"hand-off unpinned", w, {}, "ns", "one-way park/unpark, both free to move"};
    Row cross{"hand-off pinned 0/1", w, {}, "ns", "one-way park/unpark, always across cores"};
    Row floor{"core-to-core floor", w, {}, "ns", "one-way, two OS threads on one atomic word"};
    Row sky{"skynet 1M", w, {}, "ms", ""};
    Row idle{"idle CPU", w, {}, "%", "of one core, runtime with nothing to do"};
    Row qsame{"queue ping-pong 1 w", w, {}, "ns", "one-way Queue hand-off, same worker"};
    Row qfree{"queue unpinned", w, {}, "ns", "one-way Queue hand-off, both free to move"};
    Row qcross{"queue pinned 0/1", w, {}, "ns", "one-way Queue hand-off, always across cores"};
    Row lock{"contended lock", w, {}, "ns",
             "per acquisition, 1,000 green threads x " + std::to_string(lock_per_thread)};
    Row fan{"semaphore fan-out", w, {}, "ns", "per green thread, Semaphore(16)"};
    Row map{cfg.quick ? "pool.map 200k" : "pool.map 1M", w, {}, "ns", ""};
    std::vector<double> map_ratio;
    std::size_t peak_stacks = 0;
    for (int r = 0; r < cfg.runs; ++r) {
      {
        green::Runtime rt({.workers = w});
        cold.samples.push_back(spawn_join(rt, spawn_n));
        std::vector<double> later;
        for (int k = 0; k < 5; ++k) later.push_back(spawn_join(rt, spawn_n));
        warm.samples.push_back(median(later));
        yield.samples.push_back(yield_pair(rt, switch_n));
        same.samples.push_back(hand_off(rt, switch_n / 2, Placement::on(0, 0)));
        qsame.samples.push_back(queue_ping_pong(rt, switch_n / 2, Placement::on(0, 0)));
        if (w >= 2) {
          free.samples.push_back(hand_off(rt, switch_n / 4, Placement::unpinned()));
          cross.samples.push_back(hand_off(rt, switch_n / 4, Placement::on(0, 1)));
          qfree.samples.push_back(queue_ping_pong(rt, switch_n / 4, Placement::unpinned()));
          qcross.samples.push_back(queue_ping_pong(rt, switch_n / 4, Placement::on(0, 1)));
          floor.samples.push_back(core_to_core_ns(switch_n / 4));
        }
        lock.samples.push_back(contended_lock(rt, 1000, lock_per_thread));
        fan.samples.push_back(semaphore_fan_out(rt, fan_n, 16));
        // Pool.map against spawn+join measured right before it, same runtime.
        const double spawn_ref = spawn_join(rt, spawn_n);
        map.samples.push_back(pool_map(rt, map_n, 1000));
        map_ratio.push_back(map.samples.back() / spawn_ref);
      }
      {
        green::Runtime rt({.workers = w});
        sky.samples.push_back(skynet_ms(rt, skynet_leaves, &peak_stacks));
        if (r == 0) idle.samples.push_back(idle_cpu_percent(rt, std::chrono::milliseconds(cfg.quick ? 300 : 1000)));
      }
    }
    sky.note = "peak green threads holding a stack: " + std::to_string(peak_stacks);
    char ratio[96];
    std::snprintf(ratio, sizeof ratio, "per call, Pool(1000); %.2fx spawn+join (median ratio)", median(map_ratio));
    map.note = ratio;
    emit(cold);
    emit(warm);
    emit(yield);
    emit(same);
    if (w >= 2) {
      emit(free);
      emit(cross);
      emit(floor);
    }
    emit(sky);
    emit(idle);
    emit(qsame);
    if (w >= 2) {
      emit(qfree);
      emit(qcross);
    }
    emit(lock);
    emit(fan);
    emit(map);
    for (int n : cfg.quick ? std::vector<int>{100'000} : std::vector<int>{100'000, 1'000'000}) {
      Row mem{n == 100'000 ? "memory 100k parked" : "memory 1M parked", w, {}, "B", ""};
      std::vector<double> tables;
      // Memory barely varies between runs; the big case runs at most twice.
      const int mem_runs = n > 100'000 ? std::min(cfg.runs, 2) : cfg.runs;
      for (int r = 0; r < mem_runs; ++r) {
        ParkedMemory m;
        if (!measure_memory_in_child(w, n, &m)) return 1;
        mem.samples.push_back(m.rss_bytes);
        tables.push_back(m.page_table_bytes);
      }
      char note[96];
      std::snprintf(note, sizeof note, "resident per parked green thread; + %.0f B of page tables", median(tables));
      mem.note = note;
      emit(mem);
    }
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
