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
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

struct Options {
  std::string host = "127.0.0.1";
  int port = 6000;
  int connections = 100;
  double duration_s = 5;
  double warmup_s = 1;
  unsigned workers = 1;
  std::size_t size = 64;
};

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    auto next = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "echo_load: %s needs a value\n", argv[i]);
        std::exit(2);
      }
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--help")) {
      std::puts("usage: echo_load --port N [--host ADDR] [--connections C] [--duration S]\n"
                "                 [--warmup S] [--workers M] [--size BYTES]");
      std::exit(0);
    } else if (!std::strcmp(argv[i], "--host")) {
      o.host = next();
    } else if (!std::strcmp(argv[i], "--port")) {
      o.port = std::atoi(next());
    } else if (!std::strcmp(argv[i], "--connections")) {
      o.connections = std::atoi(next());
    } else if (!std::strcmp(argv[i], "--duration")) {
      o.duration_s = std::atof(next());
    } else if (!std::strcmp(argv[i], "--warmup")) {
      o.warmup_s = std::atof(next());
    } else if (!std::strcmp(argv[i], "--workers")) {
      o.workers = static_cast<unsigned>(std::atoi(next()));
    } else if (!std::strcmp(argv[i], "--size")) {
      o.size = static_cast<std::size_t>(std::atol(next()));
    } else {
      std::fprintf(stderr, "echo_load: unknown argument %s (try --help)\n", argv[i]);
      std::exit(2);
    }
  }
  if (o.port <= 0 || o.port > 65535 || o.connections < 1 || o.duration_s <= 0 || o.warmup_s < 0 ||
      o.size < 2 || o.size > 1 << 20) {
    std::fprintf(stderr, "echo_load: bad arguments (try --help)\n");
    std::exit(2);
  }
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
  const Options o = parse(argc, argv);
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
        } catch (const std::exception& e) {
          me.failure = e.what();
          ++me.errors;
        }
      }));
    }
    green::sleep(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.warmup_s)));
    phase = 1;
    const auto t0 = Clock::now();
    green::sleep(std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration_s)));
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
