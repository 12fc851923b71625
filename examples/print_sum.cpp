// print_sum — the talk's first program: compute in green threads, print the sum.
//
//   def compute(x, y): sleep(1); return x + y
//   def print_sum(x, y): result = compute(x, y); print(x, "+", y, "=", result)
//   gevent.joinall([gevent.spawn(print_sum, i, i) for i in range(N)])
//
// Each print_sum sleeps in compute(); the sleeps overlap, so N of them take
// one sleep in total, not N, and they run on every core.
#include <csignal>
#include <green/green.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "cli.hpp"

using namespace std::chrono_literals;

static int compute(int x, int y) {
  green::sleep(100ms);  // stands for waiting on the network
  return x + y;
}

static void print_sum(int x, int y) {
  const int result = compute(x, y);
  std::printf("%d + %d = %d   (green thread %llu on worker %d)\n", x, y, result,
              static_cast<unsigned long long>(green::current_id()), green::this_worker());
}

int main(int argc, char** argv) {
  int n = 10;
  unsigned workers = 0;
  green_cli::App app("print_sum", "Spawns N green threads that each sleep 100 ms and print a sum.");
  green_cli::add_count(app, "--count", n, "green threads to spawn", 0);
  green_cli::add_workers(app, workers);
  if (auto code = green_cli::parse(app, argc, argv)) return *code;
  green::Runtime rt({.workers = workers, .dump_on_signal = SIGQUIT});  // kill -QUIT: what each green thread does
  const auto start = std::chrono::steady_clock::now();
  rt.run([n] {
    std::vector<green::Greenlet<void>> jobs;
    for (int i = 0; i < n; ++i) jobs.push_back(green::spawn(print_sum, i, i));
    green::joinall(jobs);
  });
  const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start);
  std::printf("%d sums in %.0f ms on %u workers (each sleeps 100 ms)\n", n, ms.count(), rt.workers());
}
