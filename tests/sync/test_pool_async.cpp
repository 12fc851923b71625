// Pool::apply_async, map_async, Group::discard and killone, and
// AsyncResult's value()/done() (issue 13; gevent-behaviours cases 17 and 19).
//
// Every wait is bounded (Event::wait(10s), get(5s), join(10s), wait_parked).
#include <green/green.hpp>
#include <green/sync.hpp>
#include <gtest/gtest.h>

#include "parked.hpp"
#include "test_util.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using green::testing::MyError;
using green::testing::wait_parked;
using green::testing::wait_until;

// Case 19 (test_execute_async): apply_async on a full pool does not block,
// and every callback runs eventually.
TEST(PoolAsync, ApplyAsyncOnAFullPoolDoesNotBlockAndEveryCallbackRuns) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    green::Pool pool(2);
    green::Event release;
    for (int i = 0; i < 2; ++i) pool.spawn([&release] { release.wait(10s); });
    ASSERT_TRUE(pool.full());
    std::atomic<int> callbacks{0};
    std::atomic<int> sum{0};
    auto caller = green::spawn([&] {
      std::vector<green::Greenlet<int>> results;
      for (int i = 1; i <= 5; ++i) {
        auto g = pool.apply_async([](int x) { return x * 10; }, i);
        g.link_value([&](green::Greenlet<int> done) {
          sum.fetch_add(done.get());
          callbacks.fetch_add(1);
        });
        results.push_back(g);
      }
      return results;
    });
    auto results = caller.get(5s);  // returned although the pool was full
    EXPECT_TRUE(pool.full());
    EXPECT_EQ(callbacks.load(), 0);
    ASSERT_TRUE(wait_parked(rt, "Pool.spawn (full)", 5));
    release.set();
    EXPECT_EQ(green::joinall(results, 10s), 5u);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(results[static_cast<std::size_t>(i)].get(), (i + 1) * 10);
    EXPECT_EQ(callbacks.load(), 5);
    EXPECT_EQ(sum.load(), 150);
    EXPECT_TRUE(pool.join(10s));
    EXPECT_EQ(pool.free_count(), 2u);
  });
}

TEST(PoolAsync, ApplyAsyncWithAFreeSlotSpawnsAMember) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Pool pool(2);
    green::Event release;
    auto g = pool.apply_async([&release] {
      release.wait(10s);
      return 7;
    });
    EXPECT_TRUE(pool.contains(g));
    EXPECT_EQ(pool.free_count(), 1u);
    release.set();
    EXPECT_EQ(g.get(5s), 7);
    EXPECT_TRUE(pool.join(5s));
  });
}

TEST(PoolAsync, ApplyAsyncFailureIsTheResultsException) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::Pool pool(1);
    std::atomic<int> values{0};
    auto g = pool.apply_async([]() -> int { throw MyError(3); });
    g.link_value([&](green::Greenlet<int>) { values.fetch_add(1); });
    EXPECT_THROW(g.get(5s), MyError);
    EXPECT_EQ(values.load(), 0) << "gevent's callback runs only on success";
  });
}

// Killing the helper while it waits for a slot cancels the call.
TEST(PoolAsync, KillingTheHelperWhileItWaitsCancelsTheCall) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    green::Pool pool(1);
    green::Event release;
    pool.spawn([&release] { release.wait(10s); });
    std::atomic<bool> ran{false};
    auto g = pool.apply_async([&ran] { ran.store(true); });
    ASSERT_TRUE(wait_parked(rt, "Pool.spawn (full)", 1));
    EXPECT_FALSE(pool.contains(g)) << "not a member while it waits";
    EXPECT_TRUE(g.kill(green::GreenletExit(), 5s));
    release.set();
    EXPECT_TRUE(pool.join(5s));
    EXPECT_FALSE(ran.load());
    EXPECT_EQ(pool.free_count(), 1u);
  });
}

// The helper holds the pool's books: the Pool object may go first.
TEST(PoolAsync, ApplyAsyncOutlivesThePoolObject) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    green::Event release;
    green::Greenlet<int> g;
    {
      green::Pool pool(1);
      pool.spawn([&release] { release.wait(10s); });
      g = pool.apply_async([] { return 4; });
      ASSERT_TRUE(wait_parked(rt, "Pool.spawn (full)", 1));
    }
    release.set();
    EXPECT_EQ(g.get(5s), 4);
  });
}

TEST(PoolAsync, ApplyAsyncFromAPlainThread) {
  green::Runtime rt({.workers = 2});
  green::Pool pool(1, rt);
  EXPECT_EQ(pool.apply_async([](int x) { return x + 1; }, 41).get(5s), 42);
  auto blocker = pool.apply_async([] { green::sleep(10s); });
  auto queued = pool.apply_async([] { return 1; });  // a full pool: a helper
  EXPECT_TRUE(blocker.kill(green::GreenletExit(), 5s));
  EXPECT_EQ(queued.get(5s), 1);
  EXPECT_TRUE(pool.join(5s));
}

TEST(PoolAsync, MapAsyncReturnsTheResultsInOrder) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Pool pool(3);
    std::vector<int> inputs;
    for (int i = 0; i < 20; ++i) inputs.push_back(i);
    auto g = pool.map_async([](int x) { return x * x; }, inputs);
    inputs.clear();  // map_async took its own copy
    const auto& squares = g.get(5s);
    ASSERT_EQ(squares.size(), 20u);
    for (int i = 0; i < 20; ++i) EXPECT_EQ(squares[static_cast<std::size_t>(i)], i * i);
    EXPECT_FALSE(pool.contains(g)) << "the map's own green thread is no member";
  });
}

TEST(PoolAsync, MapAsyncFailureAndKill) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    green::Pool pool(2);
    auto failing = pool.map_async(
        [](int x) {
          if (x == 3) throw MyError(x);
          return x;
        },
        std::vector<int>{1, 2, 3, 4});
    EXPECT_THROW(failing.get(5s), MyError);
    auto slow = pool.map_async(
        [](int) {
          green::sleep(10s);
          return 0;
        },
        std::vector<int>{1, 2, 3});
    ASSERT_TRUE(wait_parked(rt, "sleep", 2));
    EXPECT_TRUE(slow.kill(green::GreenletExit(), 5s));
    EXPECT_TRUE(pool.empty()) << "the kill cleans up as map does";
  });
}

// ---------------------------------------------------------------------------
// Group::discard

TEST(GroupDiscard, StopsTrackingWithoutKilling) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Group group;
    green::Event release;
    auto m = group.spawn([&release] {
      release.wait(10s);
      return 5;
    });
    EXPECT_TRUE(group.discard(m));
    EXPECT_EQ(group.size(), 0u);
    EXPECT_FALSE(group.contains(m));
    EXPECT_TRUE(group.join(1ms)) << "join no longer waits for it";
    EXPECT_TRUE(group.kill());  // kills nobody
    EXPECT_FALSE(m.ready());
    EXPECT_FALSE(group.discard(m)) << "twice";
    release.set();
    EXPECT_EQ(m.get(5s), 5);
    // The entry is reused afterwards: the books stay right.
    auto next = group.spawn([] { return 1; });
    EXPECT_EQ(next.get(5s), 1);
    EXPECT_TRUE(group.join(5s));
    EXPECT_EQ(group.size(), 0u);
  });
}

TEST(GroupDiscard, FreesAPoolSlotAtOnce) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Pool pool(1);
    green::Event release;
    auto m = pool.spawn([&release] { release.wait(10s); });
    EXPECT_THROW(pool.spawn_nowait([] {}), green::PoolFull);
    EXPECT_TRUE(pool.discard(m));
    EXPECT_EQ(pool.free_count(), 1u);
    auto other = pool.spawn_nowait([] { return 2; });
    EXPECT_EQ(other.get(5s), 2);
    release.set();
    EXPECT_TRUE(m.join(5s));
    EXPECT_TRUE(pool.join(5s));
    EXPECT_EQ(pool.free_count(), 1u) << "the discarded member's end frees nothing twice";
  });
}

TEST(GroupDiscard, NonMemberAndReAdd) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::Group group;
    auto stranger = green::spawn([] { green::sleep(10s); });
    EXPECT_FALSE(group.discard(stranger));
    group.add(stranger);
    EXPECT_TRUE(group.discard(stranger));
    group.add(stranger);  // a member again
    EXPECT_TRUE(group.contains(stranger));
    EXPECT_EQ(group.size(), 1u);
    EXPECT_TRUE(group.kill(5s));
    EXPECT_TRUE(stranger.killed());
    EXPECT_EQ(group.size(), 0u);
  });
}

// ---------------------------------------------------------------------------
// Group::killone (case 17: each member is killed once)

TEST(GroupKillone, KillsEachMemberOnce) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    green::Group group;
    std::atomic<int> kills{0};
    auto stubborn = group.spawn({.name = "stubborn"}, [&kills] {
      for (;;) {
        try {
          green::sleep(10s);
          return;
        } catch (const green::GreenletExit&) {
          if (kills.fetch_add(1) == 1) throw;  // swallows the first one
        }
      }
    });
    ASSERT_TRUE(wait_parked(rt, "stubborn", "sleep"));
    EXPECT_FALSE(group.killone(stubborn, green::GreenletExit(), false));
    EXPECT_TRUE(wait_until([&] { return kills.load() == 1; }));
    ASSERT_TRUE(wait_parked(rt, "stubborn", "sleep"));
    EXPECT_FALSE(group.killone(stubborn, green::GreenletExit(), false)) << "once";
    EXPECT_FALSE(group.kill(false)) << "kill() also knows it was killed";
    EXPECT_FALSE(group.killone(stubborn, green::GreenletExit(), true, 20ms));
    EXPECT_EQ(kills.load(), 1);
    EXPECT_TRUE(stubborn.kill(green::GreenletExit(), 5s));
    EXPECT_EQ(kills.load(), 2);
    EXPECT_EQ(group.size(), 0u);
  });
}

TEST(GroupKillone, CustomExceptionBlocking) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Pool pool(2);
    auto m = pool.spawn([] {
      green::sleep(10s);
      return 1;
    });
    auto other = pool.spawn([] {
      green::sleep(10s);
      return 2;
    });
    EXPECT_TRUE(pool.killone(m, MyError(4)));
    EXPECT_THROW(m.get(), MyError);
    EXPECT_FALSE(other.ready()) << "only the one";
    EXPECT_TRUE(pool.killone(other));
    EXPECT_TRUE(other.killed());
    EXPECT_EQ(pool.free_count(), 2u);
  });
}

TEST(GroupKillone, NonMemberIsNotKilledButWaitedFor) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::Group group;
    auto stranger = green::spawn([] { green::sleep(10s); });
    EXPECT_FALSE(group.killone(stranger, green::GreenletExit(), true, 10ms));
    EXPECT_FALSE(stranger.ready());
    EXPECT_TRUE(stranger.kill());
    EXPECT_THROW(group.killone(green::Greenlet<void>()), green::Error);
  });
}

// ---------------------------------------------------------------------------
// AsyncResult::value() and done()

TEST(AsyncResultAccessors, ValueAndDone) {
  green::AsyncResult<int> ar;
  EXPECT_FALSE(ar.done());
  EXPECT_EQ(ar.value(), nullptr);
  ar.set(9);
  EXPECT_TRUE(ar.done());
  ASSERT_NE(ar.value(), nullptr);
  EXPECT_EQ(*ar.value(), 9);
  green::AsyncResult<int> failed;
  failed.set_exception(std::make_exception_ptr(MyError(1)));
  EXPECT_TRUE(failed.done());
  EXPECT_EQ(failed.value(), nullptr);
  green::AsyncResult<void> nothing;
  EXPECT_FALSE(nothing.done());
  nothing.set();
  EXPECT_TRUE(nothing.done());
}

TEST(AsyncResultAccessors, ValueSetOnAnotherWorkerIsSeen) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::AsyncResult<std::vector<int>> ar;
    auto setter = green::spawn({.worker = 1, .pinned = true}, [&ar] { ar.set(std::vector<int>{1, 2, 3}); });
    ASSERT_TRUE(ar.wait(5s));
    ASSERT_NE(ar.value(), nullptr);
    EXPECT_EQ(ar.value()->size(), 3u);
    EXPECT_TRUE(setter.join(5s));
  });
}

}  // namespace
