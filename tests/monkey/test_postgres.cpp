// test_postgres.cpp — libpq, unmodified and blocking (PQconnectdb, PQexec,
// PQreset), against a real PostgreSQL 15 that each test starts
// (real_servers.hpp). green's API appears only to spawn, join and time out.
#include <libpq-fe.h>

#include <green/green.hpp>
#include <green/monkey.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "real_servers.hpp"
#include "test_env.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using green::testing::per_build;

// A connection, always finished.
class Conn {
 public:
  explicit Conn(const std::string& info) : c_(PQconnectdb(info.c_str())) {}
  ~Conn() { PQfinish(c_); }
  Conn(const Conn&) = delete;
  Conn& operator=(const Conn&) = delete;
  PGconn* get() const { return c_; }
  bool ok() const { return c_ && PQstatus(c_) == CONNECTION_OK; }
  std::string error() const { return c_ ? PQerrorMessage(c_) : "out of memory"; }

 private:
  PGconn* c_;
};

// A result, always cleared.
using Result = std::unique_ptr<PGresult, decltype(&PQclear)>;
Result exec(const Conn& c, const std::string& sql) { return Result(PQexec(c.get(), sql.c_str()), &PQclear); }
ExecStatusType status_of(const Result& r) { return r ? PQresultStatus(r.get()) : PGRES_FATAL_ERROR; }

// 100 green threads on 2 workers, each on its own connection, each in a
// blocking PQexec of pg_sleep(0.5): they wait together, so the lot takes
// about half a second. Serially it would be 50 s; with each PQexec holding
// its worker (no hooks), two at a time, 25 s.
TEST(MonkeyPostgres, HundredPgSleepsOnTwoWorkersWaitTogether) {
  ASSERT_TRUE(green::monkey::active());
  green::testing::PostgresServer pg;
  constexpr int n = 100;
  green::Runtime rt(green::RuntimeOptions{.workers = 2});
  rt.run([&] {
    // Connecting is libpq's blocking API too (connect, poll): all at once.
    std::vector<std::unique_ptr<Conn>> conns(n);
    {
      std::vector<green::Greenlet<void>> gs;
      for (int i = 0; i < n; ++i) gs.push_back(green::spawn([&, i] { conns[i] = std::make_unique<Conn>(pg.conninfo()); }));
      for (auto& g : gs) g.join();
    }
    for (const auto& c : conns) ASSERT_TRUE(c->ok()) << c->error();

    std::atomic<int> ok{0};
    const auto t0 = Clock::now();
    std::vector<green::Greenlet<void>> gs;
    for (int i = 0; i < n; ++i) {
      gs.push_back(green::spawn([&, i] {
        const Result r = exec(*conns[i], "SELECT pg_sleep(0.5)");
        if (status_of(r) == PGRES_TUPLES_OK) {
          ok.fetch_add(1);
        } else {
          ADD_FAILURE() << "query " << i << ": " << conns[i]->error();
        }
      }));
    }
    for (auto& g : gs) g.join();
    EXPECT_EQ(ok.load(), n);
    green::testing::expect_took(Clock::now() - t0, 500ms, per_build(2s, 3s, 4s));
  });
}

// A green::Timeout of 100 ms around a blocking PQexec of pg_sleep(5): libpq's
// wait (poll) fails with EINTR, libpq polls again and is told ETIMEDOUT, and
// PQexec returns its error at once; the TimeoutError comes at the green
// thread's next green blocking call. The connection is then unusable: the
// server is still running the abandoned query on it, so the next query gets
// no answer; PQreset gives a fresh one.
TEST(MonkeyPostgres, TimeoutEndsABlockingQueryAndTheConnectionIsSpent) {
  green::testing::PostgresServer pg;
  green::Runtime rt(green::RuntimeOptions{.workers = 2});
  rt.run([&] {
    Conn conn(pg.conninfo());
    Conn observer(pg.conninfo());
    ASSERT_TRUE(conn.ok()) << conn.error();
    ASSERT_TRUE(observer.ok()) << observer.error();

    ExecStatusType status = PGRES_EMPTY_QUERY;
    std::string message;
    Clock::duration took{};
    bool raised = false;
    const auto t0 = Clock::now();
    try {
      green::Timeout t(100ms);
      const Result r = exec(conn, "SELECT pg_sleep(5)");
      took = Clock::now() - t0;
      status = status_of(r);
      message = conn.error();
      green::yield();  // green's next blocking call: the scope's TimeoutError is thrown here
    } catch (const green::TimeoutError&) {
      raised = true;
    }
    EXPECT_EQ(status, PGRES_FATAL_ERROR);
    EXPECT_NE(message.find(std::strerror(ETIMEDOUT)), std::string::npos) << message;
    green::testing::expect_took(took, 90ms, 1s);
    EXPECT_TRUE(raised) << "the TimeoutError was not raised at the next green call";

    // libpq still calls the connection CONNECTION_OK (its socket is fine),
    // but the server is busy with the abandoned pg_sleep on it...
    const Result activity =
        exec(observer, "SELECT state, query FROM pg_stat_activity WHERE pid = " + std::to_string(PQbackendPID(conn.get())));
    ASSERT_EQ(status_of(activity), PGRES_TUPLES_OK) << observer.error();
    ASSERT_EQ(PQntuples(activity.get()), 1);
    EXPECT_STREQ(PQgetvalue(activity.get(), 0, 0), "active");
    EXPECT_STREQ(PQgetvalue(activity.get(), 0, 1), "SELECT pg_sleep(5)");

    // ...so the next query on it gets no answer (here within 300 ms, well
    // before the old query's 5 s are up): the connection is unusable.
    ExecStatusType next = PGRES_EMPTY_QUERY;
    bool next_raised = false;
    try {
      green::Timeout t(300ms);
      next = status_of(exec(conn, "SELECT 42"));
      green::yield();
    } catch (const green::TimeoutError&) {
      next_raised = true;
    }
    EXPECT_TRUE(PQstatus(conn.get()) == CONNECTION_BAD || next != PGRES_TUPLES_OK)
        << "a query on the spent connection succeeded";
    EXPECT_EQ(next, PGRES_FATAL_ERROR);
    EXPECT_TRUE(next_raised);

    // What an application does with a spent connection: a fresh one.
    PQreset(conn.get());
    ASSERT_TRUE(conn.ok()) << conn.error();
    const Result again = exec(conn, "SELECT 42");
    ASSERT_EQ(status_of(again), PGRES_TUPLES_OK) << conn.error();
    EXPECT_STREQ(PQgetvalue(again.get(), 0, 0), "42");
  });
}

}  // namespace
