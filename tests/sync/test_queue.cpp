// Queue, LifoQueue, PriorityQueue, JoinableQueue (gevent-behaviours cases
// 25-28, 30-32): bounded put order, FIFO service of waiters, cancelled and
// killed waiters, nowait calls, task_done/join, timed calls, peek, close,
// item order, and cross-worker stress with green and plain-thread parties.
//
// "X is parked" is observed through Runtime::dump() ("parked: Queue.get"). A
// green thread shown parked there either still holds the queue's lock (it is
// between deciding to wait and publishing itself) or is on the wait list, so
// every put/get that takes the lock afterwards sees it. No test sleeps to
// synchronise; timed assertions check timeouts only, with loose bounds.
//
// Objects that green threads wait on are declared before the Runtime, so a
// failed ASSERT that leaves a waiter parked still unwinds safely: the Runtime
// is destroyed first and kills its green threads while the queue is alive.
#include <green/green.hpp>
#include <green/sync.hpp>
#include <gtest/gtest.h>

#include "test_util.hpp"
#include "parked.hpp"
#include "test_env.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <numeric>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;
using green::testing::MyError;
using green::testing::spin_for;
using green::testing::wait_until;
using green::testing::parked_on;
using green::testing::wait_parked;
using green::testing::all_workers;
using green::testing::expect_about;
using green::testing::on_worker;
using green::testing::per_build;

// Stress sizes. The issue asks for 1,000,000 items across workers; under
// sanitizers every synchronising operation costs 5-20x more, so the counts
// are scaled down there: 100,000 under ASan/UBSan, 20,000 under TSan.
constexpr int kStressItems = per_build(1'000'000, 100'000, 20'000);
constexpr int kRaceItems = per_build(100'000, 20'000, 5'000);

// ---------------------------------------------------------------------------
// Case 25: bounded put. Queue(2): the putter of a, b, c stops after b; a
// get() lets c in.

template <class Q>
void bounded_put_order(const std::vector<std::string>& expect) {
  Q q(2);
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    std::atomic<int> puts{0};
    auto putter = green::spawn([&] {
      for (const char* s : {"a", "b", "c"}) {
        q.put(s);
        puts.fetch_add(1);
      }
    });
    ASSERT_TRUE(wait_parked(rt, "Queue.put", 1));
    EXPECT_EQ(puts.load(), 2) << "the putter must stop after b";
    EXPECT_TRUE(q.full());
    EXPECT_EQ(q.size(), 2u);
    std::vector<std::string> got;
    got.push_back(q.get());  // makes room: c moves in, the putter is released
    EXPECT_EQ(q.size(), 2u) << "the waiting putter's item moves in at once";
    EXPECT_TRUE(putter.join(5s));
    EXPECT_EQ(puts.load(), 3);
    got.push_back(q.get());
    got.push_back(q.get());
    EXPECT_EQ(got, expect);
    EXPECT_TRUE(q.empty());
    EXPECT_FALSE(q.full());
    EXPECT_EQ(q.maxsize(), 2u);
  });
}

TEST(Queue, BoundedPutWaitsAndKeepsOrder) { bounded_put_order<green::Queue<std::string>>({"a", "b", "c"}); }
TEST(Queue, BoundedPutWaitsAndKeepsOrderJoinable) {
  bounded_put_order<green::JoinableQueue<std::string>>({"a", "b", "c"});
}
// LIFO: b comes out first, then c (which moved in), then a.
TEST(Queue, BoundedPutWaitsAndKeepsOrderLifo) { bounded_put_order<green::LifoQueue<std::string>>({"b", "c", "a"}); }
TEST(Queue, BoundedPutWaitsAndKeepsOrderPriority) {
  bounded_put_order<green::PriorityQueue<std::string>>({"a", "b", "c"});
}

// ---------------------------------------------------------------------------
// Case 26: FIFO getters. Four getters block; each put wakes exactly one more,
// the one that has waited longest.

TEST(Queue, FifoGettersEachPutWakesExactlyOne) {
  green::Queue<std::string> q;
  std::array<green::AsyncResult<std::string>, 4> results;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    std::vector<green::Greenlet<void>> getters;
    for (std::size_t i = 0; i < results.size(); ++i) {
      getters.push_back(green::spawn([&, i] { results[i].set(q.get()); }));
      // One at a time, so the arrival order is 0, 1, 2, 3.
      ASSERT_TRUE(wait_parked(rt, "Queue.get", i + 1));
    }
    const std::array<std::string, 4> sendings{"1", "2", "3", "4"};
    for (std::size_t k = 0; k < sendings.size(); ++k) {
      q.put(sendings[k]);
      EXPECT_TRUE(q.empty()) << "handed straight to a waiting getter";
      EXPECT_EQ(results[k].get(5s), sendings[k]) << "the longest waiter gets it";
      EXPECT_EQ(parked_on(rt, "Queue.get"), sendings.size() - 1 - k) << "exactly one getter woken";
      for (std::size_t j = k + 1; j < results.size(); ++j) EXPECT_FALSE(results[j].ready()) << j;
    }
    EXPECT_EQ(green::joinall(getters, 5s), getters.size());
  });
}

// ---------------------------------------------------------------------------
// Case 27: cancelled waiters are removed; no item is lost.

// A getter under Timeout(0) throws at its first blocking call; the put that
// follows stays queued for the next get().
TEST(Queue, GetterCancelledByTimeoutZero) {
  green::Queue<std::string> q;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    auto r = green::spawn([&]() -> std::string {
               green::Timeout t(0ms);
               try {
                 return q.get();
               } catch (const green::TimeoutError& e) {
                 EXPECT_TRUE(e.is(t));
                 return "timed out";
               }
             }).get(5s);
    EXPECT_EQ(r, "timed out");
    q.put("hi");
    EXPECT_EQ(q.size(), 1u) << "nobody may be waiting any more";
    EXPECT_EQ(q.get(), "hi");
  });
}

// A getter that really parked and whose Timeout fired is off the list: the
// put stays in the queue.
TEST(Queue, ParkedGetterCancelledByTimeoutIsRemoved) {
  green::Queue<std::string> q;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    auto g = green::spawn([&]() -> std::string {
      green::Timeout t(200ms);
      try {
        return q.get();
      } catch (const green::TimeoutError& e) {
        EXPECT_TRUE(e.is(t));
        return "timed out";
      }
    });
    ASSERT_TRUE(wait_parked(rt, "Queue.get", 1));
    EXPECT_EQ(g.get(5s), "timed out");
    q.put("hi");
    EXPECT_EQ(q.size(), 1u);
    EXPECT_EQ(q.get(), "hi");
  });
}

// test_two_waiters_one_dies: the dying getter waited first; after it timed
// out, the put goes to the live getter.
TEST(Queue, TwoWaitersOneDies) {
  for (bool scope : {true, false}) {
    SCOPED_TRACE(scope ? "Timeout scope" : "get(timeout)");
    green::Queue<std::string> q;
    green::Runtime rt({.workers = 2});
    rt.run([&] {
      auto dying = green::spawn([&]() -> std::string {
        try {
          if (scope) {
            green::Timeout t(300ms);
            return q.get();
          }
          return q.get(300ms);
        } catch (const green::TimeoutError&) {
          return "timed out";
        } catch (const green::QueueEmpty&) {
          return "timed out";
        }
      });
      ASSERT_TRUE(wait_parked(rt, "Queue.get", 1));
      auto waiting = green::spawn([&] { return q.get(); });
      ASSERT_TRUE(wait_parked(rt, "Queue.get", 2));
      EXPECT_EQ(dying.get(5s), "timed out");
      q.put("hi");
      EXPECT_EQ(waiting.get(5s), "hi");
      EXPECT_TRUE(q.empty());
    });
  }
}

// test_two_bogus_waiters: both getters time out; the item stays queued.
TEST(Queue, TwoBogusWaiters) {
  green::Queue<std::string> q;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    auto receive = [&]() -> std::string {
      try {
        return q.get(200ms);
      } catch (const green::QueueEmpty&) {
        return "timed out";
      }
    };
    auto e1 = green::spawn(receive);
    auto e2 = green::spawn(receive);
    ASSERT_TRUE(wait_parked(rt, "Queue.get", 2));
    EXPECT_EQ(e1.get(5s), "timed out");
    EXPECT_EQ(e2.get(5s), "timed out");
    q.put("sent");
    EXPECT_EQ(q.size(), 1u);
    EXPECT_EQ(q.get(), "sent");
  });
}

// ---------------------------------------------------------------------------
// Case 28: nowait calls succeed and wake a blocked peer; Full/Empty on the
// second call. gevent runs them from a hub callback; green has none for
// users, so they run from a plain thread (the test's own thread) and from
// a green thread.

// Runs fn on the calling plain thread, or in a green thread of rt.
void run_from(green::Runtime& rt, bool green_thread, const std::function<void()>& fn) {
  if (green_thread) {
    rt.run(fn);
  } else {
    fn();
  }
}

TEST(Queue, NowaitOnBoundedQueueSecondCallFails) {
  for (bool from_green : {false, true}) {
    SCOPED_TRACE(from_green ? "green thread" : "plain thread");
    green::Queue<int> q(1);
    green::Runtime rt({.workers = 2});
    run_from(rt, from_green, [&] {
      EXPECT_NO_THROW(q.put_nowait(2));
      EXPECT_THROW(q.put_nowait(3), green::QueueFull);
      EXPECT_EQ(q.size(), 1u);
      EXPECT_EQ(q.get_nowait(), 2);
      EXPECT_THROW(q.get_nowait(), green::QueueEmpty);
      EXPECT_TRUE(q.empty());
    });
  }
}

TEST(Queue, PutNowaitWakesABlockedGetter) {
  for (bool from_green : {false, true}) {
    SCOPED_TRACE(from_green ? "green thread" : "plain thread");
    green::Queue<int> q(1);
    green::Runtime rt({.workers = 2});
    auto getter = rt.spawn([&] { return q.get(); });
    ASSERT_TRUE(wait_parked(rt, "Queue.get", 1));
    run_from(rt, from_green, [&] {
      EXPECT_NO_THROW(q.put_nowait(5));  // handed to the getter
      EXPECT_TRUE(q.empty());
      EXPECT_EQ(getter.get(5s), 5);
      EXPECT_NO_THROW(q.put_nowait(6));
      EXPECT_THROW(q.put_nowait(7), green::QueueFull);
      EXPECT_EQ(q.get_nowait(), 6);
    });
  }
}

TEST(Queue, GetNowaitWakesABlockedPutter) {
  for (bool from_green : {false, true}) {
    SCOPED_TRACE(from_green ? "green thread" : "plain thread");
    green::Queue<int> q(1);
    green::Runtime rt({.workers = 2});
    q.put(5);
    auto putter = rt.spawn([&] { q.put(6); });
    ASSERT_TRUE(wait_parked(rt, "Queue.put", 1));
    EXPECT_TRUE(q.full());
    run_from(rt, from_green, [&] {
      EXPECT_EQ(q.get_nowait(), 5);  // 6 moves in; the putter is released
      EXPECT_TRUE(putter.join(5s));
      EXPECT_TRUE(putter.successful());
      EXPECT_EQ(q.size(), 1u);
      EXPECT_EQ(q.get_nowait(), 6);
      EXPECT_THROW(q.get_nowait(), green::QueueEmpty);
    });
  }
}

// try_put / try_get: the exception-free nowait pair.
TEST(Queue, TryPutTryGet) {
  green::Queue<std::string> q(1);
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    std::string a = "a", b = "b";
    EXPECT_TRUE(q.try_put(a));
    EXPECT_FALSE(q.try_put(b)) << "full";
    EXPECT_EQ(b, "b") << "a failed try_put leaves the item untouched";
    EXPECT_EQ(q.try_get(), std::optional<std::string>("a"));
    EXPECT_EQ(q.try_get(), std::nullopt);
    // try_get makes room for a waiting putter, which is released.
    q.put("x");
    auto putter = green::spawn([&] { q.put("y"); });
    ASSERT_TRUE(wait_parked(rt, "Queue.put", 1));
    EXPECT_EQ(q.try_get(), std::optional<std::string>("x"));
    EXPECT_TRUE(putter.join(5s));
    EXPECT_EQ(q.size(), 1u);
    EXPECT_EQ(q.try_get(), std::optional<std::string>("y"));
    // try_put hands to a waiting getter.
    auto getter = green::spawn([&] { return q.get(); });
    ASSERT_TRUE(wait_parked(rt, "Queue.get", 1));
    std::string z = "z";
    EXPECT_TRUE(q.try_put(z));
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(getter.get(5s), "z");
    // Closed: try_put throws, try_get drains, then nullopt (no exception).
    std::string c = "c", d = "d";
    EXPECT_TRUE(q.try_put(c));
    q.close();
    EXPECT_THROW(q.try_put(d), green::QueueClosed);
    EXPECT_EQ(q.try_get(), std::optional<std::string>("c"));
    EXPECT_EQ(q.try_get(), std::nullopt);
  });
}

// try_get_many: everything there now, in get() order, in one go.
TEST(Queue, TryGetManyTakesWhatIsThereInGetOrder) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    green::Queue<int> q(3);
    std::vector<int> got;
    EXPECT_EQ(q.try_get_many(std::back_inserter(got)), 0u) << "empty";
    for (int i = 1; i <= 3; ++i) q.put(i);
    // Two putters wait on the full queue; their items move in as room is made.
    auto p4 = green::spawn([&] { q.put(4); });
    ASSERT_TRUE(wait_parked(rt, "Queue.put", 1));
    auto p5 = green::spawn([&] { q.put(5); });
    ASSERT_TRUE(wait_parked(rt, "Queue.put", 2));
    EXPECT_EQ(q.try_get_many(std::back_inserter(got)), 5u);
    EXPECT_EQ(got, (std::vector<int>{1, 2, 3, 4, 5}));
    EXPECT_TRUE(p4.join(5s));
    EXPECT_TRUE(p5.join(5s));
    // At most `max`.
    for (int i = 6; i <= 8; ++i) q.put(i);
    got.clear();
    EXPECT_EQ(q.try_get_many(std::back_inserter(got), 2), 2u);
    EXPECT_EQ(got, (std::vector<int>{6, 7}));
    EXPECT_EQ(q.size(), 1u);
    // Closed: drains what is left, then 0 (no exception).
    q.close();
    got.clear();
    EXPECT_EQ(q.try_get_many(std::back_inserter(got)), 1u);
    EXPECT_EQ(got, (std::vector<int>{8}));
    EXPECT_EQ(q.try_get_many(std::back_inserter(got)), 0u);

    // The other orders.
    green::LifoQueue<int> lifo;
    green::PriorityQueue<int> by_priority;
    for (int i : {2, 3, 1}) {
      lifo.put(i);
      by_priority.put(i);
    }
    got.clear();
    lifo.try_get_many(std::back_inserter(got));
    EXPECT_EQ(got, (std::vector<int>{1, 3, 2}));
    got.clear();
    by_priority.try_get_many(std::back_inserter(got));
    EXPECT_EQ(got, (std::vector<int>{1, 2, 3}));

    // A Channel holds nothing: it takes the items of putters waiting now.
    green::Channel<int> ch;
    auto c1 = green::spawn([&] { ch.put(10); });
    ASSERT_TRUE(wait_parked(rt, "Queue.put", 1));
    auto c2 = green::spawn([&] { ch.put(11); });
    ASSERT_TRUE(wait_parked(rt, "Queue.put", 2));
    got.clear();
    EXPECT_EQ(ch.try_get_many(std::back_inserter(got)), 2u);
    EXPECT_EQ(got, (std::vector<int>{10, 11}));
    EXPECT_TRUE(c1.join(5s));
    EXPECT_TRUE(c2.join(5s));
  });
}

// ---------------------------------------------------------------------------
// Case 30: JoinableQueue.

TEST(JoinableQueue, TaskDoneAndJoin) {
  green::JoinableQueue<int> q;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    EXPECT_EQ(q.unfinished_tasks(), 0u);
    q.put(1);
    EXPECT_EQ(q.unfinished_tasks(), 1u);
    std::atomic<bool> joined{false};
    auto joiner = green::spawn([&] {
      EXPECT_TRUE(q.join());
      joined = true;
    });
    ASSERT_TRUE(wait_parked(rt, "JoinableQueue.join", 1));
    EXPECT_EQ(q.get(), 1);
    EXPECT_EQ(q.unfinished_tasks(), 1u) << "get() alone does not finish the task";
    EXPECT_FALSE(joined.load());
    EXPECT_EQ(parked_on(rt, "JoinableQueue.join"), 1u);
    q.task_done();
    EXPECT_EQ(q.unfinished_tasks(), 0u);
    EXPECT_TRUE(joiner.join(5s));
    EXPECT_TRUE(joined.load());
    EXPECT_TRUE(joiner.successful());
    EXPECT_THROW(q.task_done(), green::Error) << "more task_done() than items put";
    EXPECT_EQ(q.unfinished_tasks(), 0u);
    EXPECT_TRUE(q.join());
  });
}

// gevent's test_issue_45: join() with nothing ever put returns without
// switching. On one worker a green thread spawned just before cannot have
// run unless join() switched.
TEST(JoinableQueue, JoinWithNothingPutReturnsWithoutSwitching) {
  green::JoinableQueue<int> q;
  green::Runtime rt({.workers = 1});
  rt.run([&] {
    std::atomic<bool> ran{false};
    auto g = green::spawn([&] { ran = true; });
    EXPECT_TRUE(q.join());
    EXPECT_TRUE(q.join(0ms));
    EXPECT_TRUE(q.join(1s));
    EXPECT_FALSE(ran.load()) << "join() on a queue with no work must not switch";
    g.join();
    EXPECT_TRUE(ran.load());
  });
  // And from a plain thread.
  EXPECT_TRUE(q.join());
}

TEST(JoinableQueue, JoinTimeoutReturnsFalseWhileWorkRemains) {
  green::JoinableQueue<int> q;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    q.put(1);
    auto t0 = Clock::now();
    EXPECT_FALSE(q.join(40ms));
    expect_about(Clock::now() - t0, 40ms);
    q.get();
    q.task_done();
    EXPECT_TRUE(q.join(0ms));
  });
  // A plain thread's timed join.
  q.put(2);
  auto t0 = Clock::now();
  EXPECT_FALSE(q.join(40ms));
  expect_about(Clock::now() - t0, 40ms);
}

// Items handed straight to a waiting getter count as tasks too.
TEST(JoinableQueue, HandedOffItemsCountAsTasks) {
  green::JoinableQueue<int> q;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    auto getter = green::spawn([&] { return q.get(); });
    ASSERT_TRUE(wait_parked(rt, "Queue.get", 1));
    q.put(9);
    EXPECT_EQ(getter.get(5s), 9);
    EXPECT_EQ(q.unfinished_tasks(), 1u);
    EXPECT_FALSE(q.join(1ms));
    q.task_done();
    EXPECT_TRUE(q.join(0ms));
  });
}

// Several joiners (green and plain) wait for many consumers' task_done().
TEST(JoinableQueue, ManyJoinersManyConsumers) {
  constexpr int kItems = 1000;
  green::JoinableQueue<int> q;
  std::atomic<int> processed{0};
  for (int i = 0; i < kItems; ++i) q.put(i);
  green::Runtime rt({.workers = 2});
  std::thread plain([&] {
    EXPECT_TRUE(q.join(30s));
    EXPECT_EQ(processed.load(), kItems) << "join returned before every task was done";
  });
  rt.run([&] {
    std::vector<green::Greenlet<void>> joiners;
    for (int j = 0; j < 4; ++j) joiners.push_back(green::spawn([&] {
      EXPECT_TRUE(q.join(30s));
      EXPECT_EQ(processed.load(), kItems) << "join returned before every task was done";
    }));
    ASSERT_TRUE(wait_parked(rt, "JoinableQueue.join", 4));
    std::vector<green::Greenlet<void>> consumers;
    for (unsigned c = 0; c < 4; ++c) consumers.push_back(green::spawn(on_worker(c % 2), [&] {
      for (auto& v : q) {
        (void)v;
        processed.fetch_add(1);
        q.task_done();
      }
    }));
    EXPECT_EQ(green::joinall(joiners, 30s), joiners.size());
    q.close();
    EXPECT_EQ(green::joinall(consumers, 30s), consumers.size());
    EXPECT_EQ(q.unfinished_tasks(), 0u);
  });
  plain.join();
}

// ---------------------------------------------------------------------------
// Case 32: timed get/put, for every queue class (Channel included).

template <class Q>
std::unique_ptr<Q> make_full_queue() {
  if constexpr (std::is_same_v<Q, green::Channel<int>>) {
    return std::make_unique<Q>();  // a channel without getters is always full
  } else {
    auto q = std::make_unique<Q>(1);
    q->put(100);
    return q;
  }
}

template <class Q>
class QueueTimeouts : public ::testing::Test {};
using AllQueues = ::testing::Types<green::Queue<int>, green::LifoQueue<int>, green::PriorityQueue<int>,
                                   green::JoinableQueue<int>, green::Channel<int>>;
TYPED_TEST_SUITE(QueueTimeouts, AllQueues);

TYPED_TEST(QueueTimeouts, GetTimeoutThrowsQueueEmptyAfterAboutT) {
  TypeParam q;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    const auto t0 = Clock::now();
    EXPECT_THROW(q.get(50ms), green::QueueEmpty);
    expect_about(Clock::now() - t0, 50ms);
  });
  // A plain thread's timed get.
  const auto t0 = Clock::now();
  EXPECT_THROW(q.get(50ms), green::QueueEmpty);
  expect_about(Clock::now() - t0, 50ms);
}

TYPED_TEST(QueueTimeouts, GetWithTimeoutReturnsAnItemPutInTime) {
  TypeParam q;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    auto getter = green::spawn([&] { return q.get(10s); });
    ASSERT_TRUE(wait_parked(rt, "Queue.get", 1));
    q.put(5);
    EXPECT_EQ(getter.get(5s), 5);
  });
}

TYPED_TEST(QueueTimeouts, PutTimeoutOnFullThrowsQueueFullAndAddsNothing) {
  auto q = make_full_queue<TypeParam>();
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    const auto t0 = Clock::now();
    EXPECT_THROW(q->put(7, 50ms), green::QueueFull);
    expect_about(Clock::now() - t0, 50ms);
    EXPECT_THROW(q->put_nowait(8), green::QueueFull);
  });
  const auto t0 = Clock::now();
  EXPECT_THROW(q->put(9, 30ms), green::QueueFull);  // plain thread
  expect_about(Clock::now() - t0, 30ms);
  // Only the original item (if any) is there.
  if constexpr (!std::is_same_v<TypeParam, green::Channel<int>>) {
    EXPECT_EQ(q->get_nowait(), 100);
  }
  EXPECT_THROW(q->get_nowait(), green::QueueEmpty);
}

// An outer 1 ms Timeout around get(1 s) surfaces as that Timeout, not as
// QueueEmpty; likewise around a put on a full queue.
TYPED_TEST(QueueTimeouts, OuterTimeoutSurfacesAsTimeoutError) {
  auto q = make_full_queue<TypeParam>();
  TypeParam empty;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    {
      const auto t0 = Clock::now();
      green::Timeout t(1ms);
      try {
        empty.get(1s);
        ADD_FAILURE() << "get must be interrupted";
      } catch (const green::TimeoutError& e) {
        EXPECT_TRUE(e.is(t));
        EXPECT_EQ(e.scope_id(), t.id());
      } catch (const green::QueueEmpty&) {
        ADD_FAILURE() << "the outer Timeout must win, not get's own timeout";
      }
      EXPECT_TRUE(t.expired());
      EXPECT_LT(Clock::now() - t0, 500ms);
    }
    {
      const auto t0 = Clock::now();
      green::Timeout t(1ms);
      try {
        q->put(7, 1s);
        ADD_FAILURE() << "put must be interrupted";
      } catch (const green::TimeoutError& e) {
        EXPECT_TRUE(e.is(t));
      } catch (const green::QueueFull&) {
        ADD_FAILURE() << "the outer Timeout must win, not put's own timeout";
      }
      EXPECT_LT(Clock::now() - t0, 500ms);
    }
    // Nothing was added by the interrupted put, and both still work.
    auto getter = green::spawn([&] { return empty.get(5s); });
    ASSERT_TRUE(wait_parked(rt, "Queue.get", 1));
    empty.put(3);
    EXPECT_EQ(getter.get(5s), 3);
  });
  if constexpr (!std::is_same_v<TypeParam, green::Channel<int>>) {
    EXPECT_EQ(q->get_nowait(), 100);
  }
  EXPECT_THROW(q->get_nowait(), green::QueueEmpty);
}

// ---------------------------------------------------------------------------
// peek

TEST(QueuePeek, BlocksUntilPutAndDoesNotRemove) {
  green::Queue<int> q;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    std::vector<green::Greenlet<int>> peekers;
    for (int i = 0; i < 3; ++i) peekers.push_back(green::spawn([&] { return q.peek(); }));
    ASSERT_TRUE(wait_parked(rt, "Queue.peek", 3));
    q.put(7);
    for (auto& p : peekers) EXPECT_EQ(p.get(5s), 7);  // every peeker wakes
    EXPECT_EQ(q.size(), 1u);
    EXPECT_EQ(q.peek_nowait(), 7);
    EXPECT_EQ(q.peek(1s), 7);
    EXPECT_EQ(q.get(), 7);
    EXPECT_TRUE(q.empty());
  });
}

TEST(QueuePeek, TimeoutAndNowait) {
  green::Queue<int> q;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    EXPECT_THROW(q.peek_nowait(), green::QueueEmpty);
    const auto t0 = Clock::now();
    EXPECT_THROW(q.peek(40ms), green::QueueEmpty);  // gevent case 31's peek(timeout)
    expect_about(Clock::now() - t0, 40ms);
    {
      green::Timeout t(1ms);
      try {
        q.peek();
        ADD_FAILURE() << "peek must be interrupted";
      } catch (const green::TimeoutError& e) {
        EXPECT_TRUE(e.is(t));
      }
    }
  });
  const auto t0 = Clock::now();
  EXPECT_THROW(q.peek(30ms), green::QueueEmpty);  // plain thread
  expect_about(Clock::now() - t0, 30ms);
}

TEST(QueuePeek, SeesTheNextItemOfEachOrder) {
  green::Queue<int> fifo;
  green::LifoQueue<int> lifo;
  green::PriorityQueue<int> prio;
  for (int v : {3, 1, 2}) {
    fifo.put(v);
    lifo.put(v);
    prio.put(v);
  }
  EXPECT_EQ(fifo.peek_nowait(), 3);
  EXPECT_EQ(lifo.peek_nowait(), 2);
  EXPECT_EQ(prio.peek_nowait(), 1);
  EXPECT_EQ(fifo.size(), 3u);
  EXPECT_EQ(fifo.get(), 3);
  EXPECT_EQ(lifo.get(), 2);
  EXPECT_EQ(prio.get(), 1);
}

// A put that goes straight to a waiting getter stores nothing, so a peeker
// keeps waiting for the next stored item.
TEST(QueuePeek, HandOffToAGetterIsNotSeenByPeekers) {
  green::Queue<int> q;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    auto getter = green::spawn([&] { return q.get(); });
    ASSERT_TRUE(wait_parked(rt, "Queue.get", 1));
    auto peeker = green::spawn([&] { return q.peek(); });
    ASSERT_TRUE(wait_parked(rt, "Queue.peek", 1));
    q.put(5);
    EXPECT_EQ(getter.get(5s), 5);
    q.put(6);
    EXPECT_EQ(peeker.get(5s), 6);
    EXPECT_EQ(q.get_nowait(), 6);
  });
}

// ---------------------------------------------------------------------------
// close

TEST(QueueClose, GetsDrainThenThrowQueueClosed) {
  green::Queue<int> q;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    for (int i = 1; i <= 3; ++i) q.put(i);
    EXPECT_FALSE(q.closed());
    q.close();
    EXPECT_TRUE(q.closed());
    EXPECT_THROW(q.put(4), green::QueueClosed);
    EXPECT_THROW(q.put_nowait(4), green::QueueClosed);
    EXPECT_THROW(q.put(4, 10ms), green::QueueClosed);
    EXPECT_EQ(q.size(), 3u) << "a put after close adds nothing";
    EXPECT_EQ(q.peek(), 1);
    EXPECT_EQ(q.get(), 1);
    EXPECT_EQ(q.get_nowait(), 2);
    EXPECT_EQ(q.get(10ms), 3);
    EXPECT_THROW(q.get(), green::QueueClosed);
    EXPECT_THROW(q.get_nowait(), green::QueueClosed);
    EXPECT_THROW(q.get(10ms), green::QueueClosed);
    EXPECT_THROW(q.peek(), green::QueueClosed);
    EXPECT_THROW(q.peek_nowait(), green::QueueClosed);
    EXPECT_NO_THROW(q.close()) << "close is idempotent";
    EXPECT_TRUE(q.closed());
  });
  EXPECT_THROW(q.get(), green::QueueClosed);  // a plain thread too
  EXPECT_THROW(q.put(1), green::QueueClosed);
}

TEST(QueueClose, BlockedGettersPeekersAndPuttersWake) {
  green::Queue<int> empty;
  green::Queue<int> full(1);
  std::atomic<int> closed_seen{0};
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    full.put(0);
    std::vector<green::Greenlet<void>> gs;
    auto expect_closed = [&](auto fn) {
      return green::spawn([&closed_seen, fn] {
        try {
          fn();
          ADD_FAILURE() << "must throw QueueClosed";
        } catch (const green::QueueClosed&) {
          closed_seen.fetch_add(1);
        }
      });
    };
    for (int i = 0; i < 3; ++i) gs.push_back(expect_closed([&] { empty.get(); }));
    gs.push_back(expect_closed([&] { empty.get(10s); }));
    for (int i = 0; i < 2; ++i) gs.push_back(expect_closed([&] { empty.peek(); }));
    for (int i = 1; i <= 2; ++i) gs.push_back(expect_closed([&, i] { full.put(i); }));
    gs.push_back(expect_closed([&] { full.put(3, 10s); }));
    ASSERT_TRUE(wait_parked(rt, "Queue.get", 4));
    ASSERT_TRUE(wait_parked(rt, "Queue.peek", 2));
    ASSERT_TRUE(wait_parked(rt, "Queue.put", 3));
    // A plain thread blocked in get() wakes too.
    std::thread plain([&] { EXPECT_THROW(empty.get(), green::QueueClosed); });
    empty.close();
    full.close();
    plain.join();
    EXPECT_EQ(green::joinall(gs, 5s), gs.size());
    EXPECT_EQ(closed_seen.load(), 9);
    // The waiting putters' items were not added; the stored one drains.
    EXPECT_EQ(full.get(), 0);
    EXPECT_THROW(full.get(), green::QueueClosed);
  });
}

TEST(QueueClose, RangeForEndsAtClose) {
  green::Queue<int> q(4);
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    auto consumer = green::spawn([&] {
      std::vector<int> got;
      for (auto& v : q) got.push_back(v);
      return got;
    });
    for (int i = 0; i < 100; ++i) q.put(i);  // bounded: waits for the consumer
    q.close();
    std::vector<int> want(100);
    std::iota(want.begin(), want.end(), 0);
    EXPECT_EQ(consumer.get(5s), want);
    // Over a closed, empty queue the loop body never runs.
    int n = 0;
    for (auto& v : q) n += v + 1;
    EXPECT_EQ(n, 0);
  });
}

// ---------------------------------------------------------------------------
// Item order

TEST(QueueOrder, LifoLastInFirstOut) {
  green::LifoQueue<int> q;
  for (int i = 1; i <= 5; ++i) q.put(i);
  std::vector<int> got;
  for (int i = 0; i < 5; ++i) got.push_back(q.get());
  EXPECT_EQ(got, (std::vector<int>{5, 4, 3, 2, 1}));
}

TEST(QueueOrder, PrioritySmallestFirst) {
  green::PriorityQueue<int> q;
  std::vector<int> in(200);
  std::iota(in.begin(), in.end(), 0);
  std::shuffle(in.begin(), in.end(), std::mt19937(42));
  for (int v : in) q.put(v);
  std::vector<int> got;
  while (!q.empty()) got.push_back(q.get());
  std::vector<int> want(200);
  std::iota(want.begin(), want.end(), 0);
  EXPECT_EQ(got, want);
}

struct Job {
  int prio;
  std::string name;
};
struct ByPrioDesc {
  bool operator()(const Job& a, const Job& b) const { return a.prio > b.prio; }
};

TEST(QueueOrder, PriorityCustomCompare) {
  green::PriorityQueue<int, std::greater<int>> largest;
  for (int v : {3, 9, 1, 7}) largest.put(v);
  EXPECT_EQ(largest.peek_nowait(), 9);
  std::vector<int> got;
  while (!largest.empty()) got.push_back(largest.get());
  EXPECT_EQ(got, (std::vector<int>{9, 7, 3, 1}));

  // "Smallest by Compare" with a compare that ranks high prio first.
  green::PriorityQueue<Job, ByPrioDesc> jobs;
  jobs.put(Job{1, "low"});
  jobs.put(Job{5, "high"});
  jobs.put(Job{3, "mid"});
  EXPECT_EQ(jobs.get().name, "high");
  EXPECT_EQ(jobs.get().name, "mid");
  EXPECT_EQ(jobs.get().name, "low");
}

// Move-only items travel through every queue type.
TEST(QueueOrder, MoveOnlyItems) {
  green::Queue<std::unique_ptr<int>> q(1);
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    auto producer = green::spawn([&] {
      for (int i = 0; i < 10; ++i) q.put(std::make_unique<int>(i));
      q.close();
    });
    int expect = 0;
    for (auto& p : q) EXPECT_EQ(*p, expect++);
    EXPECT_EQ(expect, 10);
    producer.join();
  });
}

// ---------------------------------------------------------------------------
// Kill of a green thread blocked in get/put: nothing lost or duplicated.

TEST(QueueKill, KilledGetterLosesNoItem) {
  green::Queue<int> q;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    std::atomic<bool> returned{false};
    auto victim = green::spawn([&] {
      q.get();
      returned = true;
    });
    ASSERT_TRUE(wait_parked(rt, "Queue.get", 1));
    auto live = green::spawn([&] { return q.get(); });
    ASSERT_TRUE(wait_parked(rt, "Queue.get", 2));
    EXPECT_TRUE(victim.kill());
    EXPECT_TRUE(victim.killed());
    EXPECT_FALSE(returned.load());
    q.put(1);  // the victim waited longer, but it is gone: the live one gets it
    EXPECT_EQ(live.get(5s), 1);
    EXPECT_TRUE(q.empty());
    // With nobody left waiting, the next item stays queued.
    auto lone = green::spawn([&] { q.get(); });
    ASSERT_TRUE(wait_parked(rt, "Queue.get", 1));
    lone.kill();
    q.put(2);
    EXPECT_EQ(q.size(), 1u);
    EXPECT_EQ(q.get(), 2);
  });
}

TEST(QueueKill, KillWithACustomException) {
  green::Queue<int> q;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    auto victim = green::spawn([&] {
      try {
        q.get();
      } catch (const MyError& e) {
        return e.code;
      }
      return -1;
    });
    ASSERT_TRUE(wait_parked(rt, "Queue.get", 1));
    victim.kill(MyError(4));
    EXPECT_EQ(victim.get(5s), 4);
    q.put(1);
    EXPECT_EQ(q.size(), 1u);
  });
}

TEST(QueueKill, KilledPutterItemIsNotAdded) {
  green::Queue<std::string> q(1);
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    q.put("a");
    auto p1 = green::spawn([&] { q.put("b"); });
    ASSERT_TRUE(wait_parked(rt, "Queue.put", 1));
    auto p2 = green::spawn([&] { q.put("c"); });
    ASSERT_TRUE(wait_parked(rt, "Queue.put", 2));
    EXPECT_TRUE(p1.kill());
    EXPECT_TRUE(p1.killed());
    EXPECT_EQ(q.get(), "a");  // room: the live putter's c moves in, not b
    EXPECT_TRUE(p2.join(5s));
    EXPECT_EQ(q.get(), "c");
    EXPECT_THROW(q.get_nowait(), green::QueueEmpty);
    // A putter interrupted by its Timeout adds nothing either.
    q.put("d");
    {
      green::Timeout t(20ms);
      EXPECT_THROW(q.put("e"), green::TimeoutError);
    }
    EXPECT_EQ(q.get(), "d");
    EXPECT_THROW(q.get_nowait(), green::QueueEmpty);
  });
}

// Killed or timed-out peekers and joiners leave their wait lists too.
TEST(QueueKill, KilledPeekerAndJoiner) {
  green::JoinableQueue<int> q;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    auto peeker = green::spawn([&] { q.peek(); });
    ASSERT_TRUE(wait_parked(rt, "Queue.peek", 1));
    EXPECT_TRUE(peeker.kill());
    EXPECT_TRUE(peeker.killed());
    q.put(1);
    EXPECT_EQ(q.peek_nowait(), 1);
    auto joiner = green::spawn([&] { q.join(); });
    ASSERT_TRUE(wait_parked(rt, "JoinableQueue.join", 1));
    EXPECT_TRUE(joiner.kill());
    EXPECT_TRUE(joiner.killed());
    {
      green::Timeout t(10ms);
      EXPECT_THROW(q.join(), green::TimeoutError);
    }
    EXPECT_EQ(q.get(), 1);
    q.task_done();
    EXPECT_TRUE(q.join(0ms));
  });
}

// ---------------------------------------------------------------------------
// Plain threads and green threads on one queue.

TEST(QueuePlainThread, PlainGetterGreenPutter) {
  green::Queue<int> q;
  green::Runtime rt({.workers = 2});
  std::thread plain([&] {
    int sum = 0;
    for (int i = 0; i < 100; ++i) sum += q.get();
    EXPECT_EQ(sum, 4950);
  });
  rt.run([&] {
    for (int i = 0; i < 100; ++i) {
      q.put(i);
      if (i % 10 == 0) green::yield();
    }
  });
  plain.join();
  EXPECT_TRUE(q.empty());
}

TEST(QueuePlainThread, PlainPutterOnFullQueueGreenGetter) {
  green::Queue<int> q(1);
  green::Runtime rt({.workers = 2});
  std::thread plain([&] {
    for (int i = 0; i < 100; ++i) q.put(i);  // blocks on a futex while full
  });
  rt.run([&] {
    for (int i = 0; i < 100; ++i) EXPECT_EQ(q.get(5s), i);
  });
  plain.join();
  EXPECT_TRUE(q.empty());
}

// ---------------------------------------------------------------------------
// Cross-worker stress: every item delivered exactly once.

struct Tally {
  explicit Tally(int n) : n(n), seen(std::make_unique<std::atomic<std::uint8_t>[]>(static_cast<std::size_t>(n))) {}
  void record(int v) {
    if (v < 0 || v >= n) {
      bad.fetch_add(1, std::memory_order_relaxed);
      return;
    }
    if (seen[static_cast<std::size_t>(v)].fetch_add(1, std::memory_order_relaxed) != 0)
      dups.fetch_add(1, std::memory_order_relaxed);
  }
  void add(std::int64_t count_, std::int64_t sum_) {
    count.fetch_add(count_);
    sum.fetch_add(sum_);
  }
  // Every value 0..n-1 exactly once.
  void check() const {
    EXPECT_EQ(bad.load(), 0);
    EXPECT_EQ(dups.load(), 0);
    EXPECT_EQ(count.load(), n);
    EXPECT_EQ(sum.load(), static_cast<std::int64_t>(n) * (n - 1) / 2);
    int missing = 0;
    for (int i = 0; i < n; ++i) missing += seen[static_cast<std::size_t>(i)].load() == 0 ? 1 : 0;
    EXPECT_EQ(missing, 0);
  }
  const int n;
  std::unique_ptr<std::atomic<std::uint8_t>[]> seen;
  std::atomic<std::int64_t> count{0}, sum{0};
  std::atomic<int> dups{0}, bad{0};
};

// Producers pinned on even workers, consumers on odd ones (so each hand-off
// crosses workers); the queue is closed once every producer is done.
void cross_worker_stress(unsigned workers, std::size_t maxsize) {
  ASSERT_GE(workers, 2u);
  constexpr int kProducers = 4, kConsumers = 4;
  const int n = kStressItems;
  Tally tally(n);
  green::Queue<int> q(maxsize);
  green::Runtime rt({.workers = workers});
  const auto t0 = Clock::now();
  rt.run([&] {
    std::vector<green::Greenlet<void>> producers, consumers;
    for (int c = 0; c < kConsumers; ++c) {
      const unsigned w = (2 * static_cast<unsigned>(c) + 1) % workers;
      consumers.push_back(green::spawn(on_worker(w), [&, w] {
        EXPECT_EQ(green::this_worker(), static_cast<int>(w));
        std::int64_t count = 0, sum = 0;
        for (auto& v : q) {
          tally.record(v);
          ++count;
          sum += v;
        }
        tally.add(count, sum);
      }));
    }
    for (int p = 0; p < kProducers; ++p) {
      const unsigned w = (2 * static_cast<unsigned>(p)) % workers;
      const int from = n / kProducers * p, to = p == kProducers - 1 ? n : n / kProducers * (p + 1);
      producers.push_back(green::spawn(on_worker(w), [&, from, to] {
        for (int i = from; i < to; ++i) q.put(i);
      }));
    }
    EXPECT_EQ(green::joinall(producers, 100s), producers.size());
    q.close();
    EXPECT_EQ(green::joinall(consumers, 100s), consumers.size());
  });
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  std::printf("  %d items, %u workers, maxsize %zu: %lld ms\n", n, workers, maxsize, static_cast<long long>(ms));
  tally.check();
  EXPECT_TRUE(q.empty());
}

TEST(QueueStress, CrossWorkerBounded2Workers) { cross_worker_stress(2, 64); }
TEST(QueueStress, CrossWorkerUnbounded2Workers) { cross_worker_stress(2, 0); }

// Pinned green threads woken at once from plain threads and from another
// worker (concurrent pushes onto worker 1's inbox): no wake is lost and every
// producer's items arrive in order.
TEST(QueueStress, PinnedConsumersWokenFromPlainThreadsAndAWorkerLoseNoWake) {
  green::Runtime rt({.workers = 2});
  constexpr int kConsumers = 16, kPlainProducers = 3, kPerProducer = 4000;
  constexpr int kProducers = kPlainProducers + 1;
  std::vector<green::Queue<int>> queues(kConsumers);
  std::vector<green::Greenlet<bool>> consumers;
  for (int c = 0; c < kConsumers; ++c) {
    consumers.push_back(rt.spawn({.worker = 1, .pinned = true}, [&queues, c] {
      std::vector<int> last(kProducers, -1);
      for (int n = 0; n < kProducers * kPerProducer / kConsumers; ++n) {
        const int item = queues[c].get();
        const int producer = item / kPerProducer, seq = item % kPerProducer;
        if (seq <= last[producer]) return false;
        last[producer] = seq;
      }
      return true;
    }));
  }
  auto produce = [&queues](int producer) {
    for (int i = 0; i < kPerProducer; ++i) queues[i % kConsumers].put(producer * kPerProducer + i);
  };
  auto green_producer = rt.spawn({.worker = 0, .pinned = true}, [&] { produce(kPlainProducers); });
  std::vector<std::thread> plain;
  for (int p = 0; p < kPlainProducers; ++p) plain.emplace_back(produce, p);
  for (auto& t : plain) t.join();
  ASSERT_TRUE(green_producer.join(30s));
  for (auto& c : consumers) {
    ASSERT_TRUE(c.join(30s)) << "a consumer missed a wake";
    EXPECT_TRUE(c.get()) << "items out of order";
  }
}

// At the machine's worker count; on a 2-core machine that is the case above.
TEST(QueueStress, CrossWorkerBoundedAllWorkers) {
  if (all_workers() == 2) GTEST_SKIP() << "2 cores: same as CrossWorkerBounded2Workers";
  cross_worker_stress(all_workers(), 64);
}
TEST(QueueStress, CrossWorkerUnboundedAllWorkers) {
  if (all_workers() == 2) GTEST_SKIP() << "2 cores: same as CrossWorkerUnbounded2Workers";
  cross_worker_stress(all_workers(), 0);
}

// Plain threads call put()/get() directly (blocking on a futex) beside
// green producers and consumers on one bounded queue.
TEST(QueueStress, PlainAndGreenThreadsMixed) {
  const int n = kStressItems / 5;
  constexpr int kParties = 2;  // of each kind: plain producers, green producers, ...
  Tally tally(n);
  green::Queue<int> q(64);
  green::Runtime rt({.workers = 2});
  std::atomic<int> producers_left{2 * kParties};
  auto produce = [&](int part) {
    const int parts = 2 * kParties;
    const int from = n / parts * part, to = part == parts - 1 ? n : n / parts * (part + 1);
    for (int i = from; i < to; ++i) q.put(i);
    if (producers_left.fetch_sub(1) == 1) q.close();  // the last producer closes
  };
  auto consume = [&] {
    std::int64_t count = 0, sum = 0;
    for (;;) {
      int v;
      try {
        v = q.get(30s);
      } catch (const green::QueueClosed&) {
        break;
      } catch (const green::QueueEmpty&) {
        ADD_FAILURE() << "a consumer starved for 30 s";
        break;
      }
      tally.record(v);
      ++count;
      sum += v;
    }
    tally.add(count, sum);
  };
  std::vector<std::thread> plain;
  for (int i = 0; i < kParties; ++i) plain.emplace_back(consume);
  for (int i = 0; i < kParties; ++i) plain.emplace_back(produce, i);
  rt.run([&] {
    std::vector<green::Greenlet<void>> gs;
    for (int i = 0; i < kParties; ++i) {
      gs.push_back(green::spawn(on_worker(static_cast<unsigned>(i) % 2), consume));
      gs.push_back(green::spawn(on_worker(static_cast<unsigned>(i + 1) % 2), produce, kParties + i));
    }
    EXPECT_EQ(green::joinall(gs, 100s), gs.size());
  });
  for (auto& t : plain) t.join();
  tally.check();
}

// Getters with tiny timeouts race with puts (case 27 under load): a getter
// whose timeout fires as an item is handed to it must give the item to the
// next party; none may vanish or arrive twice.
TEST(QueueStress, TimedOutGettersLoseNothing) {
  const int n = kRaceItems;
  Tally tally(n);
  green::Queue<int> q;
  std::atomic<int> received{0}, timeouts{0};
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    const auto give_up = Clock::now() + 60s;
    std::vector<green::Greenlet<void>> getters;
    for (unsigned c = 0; c < 8; ++c) {
      getters.push_back(green::spawn(on_worker(c % 2), [&, c] {
        std::int64_t count = 0, sum = 0;
        unsigned k = c;
        while (received.load() < n && Clock::now() < give_up) {
          try {
            k = k * 1103515245u + 12345u;
            const int v = q.get(std::chrono::microseconds((k >> 16) & 127));
            tally.record(v);
            received.fetch_add(1);
            ++count;
            sum += v;
          } catch (const green::QueueEmpty&) {
            timeouts.fetch_add(1);
          }
        }
        tally.add(count, sum);
      }));
    }
    auto producer = green::spawn(on_worker(0), [&] {
      for (int i = 0; i < n; ++i) {
        q.put(i);
        if (i % 16 == 0) green::yield();
      }
    });
    producer.join();
    EXPECT_EQ(green::joinall(getters, 70s), getters.size());
  });
  tally.check();
  EXPECT_TRUE(q.empty());
  EXPECT_GT(timeouts.load(), 0) << "the race was not exercised";
}

// Putters with tiny timeouts on a small bounded queue: an item whose put
// threw QueueFull must never be delivered, and every item whose put
// returned must be delivered once.
TEST(QueueStress, TimedOutPuttersAddNothing) {
  const int n = kRaceItems;
  green::Queue<int> q(2);
  auto added = std::make_unique<std::atomic<std::uint8_t>[]>(static_cast<std::size_t>(n));
  auto seen = std::make_unique<std::atomic<std::uint8_t>[]>(static_cast<std::size_t>(n));
  std::atomic<int> full{0};
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    std::vector<green::Greenlet<void>> producers, consumers;
    for (unsigned c = 0; c < 2; ++c) {
      consumers.push_back(green::spawn(on_worker(1), [&] {
        int i = 0;
        for (auto& v : q) {
          seen[static_cast<std::size_t>(v)].fetch_add(1);
          if (++i % 16 == 0) spin_for(20us);  // computation: lets the queue fill
        }
      }));
    }
    for (unsigned p = 0; p < 4; ++p) {
      producers.push_back(green::spawn(on_worker(0), [&, p] {
        for (int i = static_cast<int>(p); i < n; i += 4) {
          try {
            q.put(i, std::chrono::microseconds(i % 40));
            added[static_cast<std::size_t>(i)].store(1);
          } catch (const green::QueueFull&) {
            full.fetch_add(1);
          }
        }
      }));
    }
    EXPECT_EQ(green::joinall(producers, 60s), producers.size());
    q.close();
    EXPECT_EQ(green::joinall(consumers, 60s), consumers.size());
  });
  int mismatches = 0, delivered = 0;
  for (int i = 0; i < n; ++i) {
    const auto a = added[static_cast<std::size_t>(i)].load();
    const auto s = seen[static_cast<std::size_t>(i)].load();
    mismatches += a != s ? 1 : 0;
    delivered += s;
  }
  EXPECT_EQ(mismatches, 0) << "an item was delivered although its put failed, twice, or never";
  EXPECT_GT(full.load(), 0) << "the race was not exercised";
  EXPECT_EQ(delivered + full.load(), n);
}

// Getters killed at random moments while items flow: a killed getter that
// had an item handed to it keeps it (and records it); one whose kill won the
// race gives the item on. Each round the main green thread spawns a getter
// on the other worker, puts 0-3 items with yields between, and kills it;
// whatever is left in the queue is drained at the end.
TEST(QueueStress, KilledGettersLoseNothing) {
  const int rounds = kRaceItems / 10;
  Tally tally(3 * rounds);
  green::Queue<int> q;
  std::atomic<int> killed_while_parked{0};
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    auto getter = [&] {
      std::int64_t count = 0, sum = 0;
      try {
        for (;;) {
          const int v = q.get();
          tally.record(v);
          ++count;
          sum += v;
        }
      } catch (...) {
        tally.add(count, sum);
        throw;
      }
    };
    const unsigned other = green::this_worker() == 0 ? 1 : 0;
    unsigned k = 1;
    int next = 0;
    for (int r = 0; r < rounds; ++r) {
      auto g = green::spawn(on_worker(other), getter);
      k = k * 1103515245u + 12345u;
      for (unsigned i = (k >> 16) & 3; i > 0; --i) {
        q.put(next++);
        if ((k >> (20 + i)) & 1) green::yield();
      }
      if (parked_on(rt, "Queue.get") > 0) killed_while_parked.fetch_add(1);
      g.kill();
      EXPECT_TRUE(g.killed());
    }
    // The items never put are "delivered" here so that the tally covers
    // exactly 0 .. 3*rounds-1.
    std::int64_t count = 0, sum = 0;
    for (int v = next; v < 3 * rounds; ++v) {
      tally.record(v);
      ++count;
      sum += v;
    }
    // Drain what is left in the queue.
    for (;;) {
      try {
        const int v = q.get_nowait();
        tally.record(v);
        ++count;
        sum += v;
      } catch (const green::QueueEmpty&) {
        break;
      }
    }
    tally.add(count, sum);
  });
  tally.check();
  EXPECT_GT(killed_while_parked.load(), 0) << "the race was not exercised";
}

}  // namespace
