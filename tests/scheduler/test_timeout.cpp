// Timeout scopes (gevent-behaviours case 40 adapted, case 12 in its Timeout form).
//
// Timing assertions are loose: a T timeout must take >= T and well under 2 s.
#include <green/green.hpp>
#include <gtest/gtest.h>

#include "test_util.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>

using namespace std::chrono_literals;

namespace {

using green::testing::MyError;
using green::testing::wait_until;

using Clock = std::chrono::steady_clock;

void spin_until(Clock::time_point t) {
  while (Clock::now() < t) {
  }
}

TEST(Timeout, FiresAroundSleep) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    const auto t0 = Clock::now();
    green::Timeout t(30ms);
    EXPECT_FALSE(t.expired());
    EXPECT_NE(t.id(), 0u);
    bool thrown = false;
    try {
      green::sleep(10s);
    } catch (const green::TimeoutError& e) {
      thrown = true;
      EXPECT_TRUE(e.is(t));
      EXPECT_EQ(e.scope_id(), t.id());
    }
    const auto waited = Clock::now() - t0;
    EXPECT_TRUE(thrown);
    EXPECT_TRUE(t.expired());
    EXPECT_GE(waited, 30ms);
    EXPECT_LT(waited, 2s);
  });
}

TEST(Timeout, ErrorIsAGreenBaseException) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::Timeout t(1ms);
    EXPECT_THROW(green::sleep(10s), green::BaseException);
  });
}

TEST(Timeout, ZeroFiresAtTheFirstBlockingCall) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    const auto t0 = Clock::now();
    green::Timeout t(0ms);
    try {
      green::sleep(10s);
      ADD_FAILURE() << "Timeout(0) must fire";
    } catch (const green::TimeoutError& e) {
      EXPECT_TRUE(e.is(t));
    }
    EXPECT_LT(Clock::now() - t0, 2s);
  });
}

TEST(Timeout, NeverFiringScopeLetsTheBodyComplete) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    {
      green::Timeout t(std::nullopt);
      green::sleep(20ms);
      EXPECT_EQ(green::spawn([] { return 3; }).get(), 3);
      EXPECT_FALSE(t.expired());
    }
    {
      green::Timeout t(10s);
      const auto t0 = Clock::now();
      green::sleep(20ms);
      EXPECT_LT(Clock::now() - t0, 2s);
      EXPECT_FALSE(t.expired());
    }
  });
}

TEST(Timeout, EndedScopeDoesNotFireLater) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    {
      green::Timeout t(20ms);
      green::sleep(1ms);  // a park whose timer includes the scope's deadline
    }
    EXPECT_NO_THROW(green::sleep(60ms));  // well past the old deadline
    EXPECT_NO_THROW(green::yield());
  });
}

TEST(Timeout, NestedInnerShorterFiresAndOuterStaysArmed) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    const auto t0 = Clock::now();
    green::Timeout outer(150ms);
    std::uint64_t inner_id = 0;
    try {
      green::Timeout inner(20ms);
      inner_id = inner.id();
      try {
        green::sleep(10s);
      } catch (const green::TimeoutError& e) {
        EXPECT_TRUE(e.is(inner));
        EXPECT_TRUE(inner.expired());
        throw;
      }
      ADD_FAILURE() << "inner must fire";
    } catch (const green::TimeoutError& e) {
      EXPECT_EQ(e.scope_id(), inner_id);
      EXPECT_FALSE(e.is(outer));
    }
    EXPECT_GE(Clock::now() - t0, 20ms);
    EXPECT_FALSE(outer.expired());
    // The outer scope is still armed and fires at the next blocking call.
    try {
      green::sleep(10s);
      ADD_FAILURE() << "outer must fire";
    } catch (const green::TimeoutError& e) {
      EXPECT_TRUE(e.is(outer));
    }
    const auto waited = Clock::now() - t0;
    EXPECT_TRUE(outer.expired());
    EXPECT_GE(waited, 150ms);
    EXPECT_LT(waited, 2s);
  });
}

TEST(Timeout, NestedOuterShorterFiresInsideTheInnerScope) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    const auto t0 = Clock::now();
    green::Timeout outer(20ms);
    std::uint64_t inner_id = 0;
    try {
      green::Timeout inner(10s);
      inner_id = inner.id();
      try {
        green::sleep(10s);
      } catch (const green::TimeoutError& e) {
        EXPECT_FALSE(e.is(inner));
        EXPECT_FALSE(inner.expired());
        throw;  // an inner scope rethrows an outer one's error
      }
      ADD_FAILURE() << "outer must fire";
    } catch (const green::TimeoutError& e) {
      EXPECT_TRUE(e.is(outer));
      EXPECT_NE(e.scope_id(), inner_id);
    }
    EXPECT_TRUE(outer.expired());
    const auto waited = Clock::now() - t0;
    EXPECT_GE(waited, 20ms);
    EXPECT_LT(waited, 2s);
  });
}

TEST(Timeout, NestedNeitherFires) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::Timeout outer(10s);
    green::Timeout inner(5s);
    EXPECT_NO_THROW(green::sleep(20ms));
    EXPECT_NO_THROW(green::yield());
    EXPECT_FALSE(outer.expired());
    EXPECT_FALSE(inner.expired());
  });
}

TEST(Timeout, AScopeFiresOnlyOnce) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::Timeout t(20ms);
    EXPECT_THROW(green::sleep(10s), green::TimeoutError);
    EXPECT_TRUE(t.expired());
    // Still inside the expired scope: further blocking calls complete.
    const auto t0 = Clock::now();
    EXPECT_NO_THROW(green::sleep(30ms));
    EXPECT_GE(Clock::now() - t0, 30ms);
    EXPECT_NO_THROW(green::yield());
    EXPECT_EQ(green::spawn([] { return 1; }).get(), 1);
  });
}

TEST(Timeout, AfterTheInnerFiredTheOuterStillFires) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::Timeout outer(150ms);
    green::Timeout inner(20ms);
    try {
      green::sleep(10s);
      ADD_FAILURE() << "inner must fire";
    } catch (const green::TimeoutError& e) {
      EXPECT_TRUE(e.is(inner));
    }
    try {
      green::sleep(10s);
      ADD_FAILURE() << "outer must fire";
    } catch (const green::TimeoutError& e) {
      EXPECT_TRUE(e.is(outer));
      EXPECT_FALSE(e.is(inner));
    }
  });
}

TEST(Timeout, AroundJoinOfALongGreenThread) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    auto g = green::spawn([] {
      green::sleep(10s);
      return 1;
    });
    const auto t0 = Clock::now();
    {
      green::Timeout t(30ms);
      try {
        g.join();
        ADD_FAILURE() << "join must be interrupted";
      } catch (const green::TimeoutError& e) {
        EXPECT_TRUE(e.is(t));
      }
    }
    {
      green::Timeout t(30ms);
      try {
        g.get();
        ADD_FAILURE() << "get must be interrupted";
      } catch (const green::TimeoutError& e) {
        EXPECT_TRUE(e.is(t));
      }
    }
    const auto waited = Clock::now() - t0;
    EXPECT_GE(waited, 60ms);
    EXPECT_LT(waited, 2s);
    // The joined green thread is unaffected.
    EXPECT_FALSE(g.ready());
    EXPECT_TRUE(g.kill());
  });
}

TEST(Timeout, OnAPlainThreadThrowsError) {
  EXPECT_THROW({ green::Timeout t(1s); }, green::Error);
  EXPECT_THROW({ green::Timeout t(std::nullopt); }, green::Error);
  // A runtime existing does not change that: the caller is still plain.
  green::Runtime rt({.workers = 1});
  EXPECT_THROW({ green::Timeout t(1s); }, green::Error);
  EXPECT_EQ(rt.spawn([] { return 2; }).get(), 2);  // the runtime is fine
}

TEST(Timeout, WithTimeoutPropagates) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    EXPECT_EQ(green::with_timeout(1s, [] { return 7; }), 7);
    const auto t0 = Clock::now();
    EXPECT_THROW(green::with_timeout(20ms,
                                     [] {
                                       green::sleep(10s);
                                       return 1;
                                     }),
                 green::TimeoutError);
    EXPECT_GE(Clock::now() - t0, 20ms);
    EXPECT_LT(Clock::now() - t0, 2s);
  });
}

TEST(Timeout, WithTimeoutValue) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    EXPECT_EQ(green::with_timeout(1s, [] { return 7; }, -1), 7);
    const auto t0 = Clock::now();
    const int v = green::with_timeout(
        20ms,
        [] {
          green::sleep(10s);
          return 1;
        },
        -1);
    EXPECT_EQ(v, -1);
    EXPECT_GE(Clock::now() - t0, 20ms);
    EXPECT_LT(Clock::now() - t0, 2s);
  });
}

TEST(Timeout, WithTimeoutValueRethrowsAnOuterScope) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::Timeout outer(20ms);
    try {
      (void)green::with_timeout(
          10s,
          [] {
            green::sleep(10s);
            return 1;
          },
          -1);
      ADD_FAILURE() << "the outer scope's error must propagate";
    } catch (const green::TimeoutError& e) {
      EXPECT_TRUE(e.is(outer));
    }
  });
}

TEST(Timeout, CallTimeoutInsideALongerScopeReturnsFalse) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    auto g = green::spawn([] { green::sleep(10s); });
    green::Timeout t(5s);
    const auto t0 = Clock::now();
    bool joined = true;
    EXPECT_NO_THROW(joined = g.join(30ms));
    EXPECT_FALSE(joined);
    const auto waited = Clock::now() - t0;
    EXPECT_GE(waited, 30ms);
    EXPECT_LT(waited, 2s);
    EXPECT_FALSE(t.expired());
    EXPECT_TRUE(g.kill());
  });
}

TEST(Timeout, ShorterScopeAroundALongerCallTimeoutThrows) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    auto g = green::spawn([] { green::sleep(10s); });
    green::Timeout t(30ms);
    try {
      (void)g.join(5s);
      ADD_FAILURE() << "the scope must fire before the call's own timeout";
    } catch (const green::TimeoutError& e) {
      EXPECT_TRUE(e.is(t));
    }
    EXPECT_TRUE(g.kill());
  });
}

TEST(Timeout, FollowsAGreenThreadAcrossWorkers) {
  // The scope is armed on one worker and fires while the green thread waits
  // for a green thread pinned to the other one.
  green::Runtime rt({.workers = 2});
  rt.run([] {
    auto far = green::spawn({.worker = 1, .pinned = true}, [] { green::sleep(10s); });
    for (int i = 0; i < 3; ++i) {
      green::Timeout t(20ms);
      try {
        far.join();
        ADD_FAILURE() << "must time out";
      } catch (const green::TimeoutError& e) {
        EXPECT_TRUE(e.is(t));
      }
    }
    EXPECT_TRUE(far.kill());
  });
}

TEST(Timeout, KillRacingWithTimeoutDeliversExactlyOne) {
  green::Runtime rt({.workers = 2});
  int timeouts_won = 0, kills_won = 0;
  for (int i = 0; i < 40; ++i) {
    SCOPED_TRACE("round " + std::to_string(i));
    std::atomic<int> seen{0}, timeouts{0}, kills{0}, others{0};
    std::atomic<std::int64_t> deadline_ns{0};
    auto victim = rt.spawn({.worker = 1, .pinned = true}, [&] {
      try {
        green::Timeout t(5ms);
        deadline_ns = t.deadline().time_since_epoch().count();
        green::sleep(10s);
      } catch (const green::TimeoutError&) {
        ++seen;
        ++timeouts;
      } catch (const green::GreenletExit&) {
        ++seen;
        ++kills;
        throw;  // ends it as killed
      } catch (...) {
        ++seen;
        ++others;
      }
      // Nothing blocks after the handler: a kill that lost is dropped.
    });
    auto killer = rt.spawn({.worker = 0, .pinned = true}, [&, i] {
      EXPECT_TRUE(wait_until([&] { return deadline_ns.load() != 0; }));
      const auto deadline = Clock::time_point(Clock::duration(deadline_ns.load()));
      // Kill from 2 ms before to 2 ms after the scope's deadline.
      spin_until(deadline - 2ms + std::chrono::microseconds(100 * i));
      return victim.kill();
    });
    EXPECT_TRUE(killer.get());
    EXPECT_TRUE(victim.join(5s));
    EXPECT_EQ(seen.load(), 1);
    EXPECT_EQ(others.load(), 0);
    if (kills.load() == 1) {
      EXPECT_TRUE(victim.killed());
      ++kills_won;
    } else {
      EXPECT_EQ(timeouts.load(), 1);
      EXPECT_TRUE(victim.successful());
      EXPECT_FALSE(victim.killed());
      ++timeouts_won;
    }
  }
  EXPECT_EQ(timeouts_won + kills_won, 40);
  RecordProperty("timeouts_won", timeouts_won);
  RecordProperty("kills_won", kills_won);
}

TEST(Timeout, ExpiringDuringCpuWorkIsRaisedAtTheNextSleep) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::Timeout t(10ms);
    spin_until(t.deadline() + 5ms);  // CPU work: nothing interrupts it
    EXPECT_FALSE(t.expired());       // not preempted
    try {
      green::sleep(1ms);
      ADD_FAILURE() << "the expired scope must fire at the next blocking call";
    } catch (const green::TimeoutError& e) {
      EXPECT_TRUE(e.is(t));
    }
  });
}

TEST(Timeout, ExpiringDuringCpuWorkIsRaisedAtTheNextYield) {
  // timeout.hpp: "the TimeoutError comes at the next blocking call or yield()";
  // current.hpp: yield() honours green::Timeout.
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::Timeout t(10ms);
    spin_until(t.deadline() + 5ms);
    bool thrown = false;
    try {
      green::yield();
    } catch (const green::TimeoutError& e) {
      thrown = true;
      EXPECT_TRUE(e.is(t));
    }
    EXPECT_TRUE(thrown) << "yield() after the scope's deadline did not raise TimeoutError";
  });
}

TEST(Timeout, YieldLoopIsInterrupted) {
  // gevent test__GreenletExit: `with Timeout(0.01): while True: sleep(0)`
  // must terminate. Bounded by a 3 s deadline here.
  green::Runtime rt({.workers = 1});
  rt.run([] {
    const auto t0 = Clock::now();
    bool fired = false;
    try {
      green::Timeout t(10ms);
      try {
        while (Clock::now() - t0 < 3s) green::yield();
      } catch (const green::TimeoutError& e) {
        fired = e.is(t);
      }
    } catch (const green::TimeoutError&) {
      ADD_FAILURE() << "the error escaped its own scope";
    }
    EXPECT_TRUE(fired) << "a yield() loop inside Timeout(10ms) ran for 3 s";
  });
}

TEST(Timeout, SleepZeroLoopIsInterrupted) {
  // Same with green::sleep(0), gevent's spelling (current.hpp: d <= 0 yields).
  green::Runtime rt({.workers = 1});
  rt.run([] {
    const auto t0 = Clock::now();
    bool fired = false;
    {
      green::Timeout t(10ms);
      try {
        while (Clock::now() - t0 < 3s) green::sleep(0ms);
      } catch (const green::TimeoutError& e) {
        fired = e.is(t);
      }
    }
    EXPECT_TRUE(fired) << "a sleep(0) loop inside Timeout(10ms) ran for 3 s";
  });
}

TEST(Timeout, KillIsDeliveredInsideATimeoutScope) {
  // A pending kill beats a scope that has not fired, and the scope does not
  // fire afterwards in the handler.
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::atomic<bool> entered{false};
    auto g = green::spawn([&] {
      green::Timeout t(10s);
      entered = true;
      try {
        green::sleep(10s);
      } catch (const green::TimeoutError&) {
        return 1;
      } catch (const MyError&) {
        return t.expired() ? 2 : 3;
      }
      return 4;
    });
    ASSERT_TRUE(wait_until([&] { return entered.load(); }));
    EXPECT_TRUE(g.kill(MyError(1)));
    EXPECT_EQ(g.get(), 3);
  });
}

}  // namespace
