// Runtime::stats(): per-worker counters (run, steals, hub polls, parks,
// cross-worker wakes, timers) and per green thread run time, switches and
// stack high-water mark. Each counter is driven by a workload that must
// move it; every wait is bounded.
#include <green/green.hpp>
#include <gtest/gtest.h>

#include "baton.hpp"
#include "test_env.hpp"
#include "test_util.hpp"

#include <atomic>
#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

using green::testing::Baton;
using green::testing::spin_for;
using green::testing::wait_until;

const green::GreenThreadStats* find(const green::RuntimeStats& s, std::uint64_t id) {
  for (const auto& g : s.green_threads)
    if (g.id == id) return &g;
  return nullptr;
}

TEST(Stats, WorkerCountersMove) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    for (int i = 0; i < 20; ++i) green::sleep(1ms);  // 20 timers fire
    // Spawned onto the other worker: a cross-worker wake from this one.
    green::spawn(green::SpawnOptions{.worker = 1}, [] {}).join();
    green::spawn(green::SpawnOptions{.worker = 0}, [] {}).join();
  });
  const green::RuntimeStats s = rt.stats();
  ASSERT_EQ(s.workers.size(), 2u);
  const green::WorkerStats t = s.total();
  EXPECT_GE(t.green_threads_run, 3u);
  EXPECT_GE(t.timers_fired, 20u);
  EXPECT_GE(t.cross_worker_wakes, 1u);
  // Every sleep left the runtime idle: workers went to sleep and polled
  // their hubs on the way.
  EXPECT_GE(t.parks, 1u);
  EXPECT_GE(t.hub_polls, 1u);
  EXPECT_NE(s.to_string().find("total"), std::string::npos);
  EXPECT_EQ(t.green_threads_run, s.workers[0].green_threads_run + s.workers[1].green_threads_run);
}

TEST(Stats, AnIdleWorkerStealsFromABusyOne) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    // Children queued on this worker's deque while it computes: the other
    // worker, idle, steals them.
    std::vector<green::Greenlet<void>> kids;
    for (int i = 0; i < 64; ++i) kids.push_back(green::spawn([] { spin_for(200us); }));
    green::yield();  // flush the burst to the deque
    spin_for(20ms);  // keep this worker busy meanwhile
    for (auto& k : kids) k.join();
  });
  const green::WorkerStats t = rt.stats().total();
  EXPECT_GE(t.steals, 1u);
  EXPECT_GE(t.stolen, t.steals);
}

TEST(Stats, GreenThreadRunTimeAndSwitchesWhenAsked) {
  green::Runtime rt({.workers = 1, .green_thread_stats = true});
  Baton park_here;
  auto g = rt.spawn(green::SpawnOptions{.name = "busy"}, [&] {
    spin_for(30ms);
    park_here.wait();
  });
  // Parked: its run time is booked at the switch away.
  ASSERT_TRUE(wait_until([&] { return rt.dump().find("(busy): parked") != std::string::npos; }));
  const green::RuntimeStats s = rt.stats();
  const green::GreenThreadStats* me = find(s, g.raw()->id);
  ASSERT_NE(me, nullptr);
  EXPECT_EQ(me->name, "busy");
  EXPECT_EQ(me->switches, 1u);
  EXPECT_GE(me->run_time, 25ms);
  EXPECT_LT(me->run_time, 10s);
  park_here.post();
  EXPECT_TRUE(g.join(5s));
}

TEST(Stats, NoPerGreenThreadTimesUnlessAsked) {
  green::Runtime rt({.workers = 1});
  Baton park_here;
  auto g = rt.spawn([&] {
    spin_for(5ms);
    park_here.wait();
  });
  std::uint64_t id = g.raw()->id;
  ASSERT_TRUE(wait_until([&] { return rt.dump().find("parked") != std::string::npos; }));
  const auto s = rt.stats();
  const auto* me = find(s, id);
  ASSERT_NE(me, nullptr);
  EXPECT_EQ(me->switches, 0u);
  EXPECT_EQ(me->run_time, std::chrono::nanoseconds(0));
  park_here.post();
  EXPECT_TRUE(g.join(5s));
}

[[gnu::noinline]] int touch_stack(std::size_t bytes) {
  volatile char buf[4096];
  for (std::size_t i = 0; i < sizeof buf; i += 64) buf[i] = 1;
  // Not a tail call: each level keeps its own frame.
  const int deeper = bytes > sizeof buf ? touch_stack(bytes - sizeof buf) : 0;
  return deeper + buf[0];
}

TEST(Stats, StackHighWaterOfAParkedGreenThread) {
  green::Runtime rt({.workers = 1});
  Baton park_here;
  // A fresh stack per green thread would make this exact; a reused one
  // can only show more, never less.
  auto g = rt.spawn([&] {
    EXPECT_GT(touch_stack(96 * 1024), 0);
    park_here.wait();
  });
  ASSERT_TRUE(wait_until([&] { return rt.dump().find("parked") != std::string::npos; }));
  const auto s = rt.stats();
  const auto* me = find(s, g.raw()->id);
  ASSERT_NE(me, nullptr);
  EXPECT_GE(me->stack_high_water, 96u * 1024);
  EXPECT_LE(me->stack_high_water, 256u * 1024);
  park_here.post();
  EXPECT_TRUE(g.join(5s));
}

}  // namespace
