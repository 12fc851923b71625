// Kill: gevent's kill matrix and friends (gevent-behaviours cases 3-6, 18).
//
// Every wait here is bounded: victims sleep "forever" (10 s) and are killed;
// polling loops give up after a deadline and fail the test.
#include <green/green.hpp>
#include <gtest/gtest.h>

#include "test_util.hpp"

#include <atomic>
#include <chrono>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using green::testing::MyError;
using green::testing::wait_until;

using Clock = std::chrono::steady_clock;

// Sets a flag when destroyed: proves the victim's stack was unwound.
struct SetOnDestroy {
  std::atomic<bool>* flag;
  ~SetOnDestroy() { flag->store(true); }
};

// ---------------------------------------------------------------------------
// gevent case 3: the kill matrix.

enum class Phase { kNotYetRun, kSpawnLater, kSleeping };
enum class Exc { kGreenletExit, kMyError, kInt };

std::string describe(Phase p, Exc e, bool block, bool use_killall) {
  std::string s = p == Phase::kNotYetRun ? "not-yet-run" : p == Phase::kSpawnLater ? "spawn_later" : "sleeping";
  s += e == Exc::kGreenletExit ? "/GreenletExit" : e == Exc::kMyError ? "/MyError" : "/int";
  s += block ? "/block" : "/noblock";
  s += use_killall ? "/killall" : "/kill";
  return s;
}

std::exception_ptr make_exc(Exc e) {
  switch (e) {
    case Exc::kGreenletExit: return std::make_exception_ptr(green::GreenletExit());
    case Exc::kMyError: return std::make_exception_ptr(MyError(3));
    case Exc::kInt: return std::make_exception_ptr(42);
  }
  return nullptr;
}

void expect_killed_state(const green::Greenlet<void>& g, Exc e, const std::string& what) {
  SCOPED_TRACE(what);
  EXPECT_TRUE(g.ready());
  EXPECT_TRUE(g.dead());
  EXPECT_FALSE(static_cast<bool>(g));
  switch (e) {
    case Exc::kGreenletExit:
      EXPECT_TRUE(g.successful());
      EXPECT_TRUE(g.killed());
      EXPECT_EQ(g.exception(), nullptr);
      EXPECT_THROW(g.get(), green::GreenletExit);
      break;
    case Exc::kMyError:
      EXPECT_FALSE(g.successful());
      EXPECT_FALSE(g.killed());
      EXPECT_NE(g.exception(), nullptr);
      try {
        g.get();
        ADD_FAILURE() << "get() must rethrow MyError";
      } catch (const MyError& err) {
        EXPECT_EQ(err.code, 3);
      }
      break;
    case Exc::kInt:
      EXPECT_FALSE(g.successful());
      EXPECT_FALSE(g.killed());
      EXPECT_NE(g.exception(), nullptr);
      try {
        g.get();
        ADD_FAILURE() << "get() must rethrow 42";
      } catch (int v) {
        EXPECT_EQ(v, 42);
      }
      break;
  }
}

TEST(Kill, Matrix) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    for (Phase phase : {Phase::kNotYetRun, Phase::kSpawnLater, Phase::kSleeping}) {
      for (Exc exc : {Exc::kGreenletExit, Exc::kMyError, Exc::kInt}) {
        for (bool block : {true, false}) {
          for (bool use_killall : {false, true}) {
            const std::string what = describe(phase, exc, block, use_killall);
            SCOPED_TRACE(what);
            auto entered = std::make_shared<std::atomic<bool>>(false);
            auto side_effect = std::make_shared<std::atomic<bool>>(false);
            auto body = [entered, side_effect, phase] {
              entered->store(true);
              if (phase == Phase::kSleeping) green::sleep(10s);
              side_effect->store(true);
            };
            green::Greenlet<void> g;
            if (phase == Phase::kSpawnLater) {
              g = green::spawn_later(2s, body);
            } else {
              g = green::spawn(body);
            }
            auto links = std::make_shared<std::atomic<int>>(0);
            g.link([links](green::Greenlet<void>) { links->fetch_add(1); });
            if (phase == Phase::kSleeping) {
              ASSERT_TRUE(wait_until([&] { return entered->load(); }));
              ASSERT_FALSE(g.ready());
            }

            const auto t0 = Clock::now();
            if (use_killall) {
              std::vector<green::Greenlet<void>> v{g};
              const bool all = green::killall(v, make_exc(exc), block);
              if (block) {
                EXPECT_TRUE(all);
              }
            } else {
              const auto ep = make_exc(exc);
              const bool r = g.kill_ptr(ep, block, green::detail::kNoDeadline);
              if (block) {
                EXPECT_TRUE(r);
              }
            }
            if (!block) {
              EXPECT_TRUE(g.join(5s));
            }
            // A killed spawn_later is cancelled: nobody waits for its 2 s.
            EXPECT_LT(Clock::now() - t0, 1500ms);

            EXPECT_FALSE(side_effect->load()) << "the body's side effect must never happen";
            if (phase != Phase::kSleeping) {
              EXPECT_FALSE(entered->load()) << "body must not run";
            }
            EXPECT_EQ(links->load(), 1);
            expect_killed_state(g, exc, what);

            // A second kill is harmless and the state does not change, even
            // after the loop has spun.
            EXPECT_TRUE(g.kill(MyError(99)));
            EXPECT_TRUE(g.kill(false));
            green::yield();
            green::sleep(1ms);
            EXPECT_EQ(links->load(), 1);
            EXPECT_FALSE(side_effect->load());
            expect_killed_state(g, exc, what + " (after second kill)");
          }
        }
      }
    }
  });
}

TEST(Kill, BeforeFirstSwitch) {
  // gevent test__issue330: spawn two and kill them at once.
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::atomic<int> ran{0};
    auto a = green::spawn([&] { ++ran; });
    auto b = green::spawn([&] { ++ran; });
    a.kill(false);
    b.kill(false);
    EXPECT_TRUE(a.join(5s));
    EXPECT_TRUE(b.join(5s));
    EXPECT_EQ(ran.load(), 0);
    for (auto* g : {&a, &b}) {
      EXPECT_TRUE(g->killed());
      EXPECT_TRUE(g->successful());
      EXPECT_EQ(g->exception(), nullptr);
      EXPECT_THROW(g->get(), green::GreenletExit);
    }
  });
}

TEST(Kill, BeforeFirstSwitchBlocking) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::atomic<int> ran{0};
    auto a = green::spawn([&] { ++ran; });
    EXPECT_FALSE(a.started());
    EXPECT_TRUE(a.kill());
    EXPECT_EQ(ran.load(), 0);
    EXPECT_TRUE(a.killed());
  });
}

TEST(Kill, CustomExceptionOnSleepingVictim) {
  // gevent test__issue607.
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::atomic<bool> entered{false}, after{false};
    auto g = green::spawn([&] {
      entered = true;
      green::sleep(10s);
      after = true;
      return 1;
    });
    ASSERT_TRUE(wait_until([&] { return entered.load(); }));
    EXPECT_TRUE(g.kill(MyError(7)));
    EXPECT_FALSE(after.load());
    EXPECT_TRUE(g.ready());
    EXPECT_FALSE(g.successful());
    EXPECT_FALSE(g.killed());
    try {
      g.get();
      ADD_FAILURE() << "get() must rethrow MyError";
    } catch (const MyError& e) {
      EXPECT_EQ(e.code, 7);
    }
  });
}

TEST(Kill, GreenletExitOnSleepingVictim) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::atomic<bool> entered{false}, after{false};
    auto g = green::spawn([&] {
      entered = true;
      green::sleep(10s);
      after = true;
      return 1;
    });
    ASSERT_TRUE(wait_until([&] { return entered.load(); }));
    const auto t0 = Clock::now();
    EXPECT_TRUE(g.kill());
    EXPECT_LT(Clock::now() - t0, 2s);
    EXPECT_FALSE(after.load());
    EXPECT_TRUE(g.successful());
    EXPECT_TRUE(g.killed());
    EXPECT_EQ(g.exception(), nullptr);
    EXPECT_THROW(g.get(), green::GreenletExit);
  });
}

TEST(Kill, BlockingKillRunsTheVictimsHandlerFirst) {
  // gevent test__api.test_killing_dormant: the log is complete when kill returns.
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::vector<std::string> log;
    auto g = green::spawn([&] {
      try {
        log.push_back("start");
        green::sleep(10s);
      } catch (const green::GreenletExit&) {
        log.push_back("except");
      }
      log.push_back("finished");
    });
    ASSERT_TRUE(wait_until([&] { return !log.empty(); }));
    EXPECT_EQ(log, (std::vector<std::string>{"start"}));
    EXPECT_TRUE(g.kill());
    EXPECT_EQ(log, (std::vector<std::string>{"start", "except", "finished"}));
    // It swallowed GreenletExit and returned normally.
    EXPECT_TRUE(g.successful());
    EXPECT_FALSE(g.killed());
    EXPECT_NO_THROW(g.get());
  });
}

TEST(Kill, NonBlockingKillThenJoin) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::atomic<bool> entered{false}, cleaned{false};
    auto g = green::spawn([&] {
      entered = true;
      try {
        green::sleep(10s);
      } catch (const green::GreenletExit&) {
        cleaned = true;
        throw;
      }
    });
    ASSERT_TRUE(wait_until([&] { return entered.load(); }));
    // One worker: the victim cannot unwind before we block.
    EXPECT_FALSE(g.kill(false));
    EXPECT_FALSE(g.ready());
    EXPECT_FALSE(cleaned.load());
    EXPECT_TRUE(g.join(5s));
    EXPECT_TRUE(cleaned.load());
    EXPECT_TRUE(g.killed());
  });
}

TEST(Kill, WithTimeoutWhenTheVictimSwallowsGreenletExit) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::atomic<bool> entered{false}, caught{false};
    auto g = green::spawn([&] {
      entered = true;
      try {
        green::sleep(10s);
      } catch (const green::GreenletExit&) {
        caught = true;
        green::sleep(10s);  // keeps going; killed again below
      }
    });
    ASSERT_TRUE(wait_until([&] { return entered.load(); }));
    const auto t0 = Clock::now();
    EXPECT_FALSE(g.kill(green::GreenletExit(), 50ms));
    const auto waited = Clock::now() - t0;
    EXPECT_GE(waited, 50ms);
    EXPECT_LT(waited, 2s);
    EXPECT_TRUE(caught.load());
    EXPECT_FALSE(g.ready());
    // The first kill was delivered; a new one interrupts the handler's sleep.
    const auto t1 = Clock::now();
    EXPECT_TRUE(g.kill());
    EXPECT_LT(Clock::now() - t1, 2s);
    EXPECT_TRUE(g.killed());
  });
}

TEST(Kill, SecondKillWhilePendingIsIgnored) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::atomic<int> ran{0};
    auto g = green::spawn([&] { ++ran; });
    // Not yet run: both kills are pending at once; the first one wins.
    EXPECT_FALSE(g.kill(MyError(1), false));
    EXPECT_FALSE(g.kill(MyError(2), false));
    EXPECT_FALSE(g.kill(false));
    EXPECT_TRUE(g.join(5s));
    EXPECT_EQ(ran.load(), 0);
    try {
      g.get();
      ADD_FAILURE() << "get() must rethrow the first kill's exception";
    } catch (const MyError& e) {
      EXPECT_EQ(e.code, 1);
    }
  });
}

TEST(Kill, SecondKillWhilePendingOnASleeperIsIgnored) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::atomic<bool> entered{false};
    std::atomic<int> caught{0};
    auto g = green::spawn([&] {
      entered = true;
      try {
        green::sleep(10s);
      } catch (const MyError&) {
        ++caught;
      }
      // Not interrupted again: the second kill was ignored.
      green::sleep(1ms);
      return caught.load();
    });
    ASSERT_TRUE(wait_until([&] { return entered.load(); }));
    EXPECT_FALSE(g.kill(MyError(1), false));
    EXPECT_FALSE(g.kill(MyError(2), false));
    EXPECT_EQ(g.get(5s), 1);
  });
}

TEST(Kill, AlreadyDeadIsHarmless) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    int links = 0;
    auto g = green::spawn([] { return 5; });
    g.link([&](green::Greenlet<int>) { ++links; });
    EXPECT_EQ(g.get(), 5);
    EXPECT_TRUE(g.kill());
    EXPECT_TRUE(g.kill(MyError(1)));
    EXPECT_TRUE(g.kill(false));
    green::yield();
    EXPECT_EQ(links, 1);
    EXPECT_TRUE(g.successful());
    EXPECT_FALSE(g.killed());
    EXPECT_EQ(g.exception(), nullptr);
    EXPECT_EQ(g.get(), 5);
  });
}

TEST(Kill, YieldingVictim) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::atomic<bool> entered{false}, escaped{false};
    std::atomic<int> spins{0};
    auto g = green::spawn([&] {
      entered = true;
      const auto end = Clock::now() + 5s;
      while (Clock::now() < end) {
        ++spins;
        green::yield();
      }
      escaped = true;
    });
    ASSERT_TRUE(wait_until([&] { return entered.load() && spins.load() > 3; }));
    EXPECT_TRUE(g.kill());
    EXPECT_FALSE(escaped.load());
    EXPECT_TRUE(g.killed());
  });
}

TEST(Kill, VictimJoiningAnotherGreenThread) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::atomic<bool> entered{false}, after{false};
    auto sleeper = green::spawn([] { green::sleep(10s); });
    auto victim = green::spawn([&, sleeper] {
      entered = true;
      sleeper.join();
      after = true;
    });
    ASSERT_TRUE(wait_until([&] { return entered.load(); }));
    EXPECT_TRUE(victim.kill());
    EXPECT_TRUE(victim.killed());
    EXPECT_FALSE(after.load());
    // Killing the joiner does not touch the green thread it was joining.
    EXPECT_FALSE(sleeper.ready());
    EXPECT_TRUE(sleeper.kill());
    EXPECT_TRUE(sleeper.killed());
  });
}

TEST(Kill, DestructorsOnTheVictimsStackRun) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    std::atomic<bool> entered{false}, destroyed{false};
    auto g = green::spawn([&] {
      SetOnDestroy guard{&destroyed};
      entered = true;
      green::sleep(10s);
    });
    ASSERT_TRUE(wait_until([&] { return entered.load(); }));
    EXPECT_FALSE(destroyed.load());
    EXPECT_TRUE(g.kill());
    EXPECT_TRUE(destroyed.load());
  });
}

TEST(Kill, KillSelfThrowsAtOnce) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    auto self = std::make_shared<green::Greenlet<int>>();
    auto go = std::make_shared<std::atomic<bool>>(false);
    auto g = green::spawn([self, go] {
      while (!go->load()) green::yield();
      try {
        self->kill(MyError(4), false);
        ADD_FAILURE() << "kill of self must throw at once";
      } catch (const MyError& e) {
        EXPECT_EQ(e.code, 4);
      }
      return 1;
    });
    *self = g;
    go->store(true);
    EXPECT_EQ(g.get(5s), 1);
    *self = green::Greenlet<int>();  // break the handle <-> closure cycle
  });
}

TEST(Kill, FromAnotherWorker) {
  green::Runtime rt({.workers = 2});
  std::atomic<bool> entered{false}, after{false};
  std::atomic<int> victim_worker{-1};
  auto victim = rt.spawn({.worker = 1, .pinned = true}, [&] {
    victim_worker = green::this_worker();
    entered = true;
    green::sleep(10s);
    after = true;
  });
  auto killer = rt.spawn({.worker = 0, .pinned = true}, [&] {
    EXPECT_TRUE(wait_until([&] { return entered.load(); }));
    EXPECT_EQ(green::this_worker(), 0);
    const auto t0 = Clock::now();
    const bool done = victim.kill();
    EXPECT_LT(Clock::now() - t0, 2s);
    return done;
  });
  EXPECT_TRUE(killer.get());
  EXPECT_EQ(victim_worker.load(), 1);
  EXPECT_TRUE(victim.killed());
  EXPECT_FALSE(after.load());
}

TEST(Kill, YieldingVictimOnAnotherWorker) {
  green::Runtime rt({.workers = 2});
  std::atomic<bool> entered{false}, escaped{false};
  auto victim = rt.spawn({.worker = 1, .pinned = true}, [&] {
    entered = true;
    const auto end = Clock::now() + 5s;
    while (Clock::now() < end) green::yield();
    escaped = true;
  });
  auto killer = rt.spawn({.worker = 0, .pinned = true}, [&] {
    EXPECT_TRUE(wait_until([&] { return entered.load(); }));
    return victim.kill();
  });
  EXPECT_TRUE(killer.get());
  EXPECT_TRUE(victim.killed());
  EXPECT_FALSE(escaped.load());
}

TEST(Kill, FromAPlainThread) {
  green::Runtime rt({.workers = 2});
  std::atomic<bool> entered{false}, destroyed{false};
  auto victim = rt.spawn([&] {
    SetOnDestroy guard{&destroyed};
    entered = true;
    green::sleep(10s);
  });
  ASSERT_TRUE(wait_until([&] { return entered.load(); }));
  bool result = false;
  std::thread killer([&] { result = victim.kill(MyError(8)); });
  killer.join();
  EXPECT_TRUE(result);
  EXPECT_TRUE(destroyed.load());
  EXPECT_FALSE(victim.successful());
  EXPECT_THROW(victim.get(), MyError);
}

TEST(Kill, KilledBeforeStartNeverRunsButLinkFiresOnce) {
  green::Runtime rt({.workers = 2});
  std::atomic<int> ran{0}, links{0};
  // Keep both workers busy so the victim stays queued while we kill it.
  std::atomic<bool> stop{false};
  auto busy0 = rt.spawn({.worker = 0, .pinned = true}, [&] { while (!stop) green::yield(); });
  auto busy1 = rt.spawn({.worker = 1, .pinned = true}, [&] { while (!stop) green::yield(); });
  auto g = rt.spawn_later(10s, [&] { ++ran; });
  g.link([&](green::Greenlet<void>) { ++links; });
  const auto t0 = Clock::now();
  EXPECT_TRUE(g.kill());
  EXPECT_LT(Clock::now() - t0, 2s);
  stop = true;
  busy0.get();
  busy1.get();
  EXPECT_EQ(ran.load(), 0);
  EXPECT_EQ(links.load(), 1);
  EXPECT_TRUE(g.killed());
}

// ---------------------------------------------------------------------------
// killall

TEST(Kill, KillallBlocking) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    std::atomic<int> entered{0}, after{0};
    std::vector<green::Greenlet<void>> gs;
    for (int i = 0; i < 4; ++i)
      gs.push_back(green::spawn([&] {
        ++entered;
        green::sleep(10s);
        ++after;
      }));
    ASSERT_TRUE(wait_until([&] { return entered.load() == 4; }));
    EXPECT_TRUE(green::killall(gs));
    for (auto& g : gs) EXPECT_TRUE(g.killed());
    EXPECT_EQ(after.load(), 0);
  });
}

TEST(Kill, KillallNonBlocking) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::atomic<int> entered{0}, cleaned{0};
    std::vector<green::Greenlet<void>> gs;
    for (int i = 0; i < 3; ++i)
      gs.push_back(green::spawn([&] {
        ++entered;
        try {
          green::sleep(10s);
        } catch (const green::GreenletExit&) {
          ++cleaned;
          throw;
        }
      }));
    ASSERT_TRUE(wait_until([&] { return entered.load() == 3; }));
    // One worker: nobody has unwound yet when killall returns.
    EXPECT_FALSE(green::killall(gs, green::GreenletExit(), false));
    EXPECT_EQ(cleaned.load(), 0);
    EXPECT_EQ(green::joinall(gs, 5s), 3u);
    EXPECT_EQ(cleaned.load(), 3);
    for (auto& g : gs) EXPECT_TRUE(g.killed());
  });
}

TEST(Kill, KillallWithCustomException) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    std::vector<green::Greenlet<int>> gs;
    for (int i = 0; i < 3; ++i)
      gs.push_back(green::spawn([] {
        green::sleep(10s);
        return 1;
      }));
    EXPECT_TRUE(green::killall(gs, MyError(5)));
    for (auto& g : gs) {
      EXPECT_FALSE(g.successful());
      EXPECT_THROW(g.get(), MyError);
    }
  });
}

TEST(Kill, KillallTimeoutWhenVictimsSwallowTheKill) {
  // gevent test_killall_iterable_argument_timeout (started victims).
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::atomic<int> entered{0}, caught{0};
    std::vector<green::Greenlet<void>> gs;
    for (int i = 0; i < 3; ++i)
      gs.push_back(green::spawn([&] {
        ++entered;
        try {
          green::sleep(10s);
        } catch (const green::GreenletExit&) {
          ++caught;
          green::sleep(3s);  // swallows the kill and keeps going
        }
      }));
    ASSERT_TRUE(wait_until([&] { return entered.load() == 3; }));
    const auto t0 = Clock::now();
    EXPECT_FALSE(green::killall(gs, green::GreenletExit(), true, 200ms));
    const auto waited = Clock::now() - t0;
    EXPECT_GE(waited, 200ms);
    EXPECT_LT(waited, 2s);
    EXPECT_EQ(caught.load(), 3);
    for (auto& g : gs) EXPECT_FALSE(g.ready());
    // Kill again: this time the handlers' sleeps are interrupted.
    EXPECT_TRUE(green::killall(gs, green::GreenletExit(), true, 5s));
    for (auto& g : gs) EXPECT_TRUE(g.killed());
  });
}

TEST(Kill, KillallTimeoutWhenVictimsHadNotStarted) {
  // gevent test_killall_iterable_argument_timeout (not started): clean finish.
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::atomic<int> entered{0};
    std::vector<green::Greenlet<void>> gs;
    for (int i = 0; i < 3; ++i)
      gs.push_back(green::spawn([&] {
        ++entered;
        try {
          green::sleep(10s);
        } catch (const green::GreenletExit&) {
          green::sleep(3s);
        }
      }));
    const auto t0 = Clock::now();
    EXPECT_TRUE(green::killall(gs, green::GreenletExit(), true, 200ms));
    EXPECT_LT(Clock::now() - t0, 200ms + 1800ms);
    EXPECT_EQ(entered.load(), 0);
    for (auto& g : gs) EXPECT_TRUE(g.killed());
  });
}

TEST(Kill, KillallOnEmptyAndDeadRanges) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::vector<green::Greenlet<int>> none;
    EXPECT_TRUE(green::killall(none));
    EXPECT_TRUE(green::killall(none, green::GreenletExit(), false));
    std::vector<green::Greenlet<int>> dead{green::spawn([] { return 1; }), green::spawn([] { return 2; })};
    EXPECT_EQ(green::joinall(dead), 2u);
    EXPECT_TRUE(green::killall(dead));
    EXPECT_TRUE(green::killall(dead, green::GreenletExit(), false));
    EXPECT_EQ(dead[0].get(), 1);
    EXPECT_EQ(dead[1].get(), 2);
  });
}

TEST(Kill, KillallKillsADuplicateOnlyOnce) {
  // killall's header: "Each is killed once even if it appears twice."
  // The victim swallows the first GreenletExit and then sleeps briefly; a
  // second kill would interrupt that sleep. The killer runs on another worker
  // than the victim, so the victim can consume the first kill while killall
  // is still walking the range (many live fillers in between widen that gap).
  green::Runtime rt({.workers = 2});
  for (int round = 0; round < 10; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::atomic<bool> entered{false};
    std::atomic<int> kills_seen{0};
    auto victim = rt.spawn({.worker = 1, .pinned = true}, [&] {
      entered = true;
      for (int i = 0; i < 2; ++i) {
        try {
          green::sleep(i == 0 ? 10s : 50ms);
        } catch (const green::GreenletExit&) {
          ++kills_seen;
        }
      }
    });
    std::vector<green::Greenlet<void>> fillers;
    for (int i = 0; i < 200; ++i)
      fillers.push_back(rt.spawn({.worker = 0, .pinned = true}, [] { green::sleep(10s); }));
    ASSERT_TRUE(wait_until([&] { return entered.load(); }));
    auto killer = rt.spawn({.worker = 0, .pinned = true}, [&] {
      std::vector<green::Greenlet<void>> all{victim};
      all.insert(all.end(), fillers.begin(), fillers.end());
      all.push_back(victim);
      return green::killall(all, green::GreenletExit(), true, 5s);
    });
    EXPECT_TRUE(killer.get());
    EXPECT_TRUE(victim.join(5s));
    EXPECT_EQ(kills_seen.load(), 1) << "a duplicate in killall was killed twice";
    EXPECT_TRUE(green::killall(fillers, green::GreenletExit(), true, 5s));
  }
}

}  // namespace
