// scheduler_cases.cpp — green_bench's scheduler cases: spawn+join, yield,
// park/unpark hand-off, skynet, idle CPU. See green_bench.cpp for the table.
#include <time.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "baton.hpp"
#include "cases.hpp"

using green::testing::Baton;

namespace bench {

// Spawns n green threads in batches of kBatch and joins each batch: the cost
// of one green thread's whole life (control block, stack binding, two
// switches, completion, join), with the batch kept small enough to stay in
// cache. "spawn 1M, then join 1M" is measured by the memory case instead.
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

double hand_off(green::Runtime& rt, int n, Placement where) {
  Baton to_a, to_b;
  return ping_pong(
      rt, where,
      [&] {
        for (int i = 0; i < n; ++i) {
          to_b.post();
          to_a.wait();
        }
      },
      [&] {
        for (int i = 0; i < n; ++i) {
          to_b.wait();
          to_a.post();
        }
      },
      2.0 * n);  // one-way hand-offs
}

double core_to_core_ns(int n) {
  // Odd values are the second thread's turn, even values the first's.
  alignas(64) std::atomic<int> turn{0};
  const auto t0 = Clock::now();
  std::thread second([&] {
    for (int i = 0; i < n; ++i) {
      while (turn.load(std::memory_order_acquire) != 2 * i + 1) __builtin_ia32_pause();
      turn.store(2 * i + 2, std::memory_order_release);
    }
  });
  for (int i = 0; i < n; ++i) {
    turn.store(2 * i + 1, std::memory_order_release);
    while (turn.load(std::memory_order_acquire) != 2 * i + 2) __builtin_ia32_pause();
  }
  second.join();
  return ns_since(t0, 2.0 * n);
}

namespace {
long skynet(long num, long size, long div) {
  if (size == 1) return num;
  green::Greenlet<long> children[10];
  const long sub = size / div;
  for (long i = 0; i < div; ++i) children[i] = green::spawn(skynet, num + i * sub, sub, div);
  long sum = 0;
  for (long i = 0; i < div; ++i) sum += children[i].get();
  return sum;
}
}  // namespace

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

}  // namespace bench
