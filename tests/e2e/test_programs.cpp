// End-to-end: --help of every example, and the two programs that need no
// client (print_sum, process_orders), checked by their exact output.
#include <gtest/gtest.h>

#include <set>
#include <sstream>

#include "e2e_util.hpp"

using namespace e2e;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

const char* const kExamples[] = {GREEN_E2E_ECHO_SERVER,     GREEN_E2E_CHAT_SERVER, GREEN_E2E_CHAT_LOAD,
                                 GREEN_E2E_BULK_DOWNLOADER, GREEN_E2E_PRINT_SUM,   GREEN_E2E_PROCESS_ORDERS};

}  // namespace

TEST(Examples, HelpExitsZeroWithUsage) {
  for (const char* path : kExamples) {
    SCOPED_TRACE(path);
    const auto r = run_to_end(path, {"--help"});
    EXPECT_EQ(r.code, 0);
    EXPECT_TRUE(r.out.starts_with("usage: ")) << r.out;
  }
}

TEST(Examples, UnknownArgumentExitsTwo) {
  for (const char* path : kExamples) {
    SCOPED_TRACE(path);
    EXPECT_EQ(run_to_end(path, {"--no-such-option"}).code, 2);
  }
}

// 50 green threads each sleep 100 ms and print i + i; the sleeps overlap.
TEST(PrintSum, EverySumOnceAndTheSleepsOverlap) {
  const int n = 50;
  const auto r = run_to_end(GREEN_E2E_PRINT_SUM, {"--count", std::to_string(n), "--workers", "2"});
  ASSERT_EQ(r.code, 0) << r.out;
  const auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), static_cast<std::size_t>(n + 1)) << r.out;
  std::set<int> seen;
  for (int k = 0; k < n; ++k) {
    int x = -1, y = -1, sum = -1;
    ASSERT_EQ(std::sscanf(lines[static_cast<std::size_t>(k)].c_str(), "%d + %d = %d", &x, &y, &sum), 3)
        << lines[static_cast<std::size_t>(k)];
    EXPECT_EQ(x, y);
    EXPECT_EQ(sum, x + y);
    EXPECT_TRUE(seen.insert(x).second) << "printed twice: " << x;
  }
  EXPECT_EQ(seen.size(), static_cast<std::size_t>(n));
  EXPECT_EQ(*seen.begin(), 0);
  EXPECT_EQ(*seen.rbegin(), n - 1);
  int count = 0, workers = 0;
  double ms = 0;
  ASSERT_EQ(std::sscanf(lines.back().c_str(), "%d sums in %lf ms on %d workers", &count, &ms, &workers), 3)
      << lines.back();
  EXPECT_EQ(count, n);
  EXPECT_EQ(workers, 2);
  // One after the other they would take 5 s; overlapped, one sleep and change.
  EXPECT_GE(ms, 100.0);
  EXPECT_LT(ms, 2500.0);
}

// Feed f sends 100 orders "widget-f-i,(i%7+1),(100+f)": 395 items at
// (100+f) cents each.
static std::string expected_orders(int feeds) {
  std::string out;
  char line[128];
  long all_cents = 0;
  for (int f = 0; f < feeds; ++f) {
    long cents = 0;
    for (int i = 0; i < 100; ++i) cents += (i % 7 + 1) * (100 + f);
    all_cents += cents;
    std::snprintf(line, sizeof line, "feed %d: 100 orders, total %ld.%02ld\n", f, cents / 100, cents % 100);
    out += line;
  }
  std::snprintf(line, sizeof line, "all feeds: %d orders, total %ld.%02ld\n", feeds * 100, all_cents / 100,
                all_cents % 100);
  return out + line;
}

TEST(ProcessOrders, DefaultFiveFeeds) {
  const auto r = run_to_end(GREEN_E2E_PROCESS_ORDERS, {"--workers", "2"});
  ASSERT_EQ(r.code, 0);
  EXPECT_EQ(r.out, expected_orders(5));
  EXPECT_EQ(expected_orders(5),
            "feed 0: 100 orders, total 395.00\n"
            "feed 1: 100 orders, total 398.95\n"
            "feed 2: 100 orders, total 402.90\n"
            "feed 3: 100 orders, total 406.85\n"
            "feed 4: 100 orders, total 410.80\n"
            "all feeds: 500 orders, total 2014.50\n");
}

TEST(ProcessOrders, ManyFeedsOnOneWorker) {
  const auto r = run_to_end(GREEN_E2E_PROCESS_ORDERS, {"--feeds", "40", "--workers", "1"});
  ASSERT_EQ(r.code, 0);
  EXPECT_EQ(r.out, expected_orders(40));
}
