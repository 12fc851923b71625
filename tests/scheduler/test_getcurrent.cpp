// green::getcurrent() and GreenletRef: a handle to the calling green thread
// that other green threads can kill, join and compare (issue 13).
#include <green/green.hpp>
#include <gtest/gtest.h>

#include "parked.hpp"
#include "test_util.hpp"

#include <atomic>
#include <chrono>
#include <thread>
#include <unordered_set>

using namespace std::chrono_literals;

namespace {

using green::testing::wait_parked;

TEST(Getcurrent, IsTheSpawnedGreenThread) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::GreenletRef seen;
    auto g = green::spawn([&seen] {
      seen = green::getcurrent();
      return green::current_id();
    });
    const auto id = g.get(5s);
    EXPECT_TRUE(seen == green::GreenletRef(g));
    EXPECT_EQ(seen.id(), id);
    EXPECT_TRUE(seen.ready());
    EXPECT_TRUE(seen.successful());
    EXPECT_FALSE(green::getcurrent() == seen);
    EXPECT_TRUE(green::getcurrent() == green::getcurrent());
  });
}

TEST(Getcurrent, HashesAndComparesAcrossResultTypes) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    auto a = green::spawn([] { return 1; });
    auto b = green::spawn([] {});
    std::unordered_set<green::GreenletRef> set{a, b, green::getcurrent()};
    EXPECT_EQ(set.size(), 3u);
    EXPECT_EQ(set.count(a), 1u);
    EXPECT_EQ(set.count(green::getcurrent()), 1u);
    std::unordered_set<green::Greenlet<int>> typed{a, a};
    EXPECT_EQ(typed.size(), 1u);
    EXPECT_TRUE(a == green::Greenlet<int>(a));
    EXPECT_TRUE(green::joinall(std::vector{b}, 5s) == 1u);
    EXPECT_EQ(a.get(5s), 1);
  });
}

// A green thread hands out its own handle; another kills it through it
// while it is parked, from another worker.
TEST(Getcurrent, KilledThroughItsOwnHandleFromAnotherWorker) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    green::GreenletRef victim;
    std::atomic<bool> published{false};
    std::atomic<bool> unwound{false};
    auto g = green::spawn({.name = "victim", .worker = 1, .pinned = true}, [&] {
      victim = green::getcurrent();
      published.store(true);
      struct OnUnwind {
        std::atomic<bool>* flag;
        ~OnUnwind() { flag->store(true); }
      } on_unwind{&unwound};
      green::sleep(10s);
    });
    ASSERT_TRUE(wait_parked(rt, "victim", "sleep"));
    ASSERT_TRUE(published.load());
    auto killer = green::spawn({.worker = 0, .pinned = true}, [&victim] { return victim.kill(green::GreenletExit(), 5s); });
    EXPECT_TRUE(killer.get(5s));
    EXPECT_TRUE(unwound.load());
    EXPECT_TRUE(g.killed());
    EXPECT_TRUE(victim.killed());
  });
}

TEST(Getcurrent, JoinedFromAnotherGreenThread) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    green::GreenletRef me;
    std::atomic<bool> published{false};
    auto g = green::spawn({.name = "worker"}, [&] {
      me = green::getcurrent();
      published.store(true);
      green::sleep(10s);
    });
    ASSERT_TRUE(wait_parked(rt, "worker", "sleep"));
    ASSERT_TRUE(published.load());
    auto joiner = green::spawn([me] { return me.join(5s); });
    EXPECT_FALSE(me.join(1ms)) << "still sleeping";
    g.kill(green::GreenletExit(), false);
    EXPECT_TRUE(joiner.get(5s));
    EXPECT_TRUE(me.dead());
  });
}

TEST(Getcurrent, JoiningItselfIsAnErrorAndKillingItselfThrowsAtOnce) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    auto g = green::spawn([] {
      EXPECT_THROW(green::getcurrent().join(1s), green::Error);
      green::getcurrent().kill();
      ADD_FAILURE() << "a self-kill returns only by throwing";
    });
    ASSERT_TRUE(g.join(5s));
    EXPECT_TRUE(g.killed());
  });
}

TEST(Getcurrent, OnAPlainThreadThrowsError) {
  EXPECT_THROW(green::getcurrent(), green::Error);
  std::thread plain([] { EXPECT_THROW(green::getcurrent(), green::Error); });
  plain.join();
  EXPECT_THROW(green::GreenletRef().join(), green::Error) << "an empty handle";
}

// Shutdown with a green thread still alive that others hold by getcurrent():
// the handle outlives the runtime and reports the kill.
TEST(Getcurrent, HandleOutlivesTheRuntimeThatKilledItAtShutdown) {
  green::GreenletRef kept;
  {
    green::Runtime rt({.workers = 2});
    rt.run([&] {
      auto g = green::spawn({.name = "lingerer"}, [&kept] {
        kept = green::getcurrent();
        green::sleep(10s);
      });
      ASSERT_TRUE(green::testing::wait_parked(rt, "lingerer", "sleep"));
    });
  }
  ASSERT_TRUE(kept.valid());
  EXPECT_TRUE(kept.dead());
  EXPECT_TRUE(kept.killed());
}

}  // namespace
