// fiber_cases.cpp — the Boost.Fiber 1.81 versions of green_bench's scheduler
// and sync cases (bench/green_bench.cpp, scheduler_cases.cpp, sync_cases.cpp),
// for the side-by-side suite. It mirrors bench/peers/go/sched_cases.go: one
// case per run, one line of output in the same format:
//
//   boost_fiber_cases -case spawn_join -workers 2 -n 100000
//   case=spawn_join workers=2 n=100000 ns_per_op=812.3 cold_ns_per_op=950.1
//
// Scheduler: boost::fibers::algo::work_stealing with W = -workers threads
// (default: the hardware threads). Boost.Fiber's documented pattern is
// followed: the main thread and W-1 extra std::threads each call
// use_scheduling_algorithm<work_stealing>(W) (its constructor waits until all
// W have registered), and the extra threads then wait on a fiber
// condition_variable_any, which lets their dispatchers run stolen fibers,
// until the case is over. work_stealing's registry of schedulers is static,
// so a process can set it up once: hence one case per process. Idle threads
// spin looking for work (work_stealing's default, suspend = false); -suspend
// makes them sleep on a condition variable instead.
//
// Stacks: every fiber gets boost::fibers::fiber's default stack allocator,
// fixedsize_stack, as a user's would: a 128 KiB malloc per fiber. glibc
// serves that from mmap at first, then (its mmap threshold raised by the
// first free) from the heap, which it trims again whenever 256 KiB are free
// at its top; so a batch of spawns grows the heap with brk and faults in
// fresh pages, and its joins give them back. On this VM that dominates
// spawn_join (about 2.3 page faults per fiber, mostly system time).
// -tuned-malloc (printed as tuned_malloc=1) sets glibc's M_MMAP_THRESHOLD
// to 1 MiB and M_TRIM_THRESHOLD to 1 GiB with mallopt() first, so freed
// stacks stay in the heap: what a user who profiled it could do.
// Boost's pooled_fixedsize_stack is not an option here: its boost::pool is
// not thread-safe, and work_stealing frees a stolen fiber's stack on the
// thread that ran it last.
//
// Every line has case=, workers=, n= and one headline figure: ns_per_op for
// the timing cases, ms for skynet and bytes_per_fiber for memory; extra
// key=value fields follow. A wrong result prints "boost_fiber_cases: ..." on
// stderr and exits 1; a bad argument exits 2; a memory case that cannot
// create all its fibers says why on stderr and exits 3.
//
// Cases (-n, default in brackets; the suite passes green's counts):
//
//   spawn_join     [100000] fibers started in batches of 1,000 (default
//                  launch::post, default stack), each batch joined;
//                  ns_per_op is the median of 5 warm passes, cold_ns_per_op
//                  the first pass in the process.
//   yield          [1000000] two fibers each calling this_fiber::yield() n
//                  times; ns per yield. work_stealing cannot pin a fiber to a
//                  thread, so, like Go's GOMAXPROCS(1), the case runs on a
//                  one-thread work_stealing scheduler (threads_during=1).
//   handoff_same   [500000] one-way hand-off between two fibers: a ping-pong
//                  of two batons, each a fiber mutex + condition_variable +
//                  flag (the park/unpark analog; an unbuffered_channel is a
//                  rendezvous that parks the sender too, so it is not used);
//                  ns per one-way hand-off. One thread, as for yield.
//   handoff_cross  [250000] the same ping-pong on W threads (needs >= 2).
//                  work_stealing cannot pin either side: a fiber runs where
//                  it was last picked up and moves only if an idle thread
//                  steals it from a ready queue, so this is "a hand-off with
//                  W threads to spare", not one forced across threads.
//                  on_two_threads= says in what fraction of the round trips
//                  the two fibers really ran on different threads.
//   queue_same     [500000] the two fibers of handoff_same passing ints
//                  through two buffered_channel<int>(2) (room for one item,
//                  like Go's chan int of 1 and green's Queue ping-pong; each
//                  item checked). One thread.
//   queue_cross    [250000] queue_same on W threads (>= 2), with the
//                  placement caveat and the on_two_threads= field of
//                  handoff_cross.
//   skynet         [1000000] leaves: a 10-ary tree of fibers, each leaf
//                  pushing its number to its parent on a buffered_channel
//                  with room for 15 (a child never waits for its parent);
//                  ms for the tree. Children start with launch::dispatch
//                  (the child runs at once, depth first, as in Boost.Fiber's
//                  own skynet benchmark); with the default launch::post the
//                  FIFO ready queues build the tree breadth first and hold
//                  about 1.1M fibers, and their 128 KiB stacks, at once.
//                  -launch post measures that instead.
//   lock           [1000] acquisitions per fiber by -threads [1000] fibers,
//                  each taking a boost::fibers::mutex around an increment;
//                  ns per acquisition (green: 1,000 green threads x 1,000,
//                  200 in --quick).
//   pool_map       [1000000] inputs mapped by a fixed pool of -pool [1000]
//                  fibers taking indices from a buffered_channel<int>(1024)
//                  and storing f(x) = x+1 at the input's index (results in
//                  order); ns per call (green: Pool(1000).map).
//   memory         [100000] fibers, each started and then parked on one
//                  shared condition_variable until a flag is set (the Event
//                  analog). bytes_per_fiber is the growth of peak RSS (VmHWM
//                  in /proc/self/status) over n, page_table_bytes_per_fiber
//                  the growth of VmPTE. Each fiber has the default stack of
//                  boost::fibers::fiber, as a user would: fixedsize_stack,
//                  which mallocs stack_traits::default_size() = 128 KiB
//                  (printed as stack_bytes=) without a guard page; only the
//                  pages a fiber touches become resident. Run it alone in its
//                  process (VmHWM is the process's peak), at 100000 and
//                  1000000.
#include <boost/context/stack_traits.hpp>
#include <boost/fiber/all.hpp>
#include <boost/fiber/algo/work_stealing.hpp>

#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <map>
#include <mutex>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace fibers = boost::fibers;
using Clock = std::chrono::steady_clock;

constexpr int kBatch = 1000;  // spawn_join: fibers started before joining, like green's kBatch

// Also called from fibers on other threads: _Exit, so that no static
// destructor (work_stealing's registry) runs under threads still scheduling.
[[noreturn]] void fail(const std::string& what) {
  std::fflush(stdout);
  std::fprintf(stderr, "boost_fiber_cases: %s\n", what.c_str());
  std::fflush(stderr);
  std::_Exit(1);
}

double ns_since(Clock::time_point t0, double ops) {
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / ops;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

// ---- the work_stealing scheduler on W threads ------------------------------------

// Which scheduler thread this is (0: main). Read through current_thread(),
// never directly: a fiber can migrate between threads, and the compiler may
// otherwise reuse a thread_local's address computed before a switch.
thread_local unsigned tl_thread_index = 0;

[[gnu::noinline]] unsigned current_thread() {
  unsigned i = tl_thread_index;
  asm volatile("" : "+r"(i));  // not pure: every call reads this thread's copy
  return i;
}

// The main thread and threads-1 extra threads, all on work_stealing(threads).
// The extra threads stay alive (their dispatchers running stolen fibers)
// until this object is destroyed.
class SchedulerThreads {
 public:
  SchedulerThreads(unsigned threads, bool suspend) {
    for (unsigned i = 1; i < threads; ++i) {
      extra_.emplace_back([this, threads, suspend, i] {
        tl_thread_index = i;
        fibers::use_scheduling_algorithm<fibers::algo::work_stealing>(threads, suspend);
        std::unique_lock lk(mtx_);
        done_cv_.wait(lk, [this] { return done_; });
      });
    }
    fibers::use_scheduling_algorithm<fibers::algo::work_stealing>(threads, suspend);
  }
  SchedulerThreads(const SchedulerThreads&) = delete;
  SchedulerThreads& operator=(const SchedulerThreads&) = delete;
  ~SchedulerThreads() {
    {
      std::lock_guard lk(mtx_);
      done_ = true;
    }
    done_cv_.notify_all();
    for (auto& t : extra_) t.join();
  }

 private:
  std::mutex mtx_;
  fibers::condition_variable_any done_cv_;
  bool done_ = false;  // guarded by mtx_
  std::vector<std::thread> extra_;
};

// ---- cases -------------------------------------------------------------------------

double spawn_join(int n) {
  std::vector<fibers::fiber> batch;
  batch.reserve(kBatch);
  const auto t0 = Clock::now();
  for (int done = 0; done < n; done += kBatch) {
    for (int i = 0; i < kBatch; ++i) batch.emplace_back([] {});
    for (auto& f : batch) f.join();
    batch.clear();
  }
  return ns_since(t0, n);
}

double yield_pair(int n) {
  auto body = [n] {
    for (int i = 0; i < n; ++i) boost::this_fiber::yield();
  };
  const auto t0 = Clock::now();
  fibers::fiber a(body), b(body);
  a.join();
  b.join();
  return ns_since(t0, 2.0 * n);
}

// Park/unpark between fibers: post() wakes the one waiter, or lets its next
// wait() return at once.
class Baton {
 public:
  void post() {
    {
      std::lock_guard lk(mtx_);
      posted_ = true;
    }
    cv_.notify_one();
  }
  void wait() {
    std::unique_lock lk(mtx_);
    cv_.wait(lk, [this] { return posted_; });
    posted_ = false;
  }

 private:
  fibers::mutex mtx_;
  fibers::condition_variable cv_;
  bool posted_ = false;  // guarded by mtx_
};

struct PingPong {
  double ns_per_op;
  double on_two_threads;  // fraction of round trips with the two fibers on different threads
};

PingPong hand_off(int n) {
  Baton to_a, to_b;
  std::atomic<unsigned> a_thread{0};
  long apart = 0;  // B's count of round trips in which it ran on another thread than A
  const auto t0 = Clock::now();
  fibers::fiber a([&] {
    for (int i = 0; i < n; ++i) {
      a_thread.store(current_thread(), std::memory_order_relaxed);
      to_b.post();
      to_a.wait();
    }
  });
  fibers::fiber b([&] {
    for (int i = 0; i < n; ++i) {
      to_b.wait();
      apart += current_thread() != a_thread.load(std::memory_order_relaxed);
      to_a.post();
    }
  });
  a.join();
  b.join();
  return {ns_since(t0, 2.0 * n), double(apart) / n};  // one-way hand-offs
}

PingPong queue_ping_pong(int n) {
  fibers::buffered_channel<int> to_b(2), to_a(2);  // capacity 2 holds one item
  std::atomic<unsigned> a_thread{0};
  long apart = 0;
  const auto t0 = Clock::now();
  fibers::fiber a([&] {
    for (int i = 0; i < n; ++i) {
      a_thread.store(current_thread(), std::memory_order_relaxed);
      to_b.push(i);
      if (to_a.value_pop() != i) fail("queue ping-pong: wrong item");
    }
  });
  fibers::fiber b([&] {
    for (int i = 0; i < n; ++i) {
      const int item = to_b.value_pop();
      apart += current_thread() != a_thread.load(std::memory_order_relaxed);
      to_a.push(item);
    }
  });
  a.join();
  b.join();
  return {ns_since(t0, 2.0 * n), double(apart) / n};
}

void skynet(fibers::buffered_channel<long>& out, long num, long size, long div, fibers::launch policy) {
  if (size == 1) {
    out.push(num);
    return;
  }
  fibers::buffered_channel<long> children(16);  // room for 15: no child waits
  const long sub = size / div;
  for (long i = 0; i < div; ++i) {
    fibers::fiber(policy, [&children, num, i, sub, div, policy] {
      skynet(children, num + i * sub, sub, div, policy);
    }).detach();
  }
  long sum = 0;
  for (long i = 0; i < div; ++i) sum += children.value_pop();
  out.push(sum);
}

double contended_lock(int threads, int per_thread) {
  fibers::mutex mtx;
  long counter = 0;  // guarded by mtx
  std::vector<fibers::fiber> fs;
  fs.reserve(static_cast<std::size_t>(threads));
  const auto t0 = Clock::now();
  for (int t = 0; t < threads; ++t) {
    fs.emplace_back([&] {
      for (int i = 0; i < per_thread; ++i) {
        std::lock_guard lk(mtx);
        ++counter;
      }
    });
  }
  for (auto& f : fs) f.join();
  const double ns = ns_since(t0, double(threads) * per_thread);
  if (counter != long(threads) * per_thread) fail("contended lock: lost increments");
  return ns;
}

double pool_map(int n, int pool_size) {
  std::vector<int> in(static_cast<std::size_t>(n));
  std::iota(in.begin(), in.end(), 0);
  const auto t0 = Clock::now();
  std::vector<int> out(in.size());
  std::size_t capacity = 2;  // a power of two with room for pool_size items, like Go's chan of pool
  while (capacity <= std::size_t(pool_size)) capacity *= 2;
  fibers::buffered_channel<int> jobs(capacity);
  std::vector<fibers::fiber> pool;
  pool.reserve(static_cast<std::size_t>(pool_size));
  for (int p = 0; p < pool_size; ++p) {
    pool.emplace_back([&] {
      int i;
      while (jobs.pop(i) == fibers::channel_op_status::success) out[i] = in[i] + 1;
    });
  }
  for (int i = 0; i < n; ++i) jobs.push(i);
  jobs.close();
  for (auto& f : pool) f.join();
  const double ns = ns_since(t0, n);
  for (int i = 0; i < n; ++i)
    if (out[i] != i + 1) fail("pool_map: wrong results");
  return ns;
}

// A "Key:   123 kB" line of /proc/self/status, in bytes.
double status_bytes(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string prefix = std::string(key) + ":";
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) return std::stod(line.substr(prefix.size())) * 1024;
  fail(std::string("no ") + key + " in /proc/self/status");
}

long count_lines(const char* path) {
  std::ifstream in(path);
  std::string line;
  long lines = 0;
  while (std::getline(in, line)) ++lines;
  return lines;
}

std::string read_first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// Returns 3, after releasing the fibers it did create, if it cannot create n.
int memory(int n, const std::string& head, const char* flags) {
  const double hwm0 = status_bytes("VmHWM"), pte0 = status_bytes("VmPTE");
  fibers::mutex mtx;
  fibers::condition_variable event, progress;
  int parked = 0, finished = 0;  // guarded by mtx
  bool released = false;         // guarded by mtx
  int created = 0;
  std::string error;
  try {
    for (; created < n; ++created) {
      fibers::fiber([&] {
        std::unique_lock lk(mtx);
        ++parked;
        progress.notify_one();
        event.wait(lk, [&] { return released; });  // parked until the event is set
        ++finished;
        progress.notify_one();
      }).detach();
    }
  } catch (const std::exception& e) {
    error = e.what();
  }
  std::unique_lock lk(mtx);
  progress.wait(lk, [&] { return parked == created; });
  const double hwm1 = status_bytes("VmHWM"), pte1 = status_bytes("VmPTE");
  const long maps = count_lines("/proc/self/maps");
  released = true;
  event.notify_all();
  progress.wait(lk, [&] { return finished == created; });
  lk.unlock();
  if (created < n) {
    std::fprintf(stderr,
                 "boost_fiber_cases: memory: only %d of %d fibers could be created: creating the next one threw "
                 "\"%s\" (its stack is a malloc of %zu bytes); the process had %ld memory mappings "
                 "(vm.max_map_count %s), peak RSS %.0f MiB\n",
                 created, n, error.c_str(), boost::context::stack_traits::default_size(), maps,
                 read_first_line("/proc/sys/vm/max_map_count").c_str(), hwm1 / (1 << 20));
    std::printf("%s reached=%d error=stack_allocation_failed%s\n", head.c_str(), created, flags);
    return 3;
  }
  std::printf("%s bytes_per_fiber=%.0f page_table_bytes_per_fiber=%.0f stack_bytes=%zu%s\n", head.c_str(),
              (hwm1 - hwm0) / n, (pte1 - pte0) / n, boost::context::stack_traits::default_size(), flags);
  return 0;
}

struct Options {
  std::string name;
  int n = 0;
  int threads = 1000;
  int pool = 1000;
  unsigned workers = std::max(1u, std::thread::hardware_concurrency());
  bool suspend = false;
  bool tuned_malloc = false;
  fibers::launch launch = fibers::launch::dispatch;
};

[[noreturn]] void usage_error(const std::string& what) {
  std::fprintf(stderr, "boost_fiber_cases: %s\n", what.c_str());
  std::exit(2);
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) == 0) arg.erase(0, 1);  // -case and --case alike, like Go's flag package
    const bool has_value = i + 1 < argc;
    if (arg == "-help" || arg == "-h") {
      std::puts(
          "usage: boost_fiber_cases -case NAME [-n N] [-workers W] [-threads T] [-pool P]\n"
          "                         [-launch dispatch|post] [-suspend] [-tuned-malloc]\n"
          "cases: spawn_join, yield, handoff_same, handoff_cross, queue_same, queue_cross,\n"
          "       skynet, lock, pool_map, memory (see the top of fiber_cases.cpp)");
      std::exit(0);
    } else if (arg == "-case" && has_value) {
      o.name = argv[++i];
    } else if (arg == "-n" && has_value) {
      o.n = std::atoi(argv[++i]);
    } else if (arg == "-workers" && has_value) {
      o.workers = static_cast<unsigned>(std::atoi(argv[++i]));
    } else if (arg == "-threads" && has_value) {
      o.threads = std::atoi(argv[++i]);
    } else if (arg == "-pool" && has_value) {
      o.pool = std::atoi(argv[++i]);
    } else if (arg == "-launch" && has_value) {
      const std::string v = argv[++i];
      if (v != "dispatch" && v != "post") usage_error("-launch must be dispatch or post");
      o.launch = v == "post" ? fibers::launch::post : fibers::launch::dispatch;
    } else if (arg == "-suspend") {
      o.suspend = true;
    } else if (arg == "-tuned-malloc") {
      o.tuned_malloc = true;
    } else {
      usage_error(std::string("unknown argument ") + argv[i] + " (try -help)");
    }
  }
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  const std::map<std::string, int> defaults{
      {"spawn_join", 100000}, {"yield", 1000000}, {"handoff_same", 500000}, {"handoff_cross", 250000},
      {"queue_same", 500000}, {"queue_cross", 250000}, {"skynet", 1000000}, {"lock", 1000},
      {"pool_map", 1000000},  {"memory", 100000}};
  const auto def = defaults.find(o.name);
  if (def == defaults.end()) usage_error("unknown -case \"" + o.name + "\" (try -help)");
  if (o.n == 0) o.n = def->second;
  if (o.n < 1 || o.threads < 1 || o.pool < 1 || o.workers < 1)
    usage_error("-n, -workers, -threads and -pool must be >= 1");
  const bool one_thread = o.name == "yield" || o.name == "handoff_same" || o.name == "queue_same";
  const bool cross = o.name == "handoff_cross" || o.name == "queue_cross";
  if (cross && o.workers < 2) usage_error(o.name + " needs -workers >= 2");
  if (o.name == "spawn_join" && o.n % kBatch != 0) fail("spawn_join: -n must be a multiple of 1000");
  if (o.name == "skynet")
    for (long l = o.n; l > 1; l /= 10)
      if (l % 10 != 0) fail("skynet: -n must be a power of 10");

  char head[160];
  std::snprintf(head, sizeof head, "case=%s workers=%u n=%d", o.name.c_str(), o.workers, o.n);
  if (o.tuned_malloc && !(mallopt(M_MMAP_THRESHOLD, 1 << 20) && mallopt(M_TRIM_THRESHOLD, 1 << 30)))
    fail("-tuned-malloc: mallopt failed");
  // Options that change what is measured are echoed on the line.
  const std::string extra_s =
      std::string(o.suspend ? " suspend=1" : "") + (o.tuned_malloc ? " tuned_malloc=1" : "");
  const char* flags = extra_s.c_str();

  int rc = 0;
  try {
    SchedulerThreads sched(one_thread ? 1 : o.workers, o.suspend);
    if (o.name == "spawn_join") {
      const double cold = spawn_join(o.n);
      std::vector<double> warm;
      for (int k = 0; k < 5; ++k) warm.push_back(spawn_join(o.n));
      std::printf("%s ns_per_op=%.1f cold_ns_per_op=%.1f%s\n", head, median(warm), cold, flags);
    } else if (o.name == "yield") {
      std::printf("%s ns_per_op=%.1f threads_during=1%s\n", head, yield_pair(o.n), flags);
    } else if (o.name == "handoff_same" || o.name == "handoff_cross") {
      const PingPong r = hand_off(o.n);
      if (one_thread)
        std::printf("%s ns_per_op=%.1f threads_during=1%s\n", head, r.ns_per_op, flags);
      else
        std::printf("%s ns_per_op=%.1f on_two_threads=%.2f%s\n", head, r.ns_per_op, r.on_two_threads, flags);
    } else if (o.name == "queue_same" || o.name == "queue_cross") {
      const PingPong r = queue_ping_pong(o.n);
      if (one_thread)
        std::printf("%s ns_per_op=%.1f threads_during=1%s\n", head, r.ns_per_op, flags);
      else
        std::printf("%s ns_per_op=%.1f on_two_threads=%.2f%s\n", head, r.ns_per_op, r.on_two_threads, flags);
    } else if (o.name == "skynet") {
      const long leaves = o.n;
      fibers::buffered_channel<long> out(2);
      const auto t0 = Clock::now();
      fibers::fiber(o.launch, [&] { skynet(out, 0, leaves, 10, o.launch); }).detach();
      const long sum = out.value_pop();
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      if (sum != leaves * (leaves - 1) / 2) fail("skynet: wrong sum " + std::to_string(sum));
      std::printf("%s ms=%.1f launch=%s%s\n", head, ms, o.launch == fibers::launch::post ? "post" : "dispatch",
                  flags);
    } else if (o.name == "lock") {
      std::printf("%s ns_per_op=%.1f threads=%d%s\n", head, contended_lock(o.threads, o.n), o.threads, flags);
    } else if (o.name == "pool_map") {
      std::printf("%s ns_per_op=%.1f pool=%d%s\n", head, pool_map(o.n, o.pool), o.pool, flags);
    } else if (o.name == "memory") {
      rc = memory(o.n, head, flags);
    }
    std::fflush(stdout);
  } catch (const std::exception& e) {
    fail(o.name + ": " + e.what());
  }
  return rc;
}
