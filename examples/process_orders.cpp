// process_orders — the talk's "no code changes to business logic" slide.
//
// The business logic is a plain function over lines of text; it knows
// nothing of green threads:
//
//   def process_orders(lines):
//       total = 0
//       for line in lines: total += price(line)
//       return total
//   sock = create_connection((host, port))
//   print(process_orders(sock.makefile()))
//
// Here the lines come from a green::Stream over a socket, so the same
// function reads the network while only its green thread waits. The example
// starts a small order server on loopback and processes several order feeds
// at once, each in its own green thread.
#include <csignal>
#include <green/green.hpp>
#include <green/io.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cli.hpp"

using namespace std::chrono_literals;

namespace {

struct Totals {
  long orders = 0;
  long cents = 0;
};

// Business logic: any range of "item,quantity,unit_cents" lines.
template <class Lines>
Totals process_orders(Lines&& lines) {
  Totals t;
  for (const std::string& line : lines) {
    char item[64];
    long quantity = 0, unit = 0;
    if (std::sscanf(line.c_str(), "%63[^,],%ld,%ld", item, &quantity, &unit) != 3) continue;  // not an order
    ++t.orders;
    t.cents += quantity * unit;
  }
  return t;
}

// The order server: feed N sends N orders, line by line, then closes.
void serve_feed(green::Socket& sock) {
  green::Stream in(sock);
  auto request = in.read_line(64);
  if (!request) return;
  const int feed = std::atoi(request->c_str());
  for (int i = 0; i < 100; ++i) {
    in.write("widget-" + std::to_string(feed) + "-" + std::to_string(i) + "," + std::to_string(i % 7 + 1) + "," +
             std::to_string(100 + feed) + "\n");
    if (i % 10 == 9) {
      in.flush();
      green::sleep(1ms);  // orders trickle in
    }
  }
  in.flush();
}

}  // namespace

int main(int argc, char** argv) {
  int feeds = 5;
  unsigned workers = 0;
  green_cli::App app("process_orders",
                     "Starts a loopback order server and totals N order feeds concurrently with a\n"
                     "plain function over each connection's lines.");
  green_cli::add_count(app, "--feeds", feeds, "order feeds to total at once");
  green_cli::add_workers(app, workers);
  if (auto code = green_cli::parse(app, argc, argv)) return *code;
  try {
    green::Runtime rt({.workers = workers, .dump_on_signal = SIGQUIT});  // kill -QUIT: what each green thread does
    rt.run([&] {
      green::StreamServer server(green::Address::parse("127.0.0.1:0"),
                                 [](green::Socket& sock, const green::Address&) { serve_feed(sock); });
      server.start();
      std::vector<green::Greenlet<Totals>> jobs;
      for (int f = 0; f < feeds; ++f) {
        jobs.push_back(green::spawn([&, f] {
          green::Socket sock = green::create_connection("127.0.0.1", server.address().port(), 5s);
          sock.send_all(std::to_string(f) + "\n");
          green::Stream stream(sock);
          return process_orders(stream.lines());  // unchanged business logic
        }));
      }
      Totals all;
      for (int f = 0; f < feeds; ++f) {
        const Totals& t = jobs[static_cast<std::size_t>(f)].get();
        std::printf("feed %d: %ld orders, total %ld.%02ld\n", f, t.orders, t.cents / 100, t.cents % 100);
        all.orders += t.orders;
        all.cents += t.cents;
      }
      std::printf("all feeds: %ld orders, total %ld.%02ld\n", all.orders, all.cents / 100, all.cents % 100);
      server.stop(1s);
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "process_orders: %s\n", e.what());
    return 1;
  }
  return 0;
}
