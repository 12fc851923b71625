// Greenlet::link_value, link_exception and unlink (gevent-behaviours cases 8
// to 10: TestLink, TestReturn_link*, TestRaise_link*, the listener
// robustness cases and test__order's link order).
#include <green/green.hpp>
#include <gtest/gtest.h>

#include "baton.hpp"
#include "parked.hpp"
#include "test_util.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

using green::testing::Baton;
using green::testing::MyError;
using green::testing::wait_parked;

// Counts the calls of each kind of link on one green thread.
struct LinkCounts {
  std::atomic<int> any{0};
  std::atomic<int> value{0};
  std::atomic<int> exception{0};

  template <class T>
  void attach(const green::Greenlet<T>& g) {
    g.link([this](green::Greenlet<T>) { any.fetch_add(1); });
    g.link_value([this](green::Greenlet<T>) { value.fetch_add(1); });
    g.link_exception([this](green::Greenlet<T>) { exception.fetch_add(1); });
  }
};

TEST(Links, LinkValueFiresOnlyOnSuccess) {
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    auto go = std::make_shared<Baton>();
    auto g = green::spawn([go] {
      go->wait(green::detail::deadline_after(10s));
      return 5;
    });
    LinkCounts counts;
    int seen_value = 0;
    g.link_value([&](green::Greenlet<int> done) { seen_value = done.get(); });
    counts.attach(g);
    go->post();
    ASSERT_TRUE(g.join(5s));
    EXPECT_EQ(seen_value, 5);
    EXPECT_EQ(counts.any.load(), 1);
    EXPECT_EQ(counts.value.load(), 1);
    EXPECT_EQ(counts.exception.load(), 0);
  });
}

TEST(Links, LinkExceptionFiresOnlyOnFailure) {
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    auto g = green::spawn({.name = "victim"}, [] {
      green::sleep(10s);
      return 1;
    });
    LinkCounts counts;
    int seen_code = 0;
    g.link_exception([&](green::Greenlet<int> done) {
      try {
        std::rethrow_exception(done.exception());
      } catch (const MyError& e) {
        seen_code = e.code;
      }
    });
    counts.attach(g);
    ASSERT_TRUE(wait_parked(rt, "victim", "sleep"));
    EXPECT_EQ(counts.any.load(), 0);
    EXPECT_TRUE(g.kill(MyError(7), 5s));
    EXPECT_EQ(seen_code, 7);
    EXPECT_EQ(counts.any.load(), 1);
    EXPECT_EQ(counts.value.load(), 0);
    EXPECT_EQ(counts.exception.load(), 1);
  });
}

// gevent: a killed greenlet delivers a GreenletExit *value*: it is
// successful(), so link_value fires and link_exception does not.
TEST(Links, KilledByGreenletExitFiresLinkValue) {
  green::Runtime rt({.workers = 1});
  rt.run([&] {
    auto g = green::spawn({.name = "victim"}, [] { green::sleep(10s); });
    LinkCounts counts;
    counts.attach(g);
    ASSERT_TRUE(wait_parked(rt, "victim", "sleep"));
    EXPECT_TRUE(g.kill(green::GreenletExit(), 5s));
    EXPECT_EQ(counts.any.load(), 1);
    EXPECT_EQ(counts.value.load(), 1);
    EXPECT_EQ(counts.exception.load(), 0);
  });
}

TEST(Links, LinkingAnEndedGreenThreadRunsAtOnceByOutcome) {
  green::Runtime rt({.workers = 1});
  rt.run([&] {
    auto ok = green::spawn([] { return 1; });
    auto bad = green::spawn([]() -> int { throw MyError(2); });
    ASSERT_TRUE(ok.join(5s));
    ASSERT_TRUE(bad.join(5s));
    (void)bad.exception();
    LinkCounts ok_counts, bad_counts;
    ok_counts.attach(ok);
    bad_counts.attach(bad);
    EXPECT_EQ(ok_counts.value.load(), 1);
    EXPECT_EQ(ok_counts.exception.load(), 0);
    EXPECT_EQ(bad_counts.value.load(), 0);
    EXPECT_EQ(bad_counts.exception.load(), 1);
    EXPECT_EQ(ok_counts.any.load() + bad_counts.any.load(), 2);
  });
}

TEST(Links, UnlinkBeforeTheEndWithdrawsTheCallback) {
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    auto g = green::spawn({.name = "victim"}, [] { green::sleep(10s); });
    std::atomic<int> calls{0};
    const green::Link a = g.link([&](green::Greenlet<void>) { calls.fetch_add(1); });
    const green::Link b = g.link_value([&](green::Greenlet<void>) { calls.fetch_add(10); });
    const green::Link c = g.link_exception([&](green::Greenlet<void>) { calls.fetch_add(100); });
    EXPECT_TRUE(g.unlink(b));
    EXPECT_FALSE(g.unlink(b)) << "a second unlink of the same link";
    EXPECT_TRUE(g.unlink(c));
    ASSERT_TRUE(wait_parked(rt, "victim", "sleep"));
    EXPECT_TRUE(g.kill(green::GreenletExit(), 5s));
    EXPECT_EQ(calls.load(), 1);
    EXPECT_FALSE(g.unlink(a)) << "it already ran";
  });
}

TEST(Links, UnlinkOfAnotherGreenThreadsOrAnEmptyLinkDoesNothing) {
  green::Runtime rt({.workers = 1});
  rt.run([&] {
    auto g = green::spawn([] { green::sleep(10s); });
    auto other = green::spawn([] { green::sleep(10s); });
    std::atomic<int> calls{0};
    const green::Link mine = g.link([&](green::Greenlet<void>) { calls.fetch_add(1); });
    EXPECT_FALSE(other.unlink(mine));
    EXPECT_FALSE(g.unlink(green::Link{}));
    EXPECT_TRUE(green::killall(std::vector{g, other}, green::GreenletExit(), true, 5s));
    EXPECT_EQ(calls.load(), 1);
  });
}

// gevent test_multiple_listeners_error_unlink: listener 1 unlinks listener
// 2 while the links are running; 2 never runs, 3 does.
TEST(Links, ListenerUnlinkedByAnEarlierListenerWhileNotifyingNeverRuns) {
  green::Runtime rt({.workers = 1});
  rt.run([&] {
    auto g = green::spawn({.name = "victim"}, [] { green::sleep(10s); });
    std::vector<int> ran;
    green::Link second;
    g.link([&](green::Greenlet<void> done) {
      ran.push_back(1);
      EXPECT_TRUE(done.unlink(second));
    });
    second = g.link([&](green::Greenlet<void>) { ran.push_back(2); });
    g.link([&](green::Greenlet<void>) { ran.push_back(3); });
    ASSERT_TRUE(wait_parked(rt, "victim", "sleep"));
    EXPECT_TRUE(g.kill(green::GreenletExit(), 5s));
    EXPECT_EQ(ran, (std::vector<int>{1, 3}));
  });
}

// gevent test_multiple_listeners_error: three listeners, two of which
// raise; both effects of the non-raising... every listener still runs.
TEST(Links, RaisingListenersDoNotStopTheOthers) {
  green::Runtime rt({.workers = 1});
  rt.run([&] {
    auto g = green::spawn([] { return 3; });
    std::vector<int> ran;
    g.link_value([&](green::Greenlet<int>) {
      ran.push_back(1);
      throw MyError(1);  // reported on stderr and dropped
    });
    g.link([&](green::Greenlet<int>) { ran.push_back(2); });
    g.link_value([&](green::Greenlet<int>) {
      ran.push_back(3);
      throw MyError(3);
    });
    g.link([&](green::Greenlet<int>) { ran.push_back(4); });
    ASSERT_TRUE(g.join(5s));
    EXPECT_EQ(ran, (std::vector<int>{1, 2, 3, 4}));
  });
}

// test__order: 1000 links of the three kinds fire in the order added.
TEST(Links, ThousandLinksFireInTheOrderAdded) {
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    auto go = std::make_shared<Baton>();
    auto g = green::spawn([go] { go->wait(green::detail::deadline_after(10s)); });
    std::vector<int> ran;
    for (int i = 0; i < 1000; ++i) {
      auto record = [&ran, i](green::Greenlet<void>) { ran.push_back(i); };
      if (i % 2) {
        g.link(record);
      } else {
        g.link_value(record);
      }
    }
    go->post();
    ASSERT_TRUE(g.join(5s));
    ASSERT_EQ(ran.size(), 1000u);
    for (int i = 0; i < 1000; ++i) EXPECT_EQ(ran[static_cast<std::size_t>(i)], i);
  });
}

// Cross-worker: a link unlinked from another worker while the green thread
// ends there either ran or did not, never both; unlink's answer says which.
TEST(Links, UnlinkRacingTheEndOnAnotherWorkerAgreesWithWhatRan) {
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    for (int round = 0; round < 200; ++round) {
      auto go = std::make_shared<Baton>();
      auto g = green::spawn({.worker = 1, .pinned = true}, [go] { go->wait(green::detail::deadline_after(10s)); });
      std::atomic<int> ran{0};
      const green::Link l = g.link([&](green::Greenlet<void>) { ran.fetch_add(1); });
      go->post();
      const bool withdrawn = g.unlink(l);
      ASSERT_TRUE(g.join(5s));
      EXPECT_EQ(ran.load(), withdrawn ? 0 : 1) << "round " << round;
    }
  });
}

}  // namespace
