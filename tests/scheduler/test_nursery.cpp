// green::Nursery: green threads spawned inside a scope end with it.
//
// Every wait is bounded: "forever" is 10 s of sleep, far past any passing
// run, and wait_until gives up after its limit.
#include <green/green.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <optional>
#include <vector>

#include "test_util.hpp"

using namespace std::chrono_literals;

namespace {

using green::testing::wait_until;

constexpr auto kForever = 10s;

// Counts its green thread's way out: killed (GreenletExit) or finished.
struct Outcome {
  std::atomic<int> started{0};
  std::atomic<int> killed{0};
  std::atomic<int> finished{0};
  // A green thread killed before its first run never runs its body: the
  // tests that count kills wait for the bodies to start first.
  bool wait_started(int n) const { return wait_until([&] { return started.load() == n; }); }
};

void sleep_forever(Outcome& o) {
  o.started.fetch_add(1);
  try {
    green::sleep(kForever);
    o.finished.fetch_add(1);
  } catch (const green::GreenletExit&) {
    o.killed.fetch_add(1);
    throw;
  }
}

TEST(Nursery, MembersStillRunningAreKilledAndWaitedForAtTheEndOfTheScope) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Outcome o;
    std::vector<green::Greenlet<void>> kids;
    {
      green::Nursery n;
      for (int i = 0; i < 4; ++i) kids.push_back(green::spawn({.worker = i % 2}, [&o] { sleep_forever(o); }));
      EXPECT_EQ(n.size(), 4u);
      ASSERT_TRUE(o.wait_started(4));
    }
    // The destructor returned: every member has ended, killed.
    EXPECT_EQ(o.killed.load(), 4);
    EXPECT_EQ(o.finished.load(), 0);
    for (auto& k : kids) EXPECT_TRUE(k.killed());
  });
}

TEST(Nursery, MembersThatEndedLeaveAndTheRestAreUntouched) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Nursery n;
    auto quick = green::spawn([] { return 7; });
    EXPECT_EQ(quick.get(), 7);
    EXPECT_TRUE(wait_until([&] { return n.size() == 0; }));
    EXPECT_TRUE(quick.successful());
  });
}

TEST(Nursery, GrandchildrenAreMembersToo) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Outcome o;
    std::atomic<bool> grandchild_started{false};
    {
      green::Nursery n;
      green::spawn([&] {
        green::spawn([&] {
          grandchild_started = true;
          sleep_forever(o);
        });
        sleep_forever(o);
      });
      ASSERT_TRUE(wait_until([&] { return grandchild_started.load(); }));
      EXPECT_EQ(n.size(), 2u);
    }
    EXPECT_EQ(o.killed.load(), 2);
  });
}

TEST(Nursery, DetachedAndRuntimeSpawnsAreNotMembers) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    Outcome o;
    std::optional<green::Greenlet<void>> detached, from_runtime;
    {
      green::Nursery n;
      detached = green::spawn({.detached = true}, [&o] { sleep_forever(o); });
      from_runtime = rt.spawn([&o] { sleep_forever(o); });
      EXPECT_EQ(n.size(), 0u);
      ASSERT_TRUE(o.wait_started(2));
    }
    EXPECT_FALSE(detached->ready());
    EXPECT_FALSE(from_runtime->ready());
    detached->kill();
    from_runtime->kill();
    EXPECT_EQ(o.killed.load(), 2);
  });
}

TEST(Nursery, LeftByAnExceptionStillEndsItsMembersFirst) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Outcome o;
    std::atomic<bool> member_running{false};
    try {
      green::Nursery n;
      green::spawn([&] {
        member_running = true;
        sleep_forever(o);
      });
      ASSERT_TRUE(wait_until([&] { return member_running.load(); }));
      throw green::testing::MyError(3);
    } catch (const green::testing::MyError& e) {
      EXPECT_EQ(e.code, 3);
      EXPECT_EQ(o.killed.load(), 1) << "the member must have ended before the handler runs";
    }
  });
}

// The owner is killed while it waits inside the scope: the kill unwinds it,
// the scope kills its member on the way out, and the owner ends killed.
// The member runs on the other worker, so its kill is a cross-worker wake.
TEST(Nursery, OwnerKilledWhileBlockedTakesItsMembersWithIt) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Outcome o;
    std::atomic<bool> member_running{false};
    auto owner = green::spawn({.worker = 0}, [&] {
      green::Nursery n;
      green::spawn({.worker = 1}, [&] {
        member_running = true;
        sleep_forever(o);
      });
      green::sleep(kForever);
    });
    ASSERT_TRUE(wait_until([&] { return member_running.load(); }));
    owner.kill();
    EXPECT_TRUE(owner.killed());
    EXPECT_EQ(o.killed.load(), 1);
  });
}

// A member that swallows its GreenletExit and blocks again is killed again;
// a kill of the owner that comes while the scope closes does not cut the
// wait short, and is raised at the owner's next blocking call instead.
TEST(Nursery, StubbornMemberIsKilledAgainAndTheOwnersKillIsKept) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    std::atomic<int> swallowed{0};
    std::atomic<bool> member_running{false}, scope_closed{false};
    std::atomic<bool> second_kill_seen{false};
    auto owner = green::spawn([&] {
      {
        green::Nursery n;
        green::spawn([&] {
          member_running = true;
          try {
            green::sleep(kForever);
          } catch (const green::GreenletExit&) {
            swallowed.fetch_add(1);
          }
          green::sleep(kForever);  // killed again by the closing scope
        });
        ASSERT_TRUE(wait_until([&] { return member_running.load(); }));
      }
      scope_closed = true;
      try {
        green::sleep(kForever);
      } catch (const green::GreenletExit&) {
        second_kill_seen = true;
        throw;
      }
    });
    // The owner is closing its scope (the member swallowed the first kill)
    // when it is killed itself.
    ASSERT_TRUE(wait_until([&] { return swallowed.load() == 1; }));
    owner.kill(false);
    ASSERT_TRUE(owner.join(20s));
    EXPECT_TRUE(scope_closed.load()) << "the owner's kill cut the scope's wait short";
    EXPECT_TRUE(second_kill_seen.load()) << "the owner's kill was lost";
    EXPECT_TRUE(owner.killed());
  });
}

TEST(Nursery, NestedScopesCloseInnermostFirst) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    Outcome outer_o, inner_o;
    {
      green::Nursery outer;
      green::spawn([&] { sleep_forever(outer_o); });
      {
        green::Nursery inner;
        green::spawn([&] { sleep_forever(inner_o); });
        EXPECT_EQ(inner.size(), 1u);
        EXPECT_EQ(outer.size(), 1u);
        ASSERT_TRUE(outer_o.wait_started(1));
        ASSERT_TRUE(inner_o.wait_started(1));
      }
      EXPECT_EQ(inner_o.killed.load(), 1);
      EXPECT_EQ(outer_o.killed.load(), 0);
      // Spawns after the inner scope belong to the outer one again.
      green::spawn([&] { sleep_forever(outer_o); });
      EXPECT_EQ(outer.size(), 2u);
      ASSERT_TRUE(outer_o.wait_started(2));
    }
    EXPECT_EQ(outer_o.killed.load(), 2);
  });
}

TEST(Nursery, OutsideAGreenThreadIsAnError) {
  EXPECT_THROW(green::Nursery(), green::Error);
}

// Many members on both workers, each spawning one more from its
// GreenletExit handler while the scope closes: the scope waits for those
// too (killing them, started or not), so none is left when it is gone.
TEST(Nursery, SpawnsDuringTheCloseAreWaitedForToo) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    std::atomic<int> started{0};
    std::mutex late_mu;  // held for a push_back only, never across a switch
    std::vector<green::Greenlet<void>> late;
    const int members = 200;
    {
      green::Nursery n;
      for (int i = 0; i < members; ++i) {
        green::spawn({.worker = i % 2}, [&] {
          started.fetch_add(1);
          try {
            green::sleep(kForever);
          } catch (const green::GreenletExit&) {
            auto child = green::spawn([] { green::sleep(kForever); });
            std::lock_guard g(late_mu);
            late.push_back(child);
            throw;
          }
        });
      }
      ASSERT_TRUE(wait_until([&] { return started.load() == members; }, 30s));
    }
    std::lock_guard g(late_mu);
    ASSERT_EQ(late.size(), static_cast<std::size_t>(members));
    for (auto& c : late) EXPECT_TRUE(c.ready()) << "a late member outlived the scope";
  });
}

}  // namespace
