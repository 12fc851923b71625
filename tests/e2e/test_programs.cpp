// End-to-end: --help of every example, bad command lines refused at start,
// and the two programs that need no client (print_sum, process_orders),
// checked by their exact output.
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

namespace {

// The examples whose flags examples/cli.hpp parses here (chat_server has
// its own test below), with the flags their help must list.
struct Program {
  const char* path;
  std::vector<std::string> flags;
};
const Program kPrograms[] = {
    {GREEN_E2E_ECHO_SERVER, {"--host", "--port", "--workers", "--raw"}},
    {GREEN_E2E_CHAT_LOAD, {"--host", "--port", "--users", "--lines", "--workers", "--timeout"}},
    {GREEN_E2E_BULK_DOWNLOADER, {"--count", "--concurrency", "--workers", "--urls", "--quiet"}},
    {GREEN_E2E_PRINT_SUM, {"--count", "--workers"}},
    {GREEN_E2E_PROCESS_ORDERS, {"--feeds", "--workers"}},
};

// A bad command line is refused before the program starts anything: exit
// code 2, nothing on stdout, and a message on stderr that names `flag`. A
// program that took the value and ran (a server would run on) fails at the
// deadline instead of hanging the suite.
void expect_refused(const char* path, const std::vector<std::string>& args, const std::string& flag) {
  std::string cmd = path;
  for (const auto& a : args) cmd += " " + a;
  SCOPED_TRACE(cmd);
  const auto r = run_to_end_with_stderr(path, args, kWait);
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find(flag), std::string::npos) << "stderr does not name " << flag << ": " << r.err;
  EXPECT_EQ(r.out, "");
}

}  // namespace

TEST(Examples, HelpListsEveryFlag) {
  for (const Program& p : kPrograms) {
    SCOPED_TRACE(p.path);
    const auto r = run_to_end(p.path, {"--help"});
    ASSERT_EQ(r.code, 0);
    for (const auto& flag : p.flags) EXPECT_NE(r.out.find(flag + " "), std::string::npos) << flag << " in:\n" << r.out;
  }
}

TEST(Examples, UnknownFlagIsNamed) {
  for (const Program& p : kPrograms) {
    expect_refused(p.path, {"--no-such-option"}, "--no-such-option");
    expect_refused(p.path, {"stray"}, "stray");
  }
}

// --workers was read with atoi into an unsigned: "-1" became 4294967295
// workers and "abc" silently 0 (one per core).
TEST(Examples, BadWorkersRefused) {
  for (const Program& p : kPrograms) {
    expect_refused(p.path, {"--workers", "-1"}, "--workers");
    expect_refused(p.path, {"--workers", "abc"}, "--workers");
    expect_refused(p.path, {"--workers", "2x"}, "--workers");
    expect_refused(p.path, {"--workers", "5000"}, "--workers");  // green::Runtime takes at most 1024
    expect_refused(p.path, {"--workers"}, "--workers");
  }
}

// --port abc was atoi's 0: a random port.
TEST(EchoServer, BadPortRefused) {
  for (const char* v : {"99999", "abc", "-1", "65536", "0x10"})
    expect_refused(GREEN_E2E_ECHO_SERVER, {"--port", v}, "--port");
  expect_refused(GREEN_E2E_ECHO_SERVER, {"--port"}, "--port");  // said "unknown argument --port"
  expect_refused(GREEN_E2E_ECHO_SERVER, {"--port", "--raw"}, "--port");
  expect_refused(GREEN_E2E_ECHO_SERVER, {"--host"}, "--host");
}

TEST(Examples, ChatLoadBadValuesRefused) {
  for (const char* v : {"99999", "abc", "-1", "0"})  // a client cannot connect to port 0
    expect_refused(GREEN_E2E_CHAT_LOAD, {"--port", v}, "--port");
  expect_refused(GREEN_E2E_CHAT_LOAD, {"--port"}, "--port");
  expect_refused(GREEN_E2E_CHAT_LOAD, {"--users", "1"}, "--users");
  expect_refused(GREEN_E2E_CHAT_LOAD, {"--users", "-5"}, "--users");
  expect_refused(GREEN_E2E_CHAT_LOAD, {"--lines", "0"}, "--lines");
  expect_refused(GREEN_E2E_CHAT_LOAD, {"--lines", "-1"}, "--lines");
  for (const char* v : {"-1", "abc", "0", "nan", "inf"})
    expect_refused(GREEN_E2E_CHAT_LOAD, {"--timeout", v}, "--timeout");
}

TEST(BulkDownloader, BadValuesRefused) {
  expect_refused(GREEN_E2E_BULK_DOWNLOADER, {"--concurrency", "0"}, "--concurrency");
  expect_refused(GREEN_E2E_BULK_DOWNLOADER, {"--concurrency", "-1"}, "--concurrency");  // size_t: would wrap
  expect_refused(GREEN_E2E_BULK_DOWNLOADER, {"--count", "-1"}, "--count");
  expect_refused(GREEN_E2E_BULK_DOWNLOADER, {"--count", "abc"}, "--count");
  expect_refused(GREEN_E2E_BULK_DOWNLOADER, {"--urls"}, "--urls");
}

TEST(PrintSum, BadCountRefused) {
  for (const char* v : {"-1", "abc", "99999999999"}) expect_refused(GREEN_E2E_PRINT_SUM, {"--count", v}, "--count");
}

TEST(ProcessOrders, BadFeedsRefused) {
  for (const char* v : {"0", "-1", "abc"}) expect_refused(GREEN_E2E_PROCESS_ORDERS, {"--feeds", v}, "--feeds");
}

// chat_server's flags (examples/chat_server.cpp parses them with the same
// examples/cli.hpp). --max-line -1 was atol's -1 in a size_t,
// 18446744073709551615, which let every line through; --grace -1 a
// negative wait.
TEST(ChatServerFlags, BadValuesRefused) {
  const char* const path = GREEN_E2E_CHAT_SERVER;
  for (const char* v : {"99999", "abc", "-1"}) expect_refused(path, {"--port", v}, "--port");
  expect_refused(path, {"--port"}, "--port");
  for (const char* v : {"-1", "abc"}) expect_refused(path, {"--workers", v}, "--workers");
  for (const char* v : {"-1", "0", "abc"}) {
    expect_refused(path, {"--max-line", v}, "--max-line");
    expect_refused(path, {"--max-queue", v}, "--max-queue");
  }
  for (const char* v : {"-1", "abc"}) expect_refused(path, {"--grace", v}, "--grace");
  for (const char* v : {"-1", "0", "abc"}) expect_refused(path, {"--max-backlog", v}, "--max-backlog");
  for (const char* v : {"-1", "0", "abc"}) expect_refused(path, {"--name-timeout", v}, "--name-timeout");
  expect_refused(path, {"--no-such-option"}, "--no-such-option");
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
