// joinall (gevent-behaviours case 14), spawn_later from a green thread
// (case 13) and timers under a yield loop (case 12).
#include <green/green.hpp>
#include <gtest/gtest.h>

#include "test_util.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using green::testing::MyError;

using Clock = std::chrono::steady_clock;

using Greenlets = std::vector<green::Greenlet<void>>;

// Whether joinall / killall accept these arguments after the range.
template <class... Args>
concept JoinallAccepts = requires(Greenlets gs, Args... args) { green::joinall(gs, args...); };
template <class... Args>
concept KillallAccepts = requires(Greenlets gs, Args... args) { green::killall(gs, args...); };

// gevent's orders compile; green's old ones, which a ported call could be
// read as, do not.
static_assert(JoinallAccepts<std::optional<Clock::duration>, bool, std::size_t>);
static_assert(JoinallAccepts<std::nullopt_t, bool, int>);
static_assert(JoinallAccepts<std::chrono::seconds, bool>);
static_assert(!JoinallAccepts<std::nullopt_t, int, bool>, "joinall(gs, timeout, count, raise_error)");
static_assert(!JoinallAccepts<std::nullopt_t, std::size_t, bool>);
static_assert(!JoinallAccepts<std::nullopt_t, bool, bool>, "a bool count");
static_assert(!JoinallAccepts<std::nullopt_t, int>, "a count where raise_error goes");
static_assert(KillallAccepts<green::GreenletExit, bool, std::chrono::seconds>);
static_assert(KillallAccepts<std::exception_ptr, bool>);
static_assert(!KillallAccepts<bool>, "killall(gs, block): the exception comes first");
static_assert(!KillallAccepts<bool, std::chrono::seconds>, "killall(gs, block, timeout)");

TEST(Joinall, AllSucceed) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    std::vector<green::Greenlet<int>> gs;
    for (int i = 0; i < 8; ++i)
      gs.push_back(green::spawn([i] {
        green::sleep(std::chrono::milliseconds(i % 3));
        return i;
      }));
    EXPECT_EQ(green::joinall(gs), 8u);
    for (int i = 0; i < 8; ++i) {
      EXPECT_TRUE(gs[i].ready());
      EXPECT_EQ(gs[i].get(), i);
    }
  });
}

TEST(Joinall, RaiseErrorRaisesTheFirstErrorInTime) {
  // gevent test_joinall_exception_order: the later-listed one fails first.
  green::Runtime rt({.workers = 2});
  rt.run([] {
    auto slow = green::spawn([] {
      green::sleep(2s);
      throw MyError(2);
    });
    auto fast = green::spawn([] {
      green::sleep(20ms);
      throw MyError(1);
    });
    std::vector<green::Greenlet<void>> gs{slow, fast};
    const auto t0 = Clock::now();
    try {
      green::joinall(gs, std::nullopt, true);
      ADD_FAILURE() << "joinall must raise";
    } catch (const MyError& e) {
      EXPECT_EQ(e.code, 1);
    }
    // "as soon as it happens": not after the slow one.
    EXPECT_LT(Clock::now() - t0, 1500ms);
    EXPECT_TRUE(fast.ready());
    EXPECT_FALSE(slow.ready());
    EXPECT_TRUE(slow.kill());  // before it throws: nothing unobserved
  });
}

TEST(Joinall, RaiseErrorWithBothAlreadyFailedRaisesTheFirstGiven) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    auto second = green::spawn([] {
      green::sleep(40ms);
      throw MyError(2);
    });
    auto first = green::spawn([] {
      green::sleep(5ms);
      throw MyError(1);
    });
    std::vector<green::Greenlet<void>> gs{second, first};
    EXPECT_TRUE(second.join(5s));  // both have failed before joinall is called
    EXPECT_TRUE(first.ready());
    try {
      green::joinall(gs, std::nullopt, true);
      ADD_FAILURE() << "joinall must raise";
    } catch (const MyError& e) {
      // Both ended before joinall started: looked at in the order given (as
      // gevent does), so the first failure in the vector is raised.
      EXPECT_EQ(e.code, 2);
    }
    (void)second.exception();
    (void)first.exception();
  });
}

TEST(Joinall, RaiseErrorIgnoresGreenletExit) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    auto killed = green::spawn([] { green::sleep(10s); });
    auto ok = green::spawn([] { green::sleep(5ms); });
    (void)killed.kill(false);
    std::vector<green::Greenlet<void>> gs{killed, ok};
    EXPECT_EQ(green::joinall(gs, 5s, true), 2u);
    EXPECT_TRUE(killed.killed());
    EXPECT_TRUE(ok.successful());
  });
}

TEST(Joinall, CountOneReturnsAfterAFailureWithoutRaising) {
  // gevent test_joinall_count_raise_error.
  green::Runtime rt({.workers = 2});
  rt.run([] {
    auto sleeper = green::spawn([] { green::sleep(10s); });
    auto raiser = green::spawn([] { throw MyError(3); });
    std::vector<green::Greenlet<void>> gs{sleeper, raiser};
    const auto t0 = Clock::now();
    std::size_t n = 0;
    EXPECT_NO_THROW(n = green::joinall(gs, std::nullopt, false, 1));
    EXPECT_EQ(n, 1u);
    EXPECT_LT(Clock::now() - t0, 2s);
    EXPECT_TRUE(raiser.ready());
    EXPECT_FALSE(sleeper.ready());
    EXPECT_NE(raiser.exception(), nullptr);
    EXPECT_TRUE(sleeper.kill());
  });
}

TEST(Joinall, RaiseErrorAndCountInGeventsOrder) {
  // joinall(gs, timeout, raise_error=True, count=1): the first to end failed,
  // so it raises although count would have been satisfied anyway.
  green::Runtime rt({.workers = 2});
  rt.run([] {
    auto sleeper = green::spawn([] { green::sleep(10s); });
    auto raiser = green::spawn([] { throw MyError(4); });
    Greenlets gs{sleeper, raiser};
    try {
      green::joinall(gs, 5s, true, 1);
      ADD_FAILURE() << "joinall must raise";
    } catch (const MyError& e) {
      EXPECT_EQ(e.code, 4);
    }
    EXPECT_FALSE(sleeper.ready());
    EXPECT_TRUE(sleeper.kill());
  });
}

TEST(Joinall, NegativeCountIsRejected) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    Greenlets gs{green::spawn([] {})};
    EXPECT_THROW(green::joinall(gs, 5s, false, -1), green::Error);
    EXPECT_EQ(green::joinall(gs, 5s, false, 1), 1u);
  });
}

TEST(Joinall, CountStopsEarly) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    std::vector<green::Greenlet<void>> gs;
    gs.push_back(green::spawn([] {}));
    gs.push_back(green::spawn([] { green::sleep(1ms); }));
    gs.push_back(green::spawn([] { green::sleep(10s); }));
    EXPECT_EQ(green::joinall(gs, std::nullopt, false, 2), 2u);
    EXPECT_FALSE(gs[2].ready());
    EXPECT_TRUE(gs[2].kill());
    // count larger than the range means all of them.
    EXPECT_EQ(green::joinall(gs, 5s, false, 10), 3u);
  });
}

TEST(Joinall, TimeoutReturnsTheCountDoneSoFar) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    std::vector<green::Greenlet<void>> gs;
    gs.push_back(green::spawn([] {}));
    gs.push_back(green::spawn([] { green::sleep(10s); }));
    gs.push_back(green::spawn([] { green::sleep(1ms); }));
    gs.push_back(green::spawn([] { green::sleep(10s); }));
    const auto t0 = Clock::now();
    EXPECT_EQ(green::joinall(gs, 50ms), 2u);
    const auto waited = Clock::now() - t0;
    EXPECT_GE(waited, 50ms);
    EXPECT_LT(waited, 2s);
    EXPECT_TRUE(green::killall(gs, green::GreenletExit(), true, 5s));
  });
}

TEST(Joinall, InterruptedByATimeoutScope) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::vector<green::Greenlet<void>> gs{green::spawn([] { green::sleep(10s); })};
    green::Timeout t(30ms);
    try {
      green::joinall(gs);
      ADD_FAILURE() << "joinall must be interrupted";
    } catch (const green::TimeoutError& e) {
      EXPECT_TRUE(e.is(t));
    }
    EXPECT_TRUE(green::killall(gs));
  });
}

TEST(Joinall, EmptyRange) {
  std::vector<green::Greenlet<int>> none;
  EXPECT_EQ(green::joinall(none), 0u);  // plain thread
  green::Runtime rt({.workers = 1});
  rt.run([&] {
    const auto t0 = Clock::now();
    EXPECT_EQ(green::joinall(none), 0u);
    EXPECT_EQ(green::joinall(none, 10ms), 0u);
    EXPECT_EQ(green::joinall(none, std::nullopt, true, 1), 0u);
    EXPECT_LT(Clock::now() - t0, 1s);
  });
}

TEST(Joinall, FromAPlainThread) {
  green::Runtime rt({.workers = 2});
  std::vector<green::Greenlet<int>> gs;
  for (int i = 0; i < 6; ++i)
    gs.push_back(rt.spawn([i] {
      green::sleep(std::chrono::milliseconds(i));
      return i * i;
    }));
  EXPECT_EQ(green::joinall(gs), 6u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(gs[i].get(), i * i);

  // With a timeout and a raising member, still from the plain thread.
  auto slow = rt.spawn([] { green::sleep(10s); });
  auto bad = rt.spawn([] { throw MyError(4); });
  std::vector<green::Greenlet<void>> mixed{slow, bad};
  EXPECT_THROW(green::joinall(mixed, 5s, true), MyError);
  EXPECT_EQ(green::joinall(mixed, 30ms), 1u);
  EXPECT_TRUE(slow.kill());
}

TEST(Joinall, SpawnLaterInsideAGreenThreadFiresWhileTheParentSleeps) {
  // gevent test__api.TestTimers (case 13).
  green::Runtime rt({.workers = 1});
  rt.run([] {
    auto fired = std::make_shared<std::atomic<bool>>(false);
    const auto t0 = Clock::now();
    auto child = green::spawn_later(10ms, [fired] { fired->store(true); });
    // The parent only ever sleeps; the child must fire in between.
    while (!fired->load() && Clock::now() - t0 < 5s) green::sleep(2ms);
    EXPECT_TRUE(fired->load());
    EXPECT_GE(Clock::now() - t0, 10ms);
    EXPECT_TRUE(child.join(5s));
    EXPECT_TRUE(child.successful());
  });
}

TEST(Joinall, YieldLoopDoesNotStarveTimers) {
  // gevent test__GreenletExit / invariant M3 (case 12): a green thread that
  // only yields must not keep a sleeping one's timer from firing.
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::atomic<bool> flag{false};
    auto sleeper = green::spawn([&] {
      green::sleep(10ms);
      flag = true;
    });
    auto looper = green::spawn([&] {
      const auto end = Clock::now() + 5s;
      long spins = 0;
      while (!flag.load()) {
        if (Clock::now() > end) return -1L;
        ++spins;
        green::yield();
      }
      return spins;
    });
    EXPECT_GE(looper.get(), 0) << "timers starved by a yield loop for 5 s";
    EXPECT_TRUE(sleeper.join(5s));
  });
}

TEST(Joinall, SleepZeroLoopDoesNotStarveTimers) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::atomic<bool> flag{false};
    auto sleeper = green::spawn([&] {
      green::sleep(10ms);
      flag = true;
    });
    const auto end = Clock::now() + 5s;
    bool starved = false;
    while (!flag.load()) {
      if (Clock::now() > end) {
        starved = true;
        break;
      }
      green::sleep(0ms);
    }
    EXPECT_FALSE(starved) << "timers starved by a sleep(0) loop for 5 s";
    EXPECT_TRUE(sleeper.join(5s));
  });
}

}  // namespace
