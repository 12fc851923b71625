// green::wait() and iwait() over a mix of Greenlets, Events, AsyncResults
// and Queues (gevent-behaviours case 36, TestWait*, and case 34's
// test_gevent_wait_twice_when_already_set and test_set_during_wait, #771).
//
// Readiness is shaped with Events, not sleeps; every wait is bounded.
#include <green/green.hpp>
#include <green/sync.hpp>
#include <green/wait.hpp>
#include <gtest/gtest.h>

#include "parked.hpp"
#include "test_util.hpp"

#include <array>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;

namespace {

using green::testing::MyError;
using green::testing::wait_parked;
using Clock = std::chrono::steady_clock;
using Indices = std::vector<std::size_t>;

static_assert(std::is_constructible_v<green::Waitable, green::Event&>);
static_assert(std::is_constructible_v<green::Waitable, green::Queue<int>&>);
static_assert(std::is_constructible_v<green::Waitable, green::JoinableQueue<int>&>);
static_assert(std::is_constructible_v<green::Waitable, green::AsyncResult<void>&>);
static_assert(std::is_constructible_v<green::Waitable, const green::Greenlet<int>&>);
static_assert(!std::is_constructible_v<green::Waitable, green::Greenlet<int>&&>, "a temporary handle");
static_assert(!std::is_constructible_v<green::Waitable, green::Channel<int>&>, "a Channel stores nothing");

// Case 36 (TestWait, _count1, _count2, _notimeout): five Events and five
// AsyncResults set one by one; wait(objs, timeout, count) returns count of
// them while the sender is still alive, and all of them without a count.
TEST(Wait, MixedObjectsReturnsCountReadyWhileTheSenderLives) {
  for (std::size_t count : {1u, 2u, 3u}) {
    SCOPED_TRACE(count);
    green::Runtime rt({.workers = 2});
    rt.run([count] {
      std::array<green::Event, 5> events;
      std::array<green::AsyncResult<int>, 5> results;
      green::Event proceed;
      std::vector<green::Waitable> objs;
      for (std::size_t i = 0; i < 5; ++i) {
        objs.emplace_back(events[i]);
        objs.emplace_back(results[i]);
      }
      auto sender = green::spawn({.worker = 1, .pinned = true}, [&] {
        for (std::size_t i = 0; i < 5; ++i) {
          if (i == 2) proceed.wait(10s);  // the first 4 objects, then hold
          events[i].set();
          green::yield();
          results[i].set(static_cast<int>(i));
        }
      });
      const Indices some = green::wait(objs, 5s, count);
      EXPECT_EQ(some.size(), count);
      EXPECT_FALSE(sender.ready()) << "wait with a count returns before the sender is done";
      for (std::size_t i : some) EXPECT_TRUE(objs[i].ready());
      proceed.set();
      const Indices all = green::wait(objs, 5s);
      EXPECT_EQ(all.size(), 10u);
      EXPECT_TRUE(sender.join(5s));
    });
  }
}

TEST(Wait, ReadyAtTheCallComeFirstInTheOrderGiven) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::Event a, b, c;
    c.set();
    a.set();
    EXPECT_EQ(green::wait({a, b, c}, 5s, 2), (Indices{0, 2}));
    EXPECT_EQ(green::wait({a, b, c}, 10ms), (Indices{0, 2})) << "fewer than all after the timeout";
    EXPECT_EQ(green::wait({b, c, a}, 5s, 1), (Indices{1}));
  });
}

TEST(Wait, TimeoutWithNothingReadyReturnsNone) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Event never;
    green::Queue<int> empty;
    const auto t0 = Clock::now();
    EXPECT_TRUE(green::wait({never, empty}, 30ms).empty());
    const auto took = Clock::now() - t0;
    EXPECT_GE(took, 30ms);
    EXPECT_LT(took, 2s);
  });
}

TEST(Wait, EmptyListReturnsAtOnce) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::vector<green::Waitable> none;
    EXPECT_TRUE(green::wait(none).empty());
  });
}

TEST(Wait, QueueIsReadyWhenAnItemIsStoredAndKeepsIt) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    green::Queue<int> q;
    green::Event other;
    auto waiter = green::spawn({.name = "waiter"}, [&] { return green::wait({other, q}, 5s, 1); });
    ASSERT_TRUE(wait_parked(rt, "waiter", "wait"));
    auto putter = green::spawn({.worker = 1, .pinned = true}, [&q] { q.put(7); });
    EXPECT_EQ(waiter.get(5s), (Indices{1}));
    EXPECT_EQ(q.size(), 1u) << "waiting consumes nothing";
    EXPECT_EQ(q.get_nowait(), 7);
    EXPECT_TRUE(putter.join(5s));
  });
}

TEST(Wait, ClosedQueueIsReady) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::Queue<int> q;
    q.close();
    EXPECT_EQ(green::wait({q}, 5s), (Indices{0}));
  });
}

// test_gevent_wait_twice_when_already_set.
TEST(Wait, TwiceOnAnAlreadySetEvent) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::Event e;
    e.set();
    EXPECT_EQ(green::wait({e}, 5s), (Indices{0}));
    EXPECT_EQ(green::wait({e}, 5s), (Indices{0}));
  });
}

// test_set_during_wait (#771): an Event set and cleared again before the
// woken waiter looks is not reported ready; the waiter waits on to its
// timeout. One worker: the toggler's set() and clear() run in one turn.
TEST(Wait, EventSetThenClearedIsNotReportedReady) {
  green::Runtime rt({.workers = 1});
  rt.run([&rt] {
    green::Event e;
    auto waiter = green::spawn({.name = "waiter"}, [&e] { return green::wait({e}, 50ms); });
    ASSERT_TRUE(wait_parked(rt, "waiter", "wait"));
    auto toggler = green::spawn([&e] {
      e.set();
      e.clear();
    });
    EXPECT_TRUE(toggler.join(5s));
    EXPECT_TRUE(waiter.get(5s).empty());
  });
}

TEST(Wait, GreenThreadEndingOnAnotherWorker) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Event go;
    auto worker = green::spawn({.worker = 1, .pinned = true}, [&go] {
      go.wait(10s);
      return 1;
    });
    green::GreenletRef ref = worker;
    green::AsyncResult<int> never;
    auto releaser = green::spawn([&go] { go.set(); });
    EXPECT_EQ(green::wait({never, worker}, 5s, 1), (Indices{1}));
    EXPECT_EQ(green::wait({ref}, 5s), (Indices{0}));
    EXPECT_TRUE(releaser.join(5s));
  });
}

TEST(Wait, AsyncResultWithAnExceptionIsReady) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::AsyncResult<void> failed;
    failed.set_exception(std::make_exception_ptr(MyError(1)));
    EXPECT_EQ(green::wait({failed}, 5s), (Indices{0}));
  });
}

// A kill while parked on several lists leaves no Waiter behind: the objects
// becoming ready afterwards touch nothing (ASan would see a stale Waiter).
TEST(Wait, KillWhileWaitingLeavesNothingLinked) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    green::Event e;
    green::Queue<int> q;
    green::AsyncResult<int> r;
    auto blocker = green::spawn([] { green::sleep(10s); });
    auto waiter = green::spawn({.name = "waiter"}, [&] { (void)green::wait({e, q, r, blocker}); });
    ASSERT_TRUE(wait_parked(rt, "waiter", "wait"));
    EXPECT_TRUE(waiter.kill(green::GreenletExit(), 5s));
    EXPECT_TRUE(waiter.killed());
    e.set();
    q.put(1);
    r.set(2);
    EXPECT_TRUE(blocker.kill(green::GreenletExit(), 5s));
  });
}

TEST(Wait, TimeoutScopeInterruptsAWait) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::Event never;
    green::Timeout t(20ms);
    try {
      (void)green::wait({never});
      ADD_FAILURE() << "the Timeout must fire";
    } catch (const green::TimeoutError& e) {
      EXPECT_TRUE(e.is(t));
    }
  });
}

TEST(Wait, FromAPlainThread) {
  green::Runtime rt({.workers = 2});
  green::Event e;
  green::Queue<int> q;
  auto putter = rt.spawn([&q] { q.put(3); });
  EXPECT_EQ(green::wait({e, q}, 5s, 1), (Indices{1}));
  EXPECT_TRUE(putter.join(5s));
}

// ---------------------------------------------------------------------------
// iwait

// Each object is yielded as it becomes ready: the loop itself makes the
// next one ready, in the order c, a, b.
TEST(Iwait, YieldsEachObjectAsItBecomesReady) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Event a, b, c;
    std::vector<green::Greenlet<void>> setters;
    setters.push_back(green::spawn([&c] { c.set(); }));
    Indices order;
    for (std::size_t i : green::iwait({a, b, c}, 5s)) {
      order.push_back(i);
      if (i == 2) setters.push_back(green::spawn([&a] { a.set(); }));
      if (i == 0) setters.push_back(green::spawn([&b] { b.set(); }));
    }
    EXPECT_EQ(order, (Indices{2, 0, 1}));
    EXPECT_EQ(green::joinall(setters, 5s), 3u);
  });
}

TEST(Iwait, CountAndTimeoutEndTheIteration) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::Event a, b, never;
    a.set();
    b.set();
    Indices got;
    for (std::size_t i : green::iwait({a, b, never}, 5s, 1)) got.push_back(i);
    EXPECT_EQ(got, (Indices{0}));
    got.clear();
    const auto t0 = Clock::now();
    auto it = green::iwait({never, b, a}, 30ms);
    while (auto i = it.next()) got.push_back(*i);
    EXPECT_EQ(got, (Indices{1, 2}));
    EXPECT_GE(Clock::now() - t0, 30ms);
    EXPECT_FALSE(it.next()) << "stays ended";
  });
}

// ---------------------------------------------------------------------------
// wait() with no objects: until nothing else is alive.

TEST(WaitForAll, ReturnsOnceNoOtherGreenThreadIsAlive) {
  green::Runtime rt({.workers = 2});
  std::atomic<int> ended{0};
  rt.run([&ended] {
    green::Event go;
    for (int i = 0; i < 3; ++i) {
      green::spawn([&go, &ended] {
        go.wait(10s);
        // A child spawned late: wait() must see it too.
        green::spawn([&ended] {
          green::yield();
          ended.fetch_add(1);
        });
        ended.fetch_add(1);
      });
    }
    auto releaser = green::spawn([&go] { go.set(); });
    EXPECT_TRUE(green::wait(10s));
    EXPECT_EQ(ended.load(), 6);
    EXPECT_TRUE(releaser.ready());
  });
}

TEST(WaitForAll, TimeoutWhileAnotherLives) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    auto sleeper = green::spawn([] { green::sleep(10s); });
    const auto t0 = Clock::now();
    EXPECT_FALSE(green::wait(30ms));
    EXPECT_GE(Clock::now() - t0, 30ms);
    EXPECT_TRUE(sleeper.kill());
    EXPECT_TRUE(green::wait(5s));
  });
}

TEST(WaitForAll, OnAPlainThreadIsAnError) { EXPECT_THROW(green::wait(), green::Error); }

}  // namespace
