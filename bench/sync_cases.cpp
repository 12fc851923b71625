// sync_cases.cpp — green_bench's sync/ cases: Queue ping-pong, contended
// Lock, Semaphore fan-out, Pool.map. See green_bench.cpp for the table.
#include <green/sync.hpp>

#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <ranges>
#include <vector>

#include "cases.hpp"

namespace bench {

namespace {
[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "green_bench: %s\n", what);
  std::exit(1);
}
}  // namespace

double queue_ping_pong(green::Runtime& rt, int n, Placement where) {
  green::Queue<int> to_b, to_a;
  return ping_pong(
      rt, where,
      [&] {
        for (int i = 0; i < n; ++i) {
          to_b.put(i);
          if (to_a.get() != i) fail("queue ping-pong: wrong item");
        }
      },
      [&] {
        for (int i = 0; i < n; ++i) to_a.put(to_b.get());
      },
      2.0 * n);  // one-way hand-offs
}

double contended_lock(green::Runtime& rt, int threads, int per_thread) {
  return rt.run([threads, per_thread] {
    green::Lock lock;
    long counter = 0;  // guarded by lock
    green::Group group;
    const auto t0 = Clock::now();
    for (int t = 0; t < threads; ++t) {
      group.spawn([&] {
        for (int i = 0; i < per_thread; ++i) {
          std::lock_guard g(lock);
          ++counter;
        }
      });
    }
    group.join();
    const double ns = ns_since(t0, double(threads) * per_thread);
    if (counter != long(threads) * per_thread) fail("contended lock: lost increments");
    return ns;
  });
}

double semaphore_fan_out(green::Runtime& rt, int n, int permits) {
  // The bounded fan-out pattern: the parent takes a permit before each spawn
  // and the child gives it back when its work (one yield) is done, so at
  // most `permits` children are alive at once.
  return rt.run([n, permits] {
    green::Semaphore sem(permits);
    std::atomic<int> inside{0}, most{0};
    green::Group group;
    const auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) {
      sem.acquire();
      group.spawn([&] {
        const int now = inside.fetch_add(1, std::memory_order_relaxed) + 1;
        int seen = most.load(std::memory_order_relaxed);
        while (now > seen && !most.compare_exchange_weak(seen, now, std::memory_order_relaxed)) {
        }
        green::yield();
        inside.fetch_sub(1, std::memory_order_relaxed);
        sem.release();
      });
    }
    group.join();
    const double ns = ns_since(t0, n);
    if (most.load() > permits) fail("semaphore fan-out: more children alive than permits");
    return ns;
  });
}

double pool_map(green::Runtime& rt, int n, std::size_t pool_size) {
  return rt.run([n, pool_size] {
    green::Pool pool(pool_size);
    const auto t0 = Clock::now();
    auto out = pool.map([](int x) { return x + 1; }, std::views::iota(0, n));
    const double ns = ns_since(t0, n);
    if (out.size() != std::size_t(n) || out.front() != 1 || out.back() != n) fail("pool.map: wrong results");
    return ns;
  });
}

}  // namespace bench
