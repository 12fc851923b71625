// Instantiates every sync/ type once, so the headers are compiled as a whole.
#include <green/green.hpp>
#include <green/sync.hpp>

#include <gtest/gtest.h>

#include <numeric>
#include <string>
#include <vector>

using namespace std::chrono_literals;

TEST(SyncSmoke, EveryTypeOnce) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Queue<int> q(2);
    green::LifoQueue<int> lq;
    green::PriorityQueue<int> pq;
    green::JoinableQueue<std::string> jq;
    green::Channel<int> ch;
    green::Semaphore sem(2);
    green::BoundedSemaphore bsem(1);
    green::Lock lock;
    green::RLock rlock;
    green::Event ev;
    green::AsyncResult<int> ar;
    green::AsyncResult<> done;
    green::Pool pool(4);
    green::Group group;

    auto g = green::spawn([&] {
      for (int i = 0; i < 5; ++i) q.put(i);
      q.close();
      ch.put(7);
      ar.set(42);
      done.set();
      ev.set();
    });
    int sum = 0;
    for (int v : q) sum += v;
    EXPECT_EQ(sum, 10);
    EXPECT_EQ(ch.get(), 7);
    EXPECT_EQ(ar.get(), 42);
    done.get();
    EXPECT_TRUE(ev.wait(1s));
    lq.put(1);
    lq.put(2);
    EXPECT_EQ(lq.get(), 2);
    pq.put(5);
    pq.put(1);
    EXPECT_EQ(pq.peek(), 1);
    jq.put("x");
    jq.get();
    jq.task_done();
    EXPECT_TRUE(jq.join(1s));
    {
      std::lock_guard a(sem);
      std::lock_guard b(bsem);
      std::lock_guard c(lock);
      std::lock_guard d(rlock);
      std::lock_guard e(rlock);
    }
    EXPECT_THROW(bsem.release(), green::Error);
    std::vector<int> in(100);
    std::iota(in.begin(), in.end(), 0);
    auto sq = pool.map([](int x) { return x * x; }, in);
    ASSERT_EQ(sq.size(), 100u);
    EXPECT_EQ(sq[9], 81);
    int n = 0;
    for (auto& v : pool.imap([](int x) { return x + 1; }, in)) n += v;
    EXPECT_EQ(n, 5050);
    n = 0;
    for (auto& v : group.imap_unordered([](int x) { return x + 1; }, in)) n += v;
    EXPECT_EQ(n, 5050);
    EXPECT_EQ(pool.apply([](int x) { return x * 3; }, 5), 15);
    group.spawn([] { green::sleep(1ms); });
    EXPECT_TRUE(group.join(5s));
    g.join();
  });
}
