// The blocking detector (RuntimeOptions::max_blocking_time,
// GREEN_MAX_BLOCKING_MS): a green thread that keeps its worker past the
// threshold is reported once per stall, with its id, name, worker and its
// stack taken on the stuck worker; off, nothing is reported and the monitor
// thread never wakes on its own; the environment variable turns it on, is
// refused with one line when malformed, and yields to the option; the other
// workers keep serving the stuck worker's queue and hub meanwhile.
//
// Every wait is bounded (wait_until); the spinners stop on a condition with
// a time limit. The spinners call std::chrono::steady_clock::now() in their
// loop: clock_gettime is a call ThreadSanitizer intercepts, which is where
// it delivers the stack capture's signal (stack_capture.hpp).
#include <green/fd.hpp>
#include <green/green.hpp>
#include <gtest/gtest.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "../../scheduler/src/blocking.hpp"
#include "../../scheduler/src/runtime_core.hpp"
#include "test_env.hpp"
#include "test_util.hpp"

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Outside any namespace and not inlined, so that the frame has this exact
// name in the symbol table (the check looks for it in the report's stack).
// Spins until `until`, or until `stop` holds, whichever comes first.
[[gnu::noinline]] void blocking_test_spinner(Clock::time_point until, const std::atomic<bool>* stop) {
  while (Clock::now() < until && !(stop && stop->load(std::memory_order_relaxed))) {
    for (int i = 0; i < 1000; ++i) asm volatile("" ::: "memory");  // computation, not optimised away
  }
  asm volatile("" ::: "memory");  // no tail call: this frame stays on the stack
}

namespace {

constexpr const char* kSpinnerName = "blocking_test_spinner";
constexpr auto kThreshold = 100ms;
// Long enough for a report at 100..125 ms even on a loaded sanitized build.
constexpr auto kSpin = 300ms;

void spin(Clock::duration d, const std::atomic<bool>* stop = nullptr) {
  blocking_test_spinner(Clock::now() + d, stop);
}

// Reports the callback received, in order.
class Collector {
 public:
  std::function<void(const green::BlockingReport&)> callback() {
    return [this](const green::BlockingReport& r) {
      std::lock_guard g(mu_);
      reports_.push_back(r);
    };
  }
  std::size_t count() {
    std::lock_guard g(mu_);
    return reports_.size();
  }
  std::vector<green::BlockingReport> all() {
    std::lock_guard g(mu_);
    return reports_;
  }

 private:
  std::mutex mu_;
  std::vector<green::BlockingReport> reports_;
};

// Sets (or, with null, unsets) an environment variable for the scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      ::setenv(name_, old_->c_str(), 1);
    } else {
      ::unsetenv(name_);
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

constexpr const char* kEnv = "GREEN_MAX_BLOCKING_MS";

const green::detail::BlockingDetector* detector(const green::Runtime& rt) {
  return rt.core()->monitor().blocking();
}

// Until the detector has looked at the workers twice more: any report due
// for what it saw before has been made by then.
void let_detector_look(const green::Runtime& rt) {
  const auto* d = detector(rt);
  ASSERT_NE(d, nullptr);
  const std::uint64_t before = d->samples();
  ASSERT_TRUE(green::testing::wait_until([&] { return d->samples() >= before + 2; }, 10s));
}

bool has_frame(const green::BlockingReport& r, const std::string& name) {
  return std::any_of(r.frames.begin(), r.frames.end(),
                     [&](const std::string& f) { return f.find(name) != std::string::npos; });
}

std::string frames_of(const green::BlockingReport& r) { return r.to_string(); }

// The checks every report of one spinner must pass. `in_spinner`: the
// green thread does nothing but call blocking_test_spinner while it stalls,
// so that frame must be in its stack; otherwise (a loop that also checks
// conditions, where ThreadSanitizer may deliver the signal at another
// intercepted call) a stack must be there, whatever is on top.
void expect_spinner_report(const green::BlockingReport& r, unsigned worker, std::uint64_t id, const std::string& name,
                           bool in_spinner = true) {
  EXPECT_EQ(r.worker, worker);
  EXPECT_EQ(r.green_thread_id, id);
  EXPECT_EQ(r.name, name);
  EXPECT_EQ(r.threshold, kThreshold);
  EXPECT_GE(r.stalled_for, kThreshold);
  EXPECT_TRUE(r.stack_missing.empty()) << r.stack_missing;
  EXPECT_FALSE(r.frames.empty());
  if (in_spinner) {
    EXPECT_TRUE(has_frame(r, kSpinnerName)) << frames_of(r);
  }
  const std::string text = r.to_string();
  EXPECT_NE(text.find("worker " + std::to_string(worker) + " has run green thread " + std::to_string(id) + " (" +
                      name + ")"),
            std::string::npos)
      << text;
  if (in_spinner) {
    EXPECT_NE(text.find(kSpinnerName), std::string::npos) << text;
  }
}

TEST(BlockingDetector, SpinnerIsReportedOnceWithItsStack) {
  ScopedEnv env(kEnv, nullptr);
  Collector c;
  green::Runtime rt({.workers = 2, .max_blocking_time = kThreshold, .on_blocking = c.callback()});
  EXPECT_EQ(rt.max_blocking_time(), kThreshold);
  auto g = rt.spawn(green::SpawnOptions{.name = "spinner", .worker = 1, .pinned = true}, [] { spin(kSpin); });
  g.join(10s);
  ASSERT_TRUE(g.ready());
  let_detector_look(rt);
  const auto reports = c.all();
  ASSERT_EQ(reports.size(), 1u);
  expect_spinner_report(reports[0], 1, g.id(), "spinner");
  EXPECT_LT(reports[0].stalled_for, kSpin);
  EXPECT_EQ(detector(rt)->reports(), 1u);
}

TEST(BlockingDetector, GreenThreadsThatSwitchAreNeverReported) {
  ScopedEnv env(kEnv, nullptr);
  Collector c;
  // A longer threshold than elsewhere: a worker the OS leaves without a CPU
  // for that long on a loaded machine would be a (true) stall of its own.
  green::Runtime rt({.workers = 2, .max_blocking_time = 250ms, .on_blocking = c.callback()});
  // Busy for three thresholds, but switching every millisecond: no stall.
  auto g = rt.spawn(green::SpawnOptions{.name = "polite", .worker = 1, .pinned = true}, [] {
    const auto end = Clock::now() + 3 * 250ms;
    while (Clock::now() < end) {
      spin(1ms);
      green::sleep(100us);
    }
  });
  g.join(10s);
  ASSERT_TRUE(g.ready());
  let_detector_look(rt);
  EXPECT_EQ(c.count(), 0u);
  EXPECT_GE(detector(rt)->samples(), 3u);  // it looked, and saw nothing to report
}

TEST(BlockingDetector, AYieldLoopAloneOnItsWorkerIsNoStall) {
  // On the only worker, yield() finds nothing else to run and does not
  // switch; it is a scheduling point all the same, and nobody waits.
  ScopedEnv env(kEnv, nullptr);
  Collector c;
  green::Runtime rt({.workers = 1, .max_blocking_time = kThreshold, .on_blocking = c.callback()});
  auto g = rt.spawn(green::SpawnOptions{.name = "yielder"}, [] {
    const auto end = Clock::now() + 4 * kThreshold;
    while (Clock::now() < end) {
      spin(100us);
      green::yield();
    }
  });
  g.join(10s);
  ASSERT_TRUE(g.ready());
  let_detector_look(rt);
  EXPECT_EQ(c.count(), 0u) << c.all()[0].to_string();
  EXPECT_GE(detector(rt)->samples(), 8u);
}

TEST(BlockingDetector, OffReportsNothingAndNeverWakesTheMonitor) {
  ScopedEnv env(kEnv, nullptr);
  Collector c;
  // on_blocking alone does not turn it on.
  green::Runtime rt({.workers = 2, .on_blocking = c.callback()});
  EXPECT_EQ(rt.max_blocking_time(), 0ms);
  EXPECT_EQ(detector(rt), nullptr);
  auto g = rt.spawn(green::SpawnOptions{.name = "spinner", .worker = 1, .pinned = true}, [] { spin(kSpin); });
  g.join(10s);
  ASSERT_TRUE(g.ready());
  EXPECT_EQ(c.count(), 0u);
  // Nobody joined without a deadline, nothing kicked it: the monitor thread
  // never woke (it was never even started).
  EXPECT_EQ(rt.core()->monitor().wakeups(), 0u);
}

TEST(BlockingDetector, OffTheMonitorSleepsBetweenDeadlockChecks) {
  // With a watched join (LoopExit), the monitor thread runs, but only on
  // kicks: once it has looked (and held off: a KeepAlive), it stays asleep.
  ScopedEnv env(kEnv, nullptr);
  green::Runtime rt({.workers = 2});
  auto keep = rt.keep_alive();
  std::atomic<bool> go{false};
  auto g = rt.spawn([&] { ASSERT_TRUE(green::testing::wait_until([&] { return go.load(); }, 10s)); });
  // A plain thread's join without a deadline: watched.
  std::thread joiner([&] { g.join(); });
  // The waiting green thread yields in a loop: it is never parked, so no
  // check is due; wait for the monitor to have started on the join's kick.
  ASSERT_TRUE(green::testing::wait_until([&] { return rt.core()->monitor().wakeups() >= 1; }, 10s));
  // Kicks come only when the last worker falls asleep, which a yielding
  // green thread prevents. So from now on no wake may happen at all.
  const std::uint64_t before = rt.core()->monitor().wakeups();
  std::this_thread::sleep_for(4 * kThreshold);  // an observation window, not a synchronisation
  const std::uint64_t after = rt.core()->monitor().wakeups();
  go = true;
  joiner.join();
  // One pacing wake may follow the first check; none beyond.
  EXPECT_LE(after - before, 1u) << "the monitor woke " << (after - before) << " times in "
                                << (4 * kThreshold).count() << " ms with nothing to do";
}

TEST(BlockingDetector, TheMonitorWakesPeriodicallyWhenOn) {
  // The counterpart of the test above: with the detector on the same
  // window holds about four wakes per threshold.
  ScopedEnv env(kEnv, nullptr);
  green::Runtime rt({.workers = 2, .max_blocking_time = kThreshold});
  ASSERT_TRUE(green::testing::wait_until([&] { return rt.core()->monitor().wakeups() >= 1; }, 10s));
  const std::uint64_t before = rt.core()->monitor().wakeups();
  std::this_thread::sleep_for(4 * kThreshold);  // an observation window
  EXPECT_GE(rt.core()->monitor().wakeups() - before, 8u);
}

TEST(BlockingDetector, ASecondStallIsASecondReport) {
  ScopedEnv env(kEnv, nullptr);
  Collector c;
  green::Runtime rt({.workers = 2, .max_blocking_time = kThreshold, .on_blocking = c.callback()});
  auto g = rt.spawn(green::SpawnOptions{.name = "twice", .worker = 0, .pinned = true}, [&] {
    spin(kSpin);
    // Wait until the first stall's report is in before the next: one
    // report per stall, and the stall ended here.
    ASSERT_TRUE(green::testing::wait_until([&] { return c.count() >= 1; }, 10s));
    green::sleep(1ms);  // parks: the worker switches, the stall is over
    spin(kSpin);
  });
  g.join(20s);
  ASSERT_TRUE(g.ready());
  let_detector_look(rt);
  const auto reports = c.all();
  ASSERT_EQ(reports.size(), 2u);
  for (const auto& r : reports) expect_spinner_report(r, 0, g.id(), "twice");
}

TEST(BlockingDetector, TwoStuckWorkersAreEachReported) {
  ScopedEnv env(kEnv, nullptr);
  Collector c;
  green::Runtime rt({.workers = 2, .max_blocking_time = kThreshold, .on_blocking = c.callback()});
  std::atomic<bool> stop{false};
  // Both spin until both are reported (bounded), so that the two stalls
  // overlap whatever the machine's load.
  auto a = rt.spawn(green::SpawnOptions{.name = "spin-a", .worker = 0, .pinned = true}, [&] { spin(10s, &stop); });
  auto b = rt.spawn(green::SpawnOptions{.name = "spin-b", .worker = 1, .pinned = true}, [&] { spin(10s, &stop); });
  const bool both = green::testing::wait_until([&] { return c.count() >= 2; }, 10s);
  stop = true;
  a.join(15s);
  b.join(15s);
  ASSERT_TRUE(both);
  let_detector_look(rt);
  auto reports = c.all();
  ASSERT_EQ(reports.size(), 2u);
  std::sort(reports.begin(), reports.end(), [](const auto& x, const auto& y) { return x.worker < y.worker; });
  expect_spinner_report(reports[0], 0, a.id(), "spin-a");
  expect_spinner_report(reports[1], 1, b.id(), "spin-b");
}

TEST(BlockingDetector, ShutdownWhileAGreenThreadSpinsEndsWhenItDoes) {
  ScopedEnv env(kEnv, nullptr);
  Collector c;
  std::optional<green::Runtime> rt;
  rt.emplace(green::RuntimeOptions{.workers = 2, .max_blocking_time = kThreshold, .on_blocking = c.callback()});
  std::atomic<bool> stop{false};
  rt->spawn(green::SpawnOptions{.name = "stubborn", .worker = 1, .pinned = true}, [&] { spin(10s, &stop); });
  ASSERT_TRUE(green::testing::wait_until([&] { return c.count() >= 1; }, 10s));
  // Shutdown kills it, but a kill takes effect only at a blocking call: the
  // green thread keeps shutdown waiting until it stops spinning, and the
  // monitor keeps looking meanwhile (no second report: the same stall).
  std::thread stopper([&] {
    std::this_thread::sleep_for(3 * kThreshold);  // the spin's natural end, not a synchronisation
    stop = true;
  });
  const auto t0 = Clock::now();
  rt->shutdown();
  const auto took = Clock::now() - t0;
  stopper.join();
  rt.reset();
  EXPECT_LT(took, 5s);
  EXPECT_EQ(c.count(), 1u);
}

TEST(BlockingDetector, OtherWorkersRunTheStuckWorkersQueue) {
  ScopedEnv env(kEnv, nullptr);
  Collector c;
  green::Runtime rt({.workers = 2, .max_blocking_time = kThreshold, .on_blocking = c.callback()});
  constexpr int kChildren = 200;  // past the spawn burst (64): most go to the deque, stealable
  std::atomic<int> ran{0}, ran_elsewhere{0};
  std::atomic<bool> served_while_stuck{false};
  auto parent = rt.spawn(green::SpawnOptions{.name = "parent", .worker = 0, .pinned = true}, [&] {
    std::vector<green::Greenlet<void>> kids;
    for (int i = 0; i < kChildren; ++i)
      kids.push_back(green::spawn([&] {
        if (green::this_worker() != 0) ran_elsewhere.fetch_add(1);
        ran.fetch_add(1);
      }));
    // Stuck (no switch) until the other worker has run the queued children
    // and the stall is reported; bounded.
    const auto end = Clock::now() + 10s;
    while (Clock::now() < end && (ran.load() < kChildren / 2 || c.count() < 1)) spin(1ms);
    served_while_stuck = ran.load() >= kChildren / 2;
    green::joinall(kids);
  });
  parent.join(20s);
  ASSERT_TRUE(parent.ready());
  EXPECT_TRUE(served_while_stuck) << ran.load() << " of " << kChildren << " children ran while worker 0 was stuck";
  EXPECT_GE(ran_elsewhere.load(), kChildren / 2);
  EXPECT_EQ(ran.load(), kChildren);
  ASSERT_GE(c.count(), 1u);
  expect_spinner_report(c.all()[0], 0, parent.id(), "parent", /*in_spinner=*/false);
}

TEST(BlockingDetector, OtherWorkersPollTheStuckWorkersHub) {
  ScopedEnv env(kEnv, nullptr);
  Collector c;
  green::Runtime rt({.workers = 2, .max_blocking_time = kThreshold, .on_blocking = c.callback()});
  int p[2];
  ASSERT_EQ(::pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
  std::atomic<int> waited_on{-1}, woke_on{-1};
  std::atomic<bool> stuck_done{false}, woke_while_stuck{false};
  // Registers the pipe with worker 0's hub (its first wait runs there), and
  // is not pinned, so it may wake anywhere.
  auto reader = rt.spawn(green::SpawnOptions{.name = "reader", .worker = 0}, [&] {
    waited_on = green::this_worker();
    green::wait_readable(p[0]);
    woke_on = green::this_worker();
    woke_while_stuck = !stuck_done.load();
  });
  ASSERT_TRUE(green::testing::wait_until([&] { return rt.dump().find("(reader): parked: wait_readable") !=
                                                      std::string::npos; },
                                         10s))
      << rt.dump();
  ASSERT_EQ(waited_on.load(), 0) << "the pipe must be registered with worker 0's hub";
  auto stuck = rt.spawn(green::SpawnOptions{.name = "stuck", .worker = 0, .pinned = true}, [&] {
    const auto end = Clock::now() + 10s;
    while (Clock::now() < end && woke_on.load() < 0) spin(1ms);
    stuck_done = true;
  });
  // Once worker 0 is reported stuck, the pipe becomes readable.
  ASSERT_TRUE(green::testing::wait_until([&] { return c.count() >= 1; }, 10s));
  ASSERT_EQ(::write(p[1], "x", 1), 1);
  reader.join(15s);
  stuck.join(15s);
  ::close(p[0]);
  ::close(p[1]);
  EXPECT_TRUE(woke_while_stuck);
  EXPECT_EQ(woke_on.load(), 1);
  ASSERT_GE(c.count(), 1u);
  expect_spinner_report(c.all()[0], 0, stuck.id(), "stuck", /*in_spinner=*/false);
}

TEST(BlockingDetector, WithoutACallbackTheReportGoesToStderr) {
  ScopedEnv env(kEnv, nullptr);
  ::testing::internal::CaptureStderr();
  std::string err;
  {
    green::Runtime rt({.workers = 2, .max_blocking_time = kThreshold});
    auto g = rt.spawn(green::SpawnOptions{.name = "loud", .worker = 1, .pinned = true}, [] { spin(kSpin); });
    g.join(10s);
    let_detector_look(rt);
    EXPECT_EQ(detector(rt)->reports(), 1u);
  }
  err = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("green: worker 1 has run green thread"), std::string::npos) << err;
  EXPECT_NE(err.find("(loud) for"), std::string::npos) << err;
  EXPECT_NE(err.find(kSpinnerName), std::string::npos) << err;
}

TEST(BlockingDetector, TheEnvironmentVariableTurnsItOn) {
  ScopedEnv env(kEnv, "100");
  Collector c;
  green::Runtime rt({.workers = 2, .on_blocking = c.callback()});
  EXPECT_EQ(rt.max_blocking_time(), kThreshold);
  auto g = rt.spawn(green::SpawnOptions{.name = "spinner", .worker = 1, .pinned = true}, [] { spin(kSpin); });
  g.join(10s);
  let_detector_look(rt);
  ASSERT_EQ(c.count(), 1u);
  expect_spinner_report(c.all()[0], 1, g.id(), "spinner");
}

TEST(BlockingDetector, TheOptionWinsOverTheEnvironmentVariable) {
  {
    ScopedEnv env(kEnv, "5000");
    Collector c;
    green::Runtime rt({.workers = 2, .max_blocking_time = kThreshold, .on_blocking = c.callback()});
    EXPECT_EQ(rt.max_blocking_time(), kThreshold);
    auto g = rt.spawn(green::SpawnOptions{.name = "spinner", .worker = 1, .pinned = true}, [] { spin(kSpin); });
    g.join(10s);
    let_detector_look(rt);
    ASSERT_EQ(c.count(), 1u);  // reported at 100 ms, not 5 s
    expect_spinner_report(c.all()[0], 1, g.id(), "spinner");
  }
  {
    // A malformed value is not even read when the option decides.
    ScopedEnv env(kEnv, "not-a-number-either");
    ::testing::internal::CaptureStderr();
    {
      green::Runtime rt({.workers = 1, .max_blocking_time = 250ms});
      EXPECT_EQ(rt.max_blocking_time(), 250ms);
    }
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(err.find(kEnv), std::string::npos) << err;
  }
}

TEST(BlockingDetector, AMalformedEnvironmentVariableLeavesItOffWithOneLine) {
  const std::vector<std::string> bad = {"abc", "0", "-5", "+5", "100ms", " 100", "100 ", "1.5",
                                        "3600001", "99999999999999999999999"};
  for (const std::string& value : bad) {
    SCOPED_TRACE("GREEN_MAX_BLOCKING_MS=\"" + value + "\"");
    ScopedEnv env(kEnv, value.c_str());
    ::testing::internal::CaptureStderr();
    {
      green::Runtime rt({.workers = 1});
      EXPECT_EQ(rt.max_blocking_time(), 0ms);
      EXPECT_EQ(detector(rt), nullptr);
      green::Runtime again({.workers = 1});  // the same value again: no second line
      EXPECT_EQ(again.max_blocking_time(), 0ms);
    }
    const std::string err = ::testing::internal::GetCapturedStderr();
    const std::string expected = std::string("green: ignoring ") + kEnv + "=\"" + value + "\"";
    const auto at = err.find(expected);
    EXPECT_NE(at, std::string::npos) << err;
    EXPECT_EQ(err.find(expected, at + 1), std::string::npos) << "warned twice: " << err;
    EXPECT_NE(err.find("the blocking detector stays off"), std::string::npos) << err;
  }
  {
    // Empty counts as unset: silent, off. The largest value is accepted.
    ScopedEnv env(kEnv, "");
    ::testing::internal::CaptureStderr();
    { EXPECT_EQ(green::Runtime({.workers = 1}).max_blocking_time(), 0ms); }
    EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
  }
  {
    ScopedEnv env(kEnv, "3600000");
    green::Runtime rt({.workers = 1});
    EXPECT_EQ(rt.max_blocking_time(), 3600000ms);
  }
}

TEST(BlockingDetector, NegativeOptionIsAnError) {
  EXPECT_THROW(green::Runtime({.workers = 1, .max_blocking_time = -1ms}), green::Error);
}

}  // namespace
