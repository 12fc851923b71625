// pq_bench — libpq's blocking PQexec("SELECT 1") from many clients at once,
// each on its own connection: green threads under green::monkey against the
// thread-per-connection way (issue 14: green at least equal).
//
//   pq_bench_green --port N [--host ADDR] [--clients 100] [--duration S] [--workers W]
//   pq_bench_threads --port N [--host ADDR] [--clients 100] [--duration S]
//
// Two programs from this file: pq_bench_green links green::monkey and runs
// the clients as green threads; pq_bench_threads does not link the hooks
// (on a plain thread they would still turn each blocking socket call into
// a non-blocking try plus poll(), which is not what a threaded server pays)
// and runs one OS thread per client.
//
// Prints one line: mode=... clients=... queries=... queries_per_s=...
// Each client connects first; the clock starts when all are connected and
// runs for --duration; queries finished inside it are counted. A failed
// connection or query ends the program with status 1 and the server's
// message. bench/pq_bench.sh starts a PostgreSQL server and runs both modes
// side by side.
#include <libpq-fe.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include <green/green.hpp>
#include <green/pool.hpp>
#if PQ_BENCH_GREEN
#include <green/monkey.hpp>
#endif

#include "cli.hpp"  // examples/cli.hpp

namespace {

using Clock = std::chrono::steady_clock;

struct Shared {
  std::string conninfo;
  std::atomic<int> connected{0};
  std::atomic<long> queries{0};
  std::atomic<bool> failed{false};
  int clients = 0;
  Clock::time_point start, stop;  // set by the coordinator once everyone is connected
  std::atomic<bool> go{false};
};

void report(const char* what, PGconn* c, Shared& s) {
  if (!s.failed.exchange(true)) std::fprintf(stderr, "pq_bench: %s: %s", what, PQerrorMessage(c));
}

// One client: connect, wait for the start, PQexec until the stop. `wait`
// waits for the start in the caller's way (green sleep or thread yield).
template <class Wait>
void client(Shared& s, Wait wait) {
  PGconn* c = PQconnectdb(s.conninfo.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    report("connect", c, s);
    PQfinish(c);
    s.connected.fetch_add(1);
    return;
  }
  s.connected.fetch_add(1);
  while (!s.go.load(std::memory_order_acquire) && !s.failed.load()) wait();
  long mine = 0;
  while (!s.failed.load(std::memory_order_relaxed)) {
    PGresult* r = PQexec(c, "SELECT 1");
    const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    if (!ok) {
      report("SELECT 1", c, s);
      break;
    }
    if (Clock::now() >= s.stop) break;  // finished after the stop: not counted
    ++mine;
  }
  s.queries.fetch_add(mine);
  PQfinish(c);
}

// Everyone connected: the clock starts now.
template <class Wait>
void start_when_connected(Shared& s, std::chrono::milliseconds duration, Wait wait) {
  while (s.connected.load() < s.clients) wait();
  s.start = Clock::now();
  s.stop = s.start + duration;
  s.go.store(true, std::memory_order_release);
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "127.0.0.1";
  int port = 5432;
  unsigned clients = 100;
  unsigned workers = 0;
  std::chrono::milliseconds duration{3000};
#if PQ_BENCH_GREEN
  const char* name = "pq_bench_green";
  const char* what = "green threads under green::monkey";
#else
  const char* name = "pq_bench_threads";
  const char* what = "one OS thread each";
#endif
  green_cli::App app(name, std::string("SELECT 1 through libpq's blocking PQexec from --clients connections at once,\n") +
                               "the clients being " + what + ".");
  app.add_option("--host", host, "server address (numeric)")->type_name("ADDR");
  green_cli::add_port(app, port, "server port", 1);
  green_cli::add_count(app, "--clients", clients, "connections, one client each", 1u, 10000u);
  green_cli::add_seconds(app, "--duration", duration, "how long to count queries", std::chrono::milliseconds(100));
#if PQ_BENCH_GREEN
  green_cli::add_workers(app, workers);
#endif
  if (auto code = green_cli::parse(app, argc, argv)) return *code;

  Shared s;
  s.conninfo = "hostaddr=" + host + " port=" + std::to_string(port) + " dbname=postgres user=postgres connect_timeout=10";
  s.clients = static_cast<int>(clients);
#if PQ_BENCH_GREEN
  if (!green::monkey::active()) {
    std::fprintf(stderr, "%s: the hooks are not live (green/monkey.hpp)\n", name);
    return 1;
  }
  green::Runtime rt({.workers = workers});
  workers = rt.workers();
  rt.run([&] {
    green::Group group;
    const auto nap = [] { green::sleep(std::chrono::milliseconds(1)); };
    for (unsigned i = 0; i < clients; ++i) group.spawn([&] { client(s, nap); });
    start_when_connected(s, duration, nap);
    group.join();
  });
#else
  std::vector<std::thread> threads;
  const auto nap = [] { std::this_thread::sleep_for(std::chrono::milliseconds(1)); };
  for (unsigned i = 0; i < clients; ++i) threads.emplace_back([&] { client(s, nap); });
  start_when_connected(s, duration, nap);
  for (auto& t : threads) t.join();
#endif
  if (s.failed.load()) return 1;
  const double secs = std::chrono::duration<double>(s.stop - s.start).count();
  std::printf("mode=%s clients=%u workers=%u queries=%ld queries_per_s=%.0f\n", PQ_BENCH_GREEN ? "green" : "threads",
              clients, workers, s.queries.load(), static_cast<double>(s.queries.load()) / secs);
  return 0;
}
