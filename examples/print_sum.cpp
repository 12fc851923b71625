// print_sum — the talk's first program: compute in green threads, print the sum.
//
//   def compute(x, y): sleep(1); return x + y
//   def print_sum(x, y): result = compute(x, y); print(x, "+", y, "=", result)
//   gevent.joinall([gevent.spawn(print_sum, i, i) for i in range(N)])
//
// Each print_sum sleeps in compute(); the sleeps overlap, so N of them take
// one sleep in total, not N, and they run on every core.
#include <green/green.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

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
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--help")) {
      std::puts("usage: print_sum [--count N] [--workers M]\n"
                "Spawns N green threads that each sleep 100 ms and print a sum.");
      return 0;
    } else if (!std::strcmp(argv[i], "--count") && i + 1 < argc) {
      n = std::atoi(argv[++i]);
    } else if (!std::strcmp(argv[i], "--workers") && i + 1 < argc) {
      workers = static_cast<unsigned>(std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "print_sum: unknown argument %s (try --help)\n", argv[i]);
      return 2;
    }
  }
  if (n < 0) {
    std::fprintf(stderr, "print_sum: --count must be >= 0\n");
    return 2;
  }
  green::Runtime rt({.workers = workers});
  const auto start = std::chrono::steady_clock::now();
  rt.run([n] {
    std::vector<green::Greenlet<void>> jobs;
    for (int i = 0; i < n; ++i) jobs.push_back(green::spawn(print_sum, i, i));
    green::joinall(jobs);
  });
  const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start);
  std::printf("%d sums in %.0f ms on %u workers (each sleeps 100 ms)\n", n, ms.count(), rt.workers());
}
