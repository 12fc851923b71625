// Event (gevent-behaviours cases 33, 34): set-then-clear wakes everybody,
// timed waits, waits on a set event, waiters on other workers and on plain
// threads, kill and Timeout while waiting, and a lost-wake-up stress.
//
// "X is parked" is observed through Runtime::dump() ("parked: Event.wait").
// No test sleeps to synchronise; timed assertions check timeouts only.
#include <green/green.hpp>
#include <green/sync.hpp>
#include <gtest/gtest.h>

#include "test_util.hpp"
#include "parked.hpp"
#include "test_env.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
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

// Ping-pong rounds (each round: two sets, two waits that usually park, two
// clears, across workers), scaled down under sanitizers.
constexpr int kRounds = per_build(20'000, 5'000, 1'000);

// parked.hpp's wait_parked gets a longer bound here, for the loaded
// sanitizer runs.
constexpr auto kParkLimit = 20s;

// ---------------------------------------------------------------------------
// Case 33: 1000 waiters; set(); clear() with no yield in between: all 1000
// finish, and their wait() returns true although the flag is clear again.

void set_then_clear_wakes_all(unsigned workers) {
  constexpr int kWaiters = 1000;
  green::Event ev;
  std::atomic<int> woke_true{0};
  green::Runtime rt({.workers = workers});
  rt.run([&] {
    std::vector<green::Greenlet<void>> waiters;
    for (int i = 0; i < kWaiters; ++i) {
      waiters.push_back(green::spawn([&, i] {
        // Half wait without a timeout, half with a long one.
        const bool r = i % 2 == 0 ? ev.wait() : ev.wait(30s);
        if (r) woke_true.fetch_add(1);
      }));
    }
    ASSERT_TRUE(wait_parked(rt, "Event.wait", kWaiters, kParkLimit));
    ev.set();
    ev.clear();
    EXPECT_FALSE(ev.is_set());
    EXPECT_EQ(green::joinall(waiters, 30s), waiters.size());
    EXPECT_EQ(woke_true.load(), kWaiters);
  });
}

TEST(Event, SetThenClearWakesAll1000OneWorker) { set_then_clear_wakes_all(1); }
TEST(Event, SetThenClearWakesAll1000TwoWorkers) { set_then_clear_wakes_all(2); }

// ---------------------------------------------------------------------------
// Case 34 and timed waits.

TEST(Event, TimedWaitReturnsFalseAfterAboutT) {
  green::Event ev;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    const auto t0 = Clock::now();
    EXPECT_FALSE(ev.wait(40ms));
    expect_about(Clock::now() - t0, 40ms);
    EXPECT_FALSE(ev.is_set());
  });
  const auto t0 = Clock::now();
  EXPECT_FALSE(ev.wait(40ms));  // a plain thread
  expect_about(Clock::now() - t0, 40ms);
}

// gevent's test_gevent_wait_twice_when_already_set: waits on a set event
// return at once, as often as asked, and do not switch. On one worker a
// green thread spawned just before cannot have run unless wait() switched.
TEST(Event, WaitOnASetEventReturnsAtOnceWithoutSwitching) {
  green::Event ev;
  green::Runtime rt({.workers = 1});
  rt.run([&] {
    ev.set();
    EXPECT_TRUE(ev.is_set());
    EXPECT_TRUE(ev.ready());
    std::atomic<bool> ran{false};
    auto g = green::spawn([&] { ran = true; });
    EXPECT_TRUE(ev.wait());
    EXPECT_TRUE(ev.wait());
    EXPECT_TRUE(ev.wait(0ms));
    EXPECT_TRUE(ev.wait(10s));
    EXPECT_FALSE(ran.load()) << "wait() on a set event must not switch";
    ev.set();  // setting a set event is harmless
    EXPECT_TRUE(ev.wait());
    g.join();
  });
  EXPECT_TRUE(ev.wait());  // a plain thread
  EXPECT_TRUE(ev.wait(0ms));
}

// gevent #771 (test_set_during_wait): after clear(), a timed wait must not
// report the event as ready.
TEST(Event, AfterClearATimedWaitIsNotReady) {
  green::Event ev;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    ev.set();
    ev.clear();
    EXPECT_FALSE(ev.is_set());
    EXPECT_FALSE(ev.ready());
    const auto t0 = Clock::now();
    EXPECT_FALSE(ev.wait(30ms));
    expect_about(Clock::now() - t0, 30ms);
    EXPECT_FALSE(ev.wait(0ms));
    // A set during a timed wait is seen.
    auto waiter = green::spawn([&] { return ev.wait(10s); });
    ASSERT_TRUE(wait_parked(rt, "Event.wait", 1, kParkLimit));
    ev.set();
    EXPECT_TRUE(waiter.get(5s));
  });
}

// Case 34 (test_wait_while_notifying): waiters 1 and 2 block, the event is
// set, and the setter then waits itself (3).
// gevent: [1, 2, 3] (the setter's wait on a ready event first runs the
// pending notifications).
// green:  [3, 1, 2]. set() makes the waiters runnable without switching,
// and wait() on a set event returns without switching, so on one worker the
// setter records 3 before either waiter runs; the two woken then run in the
// order they were woken (test_wake_order.cpp).
TEST(Event, WaitWhileNotifying) {
  green::Event ev;
  std::vector<int> order;
  green::Runtime rt({.workers = 1});
  rt.run([&] {
    auto w1 = green::spawn([&] {
      ev.wait();
      order.push_back(1);
    });
    ASSERT_TRUE(wait_parked(rt, "Event.wait", 1, kParkLimit));
    auto w2 = green::spawn([&] {
      ev.wait();
      order.push_back(2);
    });
    ASSERT_TRUE(wait_parked(rt, "Event.wait", 2, kParkLimit));
    ev.set();
    EXPECT_TRUE(ev.wait());
    order.push_back(3);
    EXPECT_TRUE(w1.join(5s));
    EXPECT_TRUE(w2.join(5s));
    EXPECT_EQ(order, (std::vector<int>{3, 1, 2}));
  });
}

// ---------------------------------------------------------------------------
// Other workers and plain threads

void waiters_woken_on_other_workers(unsigned workers) {
  green::Event ev;
  green::Runtime rt({.workers = workers});
  rt.run([&] {
    std::vector<green::Greenlet<int>> waiters;
    for (unsigned i = 0; i < 2 * workers; ++i) {
      const unsigned w = i % workers;
      waiters.push_back(green::spawn(on_worker(w), [&, w] {
        EXPECT_EQ(green::this_worker(), static_cast<int>(w));
        EXPECT_TRUE(ev.wait(30s));
        return green::this_worker();
      }));
    }
    ASSERT_TRUE(wait_parked(rt, "Event.wait", waiters.size(), kParkLimit));
    // Set from a green thread pinned on worker 0.
    green::spawn(on_worker(0), [&] { ev.set(); }).join();
    for (unsigned i = 0; i < waiters.size(); ++i) EXPECT_EQ(waiters[i].get(5s), static_cast<int>(i % workers));
  });
}

TEST(Event, WaitersWokenOnOtherWorkers2) { waiters_woken_on_other_workers(2); }
TEST(Event, WaitersWokenOnOtherWorkersAll) {
  waiters_woken_on_other_workers(std::max(2u, std::thread::hardware_concurrency()));
}

TEST(Event, GreenThreadWaitsPlainThreadSets) {
  green::Event ev;
  green::Runtime rt({.workers = 2});
  auto waiter = rt.spawn([&] { return ev.wait(30s); });
  ASSERT_TRUE(wait_parked(rt, "Event.wait", 1, kParkLimit));
  std::thread plain([&] { ev.set(); });
  plain.join();
  EXPECT_TRUE(waiter.get(5s));
}

TEST(Event, PlainThreadWaitsGreenThreadSets) {
  green::Event ev;
  green::Runtime rt({.workers = 2});
  std::atomic<bool> plain_woke{false};
  std::thread plain([&] {
    EXPECT_TRUE(ev.wait(30s));
    plain_woke = true;
  });
  rt.run([&] {
    EXPECT_FALSE(plain_woke.load());
    ev.set();
  });
  plain.join();
  EXPECT_TRUE(plain_woke.load());
}

// Plain thread and green thread take turns through two events, so most
// waits on both sides really block: each side waits for the other's set().
void ping_pong(green::Event& ping, green::Event& pong, int rounds, bool& ok) {
  ok = false;
  for (int i = 0; i < rounds; ++i) {
    ping.set();
    if (!pong.wait(10s)) return;  // a lost wake-up
    pong.clear();
  }
  ok = true;
}
void pong_ping(green::Event& ping, green::Event& pong, int rounds, bool& ok) {
  ok = false;
  for (int i = 0; i < rounds; ++i) {
    if (!ping.wait(10s)) return;
    ping.clear();
    pong.set();
  }
  ok = true;
}

TEST(Event, PlainAndGreenThreadPingPong) {
  green::Event ping, pong;
  bool plain_ok = false, green_ok = false;
  green::Runtime rt({.workers = 2});
  std::thread plain([&] { ping_pong(ping, pong, kRounds / 10, plain_ok); });
  rt.run([&] { pong_ping(ping, pong, kRounds / 10, green_ok); });
  plain.join();
  EXPECT_TRUE(plain_ok);
  EXPECT_TRUE(green_ok);
}

TEST(EventStress, CrossWorkerPingPong) {
  green::Event ping, pong;
  bool a_ok = false, b_ok = false;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    auto a = green::spawn(on_worker(0), [&] { ping_pong(ping, pong, kRounds, a_ok); });
    auto b = green::spawn(on_worker(1), [&] { pong_ping(ping, pong, kRounds, b_ok); });
    EXPECT_TRUE(a.join(100s));
    EXPECT_TRUE(b.join(100s));
  });
  EXPECT_TRUE(a_ok);
  EXPECT_TRUE(b_ok);
}

// Many waiters per round, set from the other worker, then cleared for the
// next round once all have woken.
TEST(EventStress, ManyWaitersManyRounds) {
  constexpr int kWaiters = 8;
  const int rounds = kRounds / 20;
  green::Event go;
  std::vector<std::unique_ptr<green::Event>> done;
  for (int i = 0; i < kWaiters; ++i) done.push_back(std::make_unique<green::Event>());
  std::atomic<int> failures{0};
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    // Round r: waiters wait for go, then set their done event; the setter
    // waits for all done events, clears them and go, and starts the next.
    std::atomic<int> round{0};
    std::vector<green::Greenlet<void>> waiters;
    for (int i = 0; i < kWaiters; ++i) {
      waiters.push_back(green::spawn(on_worker(1), [&, i] {
        for (int r = 0; r < rounds; ++r) {
          // Wait for the setter to open round r (go set while round == r).
          for (;;) {
            if (!go.wait(10s)) {
              failures.fetch_add(1);
              return;
            }
            if (round.load() == r) break;
            green::yield();  // go still set from the last round: not ours yet
          }
          done[static_cast<std::size_t>(i)]->set();
          while (round.load() == r) {
            // Until the setter moves on, do not look at go again.
            green::yield();
          }
        }
      }));
    }
    auto setter = green::spawn(on_worker(0), [&] {
      for (int r = 0; r < rounds; ++r) {
        go.set();
        for (auto& d : done) {
          if (!d->wait(10s)) {
            failures.fetch_add(1);
            return;
          }
          d->clear();
        }
        go.clear();
        round.store(r + 1);
      }
    });
    EXPECT_TRUE(setter.join(100s));
    EXPECT_EQ(green::joinall(waiters, 100s), waiters.size());
  });
  EXPECT_EQ(failures.load(), 0);
}

// ---------------------------------------------------------------------------
// kill and Timeout while waiting

TEST(Event, KillWhileWaiting) {
  green::Event ev;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    std::atomic<bool> returned{false};
    auto victim = green::spawn([&] {
      ev.wait();
      returned = true;
    });
    auto custom = green::spawn([&] {
      try {
        ev.wait();
      } catch (const MyError& e) {
        return e.code;
      }
      return -1;
    });
    auto survivor = green::spawn([&] { return ev.wait(30s); });
    ASSERT_TRUE(wait_parked(rt, "Event.wait", 3, kParkLimit));
    EXPECT_TRUE(victim.kill());
    EXPECT_TRUE(victim.killed());
    EXPECT_FALSE(returned.load());
    custom.kill(MyError(8));
    EXPECT_EQ(custom.get(5s), 8);
    EXPECT_EQ(parked_on(rt, "Event.wait"), 1u);
    ev.set();
    EXPECT_TRUE(survivor.get(5s));
  });
}

TEST(Event, TimeoutScopeInterruptsWait) {
  green::Event ev;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    const auto t0 = Clock::now();
    green::Timeout t(20ms);
    try {
      ev.wait(10s);
      ADD_FAILURE() << "wait must be interrupted";
    } catch (const green::TimeoutError& e) {
      EXPECT_TRUE(e.is(t));
    }
    const auto took = Clock::now() - t0;
    EXPECT_GE(took, 15ms);
    EXPECT_LT(took, 2s);
    // The waiter left the list: a later set() and wait() work as usual.
    ev.set();
    EXPECT_TRUE(ev.wait());
  });
}

}  // namespace
