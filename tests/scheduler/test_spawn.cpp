// Spawn, join, get, exceptions, links, spawn order, plain-thread use.
#include <green/green.hpp>
#include <gtest/gtest.h>

#include "test_util.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using green::testing::MyError;

TEST(Spawn, RunReturnsValue) {
  green::Runtime rt({.workers = 2});
  EXPECT_EQ(rt.run([] { return green::spawn([](int x) { return x * 2; }, 21).get(); }), 42);
}

TEST(Spawn, RunRethrows) {
  green::Runtime rt({.workers = 1});
  EXPECT_THROW(rt.run([]() -> int { throw MyError(7); }), MyError);
}

TEST(Spawn, RunFromInsideAGreenThreadIsRejectedForShutdown) {
  green::Runtime rt({.workers = 1});
  rt.run([&] { EXPECT_THROW(rt.shutdown(), green::Error); });
}

TEST(Spawn, MoveOnlyArgumentsAndResults) {
  green::Runtime rt({.workers = 2});
  auto out = rt.run([] {
    auto g = green::spawn([](std::unique_ptr<int> p) { return std::make_unique<int>(*p + 1); },
                          std::make_unique<int>(41));
    return *g.get();
  });
  EXPECT_EQ(out, 42);
}

TEST(Spawn, DoesNotRunInsideSpawn) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    bool ran = false;
    auto g = green::spawn([&] { ran = true; });
    EXPECT_FALSE(ran);  // gevent M4: spawn schedules, never switches
    EXPECT_FALSE(g.started());
    g.join();
    EXPECT_TRUE(ran);
  });
}

TEST(Spawn, SiblingsStartInSpawnOrderOnOneWorker) {
  // gevent's "1A 2A 1B 2B".
  green::Runtime rt({.workers = 1});
  std::vector<std::string> log;
  rt.run([&] {
    auto body = [&](std::string n) {
      log.push_back(n + "A");
      green::yield();
      log.push_back(n + "B");
    };
    auto a = green::spawn(body, std::string("1"));
    auto b = green::spawn(body, std::string("2"));
    a.join();
    b.join();
  });
  EXPECT_EQ(log, (std::vector<std::string>{"1A", "2A", "1B", "2B"}));
}

TEST(Spawn, GetRethrowsAndKeepsTheException) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    auto g = green::spawn([]() -> int { throw MyError(5); });
    try {
      g.get();
      FAIL() << "get() must rethrow";
    } catch (const MyError& e) {
      EXPECT_EQ(e.code, 5);
    }
    EXPECT_TRUE(g.ready());
    EXPECT_TRUE(g.dead());
    EXPECT_FALSE(g.successful());
    EXPECT_FALSE(g.killed());
    EXPECT_NE(g.exception(), nullptr);
    EXPECT_THROW(g.get(), MyError);  // every get rethrows
  });
}

TEST(Spawn, StateMachine) {
  // gevent test__greenlet TestBasic.test_simple_exit.
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::atomic<int> link_calls{0};
    auto g = green::spawn([] {
      green::sleep(20ms);
      return 5;
    });
    g.link([&](green::Greenlet<int> h) {
      ++link_calls;
      EXPECT_TRUE(h.ready());
    });
    EXPECT_FALSE(static_cast<bool>(g));  // not started yet
    EXPECT_FALSE(g.ready());
    green::sleep(1ms);
    EXPECT_TRUE(g.started());
    EXPECT_TRUE(static_cast<bool>(g));  // running (sleeping)
    EXPECT_FALSE(g.ready());
    EXPECT_EQ(link_calls.load(), 0);
    EXPECT_EQ(g.get(), 5);
    EXPECT_FALSE(static_cast<bool>(g));
    EXPECT_TRUE(g.dead());
    EXPECT_TRUE(g.successful());
    EXPECT_EQ(g.exception(), nullptr);
    EXPECT_EQ(link_calls.load(), 1);
  });
}

TEST(Spawn, LinkAfterDeathRunsAtOnce) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    auto g = green::spawn([] { return 1; });
    g.join();
    int calls = 0;
    g.link([&](green::Greenlet<int>) { ++calls; });
    EXPECT_EQ(calls, 1);
  });
}

TEST(Spawn, LinksRunInOrderAndAThrowingLinkDoesNotStopOthers) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::vector<int> order;
    auto g = green::spawn([] { green::yield(); });
    g.link([&](auto) { order.push_back(1); });
    g.link([&](auto) {
      order.push_back(2);
      throw std::runtime_error("link failure (expected in this test)");
    });
    g.link([&](auto) { order.push_back(3); });
    g.join();
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
  });
}

TEST(Spawn, JoinTimeout) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    auto g = green::spawn([] { green::sleep(10s); });
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_FALSE(g.join(30ms));
    const auto waited = std::chrono::steady_clock::now() - t0;
    EXPECT_GE(waited, 30ms);
    EXPECT_LT(waited, 2s);
    EXPECT_THROW(g.get(20ms), green::TimeoutError);
    g.kill();
    EXPECT_TRUE(g.dead());
  });
}

TEST(Spawn, JoinSelfIsAnError) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    auto holder = std::make_shared<green::Greenlet<void>>();
    auto started = std::make_shared<std::atomic<bool>>(false);
    auto g = green::spawn([holder, started] {
      while (!started->load()) green::yield();
      EXPECT_THROW(holder->join(), green::Error);
    });
    *holder = g;
    started->store(true);
    g.get();
    *holder = {};  // break the cycle: the closure holds the handle to itself
  });
}

TEST(Spawn, EmptyHandleThrows) {
  green::Greenlet<int> g;
  EXPECT_FALSE(g.valid());
  EXPECT_THROW(g.join(), green::Error);
}

TEST(Spawn, SpawnOutsideAGreenThreadThrows) {
  EXPECT_THROW(green::spawn([] {}), green::Error);
}

TEST(Spawn, BadOptionsAreRejected) {
  EXPECT_THROW(green::Runtime({.workers = 1, .stack_size = 1024}), green::Error);
  green::Runtime rt({.workers = 2});
  EXPECT_THROW(rt.spawn({.worker = 2}, [] {}), green::Error);
  EXPECT_THROW(rt.spawn({.stack_size = 100}, [] {}), green::Error);
}

TEST(Spawn, FromPlainThreadsWhileWorkersAreBusy) {
  green::Runtime rt({.workers = 2});
  std::atomic<bool> stop{false};
  // Keep both workers busy yielding.
  auto busy1 = rt.spawn([&] { while (!stop) green::yield(); });
  auto busy2 = rt.spawn([&] { while (!stop) green::yield(); });
  std::vector<std::thread> threads;
  std::atomic<int> sum{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::vector<green::Greenlet<int>> gs;
      for (int i = 0; i < 500; ++i) gs.push_back(rt.spawn([i, t] { return i + t; }));
      for (auto& g : gs) sum += g.get();  // a plain thread blocks in get()
    });
  }
  for (auto& th : threads) th.join();
  stop = true;
  busy1.get();
  busy2.get();
  int expected = 0;
  for (int t = 0; t < 4; ++t)
    for (int i = 0; i < 500; ++i) expected += i + t;
  EXPECT_EQ(sum.load(), expected);
}

TEST(Spawn, IdsAreUniqueAndNamesKept) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    auto a = green::spawn({.name = "alpha"}, [] { return green::current_name(); });
    auto b = green::spawn([] { return green::current_id(); });
    EXPECT_EQ(a.get(), "alpha");
    EXPECT_EQ(a.name(), "alpha");
    EXPECT_EQ(b.get(), b.id());
    EXPECT_NE(a.id(), b.id());
    EXPECT_NE(green::current_id(), 0u);
  });
  EXPECT_EQ(green::current_id(), 0u);
  EXPECT_FALSE(green::in_green_thread());
  EXPECT_EQ(green::this_worker(), -1);
}

TEST(Spawn, SpawnLaterStartsAfterTheDelay) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    const auto t0 = std::chrono::steady_clock::now();
    auto g = green::spawn_later(30ms, [t0] { return std::chrono::steady_clock::now() - t0; });
    EXPECT_GE(g.get(), 30ms);
  });
}

TEST(Spawn, SpawnLaterFromAPlainThread) {
  green::Runtime rt({.workers = 2});
  const auto t0 = std::chrono::steady_clock::now();
  auto g = rt.spawn_later(20ms, [] { return 7; });
  EXPECT_EQ(g.get(), 7);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);
}

TEST(Spawn, SpawnFromADyingGreenThreadStillRuns) {
  // gevent test__api.TestTimers: the child outlives its parent.
  green::Runtime rt({.workers = 2});
  rt.run([] {
    auto flag = std::make_shared<std::atomic<bool>>(false);
    auto child = std::make_shared<green::Greenlet<void>>();
    green::spawn([flag, child] { *child = green::spawn([flag] { flag->store(true); }); }).join();
    child->join();
    EXPECT_TRUE(flag->load());
  });
}

TEST(Spawn, UnobservedExceptionIsReportedOnce) {
  testing::internal::CaptureStderr();
  {
    green::Runtime rt({.workers = 1});
    rt.run([] {
      green::spawn({.name = "doomed"}, [] { throw MyError(1); }).join();
      auto observed = green::spawn({.name = "observed"}, [] { throw MyError(2); });
      observed.join();
      EXPECT_NE(observed.exception(), nullptr);
      green::spawn({.name = "killed"}, [] { green::sleep(10s); }).kill();
    });
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("(doomed)"), std::string::npos) << err;
  EXPECT_EQ(err.find("(doomed)"), err.rfind("(doomed)")) << "reported twice: " << err;
  EXPECT_EQ(err.find("(observed)"), std::string::npos) << err;
  EXPECT_EQ(err.find("(killed)"), std::string::npos) << err;
}

TEST(Spawn, SeveralRuntimesInOneProcess) {
  green::Runtime a({.workers = 1});
  green::Runtime b({.workers = 2});
  auto ga = a.spawn([] { return green::this_worker(); });
  auto gb = b.spawn([] { return 10 + green::this_worker(); });
  EXPECT_EQ(ga.get(), 0);
  EXPECT_GE(gb.get(), 10);
  // A green thread of one runtime joins a green thread of the other.
  auto cross = a.spawn([&b] { return b.spawn([] { return 3; }).get(); });
  EXPECT_EQ(cross.get(), 3);
}

}  // namespace

namespace {

TEST(Spawn, DumpListsLiveGreenThreadsAndWhatTheyWaitOn) {
  green::Runtime rt({.workers = 2});
  auto sleeper = rt.spawn({.name = "sleeper"}, [] { green::sleep(1h); });
  auto joiner = rt.spawn({.name = "joiner"}, [sleeper] { sleeper.join(); });
  // Wait (bounded) until both are parked.
  std::string dump;
  const auto give_up = std::chrono::steady_clock::now() + 10s;
  do {
    dump = rt.dump();
  } while ((dump.find("(sleeper): parked: sleep") == std::string::npos ||
            dump.find("(joiner): parked: join") == std::string::npos) &&
           std::chrono::steady_clock::now() < give_up);
  EXPECT_NE(dump.find("(sleeper): parked: sleep"), std::string::npos) << dump;
  EXPECT_NE(dump.find("(joiner): parked: join"), std::string::npos) << dump;
  sleeper.kill();
  EXPECT_TRUE(joiner.join(10s));
  EXPECT_TRUE(green::testing::wait_until([&] { return rt.dump().empty(); })) << rt.dump();
}

}  // namespace

namespace {

TEST(Spawn, JoinerResumesAfterItsQueuedChildrenStarted) {
  // gevent: the children's start callbacks were queued before the joiner's
  // wake-up, so by the time join(first) returns, the siblings have started.
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::vector<int> started;
    std::vector<green::Greenlet<void>> gs;
    for (int i = 0; i < 5; ++i) gs.push_back(green::spawn([&started, i] { started.push_back(i); }));
    gs[0].join();
    EXPECT_EQ(started, (std::vector<int>{0, 1, 2, 3, 4}));
    green::joinall(gs);
  });
}

TEST(Spawn, DeferredJoinerIsNotStarvedByASpawnStorm) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::atomic<bool> stop{false};
    // Keeps the deque busy above any joiner's mark.
    auto storm = green::spawn([&] {
      while (!stop) {
        std::vector<green::Greenlet<void>> kids;
        for (int i = 0; i < 8; ++i) kids.push_back(green::spawn([] { green::yield(); }));
        green::joinall(kids);
      }
    });
    auto quick = green::spawn([] {});
    EXPECT_TRUE(quick.join(10s));
    stop = true;
    EXPECT_TRUE(storm.join(10s));
  });
}

}  // namespace
