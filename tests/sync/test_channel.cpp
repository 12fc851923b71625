// Channel: the unbuffered rendezvous (gevent-behaviours case 29, and 28's
// channel row). Timed calls on every queue class, Channel included, are in
// test_queue.cpp (QueueTimeouts).
//
// "X is parked" is observed through Runtime::dump() ("parked: Queue.get"; a
// Channel is a BasicQueue and names its waits as a Queue does). No test
// sleeps to synchronise.
#include <green/green.hpp>
#include <green/sync.hpp>
#include <gtest/gtest.h>

#include "test_util.hpp"
#include "parked.hpp"
#include "test_env.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
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

// Every item of the stress crosses workers through a rendezvous (a park and
// a wake each), so the count is lower than the Queue stress; scaled down
// further under sanitizers: 100,000 / 20,000 / 5,000 (release/ASan/TSan).
constexpr int kStressItems = per_build(100'000, 20'000, 5'000);

// ---------------------------------------------------------------------------
// Case 29: exact event orders on one worker.
//
// green's rules that decide the order: spawn() only schedules (the child
// starts when the parent switches out); a put() that finds a getter waiting
// hands the item over and returns without switching (the getter is made
// runnable and runs when the putter next switches); a get() that finds a
// putter waiting takes its item and likewise returns at once.

// gevent: ['sending', 'hello', 'sent hello', 'world', 'sent world'].
// green:  ['sending', 'hello', 'sent hello', 'sent world', 'world'].
// The difference is the last put: in gevent Channel.put always parks until
// the getter has run and switched back, so the consumer appends 'world'
// first; in green the put finds the consumer waiting, hands 'world' over and
// returns, so the producer appends 'sent world' before the consumer runs.
TEST(Channel, SendOrderConsumerSpawnedFirst) {
  green::Channel<std::string> ch;
  std::vector<std::string> events;
  green::Runtime rt({.workers = 1});
  rt.run([&] {
    auto consumer = green::spawn([&] {
      events.push_back(ch.get());
      events.push_back(ch.get());
    });
    events.push_back("sending");
    ch.put("hello");  // no getter yet: parks; the consumer starts and takes it
    events.push_back("sent hello");
    ch.put("world");  // the consumer waits: handed over, no switch
    events.push_back("sent world");
    EXPECT_EQ(events, (std::vector<std::string>{"sending", "hello", "sent hello", "sent world"}));
    EXPECT_TRUE(consumer.join(5s));
    EXPECT_EQ(events, (std::vector<std::string>{"sending", "hello", "sent hello", "sent world", "world"}));
  });
}

// gevent: ['waiting', 'sending hello', 'hello', 'sending world', 'world'],
//         then 'sent world' after sleep(0).
// green:  ['waiting', 'sending hello', 'sending world', 'hello', 'world'],
//         then 'sent world' after yield().
// The difference: in gevent put('hello') parks until the main greenlet has
// taken it and run; in green the main green thread is already waiting, so
// put('hello') hands it over and returns, and the producer goes on to
// 'sending world' and parks in put('world') before main runs again. main's
// second get() takes 'world' from the parked producer without switching,
// and the producer appends 'sent world' once main yields.
TEST(Channel, WaitOrderProducerSpawnedFirst) {
  green::Channel<std::string> ch;
  std::vector<std::string> events;
  green::Runtime rt({.workers = 1});
  rt.run([&] {
    auto producer = green::spawn([&] {
      events.push_back("sending hello");
      ch.put("hello");
      events.push_back("sending world");
      ch.put("world");
      events.push_back("sent world");
    });
    events.push_back("waiting");
    events.push_back(ch.get());
    events.push_back(ch.get());
    EXPECT_EQ(events, (std::vector<std::string>{"waiting", "sending hello", "sending world", "hello", "world"}));
    green::yield();
    EXPECT_EQ(events,
              (std::vector<std::string>{"waiting", "sending hello", "sending world", "hello", "world", "sent world"}));
    EXPECT_TRUE(producer.join(5s));
  });
}

// gevent's test_zero_max_size: a put on a channel with nobody waiting parks
// until a getter takes the item, on any number of workers.
TEST(Channel, PutWaitsUntilTaken) {
  green::Channel<int> ch;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    std::atomic<bool> put_returned{false};
    auto putter = green::spawn([&] {
      ch.put(1);
      put_returned = true;
    });
    ASSERT_TRUE(wait_parked(rt, "Queue.put", 1));
    EXPECT_FALSE(put_returned.load());
    EXPECT_EQ(ch.size(), 0u) << "a channel stores nothing";
    EXPECT_TRUE(ch.full());
    EXPECT_EQ(ch.get(), 1);
    EXPECT_TRUE(putter.join(5s));
    EXPECT_TRUE(put_returned.load());
  });
}

// ---------------------------------------------------------------------------
// nowait (case 28, channel row)

TEST(Channel, PutNowaitSucceedsOnlyWithAWaitingGetter) {
  green::Channel<int> ch;
  green::Runtime rt({.workers = 2});
  EXPECT_THROW(ch.put_nowait(1), green::QueueFull);  // plain thread, nobody waits
  rt.run([&] {
    EXPECT_TRUE(ch.full());
    EXPECT_THROW(ch.put_nowait(1), green::QueueFull);
    auto getter = green::spawn([&] { return ch.get(); });
    ASSERT_TRUE(wait_parked(rt, "Queue.get", 1));
    EXPECT_FALSE(ch.full()) << "a getter waits: a put would not";
    EXPECT_NO_THROW(ch.put_nowait(2));
    EXPECT_THROW(ch.put_nowait(3), green::QueueFull) << "the one getter is taken";
    EXPECT_EQ(getter.get(5s), 2);
  });
  // From a plain thread, to a waiting green getter.
  auto getter = rt.spawn([&] { return ch.get(); });
  ASSERT_TRUE(wait_parked(rt, "Queue.get", 1));
  EXPECT_NO_THROW(ch.put_nowait(4));
  EXPECT_EQ(getter.get(5s), 4);
}

// test_get_nowait_unlock_channel: get_nowait takes a waiting putter's item
// and releases the putter; a second get_nowait raises Empty.
TEST(Channel, GetNowaitSucceedsOnlyWithAWaitingPutter) {
  for (bool from_green : {false, true}) {
    SCOPED_TRACE(from_green ? "green thread" : "plain thread");
    green::Channel<int> ch;
    green::Runtime rt({.workers = 2});
    EXPECT_THROW(ch.get_nowait(), green::QueueEmpty);
    auto putter = rt.spawn([&] { ch.put(5); });
    ASSERT_TRUE(wait_parked(rt, "Queue.put", 1));
    auto body = [&] {
      EXPECT_TRUE(ch.full());
      EXPECT_EQ(ch.get_nowait(), 5);
      EXPECT_THROW(ch.get_nowait(), green::QueueEmpty);
      EXPECT_TRUE(putter.join(5s));
      EXPECT_TRUE(putter.successful());
    };
    if (from_green) {
      rt.run(body);
    } else {
      body();
    }
  }
}

// try_put / try_get on a channel: they succeed only with a waiting partner.
TEST(Channel, TryPutTryGet) {
  green::Channel<std::string> ch;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    std::string a = "a";
    EXPECT_FALSE(ch.try_put(a)) << "nobody waits";
    EXPECT_EQ(a, "a");
    EXPECT_EQ(ch.try_get(), std::nullopt);
    auto getter = green::spawn([&] { return ch.get(); });
    ASSERT_TRUE(wait_parked(rt, "Queue.get", 1));
    EXPECT_TRUE(ch.try_put(a));
    EXPECT_EQ(getter.get(5s), "a");
    auto putter = green::spawn([&] { ch.put("b"); });
    ASSERT_TRUE(wait_parked(rt, "Queue.put", 1));
    EXPECT_EQ(ch.try_get(), std::optional<std::string>("b"));
    EXPECT_TRUE(putter.join(5s));
    EXPECT_EQ(ch.try_get(), std::nullopt);
    ch.close();
    EXPECT_THROW(ch.try_put(a), green::QueueClosed);
    EXPECT_EQ(ch.try_get(), std::nullopt);
  });
}

// ---------------------------------------------------------------------------
// Timeouts

TEST(Channel, TimedOutPutIsNeverDelivered) {
  green::Channel<int> ch;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    auto t0 = Clock::now();
    EXPECT_THROW(ch.put(1, 40ms), green::QueueFull);
    expect_about(Clock::now() - t0, 40ms);
    EXPECT_THROW(ch.get_nowait(), green::QueueEmpty) << "the timed-out put left nothing behind";
    t0 = Clock::now();
    EXPECT_THROW(ch.get(40ms), green::QueueEmpty);
    expect_about(Clock::now() - t0, 40ms);
    EXPECT_THROW(ch.put_nowait(2), green::QueueFull) << "the timed-out getter is gone";
    // A Timeout scope around a put.
    {
      green::Timeout t(20ms);
      try {
        ch.put(3);
        ADD_FAILURE() << "put must be interrupted";
      } catch (const green::TimeoutError& e) {
        EXPECT_TRUE(e.is(t));
      }
    }
    EXPECT_THROW(ch.get_nowait(), green::QueueEmpty);
    // A timed get that a put satisfies in time.
    auto getter = green::spawn([&] { return ch.get(10s); });
    ASSERT_TRUE(wait_parked(rt, "Queue.get", 1));
    ch.put(4);
    EXPECT_EQ(getter.get(5s), 4);
  });
}

// ---------------------------------------------------------------------------
// Pairing order and kill

TEST(Channel, WaitingPartiesArePairedFirstComeFirstServed) {
  green::Channel<int> ch;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    std::vector<green::Greenlet<void>> putters;
    for (int i = 0; i < 4; ++i) {
      putters.push_back(green::spawn([&, i] { ch.put(i); }));
      ASSERT_TRUE(wait_parked(rt, "Queue.put", static_cast<std::size_t>(i) + 1));
    }
    for (int i = 0; i < 4; ++i) EXPECT_EQ(ch.get(), i);
    EXPECT_EQ(green::joinall(putters, 5s), putters.size());

    std::vector<green::Greenlet<int>> getters;
    for (std::size_t i = 0; i < 4; ++i) {
      getters.push_back(green::spawn([&] { return ch.get(); }));
      ASSERT_TRUE(wait_parked(rt, "Queue.get", i + 1));
    }
    for (int i = 0; i < 4; ++i) ch.put(10 + i);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(getters[static_cast<std::size_t>(i)].get(5s), 10 + i);
  });
}

TEST(Channel, KilledPutterItemIsNeverDelivered) {
  green::Channel<int> ch;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    auto victim = green::spawn([&] { ch.put(1); });
    ASSERT_TRUE(wait_parked(rt, "Queue.put", 1));
    auto live = green::spawn([&] { ch.put(2); });
    ASSERT_TRUE(wait_parked(rt, "Queue.put", 2));
    EXPECT_TRUE(victim.kill());
    EXPECT_TRUE(victim.killed());
    EXPECT_EQ(ch.get(), 2);
    EXPECT_TRUE(live.join(5s));
    EXPECT_THROW(ch.get_nowait(), green::QueueEmpty);
  });
}

TEST(Channel, KilledGetterLosesNoItem) {
  green::Channel<int> ch;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    auto victim = green::spawn([&] {
      try {
        ch.get();
      } catch (const MyError& e) {
        return e.code;
      }
      return -1;
    });
    ASSERT_TRUE(wait_parked(rt, "Queue.get", 1));
    auto live = green::spawn([&] { return ch.get(); });
    ASSERT_TRUE(wait_parked(rt, "Queue.get", 2));
    victim.kill(MyError(6));
    EXPECT_EQ(victim.get(5s), 6);
    ch.put(3);
    EXPECT_EQ(live.get(5s), 3);
    EXPECT_THROW(ch.put_nowait(4), green::QueueFull) << "nobody waits any more";
  });
}

// ---------------------------------------------------------------------------
// close

TEST(Channel, CloseWakesGettersAndPutters) {
  green::Channel<int> getters_ch, putters_ch;
  std::atomic<int> closed_seen{0};
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    std::vector<green::Greenlet<void>> gs;
    for (int i = 0; i < 3; ++i) gs.push_back(green::spawn([&] {
      EXPECT_THROW(getters_ch.get(), green::QueueClosed);
      closed_seen.fetch_add(1);
    }));
    for (int i = 0; i < 3; ++i) gs.push_back(green::spawn([&, i] {
      EXPECT_THROW(putters_ch.put(i), green::QueueClosed);
      closed_seen.fetch_add(1);
    }));
    ASSERT_TRUE(wait_parked(rt, "Queue.get", 3));
    ASSERT_TRUE(wait_parked(rt, "Queue.put", 3));
    getters_ch.close();
    putters_ch.close();
    EXPECT_EQ(green::joinall(gs, 5s), gs.size());
    EXPECT_EQ(closed_seen.load(), 6);
    EXPECT_THROW(putters_ch.get_nowait(), green::QueueClosed) << "closed, and nothing was delivered";
    EXPECT_THROW(getters_ch.put(1), green::QueueClosed);
    EXPECT_THROW(getters_ch.put_nowait(1), green::QueueClosed);
    EXPECT_THROW(getters_ch.get(), green::QueueClosed);
    EXPECT_THROW(getters_ch.get(10ms), green::QueueClosed);
    EXPECT_TRUE(getters_ch.closed());
  });
}

TEST(Channel, RangeForEndsAtClose) {
  green::Channel<int> ch;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    auto consumer = green::spawn([&] {
      std::vector<int> got;
      for (auto& v : ch) got.push_back(v);
      return got;
    });
    for (int i = 0; i < 50; ++i) ch.put(i);  // each waits for the consumer
    ch.close();
    const auto& got = consumer.get(5s);
    ASSERT_EQ(got.size(), 50u);
    for (int i = 0; i < 50; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], i);
  });
}

// ---------------------------------------------------------------------------
// Plain threads

TEST(Channel, PlainThreadsOnBothEnds) {
  green::Channel<int> to_green, to_plain;
  green::Runtime rt({.workers = 2});
  std::thread plain([&] {
    for (int i = 0; i < 200; ++i) {
      to_green.put(i);                  // waits until the green thread takes it
      EXPECT_EQ(to_plain.get(), i * 2);  // waits for the green thread's reply
    }
  });
  rt.run([&] {
    for (int i = 0; i < 200; ++i) to_plain.put(to_green.get() * 2);
  });
  plain.join();
}

// ---------------------------------------------------------------------------
// Stress: producers and consumers pinned on different workers.

TEST(ChannelStress, CrossWorkerEachItemOnce) {
  const int n = kStressItems;
  constexpr int kProducers = 4, kConsumers = 4;
  auto seen = std::make_unique<std::atomic<std::uint8_t>[]>(static_cast<std::size_t>(n));
  std::atomic<std::int64_t> count{0}, sum{0};
  std::atomic<int> dups{0};
  green::Channel<int> ch;
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    std::vector<green::Greenlet<void>> producers, consumers;
    for (int c = 0; c < kConsumers; ++c) consumers.push_back(green::spawn(on_worker(1), [&] {
      std::int64_t k = 0, s = 0;
      for (auto& v : ch) {
        if (seen[static_cast<std::size_t>(v)].fetch_add(1) != 0) dups.fetch_add(1);
        ++k;
        s += v;
      }
      count.fetch_add(k);
      sum.fetch_add(s);
    }));
    for (int p = 0; p < kProducers; ++p) producers.push_back(green::spawn(on_worker(0), [&, p] {
      for (int i = p; i < n; i += kProducers) ch.put(i);
    }));
    EXPECT_EQ(green::joinall(producers, 100s), producers.size());
    ch.close();
    EXPECT_EQ(green::joinall(consumers, 100s), consumers.size());
  });
  EXPECT_EQ(dups.load(), 0);
  EXPECT_EQ(count.load(), n);
  EXPECT_EQ(sum.load(), static_cast<std::int64_t>(n) * (n - 1) / 2);
  int missing = 0;
  for (int i = 0; i < n; ++i) missing += seen[static_cast<std::size_t>(i)].load() == 0 ? 1 : 0;
  EXPECT_EQ(missing, 0);
}

}  // namespace
