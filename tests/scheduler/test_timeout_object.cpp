// green::Timeout as an object (gevent's Timeout(seconds, exception),
// start(), cancel(), start_new) and its edge cases: gevent-behaviours case
// 40 (test__timeout.py) and case 35's Timeout(0, exc).
#include <green/green.hpp>
#include <gtest/gtest.h>

#include "baton.hpp"
#include "test_util.hpp"

#include <chrono>
#include <exception>
#include <memory>
#include <optional>
#include <type_traits>

using namespace std::chrono_literals;

namespace {

using green::testing::Baton;
using green::testing::MyError;
using green::testing::spin_for;

using Clock = std::chrono::steady_clock;

static_assert(!std::is_constructible_v<green::Timeout, std::chrono::seconds, bool>,
              "gevent's Timeout(seconds, False) is with_timeout(d, fn, value) here");
static_assert(std::is_constructible_v<green::Timeout, std::chrono::seconds, MyError>);
static_assert(std::is_constructible_v<green::Timeout, std::chrono::seconds, std::exception_ptr>);

TEST(TimeoutObject, RaisesTheGivenException) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    const auto t0 = Clock::now();
    green::Timeout t(20ms, MyError(5));
    try {
      green::sleep(10s);
      ADD_FAILURE() << "the Timeout must fire";
    } catch (const MyError& e) {
      EXPECT_EQ(e.code, 5);
    }
    EXPECT_TRUE(t.expired());
    EXPECT_FALSE(t.pending());
    EXPECT_GE(Clock::now() - t0, 20ms);
  });
}

TEST(TimeoutObject, GivenExceptionPtrAndNullMeansTimeoutError) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    {
      green::Timeout t(1ms, std::make_exception_ptr(MyError(6)));
      EXPECT_THROW(green::sleep(10s), MyError);
    }
    {
      green::Timeout t(1ms, std::exception_ptr());
      try {
        green::sleep(10s);
      } catch (const green::TimeoutError& e) {
        EXPECT_TRUE(e.is(t));
      }
    }
  });
}

// Case 35: get() interrupted by an outer Timeout(0, exc) raises exc.
TEST(TimeoutObject, ZeroWithAnExceptionInterruptsAWait) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Baton never;
    green::Timeout t(0ms, MyError(8));
    EXPECT_THROW(never.wait(green::detail::deadline_after(10s)), MyError);
  });
}

TEST(TimeoutObject, FiredWhileNotBlockedIsRaisedAtTheNextBlockingPoint) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::Timeout t(5ms, MyError(9));
    spin_for(30ms);  // fires unseen: nothing is thrown while computing
    EXPECT_THROW(green::yield(), MyError);
    EXPECT_NO_THROW(green::yield()) << "raised once";
  });
}

TEST(TimeoutObject, CancelBeforeItFiresPreventsIt) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::Timeout t(20ms);
    EXPECT_TRUE(t.pending());
    green::sleep(1ms);  // a park whose timer covered t
    t.cancel();
    EXPECT_FALSE(t.pending());
    EXPECT_NO_THROW(green::sleep(60ms));
    EXPECT_FALSE(t.expired());
    t.cancel();  // harmless twice
  });
}

TEST(TimeoutObject, CancelAfterItFiredUnseenDropsItsException) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::Timeout t(5ms);
    spin_for(20ms);
    EXPECT_NO_THROW(t.cancel());
    EXPECT_NO_THROW(green::sleep(1ms));
  });
}

TEST(TimeoutObject, RestartAfterItFiredRaisesTheSameTimeoutAgain) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::Timeout t(20ms);
    const auto id = t.id();
    EXPECT_THROW(green::sleep(10s), green::TimeoutError);
    EXPECT_TRUE(t.expired());
    const auto t0 = Clock::now();
    t.start();
    EXPECT_TRUE(t.pending());
    EXPECT_FALSE(t.expired());
    EXPECT_EQ(t.id(), id);
    try {
      green::sleep(10s);
      ADD_FAILURE() << "the restarted Timeout must fire";
    } catch (const green::TimeoutError& e) {
      EXPECT_TRUE(e.is(t));
    }
    const auto waited = Clock::now() - t0;
    EXPECT_GE(waited, 20ms);
    EXPECT_LT(waited, 2s);
  });
}

TEST(TimeoutObject, RestartAfterCancelCountsFromTheRestart) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::Timeout t(30ms, MyError(1));
    t.cancel();
    green::sleep(40ms);  // past the first deadline: nothing fires
    const auto t0 = Clock::now();
    t.start();
    EXPECT_THROW(green::sleep(10s), MyError);
    EXPECT_GE(Clock::now() - t0, 30ms);
  });
}

TEST(TimeoutObject, StartWhilePendingIsAnError) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::Timeout t(10s);
    EXPECT_THROW(t.start(), green::Error);
    EXPECT_TRUE(t.pending());
  });
}

TEST(TimeoutObject, StartNew) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    {
      auto t = green::Timeout::start_new(10ms);
      EXPECT_TRUE(t.pending());
      try {
        green::sleep(10s);
      } catch (const green::TimeoutError& e) {
        EXPECT_TRUE(e.is(t));
      }
    }
    {
      auto t = green::Timeout::start_new(1ms, MyError(2));
      EXPECT_THROW(green::sleep(10s), MyError);
    }
  });
}

// Started Timeouts need not end LIFO: cancelling the outer (earlier) one
// leaves the inner one pending, and it fires.
TEST(TimeoutObject, OuterCancelledFirstLeavesTheInnerPending) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    auto outer = std::make_unique<green::Timeout>(10ms, MyError(1));
    green::Timeout inner(40ms, MyError(2));
    outer.reset();  // destroyed while pending, out of order
    try {
      green::sleep(10s);
      ADD_FAILURE() << "inner must fire";
    } catch (const MyError& e) {
      EXPECT_EQ(e.code, 2);
    }
  });
}

TEST(TimeoutObject, NestedInnerShorterFiresFirstAndTheOuterStaysPending) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    green::Timeout outer(80ms, MyError(1));
    green::Timeout inner(10ms, MyError(2));
    try {
      green::sleep(10s);
    } catch (const MyError& e) {
      EXPECT_EQ(e.code, 2);
    }
    EXPECT_TRUE(outer.pending());
    try {
      green::sleep(10s);
    } catch (const MyError& e) {
      EXPECT_EQ(e.code, 1);
    }
  });
}

TEST(TimeoutObject, DestroyedWhilePendingNeverFires) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    auto t = std::make_unique<green::Timeout>(10ms);
    green::sleep(1ms);
    t.reset();
    EXPECT_NO_THROW(green::sleep(40ms));
  });
}

TEST(TimeoutObject, StartOnAPlainThreadOrAnotherGreenThreadIsAnError) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Timeout t(10s);
    auto other = green::spawn([&t] {
      try {
        t.start();
        return false;
      } catch (const green::Error&) {
        return true;
      }
    });
    EXPECT_TRUE(other.get(5s));
  });
  EXPECT_THROW(green::Timeout::start_new(1s), green::Error);
}

// A kill still comes through a pending Timeout carrying an exception.
TEST(TimeoutObject, KillWhileBlockedUnderAPendingTimeout) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    auto g = green::spawn([] {
      green::Timeout t(10s, MyError(1));
      green::sleep(10s);
    });
    green::yield();
    EXPECT_TRUE(g.kill(green::GreenletExit(), 5s));
    EXPECT_TRUE(g.killed());
  });
}

}  // namespace
