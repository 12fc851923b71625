// Runtime::dump(): each green thread's state (running on worker k,
// runnable, parked, not started), what it waits on (a Lock and who holds it,
// a join, a primitive's address, a timer), for how long, and who spawned
// it; and RuntimeOptions::dump_on_signal.
//
// Every state is observed through dump() itself (polled, bounded); nothing
// sleeps to synchronise.
#include <green/green.hpp>
#include <green/sync.hpp>
#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include "parked.hpp"
#include "../../scheduler/src/runtime_core.hpp"
#include "../../scheduler/src/fiber_internal.hpp"
#include "test_env.hpp"
#include "test_util.hpp"

#include <atomic>
#include <chrono>
#include <csignal>
#include <mutex>
#include <initializer_list>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

using green::testing::wait_parked;
using green::testing::wait_until;

// The lines dump() shows for the green thread called `name`: its first
// line and its indented details ("" if it is not there).
std::string block_of(const std::string& dump, const std::string& name) {
  const auto at = dump.find("(" + name + "): ");
  if (at == std::string::npos) return "";
  const auto end = dump.find("\ngreen thread ", at);
  return dump.substr(at, end == std::string::npos ? std::string::npos : end + 1 - at);
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Until the block of `name` contains every one of `parts`.
bool wait_block(const green::Runtime& rt, const std::string& name, std::initializer_list<std::string> parts) {
  return wait_until([&] {
    const std::string b = block_of(rt.dump(), name);
    for (const auto& p : parts)
      if (!contains(b, p)) return false;
    return true;
  });
}

TEST(Dump, LockDeadlockNamesBothGreenThreadsWhatEachHoldsAndWaitsOn) {
  green::Runtime rt({.workers = 2});
  green::Lock a, b;
  green::Event a_taken, b_taken;
  auto first = rt.spawn(green::SpawnOptions{.name = "holds-a"}, [&] {
    std::lock_guard g(a);
    a_taken.set();
    b_taken.wait();
    std::lock_guard h(b);
  });
  auto second = rt.spawn(green::SpawnOptions{.name = "holds-b", .worker = 1}, [&] {
    std::lock_guard g(b);
    b_taken.set();
    a_taken.wait();
    std::lock_guard h(a);
  });
  ASSERT_TRUE(wait_parked(rt, "Lock", 2));
  const std::string d = rt.dump();
  const std::string id_a = std::to_string(first.raw()->id), id_b = std::to_string(second.raw()->id);
  const std::string a_lines = block_of(d, "holds-a"), b_lines = block_of(d, "holds-b");
  // Each waits on the other's Lock, held by the other...
  EXPECT_TRUE(contains(a_lines, "(holds-a): parked: Lock\n    waits on Lock at 0x")) << d;
  EXPECT_TRUE(contains(a_lines, "; held by green thread " + id_b + " (holds-b)\n")) << d;
  EXPECT_TRUE(contains(b_lines, "(holds-b): parked: Lock\n    waits on Lock at 0x")) << d;
  EXPECT_TRUE(contains(b_lines, "; held by green thread " + id_a + " (holds-a)\n")) << d;
  // ... and each is shown holding its own, wanted by the other.
  EXPECT_TRUE(contains(a_lines, "    holds Lock at 0x")) << d;
  EXPECT_TRUE(contains(a_lines, ", wanted by green thread " + id_b + " (holds-b)\n")) << d;
  EXPECT_TRUE(contains(b_lines, "    holds Lock at 0x")) << d;
  EXPECT_TRUE(contains(b_lines, ", wanted by green thread " + id_a + " (holds-a)\n")) << d;
  // Shutdown kills both while they wait; their lock_guards unwind.
  rt.shutdown();
  EXPECT_EQ(rt.live_green_threads(), 0u);
}

TEST(Dump, RunningRunnableAndNotStarted) {
  green::Runtime rt({.workers = 1});
  green::Event ev;
  std::atomic<bool> stop{false}, woke{false};
  auto sleeper = rt.spawn(green::SpawnOptions{.name = "woken"}, [&] {
    ev.wait();
    woke = true;
  });
  ASSERT_TRUE(wait_parked(rt, "woken", "Event.wait"));
  auto spinner = rt.spawn(green::SpawnOptions{.name = "spinner"}, [&] {
    ev.set();  // "woken" becomes runnable, but this worker stays busy
    while (!stop.load()) {
    }
  });
  EXPECT_TRUE(wait_block(rt, "spinner", {"(spinner): running on worker 0\n"}));
  EXPECT_TRUE(wait_block(rt, "woken", {"(woken): runnable\n"}));
  auto later = rt.spawn(green::SpawnOptions{.name = "later"}, [] {});
  EXPECT_TRUE(wait_block(rt, "later", {"(later): not started\n"}));
  stop = true;
  EXPECT_TRUE(later.join(5s));
  EXPECT_TRUE(sleeper.join(5s));
  EXPECT_TRUE(woke.load());
  EXPECT_TRUE(spinner.join(5s));
}

// Where each green thread was spawned: the function that called spawn
// (green::spawn, Runtime::spawn, Group::spawn), by its symbol.
[[gnu::noinline]] green::Greenlet<bool> spawn_sleeper_from_a_named_function(green::Event& never) {
  return green::spawn(green::SpawnOptions{.name = "from-function"}, [&never] { return never.wait(30s); });
}

[[gnu::noinline]] void spawn_group_member_from_a_named_function(green::Group& group, green::Event& never) {
  group.spawn(green::SpawnOptions{.name = "group-member"}, [&never] { never.wait(30s); });
}

[[gnu::noinline]] green::Greenlet<bool> spawn_from_a_plain_thread_function(green::Runtime& rt, green::Event& never) {
  return rt.spawn(green::SpawnOptions{.name = "from-plain"}, [&never] { return never.wait(30s); });
}

TEST(Dump, SpawnSiteNamesTheFunctionThatSpawned) {
  green::Runtime rt({.workers = 2});
  green::Event never;
  green::Group group;
  auto parent = rt.spawn(green::SpawnOptions{.name = "parent"}, [&] {
    auto child = spawn_sleeper_from_a_named_function(never);
    spawn_group_member_from_a_named_function(group, never);
    child.join();
    group.join();
  });
  auto plain = spawn_from_a_plain_thread_function(rt, never);
  ASSERT_TRUE(wait_parked(rt, "from-function", "Event.wait"));
  ASSERT_TRUE(wait_parked(rt, "group-member", "Event.wait"));
  ASSERT_TRUE(wait_parked(rt, "from-plain", "Event.wait"));
  const std::string d = rt.dump();
  EXPECT_TRUE(contains(block_of(d, "from-function"), " at (anonymous namespace)::spawn_sleeper_from_a_named_function(")) << d;
  EXPECT_TRUE(contains(block_of(d, "group-member"), " at (anonymous namespace)::spawn_group_member_from_a_named_function(")) << d;
  // No parent green thread: "spawned at", from the plain thread's function.
  EXPECT_TRUE(contains(block_of(d, "from-plain"), "\n    spawned at (anonymous namespace)::spawn_from_a_plain_thread_function(")) << d;
  never.set();
  EXPECT_TRUE(parent.join(5s));
  EXPECT_TRUE(plain.join(5s));
}

TEST(Dump, JoinTimerParentAndDuration) {
  green::Runtime rt({.workers = 2});
  green::Event never;
  std::atomic<std::uint64_t> main_id{0};
  auto main = rt.spawn(green::SpawnOptions{.name = "parent"}, [&] {
    main_id = green::current_id();
    auto child = green::spawn(green::SpawnOptions{.name = "child"}, [&] { never.wait(30s); });
    child.join();
  });
  ASSERT_TRUE(wait_parked(rt, "parent", "join"));
  ASSERT_TRUE(wait_parked(rt, "child", "Event.wait"));
  EXPECT_TRUE(wait_block(rt, "parent", {"(parent): parked: join\n    waits on join of green thread ",
                                        " (child); parked for at least "}));
  EXPECT_TRUE(wait_block(rt, "child", {"(child): parked: Event.wait\n    waits on Event.wait at 0x", "; timer in ",
                                       " ms; parked for at least ",
                                       "\n    spawned by green thread " + std::to_string(main_id.load()) + " at "}));
  // The duration is stamped by the first dump that saw the park, and grows.
  EXPECT_TRUE(wait_until([&] {
    const std::string b = block_of(rt.dump(), "parent");
    return contains(b, "parked for at least ") && !contains(b, "parked for at least 0 ms");
  }));
  never.set();
  EXPECT_TRUE(main.join(5s));
}

TEST(Dump, OnSignalPrintsFromAPlainThread) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  const int saved_stderr = ::dup(2);
  ASSERT_GE(saved_stderr, 0);
  std::string seen;
  {
    green::Runtime rt({.workers = 1, .dump_on_signal = SIGUSR2});
    std::atomic<bool> stop{false};
    // The only worker never yields: the dump must not need it.
    auto spinner = rt.spawn(green::SpawnOptions{.name = "stuck"}, [&] {
      while (!stop.load()) {
      }
    });
    ASSERT_TRUE(wait_until([&] { return rt.dump().find("(stuck): running") != std::string::npos; }));
    ::fflush(stderr);
    ASSERT_EQ(::dup2(fds[1], 2), 2);
    ::raise(SIGUSR2);
    const auto end = std::chrono::steady_clock::now() + 10s;
    while (seen.find("(stuck): running on worker 0\n") == std::string::npos &&
           std::chrono::steady_clock::now() < end) {
      pollfd p{fds[0], POLLIN, 0};
      if (::poll(&p, 1, 100) == 1) {
        char buf[4096];
        const ssize_t n = ::read(fds[0], buf, sizeof buf);
        if (n > 0) seen.append(buf, static_cast<std::size_t>(n));
      }
    }
    ::fflush(stderr);
    ::dup2(saved_stderr, 2);
    stop = true;
    EXPECT_TRUE(spinner.join(5s));
  }
  ::close(saved_stderr);
  ::close(fds[0]);
  ::close(fds[1]);
  EXPECT_NE(seen.find("green: dump on signal " + std::to_string(SIGUSR2) + "\n"), std::string::npos) << seen;
  EXPECT_NE(seen.find("(stuck): running on worker 0\n"), std::string::npos) << seen;
}

TEST(Dump, OnSignalRejectsSignalsThatCannotBeCaught) {
  EXPECT_THROW(green::Runtime({.workers = 1, .dump_on_signal = SIGKILL}), green::Error);
  EXPECT_THROW(green::Runtime({.workers = 1, .dump_on_signal = -1}), green::Error);
  EXPECT_THROW(green::Runtime({.workers = 1, .dump_on_signal = NSIG}), green::Error);
}


// Stacks of parked green threads (dump.cpp, STACKS).
[[gnu::noinline]] void parks_in_a_named_function(green::Event& ev) {
  ev.wait();
  asm volatile("");  // keeps the call a call, not a tail jump
}

[[gnu::noinline]] void parks_one_level_down(green::Event& ev) {
  parks_in_a_named_function(ev);
  asm volatile("");
}

TEST(Dump, ParkedGreenThreadsShowTheirStacks) {
  green::Runtime rt({.workers = 2});
  green::Event ev;
  auto g = rt.spawn(green::SpawnOptions{.name = "deep"}, [&] { parks_one_level_down(ev); });
  ASSERT_TRUE(wait_parked(rt, "deep", "Event.wait"));
  const std::string b = block_of(rt.dump(), "deep");
  const auto stack = b.find("\n    stack:\n");
  ASSERT_NE(stack, std::string::npos) << b;
  // Innermost first: the function that parked, then its caller.
  const auto inner = b.find("(anonymous namespace)::parks_in_a_named_function(green::Event&)+0x", stack);
  const auto outer = b.find("(anonymous namespace)::parks_one_level_down(green::Event&)+0x", stack);
  EXPECT_NE(inner, std::string::npos) << b;
  EXPECT_NE(outer, std::string::npos) << b;
  EXPECT_LT(inner, outer) << b;
  ev.set();
  EXPECT_TRUE(g.join(5s));
}

// A green thread woken while a dump walks its stack does not run until the
// walk is over: the hook below runs on the dumping thread inside the walk,
// has another thread wake the green thread, and watches it for 100 ms.
// Without the hold, the other worker would resume it within microseconds.
std::atomic<bool> g_wake_now{false}, g_ran{false}, g_ran_during_walk{false}, g_hooked{false};

void wake_during_walk(green::detail::Fiber* f) {
  if (f->name != "held" || g_hooked.exchange(true)) return;
  g_wake_now = true;
  g_ran_during_walk = wait_until([] { return g_ran.load(); }, 100ms);
}

TEST(Dump, AGreenThreadWokenDuringItsStackWalkWaitsForTheWalk) {
  green::Runtime rt({.workers = 2});
  green::Event ev;
  auto g = rt.spawn(green::SpawnOptions{.name = "held"}, [&] {
    parks_in_a_named_function(ev);
    g_ran = true;
  });
  ASSERT_TRUE(wait_parked(rt, "held", "Event.wait"));
  std::thread waker([&] {
    if (wait_until([] { return g_wake_now.load(); }, 10s)) ev.set();  // returns once the walk is over
  });
  green::detail::dump_walk_hook = &wake_during_walk;
  const std::string d = rt.dump();
  green::detail::dump_walk_hook = nullptr;
  g_wake_now = true;  // lets the waker go had the hook not run
  waker.join();
  ev.set();
  ASSERT_TRUE(g_hooked.load());
  EXPECT_FALSE(g_ran_during_walk.load());
  EXPECT_TRUE(contains(block_of(d, "held"), "parks_in_a_named_function")) << d;
  EXPECT_TRUE(g.join(5s));
  EXPECT_TRUE(g_ran.load());
}

// Dumps, stacks and all, while green threads park and wake across two
// workers as fast as they can: every walk holds a green thread still or
// skips it, so nothing crashes or races (run under TSan and ASan too), the
// hand-offs all complete, and the parked green thread's stack is in every
// dump.
TEST(Dump, StacksWhileGreenThreadsParkAndWakeAcrossWorkers) {
  green::Runtime rt({.workers = 2});
  green::Event never;
  auto parked = rt.spawn(green::SpawnOptions{.name = "parked"}, [&] { parks_in_a_named_function(never); });
  constexpr int kRounds = green::testing::per_build(200000, 20000, 5000);
  green::Queue<int> ping, pong;
  auto a = rt.spawn(green::SpawnOptions{.name = "ping", .worker = 0}, [&] {
    for (int i = 0; i < kRounds; ++i) {
      ping.put(i);
      pong.get();
    }
  });
  auto b = rt.spawn(green::SpawnOptions{.name = "pong", .worker = 1}, [&] {
    for (int i = 0; i < kRounds; ++i) pong.put(ping.get());
  });
  ASSERT_TRUE(wait_parked(rt, "parked", "Event.wait"));
  int dumps = 0, with_stack = 0;
  while (!a.ready() || dumps < 20) {
    const std::string d = rt.dump();
    ++dumps;
    if (contains(block_of(d, "parked"), "parks_in_a_named_function")) ++with_stack;
    if (dumps > 100000) break;
  }
  EXPECT_EQ(with_stack, dumps);
  EXPECT_TRUE(a.join(30s));
  EXPECT_TRUE(b.join(30s));
  never.set();
  EXPECT_TRUE(parked.join(5s));
}

// At most 1000 stacks a dump; the rest say why they have none.
TEST(Dump, WalksAtMostAThousandStacks) {
  green::Runtime rt({.workers = 2});
  green::Event never;
  constexpr int kParked = 1010;
  std::vector<green::Greenlet<void>> parked;
  for (int i = 0; i < kParked; ++i) parked.push_back(rt.spawn([&] { parks_in_a_named_function(never); }));
  ASSERT_TRUE(wait_parked(rt, "Event.wait", kParked));
  const std::string d = rt.dump();
  std::size_t stacks = 0, over = 0;
  for (std::size_t at = 0; (at = d.find("\n    stack:\n", at)) != std::string::npos; ++at) ++stacks;
  for (std::size_t at = 0; (at = d.find("\n    stack not walked: a dump walks at most 1000 stacks\n", at)) != std::string::npos; ++at)
    ++over;
  EXPECT_EQ(stacks, 1000u);
  EXPECT_EQ(over, static_cast<std::size_t>(kParked - 1000));
  never.set();
  for (auto& g : parked) EXPECT_TRUE(g.join(10s));
}

}  // namespace
