// test_redis.cpp — hiredis's blocking API (redisConnect, redisCommand),
// unmodified, against a real Redis that each test starts (real_servers.hpp).
// green's API appears only to spawn, join and kill.
#include <hiredis/hiredis.h>

#include <green/green.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdarg>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "parked.hpp"
#include "real_servers.hpp"

namespace {

using namespace std::chrono_literals;

constexpr const char* kList = "green:items";

// A connection, always freed.
class Redis {
 public:
  explicit Redis(std::uint16_t port) : c_(redisConnect("127.0.0.1", port)) {}
  ~Redis() {
    if (c_) redisFree(c_);
  }
  Redis(const Redis&) = delete;
  Redis& operator=(const Redis&) = delete;
  redisContext* get() const { return c_; }
  bool ok() const { return c_ && c_->err == 0; }
  std::string error() const { return c_ ? c_->errstr : "out of memory"; }

 private:
  redisContext* c_;
};

// A reply, always freed; null when the command failed (see Redis::error).
using Reply = std::unique_ptr<redisReply, decltype(&freeReplyObject)>;
Reply command(const Redis& r, const char* format, ...) {
  va_list ap;
  va_start(ap, format);
  void* reply = redisvCommand(r.get(), format, ap);
  va_end(ap);
  return Reply(static_cast<redisReply*>(reply), &freeReplyObject);
}

// The server's count of clients blocked in BLPOP and the like.
long blocked_clients(const Redis& admin) {
  const Reply info = command(admin, "INFO clients");
  if (!info || info->type != REDIS_REPLY_STRING) return -1;
  const std::string text(info->str, info->len);
  const auto at = text.find("blocked_clients:");
  return at == std::string::npos ? -1 : std::strtol(text.c_str() + at + 16, nullptr, 10);
}

// Until the server reports `n` blocked clients, asking every 10 ms; false
// after `limit`.
bool wait_blocked(const Redis& admin, long n, std::chrono::steady_clock::duration limit = 30s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (blocked_clients(admin) != n) {
    if (std::chrono::steady_clock::now() > end) return false;
    green::sleep(10ms);
  }
  return true;
}

// 200 green threads on 2 workers, each on its own connection, block in BLPOP
// together (the server counts 200 blocked clients); another green thread
// then pushes 200 distinct items: each consumer gets one, and every item is
// delivered exactly once.
TEST(MonkeyRedis, TwoHundredBlockingBlpopsGetEveryItemExactlyOnce) {
  green::testing::RedisServer redis;
  constexpr int n = 200;
  green::Runtime rt(green::RuntimeOptions{.workers = 2});
  rt.run([&] {
    std::vector<std::string> got(n);
    std::vector<green::Greenlet<void>> consumers;
    for (int i = 0; i < n; ++i) {
      consumers.push_back(green::spawn([&, i] {
        const Redis r(redis.port());
        ASSERT_TRUE(r.ok()) << r.error();
        const Reply reply = command(r, "BLPOP %s 0", kList);
        ASSERT_TRUE(reply) << r.error();
        ASSERT_EQ(reply->type, REDIS_REPLY_ARRAY);
        ASSERT_EQ(reply->elements, 2u);
        got[i].assign(reply->element[1]->str, reply->element[1]->len);
      }));
    }
    const Redis admin(redis.port());
    ASSERT_TRUE(admin.ok()) << admin.error();
    ASSERT_TRUE(wait_blocked(admin, n)) << "blocked clients: " << blocked_clients(admin);

    auto feeder = green::spawn([&] {
      const Redis r(redis.port());
      ASSERT_TRUE(r.ok()) << r.error();
      for (int i = 0; i < n; ++i) {
        const Reply pushed = command(r, "RPUSH %s item-%d", kList, i);
        ASSERT_TRUE(pushed) << r.error();
        ASSERT_EQ(pushed->type, REDIS_REPLY_INTEGER);
      }
    });
    feeder.join();
    for (auto& c : consumers) ASSERT_TRUE(c.join(30s));

    std::vector<std::string> want;
    for (int i = 0; i < n; ++i) want.push_back("item-" + std::to_string(i));
    std::sort(want.begin(), want.end());
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, want);
    const Reply left = command(admin, "LLEN %s", kList);
    ASSERT_TRUE(left) << admin.error();
    EXPECT_EQ(left->integer, 0);
  });
}

// A kill while a green thread is blocked in hiredis's BLPOP: the read under
// it fails with EINTR, hiredis reads again and is told ECANCELED, so
// redisCommand returns null with REDIS_ERR_IO; GreenletExit comes at the
// green thread's next green call. The server sees the client go.
TEST(MonkeyRedis, KillWhileBlockedInBlpop) {
  green::testing::RedisServer redis;
  green::Runtime rt(green::RuntimeOptions{.workers = 2});
  rt.run([&] {
    const Redis admin(redis.port());
    ASSERT_TRUE(admin.ok()) << admin.error();
    bool returned_null = false, exit_raised = false;
    int err = 0;
    std::string errstr;
    auto g = green::spawn(green::SpawnOptions{.name = "blpop"}, [&] {
      const Redis r(redis.port());
      ASSERT_TRUE(r.ok()) << r.error();
      const Reply reply = command(r, "BLPOP %s 0", kList);
      returned_null = !reply;
      err = r.get()->err;
      errstr = r.get()->errstr;
      try {
        green::yield();
      } catch (const green::GreenletExit&) {
        exit_raised = true;
        throw;
      }
    });
    ASSERT_TRUE(green::testing::wait_parked(rt, "blpop", "read (hooked)"));
    ASSERT_TRUE(wait_blocked(admin, 1));
    g.kill();
    EXPECT_TRUE(g.killed());
    EXPECT_TRUE(returned_null);
    EXPECT_EQ(err, REDIS_ERR_IO);
    EXPECT_EQ(errstr, std::strerror(ECANCELED));
    EXPECT_TRUE(exit_raised);
    EXPECT_TRUE(wait_blocked(admin, 0)) << "the killed client's connection was not closed";
  });
}

}  // namespace
