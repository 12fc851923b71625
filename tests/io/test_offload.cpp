// offload() and blocking() (green/offload.hpp): results of every kind,
// exceptions crossing back with their type and message, kill and Timeout of
// the waiting green thread while the job runs on (its result dropped), many
// concurrent blocking() calls, and calls from plain threads.
//
// Jobs that must outlive their caller wait for a release flag that the test
// sets (bounded), and report through shared_ptrs they own.
#include <green/green.hpp>
#include <green/offload.hpp>
#include <green/sync.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "io_test_util.hpp"
#include "test_util.hpp"

using namespace std::chrono_literals;

namespace {

using green::io_testing::Clock;
using green::io_testing::ms_since;
using green::io_testing::wait_parked;
using green::testing::MyError;
using green::testing::wait_until;

// What a job shares with the test: a release switch and a finished flag.
struct JobState {
  std::atomic<bool> release{false};
  std::atomic<bool> started{false};
  std::atomic<bool> finished{false};
};

// A job body that blocks its (non-worker) thread until released, at most 10 s.
int held_job(const std::shared_ptr<JobState>& st) {
  st->started = true;
  const auto limit = Clock::now() + 10s;
  while (!st->release.load() && Clock::now() < limit) std::this_thread::sleep_for(1ms);
  st->finished = true;
  return 7;
}

// ---------------------------------------------------------------------------
// Results

TEST(Offload, ResultsOfEveryKind) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    EXPECT_EQ(green::offload([] { return 6 * 7; }), 42);
    EXPECT_EQ(green::blocking([] { return std::string("blocking"); }), "blocking");
    const std::vector<int> v = green::offload([] {
      std::vector<int> out(1000);
      std::iota(out.begin(), out.end(), 0);
      return out;
    });
    ASSERT_EQ(v.size(), 1000u);
    EXPECT_EQ(std::accumulate(v.begin(), v.end(), 0), 999 * 1000 / 2);
    // Move-only results.
    std::unique_ptr<int> p = green::blocking([] { return std::make_unique<int>(5); });
    ASSERT_TRUE(p);
    EXPECT_EQ(*p, 5);
    // Arguments through captures, mutable state in the callable.
    const int base = 100;
    EXPECT_EQ(green::offload([base, n = 0]() mutable { return base + ++n; }), 101);
  });
}

TEST(Offload, VoidResults) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    std::atomic<int> done{0};
    green::offload([&] { done.fetch_add(1); });
    EXPECT_EQ(done.load(), 1) << "offload returns after the job ran";
    green::blocking([&] { done.fetch_add(10); });
    EXPECT_EQ(done.load(), 11);
    static_assert(std::is_void_v<decltype(green::offload([] {}))>);
    static_assert(std::is_void_v<decltype(green::blocking([] {}))>);
  });
}

TEST(Offload, JobsRunOffTheWorkers) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    const auto where = [] { return std::make_pair(green::in_green_thread(), green::this_worker()); };
    EXPECT_EQ(green::offload(where), std::make_pair(false, -1));
    EXPECT_EQ(green::blocking(where), std::make_pair(false, -1));
    EXPECT_TRUE(green::in_green_thread()) << "the caller resumes as a green thread";
  });
}

// ---------------------------------------------------------------------------
// Exceptions keep their type and message.

template <class Run>
void expect_exceptions_propagate(Run run) {
  try {
    run([]() -> int { throw MyError(7); });
    ADD_FAILURE() << "no exception";
  } catch (const MyError& e) {
    EXPECT_EQ(e.code, 7);
    EXPECT_STREQ(e.what(), "my error");
  }
  try {
    run([]() -> int { throw std::out_of_range("index 12 out of range"); });
    ADD_FAILURE() << "no exception";
  } catch (const std::out_of_range& e) {
    EXPECT_STREQ(e.what(), "index 12 out of range");
  }
  try {
    run([]() -> int { throw green::SystemError(EACCES, "open /secret"); });
    ADD_FAILURE() << "no exception";
  } catch (const green::SystemError& e) {
    EXPECT_EQ(e.code(), EACCES);
    EXPECT_NE(std::string(e.what()).find("open /secret"), std::string::npos) << e.what();
  }
  try {
    run([]() -> int { throw 42; });
    ADD_FAILURE() << "no exception";
  } catch (int v) {
    EXPECT_EQ(v, 42);
  }
}

TEST(Offload, ExceptionsPropagateWithTypeAndMessage) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    expect_exceptions_propagate([](auto fn) { return green::offload(fn); });
    expect_exceptions_propagate([](auto fn) { return green::blocking(fn); });
    // A void job's exception too.
    EXPECT_THROW(green::blocking([] { throw MyError(1); }), MyError);
    EXPECT_THROW(green::offload([] { throw MyError(1); }), MyError);
  });
}

// ---------------------------------------------------------------------------
// Kill and Timeout of the waiting green thread.

template <class Call>
void kill_while_job_runs(const char* reason, Call call) {
  SCOPED_TRACE(reason);
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    auto st = std::make_shared<JobState>();
    std::atomic<bool> returned{false};
    auto caller = green::spawn([&, st] {
      call([st] { return held_job(st); });
      returned = true;
    });
    ASSERT_TRUE(wait_until([&] { return st->started.load(); })) << "the job never started";
    ASSERT_TRUE(wait_parked(rt, caller, reason)) << rt.dump();
    const auto t0 = Clock::now();
    EXPECT_TRUE(caller.kill(green::GreenletExit(), 2s));
    EXPECT_LT(Clock::now() - t0, 1s) << "the caller must end promptly, not when the job does";
    EXPECT_TRUE(caller.killed());
    EXPECT_FALSE(returned.load());
    EXPECT_FALSE(st->finished.load()) << "the job still runs (it cannot be interrupted)";
    // The job runs to its end on its own thread; its result is dropped.
    st->release = true;
    EXPECT_TRUE(wait_until([&] { return st->finished.load(); }, 10s));
  });
}

TEST(OffloadKill, CallerOfBlockingEndsPromptly) {
  kill_while_job_runs("blocking", [](auto job) { return green::blocking(job); });
}

TEST(OffloadKill, CallerOfOffloadEndsPromptly) {
  kill_while_job_runs("offload", [](auto job) { return green::offload(job); });
}

TEST(OffloadTimeout, TimeoutScopeAroundOffload) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    for (bool use_blocking : {false, true}) {
      // (No SCOPED_TRACE here: gtest keeps traces per OS thread, and a green
      // thread may resume on another worker after any blocking call.)
      const char* what = use_blocking ? "blocking" : "offload";
      auto st = std::make_shared<JobState>();
      const auto t0 = Clock::now();
      try {
        green::Timeout t(100ms);
        try {
          if (use_blocking) {
            green::blocking([st] { return held_job(st); });
          } else {
            green::offload([st] { return held_job(st); });
          }
          ADD_FAILURE() << what << " returned before the job was released";
        } catch (const green::TimeoutError& e) {
          EXPECT_TRUE(e.is(t)) << what;
          throw;
        }
      } catch (const green::TimeoutError&) {
      }
      EXPECT_GE(Clock::now() - t0, 90ms) << what;
      EXPECT_LT(Clock::now() - t0, 2s) << what << ": " << ms_since(t0) << " ms";
      EXPECT_FALSE(st->finished.load()) << what;
      st->release = true;
      EXPECT_TRUE(wait_until([&] { return st->finished.load(); }, 10s)) << what;
    }
    // With a scope that does not fire, the result comes back.
    green::Timeout generous(10s);
    EXPECT_EQ(green::blocking([] { return 3; }), 3);
  });
}

// ---------------------------------------------------------------------------
// Concurrency

TEST(Blocking, ManyConcurrentSleepsOverlap) {
  // 200 jobs of 20 ms each: 4 s one after another. The pool grows (up to
  // 64 threads by default), so they overlap.
  constexpr int kJobs = 200;
  const auto job_time = 20ms;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    const auto t0 = Clock::now();
    std::vector<green::Greenlet<int>> callers;
    for (int i = 0; i < kJobs; ++i) {
      callers.push_back(green::spawn([i, job_time] {
        return green::blocking([i, job_time] {
          std::this_thread::sleep_for(job_time);  // the blocking call blocking() exists for
          return i * 3;
        });
      }));
    }
    ASSERT_EQ(green::joinall(callers, 30s), callers.size());
    const auto took = Clock::now() - t0;
    for (int i = 0; i < kJobs; ++i) EXPECT_EQ(callers[static_cast<std::size_t>(i)].get(), i * 3);
    const auto serial = kJobs * job_time;
    EXPECT_LT(took, serial / 2) << "took " << ms_since(t0) << " ms; serially it would take "
                                << std::chrono::duration_cast<std::chrono::milliseconds>(serial).count()
                                << " ms";
  });
}

TEST(Offload, ManyConcurrentComputations) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    std::vector<green::Greenlet<long>> callers;
    for (int i = 0; i < 100; ++i) {
      callers.push_back(green::spawn([i] {
        return green::offload([i] {
          long sum = 0;
          for (int k = 0; k <= 1000 * i; ++k) sum += k;
          return sum;
        });
      }));
    }
    for (int i = 0; i < 100; ++i) {
      const long n = 1000L * i;
      EXPECT_EQ(callers[static_cast<std::size_t>(i)].get(10s), n * (n + 1) / 2);
    }
  });
}

TEST(Offload, WorkersStayFreeWhileJobsRun) {
  // A green thread blocked in blocking() leaves its worker free: on a
  // one-worker runtime another green thread runs meanwhile.
  green::Runtime rt({.workers = 1});
  rt.run([] {
    auto st = std::make_shared<JobState>();
    auto caller = green::spawn([st] { return green::blocking([st] { return held_job(st); }); });
    ASSERT_TRUE(wait_until([&] { return st->started.load(); }));
    auto other = green::spawn([] { return 1; });
    EXPECT_EQ(other.get(5s), 1) << "the worker was blocked by the job";
    EXPECT_FALSE(caller.ready());
    st->release = true;
    EXPECT_EQ(caller.get(10s), 7);
  });
}

// ---------------------------------------------------------------------------
// Plain threads

TEST(Offload, FromPlainThreads) {
  // No runtime at all: the calling thread just blocks.
  EXPECT_EQ(green::offload([] { return 1; }), 1);
  EXPECT_EQ(green::blocking([] { return std::string("plain"); }), "plain");
  EXPECT_THROW(green::blocking([]() -> int { throw MyError(2); }), MyError);

  // A plain thread next to a runtime, while green threads use both too.
  green::Runtime rt({.workers = 2});
  std::atomic<int> plain_result{0};
  std::thread plain([&] {
    plain_result = green::offload([] { return 20; }) + green::blocking([] { return 22; });
    try {
      green::offload([]() -> int { throw std::runtime_error("from arena"); });
    } catch (const std::runtime_error& e) {
      if (std::string(e.what()) == "from arena") plain_result += 1000;
    }
  });
  const int green_result = rt.run([] { return green::blocking([] { return 5; }) + green::offload([] { return 5; }); });
  plain.join();
  EXPECT_EQ(plain_result.load(), 1042);
  EXPECT_EQ(green_result, 10);
}

}  // namespace
