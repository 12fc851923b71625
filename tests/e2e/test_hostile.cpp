// End-to-end: the servers against hostile or careless clients, and shutdown
// under load. Each hostile client is a plain POSIX client of the test (or
// its own process), every wait bounded.
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <algorithm>

#include "chat_util.hpp"
#include "e2e_util.hpp"

using namespace e2e;

namespace {

// SIGTERM; the exit status must be 0 within `limit`. Returns the time taken.
std::chrono::milliseconds stop_within(Server& s, Clock::duration limit) {
  const auto t0 = Clock::now();
  const auto st = s.terminate(limit + (kSanitized ? 10s : 0s));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
  if (!st) fail("still running " + std::to_string(ms.count()) + " ms after SIGTERM");
  if (!WIFEXITED(*st)) fail("killed by signal " + std::to_string(WTERMSIG(*st)));
  EXPECT_EQ(WEXITSTATUS(*st), 0) << "a sanitizer report, or a failure at shutdown";
  return ms;
}

std::string line_of(std::size_t bytes, char fill = 'x') { return std::string(bytes - 1, fill) + "\n"; }

// Whether the port takes no connection now: refused, or the handshake not
// answered within 200 ms (a SYN that reaches a listener as it shuts down is
// dropped; the kernel would retry it only a second later, and count that
// second as ours).
bool refused(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) fail_errno("socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool accepted = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  if (!accepted && errno == EINPROGRESS && wait_fd(fd, POLLOUT, Clock::now() + 200ms)) {
    int err = 0;
    socklen_t len = sizeof err;
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    accepted = err == 0;
  }
  ::close(fd);
  return !accepted;
}

std::size_t count_of(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + what.size())) ++n;
  return n;
}

// Sets RLIMIT_NOFILE's soft limit for the processes this one starts, and
// restores it (for the test's own sockets) when it goes.
class FdLimit {
 public:
  explicit FdLimit(rlim_t soft) {
    if (::getrlimit(RLIMIT_NOFILE, &saved_) != 0) fail_errno("getrlimit");
    rlimit lower = saved_;
    lower.rlim_cur = std::min(soft, saved_.rlim_cur);
    if (::setrlimit(RLIMIT_NOFILE, &lower) != 0) fail_errno("setrlimit");
  }
  void restore() {
    if (restored_) return;
    restored_ = true;
    ::setrlimit(RLIMIT_NOFILE, &saved_);
  }
  ~FdLimit() { restore(); }

 private:
  rlimit saved_{};
  bool restored_ = false;
};

}  // namespace

// Item 1: a user that never reads while another floods, then SIGTERM. The
// slow user's writer green thread is blocked sending to it when the server
// stops; its handler is killed. The writer must not outlive the socket and
// the locals it uses (ASan: heap-use-after-free before the fix).
TEST(Hostile, SigtermWhileAWriterIsBlockedOnANonReader) {
  // Backlogs large enough that nobody is dropped: the watcher below reads
  // only between the talker's writes.
  Server s = chat_server({"--max-backlog", "100000000"});
  Client slow = join(s.port(), "slow", 4096);
  Client talker = join(s.port(), "talker");
  Client watcher = join(s.port(), "watcher");
  EXPECT_EQ(talker.line(), joined("watcher"));
  const std::string line = line_of(1000);
  std::string chunk;
  for (int i = 0; i < 100; ++i) chunk += line;
  const int chunks = kSanitized ? 60 : 200;  // 6 or 20 MB: far more than the slow user's socket buffers hold
  for (int i = 0; i < chunks; ++i) {
    talker.send(chunk, deadline_in(2 * kWait));
    watcher.pump();
  }
  talker.send("last\n");
  // Once the watcher has the last line, every line was queued for the slow
  // user too (one broadcast queues a line for all): its writer is blocked.
  for (;;) {
    const std::string l = watcher.line(deadline_in(2 * kWait));
    if (l == "talker> last\n") break;
    ASSERT_EQ(l, "talker> " + line);
  }
  stop_within(s, 2s);
}

// Item 2: SIGTERM while chat_load keeps every worker busy. The signal's
// green thread must not wait behind the queued work: the port stops taking
// connections at once, and the server exits with 0 within 2 s.
TEST(Hostile, SigtermUnderLoadStopsAcceptingAtOnceAndExitsWithinTwoSeconds) {
  Server s = chat_server();
  Client watcher = join(s.port(), "watcher");
#ifdef GREEN_TEST_TSAN
  const int users = 20;
#else
  const int users = kSanitized ? 50 : 200;
#endif
  // Far more lines than the test lasts for. Its complaints when the server
  // goes away are captured (and dropped).
  Child load(GREEN_E2E_CHAT_LOAD,
             {"--port", std::to_string(s.port()), "--users", std::to_string(users), "--lines", "20000", "--workers", "2",
              "--timeout", "300"},
             /*capture_stderr=*/true);
  // The load is on once the watcher has seen this many of its lines.
  for (int seen = 0; seen < (kSanitized ? 1000 : 20000);) {
    if (!watcher.line(deadline_in(4 * kWait)).starts_with("## ")) ++seen;
  }
  s.child().terminate();
  const auto t0 = Clock::now();
  // The requirement (1 s, 2 s) holds in the release build. The sanitizers
  // slow the server 5-15 times, and ThreadSanitizer also defers a signal's
  // handler to the receiving thread's next intercepted call.
#ifdef GREEN_TEST_TSAN
  const auto limit_refused = 30s, limit_exit = 40s;
#else
  const auto limit_refused = kSanitized ? 10s : 1s, limit_exit = kSanitized ? 20s : 2s;
#endif
  while (!refused(s.port())) {
    if (Clock::now() - t0 > limit_refused) FAIL() << "still accepting connections " << limit_refused.count() << " s after SIGTERM";
  }
  const auto refused_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  EXPECT_LE(refused_ms, std::chrono::duration_cast<std::chrono::milliseconds>(limit_refused).count());
  const auto st = s.child().wait_exit(t0 + limit_exit);
  const auto exit_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  ASSERT_TRUE(st.has_value()) << "still running " << exit_ms << " ms after SIGTERM";
  ASSERT_TRUE(WIFEXITED(*st)) << "killed by signal " << WTERMSIG(*st);
  EXPECT_EQ(WEXITSTATUS(*st), 0);
  std::printf("refusing connections after %lld ms, exited after %lld ms\n", static_cast<long long>(refused_ms),
              static_cast<long long>(exit_ms));
}

// Item 3: a second server on a port in use is refused, and says why; the
// first one keeps the port to itself.
TEST(Hostile, SecondServerOnAPortInUseIsRefused) {
  Server first = chat_server();
  const auto r = run_to_end_with_stderr(GREEN_E2E_CHAT_SERVER,
                                        {"--host", "127.0.0.1", "--port", std::to_string(first.port()), "--workers", "2"});
  EXPECT_EQ(r.code, 1) << r.out;
  EXPECT_NE(r.err.find("Address already in use"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  // Every user still lands in the one room.
  Client a = join(first.port(), "a");
  for (int i = 0; i < 8; ++i) {
    Client b = join(first.port(), "b" + std::to_string(i));
    EXPECT_EQ(a.line(), joined("b" + std::to_string(i)));
    b.close();
    EXPECT_EQ(a.line(), "## b" + std::to_string(i) + " left the chat.\n");
  }
  stop_within(first, 2s);
}

// Item 4: one user never reads while another floods 4 KB lines. The
// backlog is bounded in bytes: the slow user is dropped and told, and the
// server's memory does not grow with the flood.
TEST(Hostile, BacklogOfANonReaderIsBoundedInBytes) {
  Server s = chat_server({"--grace", "120"});  // the default --max-backlog: 1 MiB
  Client slow = join(s.port(), "slow", 4096);
  Client talker = join(s.port(), "talker");
  const long before_kb = vm_rss_kb(s.child().pid());
  const std::string line = line_of(4000);
  std::string chunk;
  for (int i = 0; i < 25; ++i) chunk += line;  // 100 KB
  long peak_kb = before_kb;
  const int chunks = kSanitized ? 100 : 400;  // 10 or 40 MB
  for (int i = 0; i < chunks; ++i) {
    talker.send(chunk, deadline_in(2 * kWait));
    peak_kb = std::max(peak_kb, vm_rss_kb(s.child().pid()));
  }
  talker.send("last\n");
  // It gets what was on its way, then the notice and the end.
  const std::string got = slow.read_to_end(deadline_in(2 * kWait));
  const std::string notice = "## you are not reading fast enough: disconnected.\n";
  ASSERT_TRUE(got.ends_with(notice)) << got.substr(got.size() > 200 ? got.size() - 200 : 0);
  EXPECT_LT(got.size(), 40u << 20) << "the whole flood was queued for it";
  std::printf("server RSS %ld MB before, peak %ld MB during a %d MB flood; the dropped user got %zu KB\n",
              before_kb >> 10, peak_kb >> 10, chunks / 10, got.size() >> 10);
#ifndef GREEN_TEST_SANITIZED
  // Release only: ASan's quarantine and shadow grow with every allocation,
  // freed or not. Before the bound in bytes the flood took ~400 MB.
  EXPECT_LT(peak_kb - before_kb, 64L << 10) << "the server grew by " << ((peak_kb - before_kb) >> 10) << " MB";
#endif
  stop_within(s, 2s);
}

// Item 5: the logs cannot be flooded. Out of descriptors, each acceptor
// backs off and the failure is reported at most once a second; a peer's
// reset is counted, not logged.
TEST(Hostile, FdExhaustionAndResetsDoNotFloodTheLog) {
  FdLimit limit(48);
  Server s(GREEN_E2E_ECHO_SERVER, {"--workers", "2"}, /*capture_stderr=*/true);
  limit.restore();
  // Peers that reset their connection mid-conversation. First: under UBSan a
  // dynamic type check not yet in its cache probes memory through a pipe,
  // which cannot be had at fd exhaustion (a false "invalid vptr" report);
  // these resets put SystemError's checks in the cache before that.
  const int resets = kSanitized ? 100 : 500;
  for (int i = 0; i < resets; ++i) {
    Client c(s.port());
    c.send("hi\n");
    EXPECT_EQ(c.line(), "hi\n");
    c.send("x");
    c.reset();
  }
  // Past the server's descriptors: the last connections wait in the
  // listen queue while the acceptors fail with EMFILE.
  std::vector<Client> held;
  for (int i = 0; i < 80; ++i) held.emplace_back(s.port());
  // A window of 1.5 s at fd exhaustion (the rate of reports is the point).
  for (const auto end = Clock::now() + 1500ms; Clock::now() < end;) ::poll(nullptr, 0, 50);
  held.clear();
  // It recovers: a fresh connection is echoed.
  {
    Client c(s.port());
    c.send("after\n");
    EXPECT_EQ(c.line(), "after\n");
  }
  stop_within(s, 2s);
  const auto [out, err] = s.child().read_all_and_stderr();
  const std::size_t emfile = count_of(err, "Too many open files");
  EXPECT_GE(emfile, 1u) << "the test did not exhaust the server's descriptors";
  EXPECT_LE(emfile, 3u) << err.substr(0, 2000);
  EXPECT_EQ(count_of(err, "reset by peer"), 0u) << err.substr(0, 2000);
}

// Item 6: a client that never gives a name is told and disconnected after
// --name-timeout, and so is one that trickles a name without its newline.
TEST(Hostile, NoNameWithinTheTimeoutDisconnects) {
  Server s = chat_server({"--name-timeout", "0.5"});
  Client silent(s.port());
  Client trickle(s.port());
  EXPECT_EQ(silent.line(), kPrompt);
  EXPECT_EQ(trickle.line(), kPrompt);
  trickle.send("ab");
  trickle.send("c");
  for (Client* c : {&silent, &trickle}) {
    EXPECT_EQ(c->line(), "No name within 0.5 s: disconnected.\n");
    EXPECT_EQ(c->read_to_end(), "");
  }
  // Somebody prompt still joins.
  Client a = join(s.port(), "a");
  stop_within(s, 2s);
}

// Item 7: names are printable and cannot pass for notices; control
// characters are not relayed; the line limit is the one the notice states.
TEST(Hostile, InputRules) {
  Server s = chat_server();
  Client watcher = join(s.port(), "watcher");
  {
    // A name of 2 MiB without a newline gets an answer, not a dead handler.
    Client huge(s.port());
    EXPECT_EQ(huge.line(), kPrompt);
    huge.send(std::string(2 << 20, 'n'), deadline_in(2 * kWait));
    huge.send("\n");
    EXPECT_EQ(huge.line(), "That name is too long (at most 32 bytes). Name?\n");
    const std::string refused_name = "A name is printable ASCII and does not start with '#'. Name?\n";
    for (std::string bad : {std::string("\x1b[31mred"), std::string("a\0b", 3), std::string("## fake"),
                            std::string("#x"), std::string("a\rb"), std::string("tab\tname")}) {
      huge.send(bad + "\n");
      EXPECT_EQ(huge.line(), refused_name) << "accepted the name " << bad;
    }
    huge.send("fine name\n");
    EXPECT_EQ(huge.line(), joined("fine name"));
    EXPECT_EQ(watcher.line(), joined("fine name"));
    // Control characters other than tab are dropped from relayed lines.
    huge.send("hi\x1b[2J there\a\x7f\tok\r\n");
    EXPECT_EQ(watcher.line(), "fine name> hi[2J there\tok\n");
    // The limit: 4,096 bytes of text (either line end) pass, 4,097 do not.
    const std::string max(4096, 'm');
    huge.send(max + "\n" + max + "\r\n" + max + "m\n" + "after\n");
    EXPECT_EQ(watcher.line(), "fine name> " + max + "\n");
    EXPECT_EQ(watcher.line(), "fine name> " + max + "\n");
    EXPECT_EQ(watcher.line(), "fine name> after\n");
    EXPECT_EQ(huge.line(), "## line rejected: longer than 4096 bytes.\n");
  }
  EXPECT_EQ(watcher.line(), "## fine name left the chat.\n");
  stop_within(s, 2s);
}
