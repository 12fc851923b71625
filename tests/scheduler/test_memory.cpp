// Memory after a burst: free stacks beyond the working set go back to the
// system after the trim interval (the policy is at the top of
// scheduler/src/stack.hpp). The interval is a runtime option, so these tests
// use a short one; every wait is a poll with a deadline.
#include <green/green.hpp>
#include <green/sync.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <vector>

#include "test_util.hpp"

using namespace std::chrono_literals;
using green::testing::wait_until;

namespace {

#ifdef GREEN_TEST_SANITIZED
constexpr int kBurst = 600;  // TSan maps a trace per live fiber
#else
constexpr int kBurst = 3000;
#endif
constexpr std::size_t kTouched = 32 * 1024;  // stack each green thread of the burst commits
constexpr std::size_t kWorkerCache = 64;     // free stacks a worker keeps, never trimmed
constexpr auto kInterval = 50ms;

long rss_kb() {
  long kb = -1;
  if (std::FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f))
      if (!std::strncmp(line, "VmRSS:", 6)) kb = std::atol(line + 6);
    std::fclose(f);
  }
  return kb;
}

// Resident kB of the anonymous mappings whose size is a multiple of `size`:
// with the default stack size, a slab of kSlabStacks stacks and its canary
// page (the kernel merges neighbouring slabs into one mapping).
long mappings_rss_kb(std::size_t size) {
  long kb = 0;
  bool counting = false;
  if (std::FILE* f = std::fopen("/proc/self/smaps", "r")) {
    char line[512];
    while (std::fgets(line, sizeof line, f)) {
      unsigned long lo = 0, hi = 0;
      char perms[8] = {};
      int path_at = 0;
      if (std::sscanf(line, "%lx-%lx %7s %*s %*s %*s%n", &lo, &hi, perms, &path_at) == 3) {
        const bool anonymous = line[path_at + std::strspn(line + path_at, " ")] == '\n';
        counting = anonymous && (hi - lo) % size == 0;
      } else if (counting && !std::strncmp(line, "Rss:", 4)) {
        kb += std::atol(line + 4);
      }
    }
    std::fclose(f);
  }
  return kb;
}
constexpr std::size_t kSlabMapping = 64 * 256 * 1024 + 4096;  // stack.cpp: kSlabStacks, the default size

[[gnu::noinline]] void touch_stack() {
  char frame[kTouched];
  for (std::size_t i = 0; i < kTouched; i += 512) frame[i] = static_cast<char>(i);
  asm volatile("" : : "r"(frame) : "memory");  // the stores stay
}

// kBurst green threads, each with kTouched bytes of its stack committed, all
// alive at once; then they all end. Returns the RSS while they were parked,
// when it also calls `parked` if given.
long burst(green::Runtime& rt, const std::function<void()>& parked_hook = {}) {
  long parked_rss = 0;
  rt.run([&] {
    green::Event go;
    std::atomic<int> parked{0};
    std::vector<green::Greenlet<void>> all;
    all.reserve(kBurst);
    for (int i = 0; i < kBurst; ++i)
      all.push_back(green::spawn([&] {
        touch_stack();
        parked.fetch_add(1);
        go.wait();
      }));
    EXPECT_TRUE(wait_until([&] { return parked.load() == kBurst; }, 30s));
    parked_rss = rss_kb();
    if (parked_hook) parked_hook();
    go.set();
    green::joinall(all);
  });
  return parked_rss;
}

struct Drained {
  std::size_t most_cached = 0;  // the most free stacks seen in the shared pool
  bool empty = false;           // it reached zero before the deadline
};

// Watches the shared pool until the trims have emptied it.
Drained watch_pool(green::Runtime& rt) {
  Drained d;
  d.empty = wait_until(
      [&] {
        const std::size_t n = rt.stacks_cached();
        d.most_cached = std::max(d.most_cached, n);
        return d.most_cached > 0 && n == 0;
      },
      30s);
  return d;
}

TEST(Memory, CachedStacksGoBackAfterTheInterval) {
  green::Runtime rt({.workers = 2, .trim_interval = kInterval});
  const long parked_rss = burst(rt);
  const Drained d = watch_pool(rt);
  ASSERT_TRUE(d.empty) << "still " << rt.stacks_cached() << " stacks cached";
  // All but the workers' own caches went to the shared pool, less what a
  // trim may have given back before the first look.
  EXPECT_GE(d.most_cached, (kBurst - 2 * kWorkerCache) / 2);
  // The pages went back: at least half of what the burst committed (the
  // workers' caches keep theirs; the rest is slack for the allocator).
  const long given_back_kb = parked_rss - rss_kb();
  EXPECT_GE(given_back_kb, static_cast<long>((kBurst - 2 * kWorkerCache) * kTouched / 1024 / 2))
      << "RSS parked " << parked_rss << " kB, now " << rss_kb() << " kB";
  // The runtime still works, and new green threads get stacks again.
  EXPECT_EQ(rt.run([] { return green::spawn([] { touch_stack(); return 7; }).get(); }), 7);
}

TEST(Memory, ZeroIntervalKeepsEveryStack) {
  green::Runtime rt({.workers = 2, .trim_interval = 0ms});
  burst(rt);
  const std::size_t expected = kBurst - 2 * kWorkerCache;
  ASSERT_TRUE(wait_until([&] { return rt.stacks_cached() >= expected; }, 30s));
  // Something that does not happen takes a while to see: idle workers for
  // several would-be intervals (they park and wake many times meanwhile).
  rt.run([] {
    for (int i = 0; i < 5; ++i) green::sleep(kInterval);
  });
  EXPECT_GE(rt.stacks_cached(), expected);
}

TEST(Memory, NegativeIntervalIsRejected) {
  EXPECT_THROW(green::Runtime({.workers = 1, .trim_interval = -1ms}), green::Error);
}

// Slab stacks (past the guard budget) cannot be unmapped one by one: their
// pages are dropped instead, and the stacks are used again afterwards with
// their overflow canaries intact. Run in a child so that the budget, read
// once per process, can be set to zero. What went back is read from the
// slabs' own mappings in /proc/self/smaps: ThreadSanitizer keeps the shadow
// of pages dropped with madvise, so the process's RSS would not show it.
TEST(MemoryDeathTest, SlabStacksDropTheirPagesAndAreReused) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("GREEN_STACK_GUARD_BUDGET", "0", 1);
        green::Runtime rt({.workers = 2, .trim_interval = kInterval});
        long slabs_parked = 0;
        burst(rt, [&] { slabs_parked = mappings_rss_kb(kSlabMapping); });
        const Drained d = watch_pool(rt);
        if (!d.empty) {
          std::fprintf(stderr, "still %zu slab stacks cached\n", rt.stacks_cached());
          std::exit(1);
        }
        const long slabs_now = mappings_rss_kb(kSlabMapping);
        if (slabs_parked - slabs_now < static_cast<long>((kBurst - 2 * kWorkerCache) * kTouched / 1024 / 2)) {
          std::fprintf(stderr, "slab RSS parked %ld kB, now %ld kB\n", slabs_parked, slabs_now);
          std::exit(2);
        }
        // The dropped stacks again, touched as deep as before: a canary
        // lost with the pages would abort with "stack overflow".
        burst(rt);
        if (!watch_pool(rt).empty) std::exit(3);
        std::exit(0);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
