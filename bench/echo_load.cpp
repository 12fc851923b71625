// echo_load — a closed-loop load generator for echo servers, built on green.
//
// C connections, each a green thread that sends a `size`-byte request, reads
// the whole reply, checks that it is the request byte for byte, and sends
// the next one. After a warm-up the requests completed during `duration`
// are counted; latency is measured per request (send to last reply byte).
// Prints one line:
//
//   connections=100 requests=812345 req_per_s=162469 p50_us=598 p99_us=1203 errors=0
//
// and exits 1 if any reply was wrong or any connection failed, so a run that
// is not honest cannot pass as one. Requests end with '\n', so both line and
// raw echo servers answer them.
#include <green/green.hpp>
#include <green/io.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "cli.hpp"

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

struct Options {
  std::string host = "127.0.0.1";
  int port = 6000;
  int connections = 100;
  std::chrono::milliseconds duration = 5s;
  std::chrono::milliseconds warmup = 1s;
  unsigned workers = 1;
  std::size_t size = 64;
};

// The options, or the code main returns (0 after --help, 2 after a bad flag).
std::variant<Options, int> parse(int argc, char** argv) {
  Options o;
  green_cli::App app("echo_load",
                     "Closed-loop load for an echo server: C connections each send a request of\n"
                     "BYTES, check the echo byte for byte and send the next; prints requests/s and\n"
                     "p50/p99 latency over --duration after --warmup. Exits 1 on any bad reply.");
  app.add_option("--host", o.host, "echo server's address")->type_name("ADDR");
  green_cli::add_port(app, o.port, "echo server's TCP port", 1);
  green_cli::add_count(app, "--connections", o.connections, "connections, each a green thread")->type_name("C");
  green_cli::add_seconds(app, "--duration", o.duration, "how long to measure", 1ms);
  green_cli::add_seconds(app, "--warmup", o.warmup, "how long to run before measuring");
  green_cli::add_workers(app, o.workers, "worker threads of the load generator (0: one per core)");
  green_cli::add_count(app, "--size", o.size, "bytes per request, its '\\n' included", 2, 1 << 20)->type_name("BYTES");
  if (auto code = green_cli::parse(app, argc, argv)) return *code;
  return o;
}

struct Connection {
  std::vector<std::uint32_t> latencies_ns;  // measured phase only
  std::uint64_t errors = 0;
  std::string failure;
};

void raise_fd_limit(int needed) {
  rlimit r{};
  if (getrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur < rlim_t(needed) + 64) {
    r.rlim_cur = std::min<rlim_t>(r.rlim_max, rlim_t(needed) + 64);
    setrlimit(RLIMIT_NOFILE, &r);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const auto parsed = parse(argc, argv);
  if (const int* code = std::get_if<int>(&parsed)) return *code;
  const Options& o = std::get<Options>(parsed);
  raise_fd_limit(o.connections);
  std::vector<Connection> conns(static_cast<std::size_t>(o.connections));
  std::atomic<int> phase{0};  // 0 warm-up, 1 measuring, 2 stop
  green::Runtime rt({.workers = o.workers});
  const double measured_s = rt.run([&] {
    std::vector<green::Greenlet<void>> clients;
    for (int c = 0; c < o.connections; ++c) {
      clients.push_back(green::spawn([&, c] {
        Connection& me = conns[static_cast<std::size_t>(c)];
        try {
          green::Socket sock = green::create_connection(o.host, static_cast<std::uint16_t>(o.port), 10s);
          sock.set_nodelay(true);
          std::string request(o.size, 'x');
          // Room for more than a reply: a read that fills less than the
          // buffer tells the socket the queue is empty, so the next read
          // waits for readiness instead of trying (Socket::recv); and a
          // server that sends extra bytes is caught.
          std::string reply(2 * o.size, '\0');
          request.back() = '\n';
          for (std::uint64_t seq = 0; phase.load(std::memory_order_relaxed) < 2; ++seq) {
            // A distinct payload per request, so a stale or misrouted reply fails the check.
            std::snprintf(request.data(), o.size - 1, "%d:%llu:", c, static_cast<unsigned long long>(seq));
            const auto t0 = Clock::now();
            sock.send_all(request, 10s);
            std::size_t got = 0;
            while (got < o.size) {
              const std::size_t n = sock.recv(reply.data() + got, reply.size() - got, 10s);
              if (n == 0) throw green::Error("server closed the connection");
              got += n;
            }
            const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
            if (got != o.size || std::string_view(reply.data(), got) != request) ++me.errors;
            if (phase.load(std::memory_order_relaxed) == 1)
              me.latencies_ns.push_back(static_cast<std::uint32_t>(std::min<long long>(ns, UINT32_MAX)));
          }
        } catch (const green::TimeoutError& e) {  // not a std::exception: see errors.hpp
          me.failure = e.what();
          ++me.errors;
        } catch (const std::exception& e) {
          me.failure = e.what();
          ++me.errors;
        }
      }));
    }
    green::sleep(o.warmup);
    phase = 1;
    const auto t0 = Clock::now();
    green::sleep(o.duration);
    const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
    phase = 2;
    green::joinall(clients);
    return elapsed;
  });

  std::vector<std::uint32_t> all;
  std::uint64_t errors = 0;
  for (const Connection& c : conns) {
    all.insert(all.end(), c.latencies_ns.begin(), c.latencies_ns.end());
    errors += c.errors;
    if (!c.failure.empty()) std::fprintf(stderr, "echo_load: a connection failed: %s\n", c.failure.c_str());
  }
  auto percentile = [&](double p) -> double {
    if (all.empty()) return 0;
    const std::size_t k = std::min(all.size() - 1, static_cast<std::size_t>(p * all.size()));
    std::nth_element(all.begin(), all.begin() + k, all.end());
    return all[k] / 1000.0;
  };
  const double p50 = percentile(0.50), p99 = percentile(0.99);
  std::printf("connections=%d requests=%zu req_per_s=%.0f p50_us=%.0f p99_us=%.0f errors=%llu\n",
              o.connections, all.size(), all.size() / measured_s, p50, p99,
              static_cast<unsigned long long>(errors));
  return errors == 0 && !all.empty() ? 0 : 1;
}
