// chat_load — drives a chat server with simulated users and checks that
// nothing is lost.
//
// C users connect and give their names (u0, u1, ...). Once all have joined,
// each sends M lines, one write per line, each carrying its sender, a
// sequence number and the time it was sent. Every user must receive every
// other user's lines exactly once and in order, and none of its own. The
// tool prints the users that joined, the lines delivered, delivered lines
// per second and the p50/p99 delivery latency, and exits 1 on any loss,
// duplicate, reordering or failure.
#include <csignal>
#include <green/green.hpp>
#include <green/io.hpp>
#include <green/sync.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "cli.hpp"

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

struct Options {
  std::string host = "127.0.0.1";
  int port = 7000;
  int users = 200;
  int lines = 200;
  unsigned workers = 0;
  std::chrono::milliseconds timeout = 120s;
};

struct UserResult {
  std::vector<std::uint32_t> latency_us;
  std::uint64_t received = 0;
  std::uint64_t errors = 0;
  std::string failure;
};

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

// "u12> u12 37 123456789\n" -> sender 12, seq 37, sent 123456789.
bool parse(std::string_view line, int& sender, long& seq, std::uint64_t& sent) {
  const char* p = line.data();
  const char* end = p + line.size();
  if (p == end || *p != 'u') return false;
  auto r = std::from_chars(p + 1, end, sender);
  if (r.ec != std::errc() || r.ptr + 2 > end || r.ptr[0] != '>' || r.ptr[1] != ' ') return false;
  p = r.ptr + 2;
  const char* sp = std::find(p, end, ' ');  // skip the repeated name
  if (sp == end) return false;
  r = std::from_chars(sp + 1, end, seq);
  if (r.ec != std::errc() || r.ptr == end) return false;
  r = std::from_chars(r.ptr + 1, end, sent);
  return r.ec == std::errc();
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  green_cli::App app("chat_load",
                     "Drives a chat server with C simulated users that each send M lines, checks\n"
                     "that every user gets every other user's lines exactly once and in order, and\n"
                     "prints lines/s and p50/p99 latency. Exits 1 on any loss or failure.");
  app.add_option("--host", o.host, "chat server's address")->type_name("ADDR");
  green_cli::add_port(app, o.port, "chat server's TCP port", 1);
  green_cli::add_count(app, "--users", o.users, "simulated users", 2)->type_name("C");
  green_cli::add_count(app, "--lines", o.lines, "lines each user sends")->type_name("M");
  green_cli::add_workers(app, o.workers);
  green_cli::add_seconds(app, "--timeout", o.timeout, "give up after this long", 1s);
  if (auto code = green_cli::parse(app, argc, argv)) return *code;
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rlim_t(o.users) + 64) {
    rl.rlim_cur = std::min<rlim_t>(rl.rlim_max, rlim_t(o.users) + 64);
    setrlimit(RLIMIT_NOFILE, &rl);
  }

  const auto users = static_cast<std::size_t>(o.users);
  const std::uint64_t expected_each = std::uint64_t(o.users - 1) * std::uint64_t(o.lines);
  std::vector<UserResult> results(users);
  std::atomic<int> joined{0};
  std::atomic<std::uint64_t> last_delivery_ns{0};
  green::Runtime rt({.workers = o.workers, .dump_on_signal = SIGQUIT});  // kill -QUIT: what each green thread does
  double seconds = 0;
  rt.run([&] {
    green::Event all_joined;
    green::Timeout limit(o.timeout);
    std::vector<green::Greenlet<void>> clients;
    std::uint64_t start_ns = 0;
    for (int u = 0; u < o.users; ++u) {
      clients.push_back(green::spawn([&, u] {
        UserResult& me = results[static_cast<std::size_t>(u)];
        try {
          green::Socket sock = green::create_connection(o.host, static_cast<std::uint16_t>(o.port), 10s);
          sock.set_nodelay(true);
          green::Stream stream(sock);
          const std::string name = "u" + std::to_string(u);
          if (!stream.read_line()) throw green::Error("no prompt");
          sock.send_all(name + "\n");
          const std::string my_join = "## " + name + " joined from ";
          for (;;) {  // until the server announces us
            auto line = stream.read_line();
            if (!line) throw green::Error("closed before joining");
            if (line->starts_with(my_join)) break;
            if (!line->starts_with("## ")) throw green::Error("unexpected before joining: " + *line);
          }
          if (joined.fetch_add(1) + 1 == o.users) all_joined.set();
          all_joined.wait();
          auto sender = green::spawn([&] {
            for (long seq = 0; seq < o.lines; ++seq)
              sock.send_all(name + " " + std::to_string(seq) + " " + std::to_string(now_ns()) + "\n");
          });
          auto receive_every_line = [&] {
            std::vector<long> next(users, 0);
            me.latency_us.reserve(expected_each);
            // Whole chunks, not line by line: one clock read per chunk (every
            // line in it had arrived by then) and no string per line, so the
            // checker keeps up with a fast server.
            std::string pending;  // unread bytes; a partial line at its end
            while (me.received < expected_each) {
              std::string chunk = stream.read_some(64 * 1024);
              if (chunk.empty()) throw green::Error("server closed the connection");
              const std::uint64_t t = now_ns();
              if (pending.empty()) {
                pending = std::move(chunk);
              } else {
                pending += chunk;
              }
              std::size_t pos = 0;
              while (const void* nl = std::memchr(pending.data() + pos, '\n', pending.size() - pos)) {
                const std::size_t end = static_cast<std::size_t>(static_cast<const char*>(nl) - pending.data());
                const std::string_view line(pending.data() + pos, end - pos);
                pos = end + 1;
                if (line.starts_with("## ")) continue;  // joins and leaves
                int from;
                long seq;
                std::uint64_t sent;
                if (!parse(line, from, seq, sent) || from < 0 || from >= o.users || from == u ||
                    seq != next[static_cast<std::size_t>(from)]) {
                  ++me.errors;  // garbled, own, duplicate or out of order
                  continue;
                }
                ++next[static_cast<std::size_t>(from)];
                ++me.received;
                me.latency_us.push_back(
                    static_cast<std::uint32_t>(std::min<std::uint64_t>((t - sent) / 1000, UINT32_MAX)));
              }
              pending.erase(0, pos);
              std::uint64_t last = last_delivery_ns.load(std::memory_order_relaxed);
              while (t > last && !last_delivery_ns.compare_exchange_weak(last, t, std::memory_order_relaxed)) {
              }
            }
          };
          // The sender uses sock and name, which live in this frame: when
          // receiving fails (the server went away), the sender is killed
          // before they go, not left sending from freed memory.
          std::exception_ptr receiving_failed;
          try {
            receive_every_line();
          } catch (...) {
            receiving_failed = std::current_exception();
          }
          if (receiving_failed) {
            sender.kill();
            std::rethrow_exception(receiving_failed);
          }
          sender.get();
        } catch (const green::TimeoutError&) {
          me.failure = "timed out";
          ++me.errors;
        } catch (const std::exception& e) {
          me.failure = e.what();
          ++me.errors;
        }
      }));
    }
    all_joined.wait();
    start_ns = now_ns();
    green::joinall(clients);
    const std::uint64_t end_ns = last_delivery_ns.load();
    seconds = end_ns > start_ns ? double(end_ns - start_ns) / 1e9 : 0;
  });

  std::vector<std::uint32_t> all;
  std::uint64_t delivered = 0, errors = 0;
  int failures_shown = 0;
  for (const UserResult& r : results) {
    delivered += r.received;
    errors += r.errors + (expected_each - r.received);
    all.insert(all.end(), r.latency_us.begin(), r.latency_us.end());
    if (!r.failure.empty() && failures_shown++ < 5) std::fprintf(stderr, "chat_load: a user failed: %s\n", r.failure.c_str());
  }
  auto percentile = [&](double p) -> std::uint32_t {
    if (all.empty()) return 0;
    const std::size_t k = std::min(all.size() - 1, static_cast<std::size_t>(p * all.size()));
    std::nth_element(all.begin(), all.begin() + k, all.end());
    return all[k];
  };
  const auto p50 = percentile(0.5), p99 = percentile(0.99);
  std::printf("users_joined=%d delivered=%llu expected=%llu lines_per_s=%.0f p50_us=%u p99_us=%u lost_or_bad=%llu\n",
              joined.load(), static_cast<unsigned long long>(delivered),
              static_cast<unsigned long long>(expected_each * users), seconds > 0 ? delivered / seconds : 0.0, p50,
              p99, static_cast<unsigned long long>(errors));
  if (errors == 0) std::printf("chat_load: every line delivered exactly once, in order\n");
  return errors == 0 ? 0 : 1;
}
