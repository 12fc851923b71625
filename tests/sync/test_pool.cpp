// Pool and Group (gevent-behaviours cases 16-24, plus map/imap error
// handling, kill of the caller, plain-thread callers and a large map).
//
// Completion order is shaped with Events, not sleeps; the few sleeps left
// either give a lower bound (join takes at least the longest member) or
// shape timing that the result must not depend on. Every wait is
// bounded (Event::wait(10s), join(10s), joinall(..., 30s), wait_until).
#include <green/green.hpp>
#include <green/sync.hpp>
#include <gtest/gtest.h>

#include "test_util.hpp"
#include "parked.hpp"
#include "test_env.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <iterator>
#include <memory>
#include <numeric>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using green::testing::MyError;
using green::testing::wait_until;
using green::testing::parked_on;
using green::testing::wait_parked;
using Clock = std::chrono::steady_clock;

// Calls per stress test: 1/2 under sanitizers, 1/10 under ThreadSanitizer.
constexpr int kScaleDown = green::testing::per_build(1, 2, 10);

std::vector<int> iota_vec(int n) {
  std::vector<int> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 0);
  return v;
}

// Counts calls that started and calls that ended (however they ended).
struct CallBook {
  std::atomic<int> started{0};
  std::atomic<int> ended{0};
  std::atomic<int> killed{0};
  struct Scope {
    CallBook* b;
    explicit Scope(CallBook* book) : b(book) { b->started.fetch_add(1); }
    ~Scope() { b->ended.fetch_add(1); }
  };
};

// ===========================================================================
// Case 16: Group bookkeeping.

TEST(Group, SizeGoesTwoOneZeroAsMembersFinish) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Group group;
    EXPECT_EQ(group.size(), 0u);
    EXPECT_TRUE(group.empty());
    green::Event ev1, ev2;
    auto a = group.spawn([&] { ev1.wait(10s); });
    auto b = group.spawn([&] { ev2.wait(10s); });
    EXPECT_EQ(group.size(), 2u);
    EXPECT_TRUE(group.contains(a));
    EXPECT_TRUE(group.contains(b));
    EXPECT_FALSE(group.join(10ms));  // both still running
    ev1.set();
    ASSERT_TRUE(a.join(10s));
    // A member leaves the group before anyone joining it wakes.
    EXPECT_EQ(group.size(), 1u);
    EXPECT_FALSE(group.contains(a));
    EXPECT_TRUE(group.contains(b));
    ev2.set();
    ASSERT_TRUE(b.join(10s));
    EXPECT_EQ(group.size(), 0u);
    EXPECT_TRUE(group.empty());
    EXPECT_TRUE(group.join());
  });
}

TEST(Group, JoinWaitsForTheLongestMember) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Group group;
    green::Event ev1, ev2;
    auto a = group.spawn([&] { ev1.wait(10s); });
    auto b = group.spawn([&] { ev2.wait(10s); });
    auto releaser = green::spawn([&] {
      ev1.set();
      // The short one ends first; the group still has the long one.
      if (!a.join(10s)) return false;
      const bool b_still_running = !b.ready();
      ev2.set();
      return b_still_running;
    });
    EXPECT_TRUE(group.join(10s));
    EXPECT_TRUE(a.ready());
    EXPECT_TRUE(b.ready());
    EXPECT_EQ(group.size(), 0u);
    EXPECT_TRUE(releaser.get());
    // gevent's timing form: join() takes at least the longest sleep.
    const auto t0 = Clock::now();
    group.spawn([] { green::sleep(5ms); });
    group.spawn([] { green::sleep(40ms); });
    EXPECT_TRUE(group.join());
    EXPECT_GE(Clock::now() - t0, 40ms);
    EXPECT_EQ(group.size(), 0u);
  });
}

TEST(Group, AddTracksAGreenThreadSpawnedElsewhere) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Group group;
    green::Event ev;
    auto g = green::spawn([&] { ev.wait(10s); });
    group.add(g);
    group.add(g);  // again: nothing changes
    EXPECT_EQ(group.size(), 1u);
    EXPECT_TRUE(group.contains(g));
    ev.set();
    EXPECT_TRUE(group.join(10s));
    EXPECT_EQ(group.size(), 0u);
    // Adding one that has already finished leaves the group empty.
    group.add(g);
    EXPECT_EQ(group.size(), 0u);
    EXPECT_THROW(group.add(green::Greenlet<void>()), green::Error);
  });
}

// ===========================================================================
// Case 17: Group kill.

TEST(Group, KillBlockEmptiesTheGroup) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Group group;
    CallBook book;
    green::Event never;
    for (int i = 0; i < 2; ++i) {
      group.spawn([&] {
        CallBook::Scope s(&book);
        never.wait(10s);
      });
    }
    ASSERT_TRUE(wait_until([&] { return book.started.load() == 2; }));
    const auto t0 = Clock::now();
    EXPECT_TRUE(group.kill());
    EXPECT_LT(Clock::now() - t0, 2s);
    EXPECT_EQ(group.size(), 0u);
    EXPECT_EQ(book.ended.load(), 2);
  });
}

TEST(Group, KillNonBlockLeavesMembersUntilTheyRun) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::Group group;
    CallBook book;
    green::Event never;
    auto a = group.spawn([&] {
      CallBook::Scope s(&book);
      never.wait(10s);
    });
    auto b = group.spawn([&] {
      CallBook::Scope s(&book);
      never.wait(10s);
    });
    ASSERT_TRUE(wait_until([&] { return book.started.load() == 2; }));
    // One worker and we do not block: the killed members cannot run yet.
    EXPECT_FALSE(group.kill(false));
    EXPECT_EQ(group.size(), 2u);
    EXPECT_TRUE(group.join(10s));
    EXPECT_EQ(group.size(), 0u);
    EXPECT_TRUE(a.killed());
    EXPECT_TRUE(b.killed());
    EXPECT_EQ(book.ended.load(), 2);
  });
}

// Members that swallow GreenletExit, each counting the shots it took
// (gevent's Undead, test_kill_fires_once).
struct Undead {
  std::atomic<int> shots{0};
  std::atomic<int> naps{0};  // sleeps completed or cut short
  std::atomic<bool> quit{false};
  std::atomic<bool> started{false};
  void operator()() {
    started.store(true);
    const auto give_up = Clock::now() + 20s;
    while (!quit.load() && Clock::now() < give_up) {
      try {
        green::sleep(1ms);
      } catch (const green::GreenletExit&) {
        shots.fetch_add(1);
      }
      naps.fetch_add(1);
    }
  }
};

TEST(Group, KillFiresOncePerMember) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    Undead u1, u2;
    green::Group group;
    auto p1 = group.spawn(std::ref(u1));
    auto p2 = group.spawn(std::ref(u2));
    ASSERT_TRUE(wait_until([&] { return u1.started.load() && u2.started.load(); }));
    EXPECT_EQ(group.size(), 2u);
    group.kill(false);
    group.kill(false);  // while the first is pending: ignored
    ASSERT_TRUE(wait_until([&] { return u1.shots.load() == 1 && u2.shots.load() == 1; }));
    // Both took the kill and went on living.
    EXPECT_FALSE(p1.ready());
    EXPECT_FALSE(p2.ready());
    EXPECT_EQ(group.size(), 2u);
    // The group has killed them once already: killing the group again does
    // not shoot them again (gevent keeps a `dying` set for this).
    const int naps1 = u1.naps.load(), naps2 = u2.naps.load();
    group.kill(false);
    group.kill(false);
    // A kill delivered now interrupts the current sleep or the next one, so
    // two more naps each are enough for a second shot to be counted.
    ASSERT_TRUE(wait_until([&] { return u1.naps.load() >= naps1 + 2 && u2.naps.load() >= naps2 + 2; }));
    EXPECT_EQ(u1.shots.load(), 1) << "a member was killed twice by its group";
    EXPECT_EQ(u2.shots.load(), 1) << "a member was killed twice by its group";
    u1.quit.store(true);
    u2.quit.store(true);
    EXPECT_TRUE(group.join(10s));
  });
}

// kill(block) on members that swallow GreenletExit does not return; an
// outer Timeout cuts it short and the members are still there.
TEST(Group, KillBlockOnUndeadMembersWaitsForTheOuterTimeout) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Undead u1, u2;
    green::Group group;
    group.spawn(std::ref(u1));
    group.spawn(std::ref(u2));
    ASSERT_TRUE(wait_until([&] { return u1.started.load() && u2.started.load(); }));
    const auto t0 = Clock::now();
    bool fired = false;
    try {
      green::Timeout t(50ms);
      group.kill();
      ADD_FAILURE() << "kill(block) returned although the members are alive";
    } catch (const green::TimeoutError&) {
      fired = true;
    }
    EXPECT_TRUE(fired);
    EXPECT_GE(Clock::now() - t0, 50ms);
    EXPECT_EQ(group.size(), 2u);
    // kill(timeout) reports that they did not all end.
    EXPECT_FALSE(group.kill(30ms));
    EXPECT_EQ(group.size(), 2u);
    u1.quit.store(true);
    u2.quit.store(true);
    EXPECT_TRUE(group.join(10s));
    EXPECT_GE(u1.shots.load(), 1);
    EXPECT_GE(u2.shots.load(), 1);
  });
}

// ===========================================================================
// Case 19: Pool slots.

TEST(Pool, FreeCountGoesTwoOneTwo) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Pool pool(2);
    EXPECT_EQ(pool.capacity(), 2u);
    EXPECT_EQ(pool.free_count(), 2u);
    EXPECT_FALSE(pool.full());
    green::Event ev;
    auto g = pool.spawn([&] { ev.wait(10s); });
    EXPECT_EQ(pool.free_count(), 1u);
    EXPECT_EQ(pool.size(), 1u);
    ev.set();
    ASSERT_TRUE(g.join(10s));
    // The slot is free before the joiner wakes.
    EXPECT_EQ(pool.free_count(), 2u);
    EXPECT_EQ(pool.size(), 0u);
  });
}

// ===========================================================================
// Case 20: a full Pool.

TEST(Pool, SpawnOnAFullPoolWaitsForTheFirstToFinish) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    green::Pool pool(1);
    green::Event ev;
    auto first = pool.spawn([&] { ev.wait(10s); });
    EXPECT_TRUE(pool.full());
    std::atomic<bool> spawned{false};
    auto spawner = green::spawn({.name = "spawner"}, [&] {
      auto second = pool.spawn([&] { return first.ready(); });
      spawned.store(true);
      return second.get();  // whether the first had ended when it ran
    });
    ASSERT_TRUE(wait_parked(rt, "spawner", "Pool.spawn (full)"));
    EXPECT_FALSE(spawned.load());
    EXPECT_EQ(pool.size(), 1u);
    ev.set();
    EXPECT_TRUE(spawner.get());
    EXPECT_TRUE(spawned.load());
    EXPECT_TRUE(pool.join(10s));
    EXPECT_EQ(pool.free_count(), 1u);
  });
}

TEST(Pool, SpawnOnAFullPoolIsCutShortByAnOuterTimeout) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Pool pool(1);
    green::Event ev;
    auto first = pool.spawn([&] { ev.wait(10s); });
    std::atomic<bool> ran{false};
    const auto t0 = Clock::now();
    bool fired = false;
    try {
      green::Timeout t(30ms);
      pool.spawn([&] { ran.store(true); });
      ADD_FAILURE() << "spawn on a full pool did not wait";
    } catch (const green::TimeoutError&) {
      fired = true;
    }
    EXPECT_TRUE(fired);
    EXPECT_GE(Clock::now() - t0, 30ms);
    EXPECT_EQ(pool.size(), 1u);
    EXPECT_EQ(pool.free_count(), 0u);
    ev.set();
    ASSERT_TRUE(first.join(10s));
    // The cancelled spawner took no slot: it is free for the next one.
    EXPECT_EQ(pool.free_count(), 1u);
    EXPECT_TRUE(pool.join(10s));
    EXPECT_FALSE(ran.load());
    // add(g) on a full pool is cut short the same way.
    green::Event ev2;
    auto second = pool.spawn([&] { ev2.wait(10s); });
    auto outsider = green::spawn([] {});
    try {
      green::Timeout t(20ms);
      pool.add(outsider);
      ADD_FAILURE() << "add on a full pool did not wait";
    } catch (const green::TimeoutError&) {
    }
    EXPECT_FALSE(pool.contains(outsider));
    ev2.set();
    EXPECT_TRUE(pool.join(10s));
    EXPECT_EQ(pool.free_count(), 1u);
  });
}

TEST(Pool, AddNowaitAndTimedAddOnAFullPoolThrowPoolFull) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Pool pool(1);
    green::Event ev, ev_outsider;
    auto first = pool.spawn([&] { ev.wait(10s); });
    auto outsider = green::spawn([&] { ev_outsider.wait(10s); });
    EXPECT_THROW(pool.add_nowait(outsider), green::PoolFull);
    const auto t0 = Clock::now();
    EXPECT_THROW(pool.add(outsider, 20ms), green::PoolFull);
    const auto waited = Clock::now() - t0;
    EXPECT_GE(waited, 20ms);
    EXPECT_LT(waited, 2s);
    std::atomic<bool> ran{false};
    EXPECT_THROW(pool.spawn_nowait([&] { ran.store(true); }), green::PoolFull);
    // PoolFull is a green::Error.
    try {
      pool.spawn_nowait([] {});
      ADD_FAILURE() << "spawn_nowait on a full pool";
    } catch (const green::Error& e) {
      EXPECT_NE(std::string(e.what()).find("full"), std::string::npos);
    }
    EXPECT_EQ(pool.size(), 1u);
    EXPECT_FALSE(pool.contains(outsider));
    // Once the first is done, the outsider gets the slot.
    ev.set();
    ASSERT_TRUE(first.join(10s));
    EXPECT_NO_THROW(pool.add_nowait(outsider));
    EXPECT_TRUE(pool.contains(outsider));
    EXPECT_EQ(pool.free_count(), 0u);
    ev_outsider.set();
    EXPECT_TRUE(pool.join(10s));
    EXPECT_EQ(pool.free_count(), 1u);
    EXPECT_FALSE(ran.load()) << "spawn_nowait on a full pool ran its function";
    // spawn_nowait on a free pool spawns.
    auto g = pool.spawn_nowait([] { return 5; });
    EXPECT_EQ(g.get(), 5);
  });
}

TEST(Pool, JoinWithATimeoutIsFalseWhileBusy) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Pool pool(2);
    green::Event ev;
    pool.spawn([&] { ev.wait(10s); });
    const auto t0 = Clock::now();
    EXPECT_FALSE(pool.join(10ms));
    EXPECT_GE(Clock::now() - t0, 10ms);
    ev.set();
    EXPECT_TRUE(pool.join());
    EXPECT_TRUE(pool.join(0ms));  // nothing left: true at once
  });
}

TEST(Pool, ZeroSizedPoolHasNoSlot) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::Pool pool(0);
    EXPECT_EQ(pool.free_count(), 0u);
    EXPECT_TRUE(pool.full());
    const auto t0 = Clock::now();
    EXPECT_EQ(pool.wait_available(10ms), 0u);
    const auto waited = Clock::now() - t0;
    EXPECT_GE(waited, 10ms);
    EXPECT_LT(waited, 2s);
    EXPECT_THROW(pool.spawn_nowait([] {}), green::PoolFull);
  });
}

TEST(Pool, WaitAvailableReturnsOnceASlotFrees) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Pool pool(1);
    EXPECT_EQ(pool.wait_available(), 1u);  // free now: at once
    green::Event ev;
    pool.spawn([&] { ev.wait(10s); });
    auto waiter = green::spawn([&] { return pool.wait_available(10s); });
    ev.set();
    EXPECT_EQ(waiter.get(), 1u);
  });
}

// ===========================================================================
// Case 21: map / imap ordering.

TEST(PoolMap, ResultsInInputOrderForEverySize) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    const auto in = iota_vec(100);
    auto sqr = [](int x) {
      // Finish out of order: later inputs yield less.
      for (int i = 0; i < (100 - x) % 7; ++i) green::yield();
      return x * x;
    };
    std::vector<int> want;
    for (int x : in) want.push_back(x * x);
    for (std::size_t size : {1u, 2u, 3u, 10u}) {
      const std::string what = "Pool(" + std::to_string(size) + ")";
      green::Pool pool(size);
      std::atomic<int> inside{0}, max_inside{0};
      auto bounded_sqr = [&](int x) {
        const int now = inside.fetch_add(1) + 1;
        int seen = max_inside.load();
        while (now > seen && !max_inside.compare_exchange_weak(seen, now)) {
        }
        const int r = sqr(x);
        inside.fetch_sub(1);
        return r;
      };
      EXPECT_EQ(pool.map(bounded_sqr, in), want) << " [" << what << "]";
      EXPECT_LE(max_inside.load(), static_cast<int>(size)) << " [" << what << "]";
      EXPECT_EQ(pool.size(), 0u) << " [" << what << "]";
      EXPECT_EQ(pool.free_count(), size) << " [" << what << "]";
    }
    const std::string what = "Group";
    green::Group group;
    EXPECT_EQ(group.map(sqr, in), want) << " [" << what << "]";
    EXPECT_EQ(group.size(), 0u) << " [" << what << "]";
  });
}

TEST(PoolMap, EmptyInputGivesEmptyOutput) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    const std::vector<int> none;
    std::atomic<int> calls{0};
    auto f = [&](int x) {
      calls.fetch_add(1);
      return x;
    };
    green::Pool pool(3);
    green::Group group;
    EXPECT_TRUE(pool.map(f, none).empty());
    EXPECT_TRUE(group.map(f, none).empty());
    {
      auto r = pool.imap(f, none);
      EXPECT_TRUE(r.begin() == r.end());
    }
    {
      auto r = group.imap_unordered(f, none);
      EXPECT_TRUE(r.begin() == r.end());
    }
    // void functions: map returns nothing, and still runs every call.
    std::atomic<int> sum{0};
    pool.map([&](int x) { sum.fetch_add(x); }, iota_vec(10));
    EXPECT_EQ(sum.load(), 45);
    EXPECT_EQ(calls.load(), 0);
  });
}

// gevent: an input Queue ended by StopIteration works. Here: a Queue that is
// closed after the last item (iterating a Queue ends when it is closed and
// drained).
TEST(PoolMap, InputQueueClosedAfterTheLastItem) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Queue<int> q;
    auto producer = green::spawn([&] {
      for (int i = 0; i < 20; ++i) {
        q.put(i);
        if (i % 4 == 0) green::yield();
      }
      q.close();
    });
    green::Pool pool(3);
    std::vector<int> want;
    for (int i = 0; i < 20; ++i) want.push_back(i * 3);
    EXPECT_EQ(pool.map([](int x) { return x * 3; }, q), want);
    EXPECT_TRUE(producer.join(10s));

    green::Queue<int> q2;
    auto producer2 = green::spawn([&] {
      for (int i = 0; i < 10; ++i) q2.put(i);
      q2.close();
    });
    std::vector<int> got;
    for (int v : pool.imap([](int x) { return x + 100; }, q2)) got.push_back(v);
    std::vector<int> want2(10);
    std::iota(want2.begin(), want2.end(), 100);
    EXPECT_EQ(got, want2);
    EXPECT_TRUE(producer2.join(10s));
  });
}

TEST(PoolIMap, LazyAndInOrder) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    for (std::size_t size : {1u, 2u, 3u, 10u}) {
      const std::string what = "Pool(" + std::to_string(size) + ")";
      green::Pool pool(size);
      std::atomic<int> started{0};
      auto f = [&](int x) {
        started.fetch_add(1);
        for (int i = 0; i < (20 - x) % 5; ++i) green::yield();
        return x * 10;
      };
      const auto in = iota_vec(20);
      auto r = pool.imap(f, in);
      // Nothing runs before the loop asks for it.
      for (int i = 0; i < 5; ++i) green::yield();
      EXPECT_EQ(started.load(), 0) << "imap started calls before it was iterated" << " [" << what << "]";
      EXPECT_EQ(pool.size(), 0u) << " [" << what << "]";
      std::vector<int> got;
      for (auto it = r.begin(); it != r.end(); ++it) {
        got.push_back(*it);
        // The window: at most `size` calls started and not yet read.
        EXPECT_LE(started.load(), static_cast<int>(got.size() + size)) << " [" << what << "]";
      }
      std::vector<int> want;
      for (int x : in) want.push_back(x * 10);
      EXPECT_EQ(got, want) << " [" << what << "]";
      EXPECT_EQ(started.load(), 20) << " [" << what << "]";
    }
    // A Group too, with range-for.
    green::Group group;
    std::vector<int> got;
    for (int v : group.imap([](int x) { return x + 1; }, iota_vec(50))) got.push_back(v);
    std::vector<int> want(50);
    std::iota(want.begin(), want.end(), 1);
    EXPECT_EQ(got, want);
  });
}

// imap_unordered yields in the order the calls finish: here the order in
// which the test sets each call's Event.
TEST(PoolIMap, UnorderedFollowsCompletionOrder) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    for (std::size_t size : {3u, 10u}) {
      const std::string what = "Pool(" + std::to_string(size) + ")";
      green::Pool pool(size);
      std::array<green::Event, 3> go;
      std::atomic<int> started{0};
      auto f = [&](int x) {
        started.fetch_add(1);
        go[static_cast<std::size_t>(x)].wait(10s);
        return x;
      };
      const std::vector<int> in{0, 1, 2};
      auto r = pool.imap_unordered(f, in);
      auto it = r.begin();
      ASSERT_TRUE(wait_until([&] { return started.load() == 3; })) << " [" << what << "]";
      go[1].set();
      EXPECT_EQ(*it, 1) << " [" << what << "]";
      ++it;
      go[2].set();
      EXPECT_EQ(*it, 2) << " [" << what << "]";
      ++it;
      go[0].set();
      EXPECT_EQ(*it, 0) << " [" << what << "]";
      ++it;
      EXPECT_TRUE(it == r.end()) << " [" << what << "]";
    }
  });
}

// gevent's form, imap_unordered(sleep x/10, [10, 1, 2]) gives [1, 2, 10] for a
// pool of more than one and [10, 1, 2] for Pool(1). Events stand for the
// sleeps: each call finishes once the shorter ones have set theirs. One
// worker, so that a call that sets an Event has finished before the call it
// wakes gets to run.
TEST(PoolIMap, UnorderedGeventForm) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    for (std::size_t size : {2u, 3u, 10u}) {
      const std::string what = "Pool(" + std::to_string(size) + ")";
      green::Pool pool(size);
      green::Event done1, done2;
      auto f = [&](int x) {
        if (x == 1) done1.set();
        if (x == 2) {
          done1.wait(10s);
          done2.set();
        }
        if (x == 10) done2.wait(10s);
        return x;
      };
      std::vector<int> got;
      for (int v : pool.imap_unordered(f, std::vector<int>{10, 1, 2})) got.push_back(v);
      // (Pool(2): 10 and 1 start; 2 starts once 1 has been read.)
      EXPECT_EQ(got, (std::vector<int>{1, 2, 10})) << " [" << what << "]";
    }
    // Pool(1) runs one call at a time: input order, whatever each takes.
    green::Pool pool(1);
    auto f = [](int x) {
      green::sleep(std::chrono::milliseconds(x));
      return x;
    };
    std::vector<int> got;
    for (int v : pool.imap_unordered(f, std::vector<int>{10, 1, 2})) got.push_back(v);
    EXPECT_EQ(got, (std::vector<int>{10, 1, 2}));
  });
}

// ===========================================================================
// Case 22: errors in map / imap.

TEST(PoolMap, FailingInputThrowsAndStopsTheRest) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Pool pool(4);
    CallBook book;
    green::Event never;
    auto f = [&](int x) {
      CallBook::Scope s(&book);
      if (x == 0) throw MyError(0);
      try {
        never.wait(10s);
      } catch (const green::GreenletExit&) {
        book.killed.fetch_add(1);
        throw;
      }
      return x;
    };
    // gevent: map(1/x, [1, 0, 2]) raises ZeroDivisionError. Here input 0
    // fails while the calls for 1, 2 and 3 wait, so they must be killed.
    try {
      pool.map(f, std::vector<int>{1, 2, 0, 3, 4, 5, 6});
      ADD_FAILURE() << "map did not throw";
    } catch (const MyError& e) {
      EXPECT_EQ(e.code, 0);
    }
    // Everything map started has ended by the time it threw.
    const int started = book.started.load();
    EXPECT_EQ(book.ended.load(), started);
    EXPECT_EQ(book.killed.load(), started - 1);
    EXPECT_EQ(pool.size(), 0u);
    EXPECT_EQ(pool.free_count(), 4u);
    // ...and nothing runs later.
    for (int i = 0; i < 5; ++i) green::yield();
    EXPECT_EQ(book.started.load(), started);
  });
}

// Several inputs fail; the one that comes first in the input order wins even
// though it failed last: input 3 fails only when it is killed (it turns the
// GreenletExit into its own error), after input 5 has failed.
TEST(PoolMap, ThrowsTheEarliestFailingInputInInputOrder) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Group group;
    CallBook book;
    green::Event never;
    auto f = [&](int x) {
      CallBook::Scope s(&book);
      if (x == 5) {
        // Fail once every call has started, so that input 3 is in its wait.
        if (!wait_until([&] { return book.started.load() == 8; })) ADD_FAILURE() << "calls missing";
        throw MyError(5);
      }
      try {
        never.wait(10s);
      } catch (const green::GreenletExit&) {
        if (x == 3) throw MyError(3);
        book.killed.fetch_add(1);
        throw;
      }
      return x;
    };
    try {
      group.map(f, iota_vec(8));
      ADD_FAILURE() << "map did not throw";
    } catch (const MyError& e) {
      EXPECT_EQ(e.code, 3) << "map must report the failing input that comes first in input order";
    }
    EXPECT_EQ(book.ended.load(), book.started.load());
    EXPECT_EQ(group.size(), 0u);
  });
}

// No call starts after a failure: with Pool(2), map is waiting for a slot for
// input 2 when input 0 fails. The slot it then gets must not start input 2.
void no_new_call_after_failure(unsigned workers) {
  green::Runtime rt({.workers = workers});
  rt.run([] {
    for (int round = 0; round < 20; ++round) {
      green::Pool pool(2);
      CallBook book;
      green::Event go, never;
      auto f = [&](int x) {
        CallBook::Scope s(&book);
        if (x == 0) {
          go.wait(10s);
          throw MyError(0);
        }
        never.wait(10s);
        return x;
      };
      auto trigger = green::spawn([&] {
        // Both calls running means map has spawned them and is at (or on
        // its way to) the wait for a third slot.
        if (wait_until([&] { return book.started.load() == 2; })) go.set();
      });
      EXPECT_THROW(pool.map(f, iota_vec(10)), MyError);
      EXPECT_EQ(book.ended.load(), book.started.load());
      EXPECT_TRUE(trigger.join(10s));
      EXPECT_TRUE(pool.join(10s));
      EXPECT_EQ(book.started.load(), 2) << "a call started after another had failed (round " << round
                                        << ")";
      if (book.started.load() != 2) break;
    }
  });
}

TEST(PoolMap, NoNewCallStartsAfterAFailureOneWorker) { no_new_call_after_failure(1); }
TEST(PoolMap, NoNewCallStartsAfterAFailureTwoWorkers) { no_new_call_after_failure(2); }

TEST(PoolIMap, ThrowsAtTheFailingPositionAndGoesOn) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    auto f = [](int x) {
      if (x == 0) throw MyError(0);
      return 100 / x;
    };
    for (std::size_t size : {1u, 3u}) {
      const std::string what = "Pool(" + std::to_string(size) + ")";
      green::Pool pool(size);
      auto r = pool.imap(f, std::vector<int>{1, 0, 2});
      auto it = r.begin();
      ASSERT_FALSE(it == r.end()) << " [" << what << "]";
      EXPECT_EQ(*it, 100) << " [" << what << "]";
      ++it;
      ASSERT_FALSE(it == r.end()) << " [" << what << "]";
      try {
        (void)*it;
        ADD_FAILURE() << "no exception at the failing position";
      } catch (const MyError& e) {
        EXPECT_EQ(e.code, 0) << " [" << what << "]";
      }
      ++it;
      ASSERT_FALSE(it == r.end()) << " [" << what << "]";
      EXPECT_EQ(*it, 50) << " [" << what << "]";
      ++it;
      EXPECT_TRUE(it == r.end()) << " [" << what << "]";
    }
    // imap_unordered: the failure comes out where it finished, the rest after.
    green::Pool pool(1);
    std::vector<int> got;
    int errors = 0;
    auto r = pool.imap_unordered(f, std::vector<int>{1, 0, 2});
    for (auto it = r.begin(); it != r.end(); ++it) {
      try {
        got.push_back(*it);
      } catch (const MyError&) {
        ++errors;
      }
    }
    EXPECT_EQ(got, (std::vector<int>{100, 50}));
    EXPECT_EQ(errors, 1);
  });
}

// An input range whose iterator throws.
struct ThrowingInput {
  int fail_at;
  struct iterator {
    using value_type = int;
    using difference_type = std::ptrdiff_t;
    int i = 0;
    int fail_at = 0;
    int operator*() const {
      if (i == fail_at) throw MyError(i);
      return i;
    }
    iterator& operator++() {
      ++i;
      return *this;
    }
    iterator operator++(int) {
      iterator t = *this;
      ++i;
      return t;
    }
    bool operator==(const iterator& o) const { return i == o.i; }
  };
  iterator begin() const { return {0, fail_at}; }
  iterator end() const { return {fail_at + 10, fail_at}; }
};

TEST(PoolMap, InputIteratorThatThrowsPropagates) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    CallBook book;
    green::Event never;
    auto f = [&](int x) {
      CallBook::Scope s(&book);
      never.wait(10s);
      return x;
    };
    green::Pool pool(10);
    const ThrowingInput in{3};
    try {
      pool.map(f, in);
      ADD_FAILURE() << "map swallowed the input's exception";
    } catch (const MyError& e) {
      EXPECT_EQ(e.code, 3);
    }
    // The calls for 0, 1, 2 were started, then killed and joined.
    EXPECT_EQ(book.ended.load(), book.started.load());
    EXPECT_LE(book.started.load(), 3);
    EXPECT_EQ(pool.size(), 0u);

    // imap_unordered: the exception comes out of the iteration.
    green::Pool pool2(2);
    std::vector<int> got;
    auto quick = [](int x) { return x; };
    EXPECT_THROW(
        {
          auto r = pool2.imap_unordered(quick, in);
          for (auto it = r.begin(); it != r.end(); ++it) got.push_back(*it);
        },
        MyError);
    EXPECT_LE(got.size(), 3u);
    EXPECT_TRUE(pool2.join(10s));
    // imap the same.
    EXPECT_THROW(
        {
          auto r = pool2.imap(quick, in);
          for (auto it = r.begin(); it != r.end(); ++it) (void)*it;
        },
        MyError);
    EXPECT_TRUE(pool2.join(10s));
  });
}

// ===========================================================================
// Case 23: reentrancy.

TEST(Pool, ApplyFromInsideTheSamePoolDoesNotDeadlock) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Pool pool(1);
    auto f = [](int x) { return x + 1; };
    green::Timeout t(10s);  // a deadlock fails the test instead of hanging it
    EXPECT_EQ(pool.apply([&] { return pool.apply(f, 5); }), 6);
    EXPECT_EQ(pool.apply(f, 1), 2);
    EXPECT_EQ(pool.free_count(), 1u);
    EXPECT_FALSE(t.expired());
    // apply rethrows.
    EXPECT_THROW(pool.apply([] { throw MyError(1); }), MyError);
  });
}

// ===========================================================================
// Case 24: imap back-pressure.

TEST(PoolIMap, BackPressureWithAWindowOfOne) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    for (bool unordered : {false, true}) {
      const std::string what = unordered ? "imap_unordered" : "imap";
      green::Pool pool(4);
      std::atomic<int> started{0};
      auto f = [&](int x) {
        started.fetch_add(1);
        return x;
      };
      const auto in = iota_vec(20);
      int i = 0;
      auto check = [&](int) {
        EXPECT_LE(started.load(), i + 2) << "item " << i << " [" << what << "]";
        // A slow reader: give the pool every chance to run ahead.
        for (int k = 0; k < 5; ++k) green::yield();
        green::sleep(1ms);
        ++i;
      };
      if (unordered) {
        for (int v : pool.imap_unordered(f, in, 1)) check(v);
      } else {
        for (int v : pool.imap(f, in, 1)) check(v);
      }
      EXPECT_EQ(i, 20) << " [" << what << "]";
      EXPECT_EQ(started.load(), 20) << " [" << what << "]";
    }
  });
}

// ===========================================================================
// map and its caller.

// The green thread calling map is killed: map's calls are killed and joined
// with it.
TEST(PoolMap, KillingTheCallerKillsItsCalls) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Pool pool(4);
    CallBook book;
    green::Event never;
    auto f = [&](int x) {
      CallBook::Scope s(&book);
      try {
        never.wait(10s);
      } catch (const green::GreenletExit&) {
        book.killed.fetch_add(1);
        throw;
      }
      return x;
    };
    std::atomic<bool> map_returned{false};
    auto caller = green::spawn([&] {
      pool.map(f, iota_vec(10));
      map_returned.store(true);
    });
    ASSERT_TRUE(wait_until([&] { return book.started.load() == 4; }));
    EXPECT_TRUE(caller.kill());
    EXPECT_TRUE(caller.killed());
    EXPECT_FALSE(map_returned.load());
    EXPECT_EQ(book.started.load(), 4);
    EXPECT_EQ(book.ended.load(), 4) << "calls outlived the killed map";
    EXPECT_EQ(book.killed.load(), 4);
    EXPECT_EQ(pool.size(), 0u);
    for (int i = 0; i < 5; ++i) green::yield();
    EXPECT_EQ(book.started.load(), 4) << "a call started after the caller was killed";
  });
}

TEST(PoolMap, CallerTimeoutKillsItsCalls) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Group group;
    CallBook book;
    green::Event never;
    auto f = [&](int x) {
      CallBook::Scope s(&book);
      never.wait(10s);
      return x;
    };
    bool fired = false;
    try {
      green::Timeout t(30ms);
      group.map(f, iota_vec(5));
    } catch (const green::TimeoutError&) {
      fired = true;
    }
    EXPECT_TRUE(fired);
    EXPECT_EQ(book.ended.load(), book.started.load());
    EXPECT_EQ(group.size(), 0u);
  });
}

// Pool(n, rt) from a plain thread.
TEST(PoolMap, FromAPlainThread) {
  green::Runtime rt({.workers = 2});
  green::Pool pool(3, rt);
  const auto in = iota_vec(100);
  std::atomic<int> green_calls{0};
  auto f = [&](int x) {
    if (green::in_green_thread()) green_calls.fetch_add(1);
    green::yield();
    return x * 2;
  };
  const auto out = pool.map(f, in);
  ASSERT_EQ(out.size(), in.size());
  for (std::size_t i = 0; i < in.size(); ++i) EXPECT_EQ(out[i], in[i] * 2);
  EXPECT_EQ(green_calls.load(), 100);
  // The other calls too.
  EXPECT_EQ(pool.apply(f, 21), 42);
  int sum = 0;
  for (int v : pool.imap(f, iota_vec(10))) sum += v;
  EXPECT_EQ(sum, 90);
  auto g = pool.spawn(f, 4);
  EXPECT_EQ(g.get(), 8);
  EXPECT_TRUE(pool.join(10s));
  green::Group group(rt);
  EXPECT_EQ(group.map(f, iota_vec(5)), (std::vector<int>{0, 2, 4, 6, 8}));
}

// A Pool runs map's calls in a few members that each take input after
// input; every call must still see fresh green::local values, as it would in
// a green thread of its own, and the values must be destroyed.
std::atomic<int> tracked_alive{0};
struct Tracked {
  int value = 0;
  Tracked() { tracked_alive.fetch_add(1); }
  ~Tracked() { tracked_alive.fetch_sub(1); }
};

TEST(PoolMap, EveryCallStartsWithFreshLocals) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    static green::local<Tracked> mine;
    green::Pool pool(2);
    const auto seen = pool.map(
        [](int x) {
          const int before = mine->value;  // 0 unless a previous call leaked
          mine->value = x + 1;
          green::yield();
          return before;
        },
        iota_vec(200));
    EXPECT_EQ(seen, std::vector<int>(200, 0)) << "a call saw a local left by an earlier call";
    EXPECT_EQ(tracked_alive.load(), 0) << "local values outlived their calls";
  });
}

// Group::kill() during a Pool map kills its calls; map reports that instead
// of returning results for only some of the inputs.
TEST(PoolMap, KillingThePoolFailsTheMap) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Pool pool(3);
    CallBook book;
    green::Event never;
    auto caller = green::spawn([&] {
      return pool.map(
          [&](int x) {
            CallBook::Scope s(&book);
            never.wait(10s);
            return x;
          },
          iota_vec(10));
    });
    ASSERT_TRUE(wait_until([&] { return book.started.load() == 3; }));
    EXPECT_TRUE(pool.kill(10s));
    try {
      caller.get();
      ADD_FAILURE() << "map returned after its calls were killed";
    } catch (const green::Error& e) {
      EXPECT_NE(std::string(e.what()).find("killed"), std::string::npos) << e.what();
    }
    EXPECT_EQ(book.started.load(), 3) << "a call started after the pool was killed";
    EXPECT_EQ(pool.size(), 0u);
  });
}

// The same when the kill finds map's members between calls, waiting for the
// next input: no call was cut short, yet inputs were never taken.
TEST(PoolMap, KillingThePoolBetweenCallsFailsTheMap) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    green::Pool pool(2);
    green::Queue<int> in;
    in.put(0);
    in.put(1);
    std::atomic<int> calls{0};
    auto caller = green::spawn([&] {
      return pool.map(
          [&](int x) {
            calls.fetch_add(1);
            return x;
          },
          in);
    });
    // Both inputs done; one member waits on the queue for a third, the other
    // for its turn to take one.
    ASSERT_TRUE(green::testing::wait_parked(rt, "Queue.get", 1));
    ASSERT_TRUE(green::testing::wait_parked(rt, "Lock", 1));
    EXPECT_EQ(calls.load(), 2);
    EXPECT_TRUE(pool.kill(10s));
    try {
      caller.get();
      ADD_FAILURE() << "map returned after its members were killed";
    } catch (const green::Error& e) {
      EXPECT_NE(std::string(e.what()).find("killed before input #2"), std::string::npos) << e.what();
    }
    in.close();
  });
}

TEST(PoolMap, HundredThousandTrivialCalls) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    const int n = 100'000 / kScaleDown;
    const auto in = iota_vec(n);
    green::Pool pool(64);
    const auto out = pool.map([](int x) { return x * 2 + 1; }, in);
    ASSERT_EQ(out.size(), in.size());
    bool all_right = true;
    for (int i = 0; i < n; ++i) all_right = all_right && out[static_cast<std::size_t>(i)] == i * 2 + 1;
    EXPECT_TRUE(all_right);
    green::Group group;
    const auto out2 = group.map([](int x) { return x - 1; }, in);
    ASSERT_EQ(out2.size(), in.size());
    EXPECT_EQ(out2.front(), -1);
    EXPECT_EQ(out2.back(), n - 2);
  });
}

}  // namespace
