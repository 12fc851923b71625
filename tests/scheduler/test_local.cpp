// green::local<T>: one value per green thread (gevent.local).
#include <green/green.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

// Counts live instances, so tests can see when a value is destroyed.
struct Counted {
  static inline std::atomic<int> live{0};
  static inline std::atomic<int> constructed{0};
  Counted() {
    ++live;
    ++constructed;
  }
  ~Counted() { --live; }
  Counted(const Counted&) = delete;
  Counted& operator=(const Counted&) = delete;
  int value = 0;
};

TEST(Local, EachGreenThreadSeesItsOwnValue) {
  green::Runtime rt({.workers = 1});
  green::local<int> slot;
  green::local<std::string> name;
  rt.run([&] {
    *slot = 100;
    *name = "main";
    std::vector<green::Greenlet<bool>> gs;
    for (int i = 0; i < 4; ++i)
      gs.push_back(green::spawn([&, i] {
        bool ok = slot.get() == 0 && name->empty();  // fresh, default-constructed
        slot.get() = i;
        *name = "g" + std::to_string(i);
        for (int k = 0; k < 3; ++k) {
          green::yield();  // the others write their copies in between
          ok = ok && *slot == i && *name == "g" + std::to_string(i);
        }
        return ok;
      }));
    for (auto& g : gs) EXPECT_TRUE(g.get());
    EXPECT_EQ(*slot, 100);
    EXPECT_EQ(*name, "main");
  });
}

TEST(Local, DistinctLocalsAreIndependent) {
  green::Runtime rt({.workers = 1});
  green::local<int> a;
  green::local<int> b;
  rt.run([&] {
    *a = 1;
    *b = 2;
    EXPECT_EQ(*a, 1);
    EXPECT_EQ(*b, 2);
    EXPECT_NE(&a.get(), &b.get());
    EXPECT_EQ(&a.get(), &*a);  // same object on every access
  });
}

TEST(Local, ChildDoesNotInheritTheParentsValue) {
  green::Runtime rt({.workers = 2});
  green::local<int> slot;
  rt.run([&] {
    *slot = 7;
    EXPECT_EQ(green::spawn([&] { return *slot; }).get(), 0);
    EXPECT_EQ(*slot, 7);
  });
}

TEST(Local, ValueIsDestroyedWhenTheGreenThreadEnds) {
  green::Runtime rt({.workers = 2});
  green::local<Counted> slot;
  const int live0 = Counted::live.load();
  rt.run([&] {
    std::atomic<bool> touched{false}, release{false};
    auto g = green::spawn([&] {
      slot->value = 5;
      touched = true;
      const auto end = Clock::now() + 5s;
      while (!release.load() && Clock::now() < end) green::yield();
      return slot->value;
    });
    const auto end = Clock::now() + 5s;
    while (!touched.load() && Clock::now() < end) green::yield();
    ASSERT_TRUE(touched.load());
    EXPECT_EQ(Counted::live.load(), live0 + 1);
    release = true;
    EXPECT_EQ(g.get(), 5);
    // Destroyed by the time joiners are woken.
    EXPECT_EQ(Counted::live.load(), live0);
  });
  EXPECT_EQ(Counted::live.load(), live0);
}

TEST(Local, ValueIsDestroyedWhenTheGreenThreadIsKilled) {
  green::Runtime rt({.workers = 1});
  green::local<Counted> slot;
  const int live0 = Counted::live.load();
  rt.run([&] {
    std::atomic<bool> touched{false};
    auto g = green::spawn([&] {
      slot->value = 1;
      touched = true;
      green::sleep(10s);
    });
    const auto end = Clock::now() + 5s;
    while (!touched.load() && Clock::now() < end) green::yield();
    ASSERT_TRUE(touched.load());
    EXPECT_EQ(Counted::live.load(), live0 + 1);
    EXPECT_TRUE(g.kill());
    EXPECT_EQ(Counted::live.load(), live0);
  });
}

TEST(Local, ManyGreenThreadsEachDestroyTheirValue) {
  green::Runtime rt({.workers = 2});
  green::local<Counted> slot;
  const int live0 = Counted::live.load();
  const int made0 = Counted::constructed.load();
  rt.run([&] {
    std::vector<green::Greenlet<int>> gs;
    for (int i = 0; i < 50; ++i)
      gs.push_back(green::spawn([&, i] {
        slot->value = i;
        green::yield();
        return slot->value;
      }));
    for (int i = 0; i < 50; ++i) EXPECT_EQ(gs[i].get(), i);
  });
  EXPECT_EQ(Counted::constructed.load() - made0, 50);
  EXPECT_EQ(Counted::live.load(), live0);
}

// A value is made on a green thread's first access to that local, and to no
// other. Every green thread here uses `other` (of the same type) while `slot`
// stays untouched: one value each, none for `slot`. Then one access to
// `slot` makes exactly one value more, so the count does see `slot`.
TEST(Local, UntouchedLocalCreatesNothing) {
  green::Runtime rt({.workers = 2});
  green::local<Counted> slot;
  green::local<Counted> other;
  const int made0 = Counted::constructed.load();
  const int live0 = Counted::live.load();
  rt.run([&] {
    constexpr int kThreads = 8;
    std::vector<green::Greenlet<bool>> gs;
    for (int i = 0; i < kThreads; ++i)
      gs.push_back(green::spawn([&, i] {
        other->value = i;
        green::yield();
        return other->value == i;
      }));
    for (auto& g : gs) EXPECT_TRUE(g.get(10s));
    other->value = -1;  // this green thread too
    EXPECT_EQ(Counted::constructed.load() - made0, kThreads + 1)
        << "values made while only `other` was used: one per green thread that used it";
    EXPECT_EQ(Counted::live.load() - live0, 1) << "only this green thread's `other` is left";
    EXPECT_EQ(green::spawn([&] { return slot->value; }).get(10s), 0);
    EXPECT_EQ(Counted::constructed.load() - made0, kThreads + 2) << "the first access to `slot` made one value";
  });
  EXPECT_EQ(Counted::live.load(), live0);
}

TEST(Local, FollowsTheGreenThreadAcrossWorkers) {
  // Waking a green thread from a worker puts it on that worker (DESIGN.md):
  // joining a green thread pinned to the other worker moves the joiner there.
  green::Runtime rt({.workers = 2});
  green::local<int> slot;
  green::local<Counted> obj;
  auto g = rt.spawn([&] {
    *slot = 42;
    obj->value = 9;
    Counted* const addr = &obj.get();
    int migrations = 0;
    for (int round = 0; round < 50 && migrations < 3; ++round) {
      const int before = green::this_worker();
      const int other = 1 - before;
      green::spawn({.worker = other, .pinned = true}, [] { green::yield(); }).join();
      if (green::this_worker() != before) ++migrations;
      EXPECT_EQ(*slot, 42) << "round " << round;
      EXPECT_EQ(obj->value, 9) << "round " << round;
      EXPECT_EQ(&obj.get(), addr) << "round " << round;
    }
    return migrations;
  });
  EXPECT_GT(g.get(), 0) << "the green thread never migrated; the test proved nothing";
}

TEST(Local, PinnedGreenThreadsOnDifferentWorkersKeepTheirOwnValues) {
  green::Runtime rt({.workers = 2});
  green::local<int> slot;
  std::atomic<int> phase{0};
  auto body = [&](int mine) {
    *slot = mine;
    ++phase;
    const auto end = Clock::now() + 5s;
    while (phase.load() < 2 && Clock::now() < end) green::yield();
    bool ok = true;
    for (int i = 0; i < 100; ++i) {
      ok = ok && *slot == mine;
      *slot = mine;
      green::yield();
    }
    return ok && green::this_worker() == mine;
  };
  auto a = rt.spawn({.worker = 0, .pinned = true}, body, 0);
  auto b = rt.spawn({.worker = 1, .pinned = true}, body, 1);
  EXPECT_TRUE(a.get());
  EXPECT_TRUE(b.get());
}

TEST(Local, AccessFromAPlainThreadThrows) {
  green::local<int> slot;
  green::local<Counted> obj;
  const int made0 = Counted::constructed.load();
  const int live0 = Counted::live.load();
  EXPECT_THROW(slot.get(), green::Error);
  EXPECT_THROW(*slot, green::Error);
  EXPECT_THROW((void)obj->value, green::Error);
  bool thrown = false;
  std::thread t([&] {
    try {
      *slot = 1;
    } catch (const green::Error&) {
      thrown = true;
    }
  });
  t.join();
  EXPECT_TRUE(thrown);
  // A runtime existing does not make the plain thread a green one.
  green::Runtime rt({.workers = 1});
  EXPECT_THROW(slot.get(), green::Error);
  EXPECT_EQ(rt.spawn([&] { return ++*slot; }).get(), 1);
  // Nothing leaked from the failed accesses.
  EXPECT_EQ(Counted::constructed.load(), made0);
  EXPECT_EQ(Counted::live.load(), live0);
}

}  // namespace
