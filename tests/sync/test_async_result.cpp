// AsyncResult (gevent-behaviours case 35): a value or an exception set once
// and read by many green threads and plain threads; timed and nowait gets;
// with_timeout; AsyncResult<void>; Timeout and kill while waiting; use as a
// link target; a cross-worker stress.
//
// "X is parked" is observed through Runtime::dump() ("parked:
// AsyncResult.get", which wait() uses too). No test sleeps to synchronise.
#include <green/green.hpp>
#include <green/sync.hpp>
#include <gtest/gtest.h>

#include "test_util.hpp"
#include "parked.hpp"
#include "test_env.hpp"

#include <atomic>
#include <chrono>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;
using green::testing::MyError;
using green::testing::wait_until;
using green::testing::parked_on;
using green::testing::wait_parked;
using green::testing::expect_about;
using green::testing::on_worker;
using green::testing::per_build;

constexpr int kStressResults = per_build(50'000, 5'000, 2'000);

// parked.hpp's wait_parked gets a longer bound here, for the loaded
// sanitizer runs.
constexpr auto kParkLimit = 20s;

// ---------------------------------------------------------------------------
// set / get across green threads and plain threads

TEST(AsyncResult, OneSetManyGreenAndPlainGetters) {
  constexpr int kGreen = 100, kPlain = 4;
  green::AsyncResult<std::string> ar;
  std::atomic<int> plain_ok{0};
  green::Runtime rt({.workers = 2});
  std::vector<std::thread> plain;
  for (int i = 0; i < kPlain; ++i) plain.emplace_back([&] {
    if (ar.get() == "answer") plain_ok.fetch_add(1);
  });
  rt.run([&] {
    EXPECT_FALSE(ar.ready());
    EXPECT_FALSE(ar.successful());
    EXPECT_EQ(ar.exception(), nullptr);
    std::vector<green::Greenlet<std::string>> getters;
    for (int i = 0; i < kGreen; ++i)
      getters.push_back(green::spawn(on_worker(static_cast<unsigned>(i) % 2), [&] { return ar.get(); }));
    ASSERT_TRUE(wait_parked(rt, "AsyncResult.get", kGreen, kParkLimit));
    green::spawn(on_worker(0), [&] { ar.set("answer"); }).join();
    for (auto& g : getters) EXPECT_EQ(g.get(5s), "answer");
    EXPECT_TRUE(ar.ready());
    EXPECT_TRUE(ar.successful());
    // Late getters see it at once, without waiting.
    EXPECT_EQ(ar.get(), "answer");
    EXPECT_EQ(ar.get(0ms), "answer");
    EXPECT_EQ(ar.get_nowait(), "answer");
    EXPECT_TRUE(ar.wait());
    EXPECT_EQ(green::spawn([&] { return ar.get(); }).get(5s), "answer");
  });
  if (!ar.ready()) ar.set("failed");  // after a failed ASSERT: release the plain getters
  for (auto& t : plain) t.join();
  EXPECT_EQ(plain_ok.load(), kPlain);
  // get() returns a reference into the AsyncResult.
  EXPECT_EQ(&ar.get(), &ar.get());
}

TEST(AsyncResult, PlainThreadSetsGreenThreadsGet) {
  green::AsyncResult<int> ar;
  green::Runtime rt({.workers = 2});
  std::vector<green::Greenlet<int>> getters;
  for (int i = 0; i < 10; ++i) getters.push_back(rt.spawn([&] { return ar.get(); }));
  ASSERT_TRUE(wait_parked(rt, "AsyncResult.get", 10, kParkLimit));
  std::thread setter([&] { ar.set(42); });
  setter.join();
  for (auto& g : getters) EXPECT_EQ(g.get(5s), 42);
}

// ---------------------------------------------------------------------------
// set_exception: every getter sees the very same exception object.

TEST(AsyncResult, SetExceptionRethrowsTheSameObjectEverywhere) {
  green::AsyncResult<int> ar;
  const auto ep = std::make_exception_ptr(MyError(7));
  const void* original = nullptr;
  try {
    std::rethrow_exception(ep);
  } catch (const MyError& e) {
    original = &e;
  }
  ASSERT_NE(original, nullptr);
  struct Seen {
    const void* addr = nullptr;
    int code = 0;
  };
  auto catch_it = [&]() -> Seen {
    try {
      ar.get();
    } catch (const MyError& e) {
      return {&e, e.code};
    } catch (...) {
    }
    return {};
  };
  green::Runtime rt({.workers = 2});
  Seen plain_seen;
  std::thread plain([&] { plain_seen = catch_it(); });
  rt.run([&] {
    std::vector<green::Greenlet<Seen>> getters;
    for (unsigned i = 0; i < 6; ++i) getters.push_back(green::spawn(on_worker(i % 2), catch_it));
    ASSERT_TRUE(wait_parked(rt, "AsyncResult.get", 6, kParkLimit));
    ar.set_exception(ep);
    for (auto& g : getters) {
      const Seen s = g.get(5s);
      EXPECT_EQ(s.addr, original);
      EXPECT_EQ(s.code, 7);
    }
    EXPECT_TRUE(ar.ready());
    EXPECT_FALSE(ar.successful());
    EXPECT_EQ(ar.exception(), ep);
    const Seen late = catch_it();
    EXPECT_EQ(late.addr, original);
    EXPECT_THROW(ar.get_nowait(), MyError);
    EXPECT_THROW(ar.get(1s), MyError);
    EXPECT_TRUE(ar.wait()) << "wait() reports readiness, it does not throw";
  });
  if (!ar.ready()) ar.set(0);  // after a failed ASSERT: release the plain getter
  plain.join();
  EXPECT_EQ(plain_seen.addr, original);
  EXPECT_EQ(plain_seen.code, 7);
}

TEST(AsyncResult, SecondSetThrowsAndTheFirstStays) {
  green::AsyncResult<int> ar;
  ar.set(1);
  EXPECT_THROW(ar.set(2), green::Error);
  EXPECT_THROW(ar.set_exception(std::make_exception_ptr(MyError(1))), green::Error);
  EXPECT_EQ(ar.get(), 1);
  EXPECT_TRUE(ar.successful());

  green::AsyncResult<int> failed;
  EXPECT_THROW(failed.set_exception(nullptr), green::Error);
  EXPECT_FALSE(failed.ready()) << "a rejected null exception leaves it unset";
  failed.set_exception(std::make_exception_ptr(MyError(2)));
  EXPECT_THROW(failed.set(3), green::Error);
  EXPECT_THROW(failed.set_exception(std::make_exception_ptr(MyError(3))), green::Error);
  try {
    failed.get();
    ADD_FAILURE() << "must rethrow";
  } catch (const MyError& e) {
    EXPECT_EQ(e.code, 2);
  }

  // Racing setters on two workers: exactly one wins.
  green::AsyncResult<int> raced;
  std::atomic<int> wins{0}, losses{0};
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    std::vector<green::Greenlet<void>> setters;
    for (unsigned i = 0; i < 8; ++i) setters.push_back(green::spawn(on_worker(i % 2), [&, i] {
      try {
        raced.set(static_cast<int>(i));
        wins.fetch_add(1);
      } catch (const green::Error&) {
        losses.fetch_add(1);
      }
    }));
    EXPECT_EQ(green::joinall(setters, 5s), setters.size());
  });
  EXPECT_EQ(wins.load(), 1);
  EXPECT_EQ(losses.load(), 7);
  EXPECT_TRUE(raced.ready());
}

// ---------------------------------------------------------------------------
// Timed and nowait gets (case 35)

TEST(AsyncResult, GetTimeoutThrowsTimeoutErrorScopeZero) {
  green::AsyncResult<int> ar;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    const auto t0 = Clock::now();
    try {
      ar.get(40ms);
      ADD_FAILURE() << "get(timeout) must throw";
    } catch (const green::TimeoutError& e) {
      EXPECT_EQ(e.scope_id(), 0u);
    }
    expect_about(Clock::now() - t0, 40ms);
    const auto t1 = Clock::now();
    EXPECT_FALSE(ar.wait(40ms));
    expect_about(Clock::now() - t1, 40ms);
  });
  // A plain thread.
  const auto t0 = Clock::now();
  try {
    ar.get(30ms);
    ADD_FAILURE() << "get(timeout) must throw";
  } catch (const green::TimeoutError& e) {
    EXPECT_EQ(e.scope_id(), 0u);
  }
  expect_about(Clock::now() - t0, 30ms);
}

TEST(AsyncResult, GetNowaitThrowsTimeoutErrorUntilReady) {
  green::AsyncResult<int> ar;
  try {
    ar.get_nowait();
    ADD_FAILURE() << "get_nowait must throw";
  } catch (const green::TimeoutError& e) {
    EXPECT_EQ(e.scope_id(), 0u);
  }
  ar.set(5);
  EXPECT_EQ(ar.get_nowait(), 5);
}

TEST(AsyncResult, WithTimeoutReturnsTheTimeoutValue) {
  green::AsyncResult<int> ar;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    const auto t0 = Clock::now();
    EXPECT_EQ(green::with_timeout(30ms, [&] { return ar.get(); }, -1), -1);
    expect_about(Clock::now() - t0, 30ms);
    ar.set(9);
    EXPECT_EQ(green::with_timeout(30ms, [&] { return ar.get(); }, -1), 9);
  });
}

// An outer Timeout interrupts get(): Timeout(0) before it parks, and a short
// one while it is parked (gevent's Timeout(0, exc) around get()).
TEST(AsyncResult, OuterTimeoutInterruptsGet) {
  green::AsyncResult<int> ar;
  // One worker: the SCOPED_TRACE below spans blocking calls, and gtest keeps
  // its trace stack per OS thread, so the green thread must not migrate.
  green::Runtime rt({.workers = 1});
  rt.run([&] {
    for (auto d : {0ms, 1ms, 20ms}) {
      SCOPED_TRACE(d.count());
      const auto t0 = Clock::now();
      green::Timeout t(d);
      try {
        ar.get(10s);
        ADD_FAILURE() << "get must be interrupted";
      } catch (const green::TimeoutError& e) {
        EXPECT_TRUE(e.is(t));
        EXPECT_NE(e.scope_id(), 0u);
      }
      EXPECT_TRUE(t.expired());
      EXPECT_LT(Clock::now() - t0, 2s);
    }
    // The interrupted waiters left: a set reaches a new getter as usual.
    auto getter = green::spawn([&] { return ar.get(); });
    ASSERT_TRUE(wait_parked(rt, "AsyncResult.get", 1, kParkLimit));
    ar.set(1);
    EXPECT_EQ(getter.get(5s), 1);
  });
}

// ---------------------------------------------------------------------------
// AsyncResult<void>

TEST(AsyncResult, VoidResult) {
  green::AsyncResult<> done;
  green::AsyncResult<void> failed;
  green::Runtime rt({.workers = 2});
  std::thread plain([&] { EXPECT_NO_THROW(done.get()); });
  rt.run([&] {
    EXPECT_THROW(done.get_nowait(), green::TimeoutError);
    EXPECT_THROW(done.get(10ms), green::TimeoutError);
    std::vector<green::Greenlet<void>> getters;
    for (unsigned i = 0; i < 10; ++i) getters.push_back(green::spawn(on_worker(i % 2), [&] { done.get(); }));
    ASSERT_TRUE(wait_parked(rt, "AsyncResult.get", 10, kParkLimit));
    done.set();
    EXPECT_EQ(green::joinall(getters, 5s), getters.size());
    for (auto& g : getters) EXPECT_TRUE(g.successful());
    EXPECT_THROW(done.set(), green::Error);
    EXPECT_NO_THROW(done.get_nowait());
    EXPECT_TRUE(done.successful());

    auto getter = green::spawn([&] { failed.get(); });
    ASSERT_TRUE(wait_parked(rt, "AsyncResult.get", 1, kParkLimit));
    failed.set_exception(std::make_exception_ptr(MyError(11)));
    try {
      getter.get(5s);
      ADD_FAILURE() << "must rethrow";
    } catch (const MyError& e) {
      EXPECT_EQ(e.code, 11);
    }
  });
  if (!done.ready()) done.set();  // after a failed ASSERT: release the plain getter
  plain.join();
}

// ---------------------------------------------------------------------------
// kill while waiting

TEST(AsyncResult, KillWhileWaiting) {
  green::AsyncResult<int> ar;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    std::atomic<bool> returned{false};
    auto victim = green::spawn([&] {
      ar.get();
      returned = true;
    });
    auto custom = green::spawn([&] {
      try {
        ar.wait();
      } catch (const MyError& e) {
        return e.code;
      }
      return -1;
    });
    auto survivor = green::spawn([&] { return ar.get(); });
    ASSERT_TRUE(wait_parked(rt, "AsyncResult.get", 3, kParkLimit));
    EXPECT_TRUE(victim.kill());
    EXPECT_TRUE(victim.killed());
    EXPECT_FALSE(returned.load());
    custom.kill(MyError(12));
    EXPECT_EQ(custom.get(5s), 12);
    EXPECT_EQ(parked_on(rt, "AsyncResult.get"), 1u);
    ar.set(3);
    EXPECT_EQ(survivor.get(5s), 3);
  });
}

// ---------------------------------------------------------------------------
// As a link target (TestAsyncResultAsLinkTarget)

TEST(AsyncResult, AsALinkTarget) {
  green::AsyncResult<int> value;
  green::AsyncResult<int> error;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    auto ok = green::spawn([] { return 5; });
    ok.link([&](green::Greenlet<int> g) { value.set(g.get()); });
    auto bad = green::spawn([]() -> int { throw MyError(13); });
    bad.link([&](green::Greenlet<int> g) { error.set_exception(g.exception()); });
    EXPECT_EQ(value.get(5s), 5);
    try {
      error.get(5s);
      ADD_FAILURE() << "must rethrow";
    } catch (const MyError& e) {
      EXPECT_EQ(e.code, 13);
    }
  });
}

// ---------------------------------------------------------------------------
// Stress: many results, set on one worker and read on the other (and by a
// plain thread), each read as soon as it is set: no lost wake-up.

TEST(AsyncResultStress, CrossWorkerSetGet) {
  const int n = kStressResults;
  std::vector<std::unique_ptr<green::AsyncResult<int>>> results;
  results.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) results.push_back(std::make_unique<green::AsyncResult<int>>());
  std::atomic<int> wrong{0};
  green::Runtime rt({.workers = 2});
  std::thread plain([&] {
    for (int i = 0; i < n; ++i) {
      try {
        if (results[static_cast<std::size_t>(i)]->get(30s) != i) wrong.fetch_add(1);
      } catch (const green::TimeoutError&) {
        wrong.fetch_add(1);
        return;
      }
    }
  });
  rt.run([&] {
    auto getter = green::spawn(on_worker(1), [&] {
      for (int i = 0; i < n; ++i) {
        try {
          if (results[static_cast<std::size_t>(i)]->get(30s) != i) wrong.fetch_add(1);
        } catch (const green::TimeoutError&) {
          wrong.fetch_add(1);
          return;
        }
      }
    });
    auto setter = green::spawn(on_worker(0), [&] {
      for (int i = 0; i < n; ++i) {
        results[static_cast<std::size_t>(i)]->set(i);
        if (i % 4 == 0) green::yield();
      }
    });
    EXPECT_TRUE(setter.join(100s));
    EXPECT_TRUE(getter.join(100s));
  });
  plain.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
