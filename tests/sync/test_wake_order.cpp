// Wake order: green threads that one green thread wakes in a burst run in
// the order they were woken, as in gevent (its hub runs the callbacks of a
// burst first come, first served). Five green threads wait on one object;
// one green thread wakes them all without blocking in between, then blocks;
// on one worker, the order in which the five then run is the wake order.
//
// The first woken takes the worker's `next` slot; the others queue behind
// it, first woken first (scheduler/src/placement.cpp). Before, each wake
// took the slot and pushed the previous one onto the LIFO end of the deque,
// so the five ran 4, 3, 2, 1, 0.
#include <green/green.hpp>
#include <green/sync.hpp>
#include <gtest/gtest.h>

#include "parked.hpp"

#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

constexpr int kWaiters = 5;

// Spawns kWaiters green threads running wait(i) then recording i, lets them
// all park on `reason`, calls wake_all() from this green thread, then joins
// them. Returns the order in which they ran after their wait.
template <class Wait, class WakeAll>
std::vector<int> run_order(const char* reason, Wait wait, WakeAll wake_all) {
  std::vector<int> order;  // one worker: no lock needed
  green::Runtime rt({.workers = 1});
  rt.run([&] {
    std::vector<green::Greenlet<void>> gs;
    for (int i = 0; i < kWaiters; ++i)
      gs.push_back(green::spawn([&, i] {
        wait(i);
        order.push_back(i);
      }));
    // One worker: each yield lets every runnable waiter reach its wait.
    for (int round = 0; green::testing::parked_on(rt, reason) < kWaiters; ++round) {
      ASSERT_LT(round, 1000) << "the waiters never all parked on " << reason;
      green::yield();
    }
    ASSERT_TRUE(order.empty());
    wake_all();
    EXPECT_EQ(green::joinall(gs, 10s), static_cast<std::size_t>(kWaiters));
  });
  return order;
}

const std::vector<int> kWakeOrder{0, 1, 2, 3, 4};

TEST(WakeOrder, SemaphoreReleasesRunInOrder) {
  green::Semaphore sem(0);
  const auto order = run_order(
      "Semaphore.acquire", [&](int) { ASSERT_TRUE(sem.acquire(10s)); },
      [&] {
        for (int i = 0; i < kWaiters; ++i) sem.release();
      });
  EXPECT_EQ(order, kWakeOrder);
}

TEST(WakeOrder, EventSetRunsWaitersInOrder) {
  green::Event ev;
  const auto order = run_order(
      "Event.wait", [&](int) { ASSERT_TRUE(ev.wait(10s)); }, [&] { ev.set(); });
  EXPECT_EQ(order, kWakeOrder);
}

TEST(WakeOrder, QueuePutsRunGettersInOrder) {
  green::Queue<int> q;
  const auto order = run_order(
      "Queue.get", [&](int i) { EXPECT_EQ(q.get(10s), i); },
      [&] {
        for (int i = 0; i < kWaiters; ++i) q.put(i);
      });
  EXPECT_EQ(order, kWakeOrder);
}

TEST(WakeOrder, AsyncResultSetRunsWaitersInOrder) {
  green::AsyncResult<int> r;
  const auto order = run_order(
      "AsyncResult.get", [&](int) { EXPECT_EQ(r.get(10s), 7); }, [&] { r.set(7); });
  EXPECT_EQ(order, kWakeOrder);
}

// A burst of wakes does not jump ahead of a burst of spawns made before it:
// spawned children still start depth-first, in spawn order, and the woken
// follow in wake order.
TEST(WakeOrder, WakesQueueBehindEarlierSpawnsInOrder) {
  green::Semaphore sem(0);
  std::vector<std::string> order;
  green::Runtime rt({.workers = 1});
  rt.run([&] {
    std::vector<green::Greenlet<void>> gs;
    for (int i = 0; i < 3; ++i)
      gs.push_back(green::spawn([&, i] {
        ASSERT_TRUE(sem.acquire(10s));
        order.push_back("woken" + std::to_string(i));
      }));
    for (int round = 0; green::testing::parked_on(rt, "Semaphore.acquire") < 3; ++round) {
      ASSERT_LT(round, 1000);
      green::yield();
    }
    for (int i = 0; i < 2; ++i) gs.push_back(green::spawn([&, i] { order.push_back("child" + std::to_string(i)); }));
    for (int i = 0; i < 3; ++i) sem.release();
    EXPECT_EQ(green::joinall(gs, 10s), gs.size());
  });
  // The first woken takes the next slot; the children (queued before the
  // wakes) run next; the other woken after them, in wake order.
  EXPECT_EQ(order, (std::vector<std::string>{"woken0", "child0", "child1", "woken1", "woken2"}));
}

}  // namespace
