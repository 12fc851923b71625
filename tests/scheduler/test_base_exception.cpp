// GreenletExit and TimeoutError are control flow, not failures: like gevent's
// BaseExceptions they pass through `catch (const std::exception&)` and
// `catch (const green::Error&)`, so a generic handler around a blocking call
// cannot stop a kill or a Timeout (issue 13).
#include <green/green.hpp>
#include <gtest/gtest.h>

#include "parked.hpp"
#include "test_util.hpp"

#include <atomic>
#include <chrono>
#include <exception>
#include <string>
#include <type_traits>

using namespace std::chrono_literals;

namespace {

using green::testing::wait_parked;

static_assert(!std::is_base_of_v<std::exception, green::GreenletExit>);
static_assert(!std::is_base_of_v<std::exception, green::TimeoutError>);
static_assert(std::is_base_of_v<green::BaseException, green::GreenletExit>);
static_assert(std::is_base_of_v<green::BaseException, green::TimeoutError>);

// A green thread that treats every std::exception from its blocking call as
// a failure to retry, for ever: only something outside std::exception ends it.
template <class Handler>
green::Greenlet<void> spawn_retrier(std::atomic<int>& caught) {
  return green::spawn({.name = "retrier"}, [&caught] {
    for (;;) {
      try {
        green::sleep(10s);
      } catch (const Handler&) {
        caught.fetch_add(1);
      }
    }
  });
}

template <class Handler>
void expect_kill_passes(unsigned workers) {
  green::Runtime rt({.workers = workers});
  rt.run([&] {
    std::atomic<int> caught{0};
    auto g = spawn_retrier<Handler>(caught);
    ASSERT_TRUE(wait_parked(rt, "retrier", "sleep"));
    EXPECT_TRUE(g.kill(green::GreenletExit(), 5s)) << "the kill did not end the green thread";
    EXPECT_TRUE(g.killed());
    EXPECT_TRUE(g.successful());
    EXPECT_EQ(caught.load(), 0);
  });
}

TEST(BaseException, KillIsNotSwallowedByCatchStdException) { expect_kill_passes<std::exception>(1); }

TEST(BaseException, KillIsNotSwallowedByCatchGreenError) { expect_kill_passes<green::Error>(1); }

TEST(BaseException, KillFromAnotherWorkerIsNotSwallowedByCatchStdException) {
  expect_kill_passes<std::exception>(2);
}

TEST(BaseException, TimeoutIsNotSwallowedByCatchStdException) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    int caught_as_failure = 0;
    bool timed_out = false;
    try {
      green::Timeout t(20ms);
      try {
        for (int i = 0; i < 100; ++i) {  // bounded: 100 retries of 10 s
          try {
            green::sleep(10s);
          } catch (const std::exception&) {
            ++caught_as_failure;
          }
        }
      } catch (const green::TimeoutError& e) {
        timed_out = e.is(t);
        throw;
      }
    } catch (const green::TimeoutError&) {
    }
    EXPECT_TRUE(timed_out);
    EXPECT_EQ(caught_as_failure, 0);
  });
}

TEST(BaseException, CallTimeoutIsNotSwallowedByCatchStdException) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    auto sleeper = green::spawn([] { green::sleep(10s); });
    bool as_failure = false;
    bool as_timeout = false;
    try {
      try {
        sleeper.get(5ms);
      } catch (const std::exception&) {
        as_failure = true;
      }
    } catch (const green::TimeoutError& e) {
      as_timeout = e.scope_id() == 0;
    }
    EXPECT_FALSE(as_failure);
    EXPECT_TRUE(as_timeout);
    sleeper.kill();
  });
}

TEST(BaseException, WhatNamesTheControlFlow) {
  const green::BaseException& exit = green::GreenletExit();
  EXPECT_STREQ(exit.what(), "GreenletExit");
  EXPECT_STREQ(green::TimeoutError(0).what(), "green: timed out");
  EXPECT_STREQ(green::TimeoutError(7).what(), "green::Timeout expired");
  EXPECT_EQ(green::detail::describe(std::make_exception_ptr(green::TimeoutError(7))), "green::Timeout expired");
  EXPECT_EQ(green::detail::describe(std::make_exception_ptr(green::GreenletExit())), "GreenletExit");
}

// A green thread ended by a Timeout nobody caught failed (it is not a kill):
// get() rethrows the TimeoutError and successful() is false, as in gevent.
TEST(BaseException, GreenThreadEndedByAnUncaughtTimeoutFailed) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    auto g = green::spawn([] {
      green::Timeout t(1ms);
      green::sleep(10s);
    });
    ASSERT_TRUE(g.join(5s));
    EXPECT_FALSE(g.successful());
    EXPECT_FALSE(g.killed());
    EXPECT_THROW(g.get(), green::TimeoutError);
  });
}

}  // namespace
