// End-to-end: chat_server as its own process, driven by plain TCP clients;
// and chat_load against it.
#include <gtest/gtest.h>

#include <algorithm>

#include "chat_util.hpp"
#include "e2e_util.hpp"

using namespace e2e;

namespace {

// SIGTERM, then exit status 0 within `limit`.
void stop(Server& s, Clock::duration limit = kWait) {
  const auto st = s.terminate(limit);
  ASSERT_TRUE(st.has_value()) << "no exit within the limit after SIGTERM";
  ASSERT_TRUE(WIFEXITED(*st)) << "killed by signal " << WTERMSIG(*st);
  EXPECT_EQ(WEXITSTATUS(*st), 0);
}

}  // namespace

TEST(ChatServer, JoinAndLeaveNoticesGoToEveryone) {
  Server s = chat_server();
  Client alice = join(s.port(), "alice");
  Client bob = join(s.port(), "bob");
  EXPECT_EQ(alice.line(), joined("bob"));
  Client carol = join(s.port(), "carol");
  EXPECT_EQ(alice.line(), joined("carol"));
  EXPECT_EQ(bob.line(), joined("carol"));

  bob.close();
  EXPECT_EQ(alice.line(), left("bob"));
  EXPECT_EQ(carol.line(), left("bob"));
  // The name is free again.
  Client bob2 = join(s.port(), "bob");
  EXPECT_EQ(alice.line(), joined("bob"));
  EXPECT_EQ(carol.line(), joined("bob"));
  stop(s);
}

TEST(ChatServer, NameRules) {
  Server s = chat_server();
  Client alice = join(s.port(), "alice");
  Client c(s.port());
  ASSERT_EQ(c.line(), kPrompt);
  auto expect_rejected = [&](const std::string& name, const std::string& why) {
    c.send(name + "\n");
    const std::string answer = c.line();
    EXPECT_NE(answer.find(why), std::string::npos) << answer;
    EXPECT_TRUE(answer.ends_with("Name?\n")) << answer;  // and a new prompt
  };
  expect_rejected("", "empty");
  expect_rejected(std::string(33, 'n'), "too long");   // one over the limit of 32
  expect_rejected(std::string(5000, 'n'), "too long");  // far over: skipped whole, one answer
  expect_rejected("alice", "taken");
  c.send("carol\n");
  EXPECT_EQ(c.line(), joined("carol"));
  EXPECT_EQ(alice.line(), joined("carol"));  // the rejected tries were announced to nobody

  // The longest name allowed, and a telnet-style "\r\n" ending.
  Client d(s.port());
  ASSERT_EQ(d.line(), kPrompt);
  const std::string longest(32, 'l');
  d.send(longest + "\r\n");
  EXPECT_EQ(d.line(), joined(longest));
  EXPECT_EQ(alice.line(), joined(longest));
  EXPECT_EQ(c.line(), joined(longest));
  stop(s);
}

TEST(ChatServer, BroadcastGoesToAllOthersButNotTheSender) {
  Server s = chat_server();
  Client a = join(s.port(), "a");
  Client b = join(s.port(), "b");
  Client c = join(s.port(), "c");
  EXPECT_EQ(a.line(), joined("b"));
  EXPECT_EQ(a.line(), joined("c"));
  EXPECT_EQ(b.line(), joined("c"));

  a.send("hello everyone\n");
  a.send("second\n");
  for (Client* other : {&b, &c}) {
    EXPECT_EQ(other->line(), "a> hello everyone\n");
    EXPECT_EQ(other->line(), "a> second\n");
  }
  // b has seen "second", so a's reader finished broadcasting "hello" before
  // b sends: had a been sent its own lines, they would be ahead of b's in
  // its queue. Its next line must be b's.
  b.send("ping\n");
  EXPECT_EQ(a.line(), "b> ping\n");
  EXPECT_EQ(c.line(), "b> ping\n");
  stop(s);
}

TEST(ChatServer, OverlongLineIsRejectedNotDelivered) {
  Server s = chat_server({"--max-line", "100"});
  Client a = join(s.port(), "a");
  Client b = join(s.port(), "b");
  EXPECT_EQ(a.line(), joined("b"));
  a.send(std::string(300, 'x') + "\n");
  const std::string notice = a.line();
  EXPECT_TRUE(notice.starts_with("## line rejected")) << notice;
  a.send(std::string(100, 'y') + "\n");  // at the limit: delivered
  EXPECT_EQ(b.line(), "a> " + std::string(100, 'y') + "\n");
  stop(s);
}

// Every user receives exactly the lines of every other user, each sender's
// in the order sent, none of its own and no line twice.
TEST(ChatServer, ManyUsersNoLossNoDuplicate) {
  // Full size in every build: a few seconds even under ThreadSanitizer.
  const int users = 100;
  const int lines = 50;
  Server s = chat_server();
  struct Member {
    Client c;
    std::vector<int> next;      // the next sequence number expected from each sender
    int next_join = 0;          // the next user whose join notice it expects
    long received = 0;
  };
  std::vector<Member> m;
  m.reserve(users);
  for (int i = 0; i < users; ++i) {
    m.push_back({join(s.port(), "u" + std::to_string(i)), std::vector<int>(users, 0), i + 1, 0});
  }
  // All are in the room (each saw its own join). Every line sent from now on
  // reaches all of them.
  const long expected = long(users - 1) * lines;
  auto consume = [&](int i, const std::string& line) {
    Member& me = m[static_cast<std::size_t>(i)];
    if (line.starts_with("## ")) {  // only the joins of those after it, in order
      if (line != joined("u" + std::to_string(me.next_join)))
        fail("u" + std::to_string(i) + " got " + line);
      ++me.next_join;
      return;
    }
    int from = -1, seq = -1;
    char tail = 0;
    if (std::sscanf(line.c_str(), "u%d> %d%c", &from, &seq, &tail) != 3 || tail != '\n' || from < 0 ||
        from >= users)
      fail("u" + std::to_string(i) + " got a garbled line: " + line);
    if (from == i) fail("u" + std::to_string(i) + " got its own line: " + line);
    int& next = me.next[static_cast<std::size_t>(from)];
    if (seq != next)
      fail("u" + std::to_string(i) + " expected " + std::to_string(next) + " from u" + std::to_string(from) +
           ", got " + line);
    ++next;
    ++me.received;
  };
  auto pump_all = [&] {
    for (int i = 0; i < users; ++i) {
      Member& me = m[static_cast<std::size_t>(i)];
      if (!me.c.pump()) fail("the server closed u" + std::to_string(i));
      while (auto line = me.c.buffered_line()) consume(i, *line);
    }
  };
  // Everybody talks at once: round k has every user send its line k.
  for (int k = 0; k < lines; ++k) {
    for (int i = 0; i < users; ++i) m[static_cast<std::size_t>(i)].c.send(std::to_string(k) + "\n");
    pump_all();
  }
  const auto deadline = deadline_in(kSanitized ? 4 * kWait : 2 * kWait);
  std::vector<pollfd> fds(static_cast<std::size_t>(users));
  for (;;) {
    pump_all();
    bool done = true;
    for (int i = 0; i < users; ++i) {
      const Member& me = m[static_cast<std::size_t>(i)];
      fds[static_cast<std::size_t>(i)] = {me.c.fd(), POLLIN, 0};
      done = done && me.received == expected;
    }
    if (done) break;
    const auto left_ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left_ms <= 0) {
      long total = 0;
      for (const Member& me : m) total += me.received;
      fail("timed out: " + std::to_string(total) + " of " + std::to_string(expected * users) + " lines delivered");
    }
    ::poll(fds.data(), fds.size(), static_cast<int>(std::min<long long>(left_ms, 1000)));
  }
  for (int i = 0; i < users; ++i) {
    const Member& me = m[static_cast<std::size_t>(i)];
    EXPECT_EQ(me.received, expected) << "u" << i;
    EXPECT_EQ(me.next_join, users) << "u" << i;
    for (int j = 0; j < users; ++j)
      ASSERT_EQ(me.next[static_cast<std::size_t>(j)], j == i ? 0 : lines) << "u" << i << " from u" << j;
  }
  // Nothing more is on its way: a last line from u0 must be the very next
  // line everyone else reads (a late duplicate would come first), and one
  // from u1 the next line u0 reads.
  m[0].c.send("end\n");
  for (int i = 1; i < users; ++i) ASSERT_EQ(m[static_cast<std::size_t>(i)].c.line(), "u0> end\n") << "u" << i;
  m[1].c.send("end\n");
  ASSERT_EQ(m[0].c.line(), "u1> end\n");
  m.clear();
  stop(s);
}

namespace {

// A client that never reads, and two that do: "talker" sends long lines,
// "watcher" reads them, never more than `window` behind the talker (so it
// is never too slow itself). The talker goes on until stop(lines_sent)
// says so; returns the number of lines it sent. The "## " notices each of
// the two receives meanwhile are kept: one may well be the slow client's
// leave, which can come while the talker still talks (once the server's
// send buffer took everything the slow client is owed).
template <class Stop>
int talk_past(Client& talker, Client& watcher, Stop stop, std::vector<std::string>& talker_notices,
              Clock::time_point deadline, std::vector<std::string>* watcher_notices = nullptr) {
  const int window = 8;
  const std::string filler(3000, 'x');
  int sent = 0, seen = 0;
  while (!stop(sent, seen, talker_notices)) {
    if (Clock::now() > deadline) fail("timed out after " + std::to_string(sent) + " lines");
    if (sent - seen < window) {
      talker.send(std::to_string(sent) + " " + filler + "\n", deadline);
      ++sent;
      continue;
    }
    pollfd p[2] = {{talker.fd(), POLLIN, 0}, {watcher.fd(), POLLIN, 0}};
    ::poll(p, 2, 1000);
    if (!talker.pump()) fail("the server closed the talker");
    while (auto l = talker.buffered_line()) talker_notices.push_back(*l);
    if (!watcher.pump()) fail("the server closed the watcher");
    while (auto l = watcher.buffered_line()) {
      if (l->starts_with("## ")) {
        if (watcher_notices) watcher_notices->push_back(*l);
        continue;
      }
      if (*l != "talker> " + std::to_string(seen) + " " + filler + "\n") fail("watcher got " + l->substr(0, 80));
      ++seen;
    }
  }
  return sent;
}

// What a dropped client received: talker lines 0, 1, 2, ... in order and
// whole, and then whatever `rest` is left (a partial line, the notice).
int count_talker_lines(std::string& data) {
  int k = 0;
  for (;;) {
    const std::string prefix = "talker> " + std::to_string(k) + " ";
    const auto nl = data.find('\n');
    if (nl == std::string::npos || !data.starts_with(prefix)) return k;
    if (nl != prefix.size() + 3000) fail("a damaged line: " + data.substr(0, 80));
    data.erase(0, nl + 1);
    ++k;
  }
}

const std::string kSlowNotice = "## you are not reading fast enough: disconnected.\n";

}  // namespace

// A client that reads nothing while the others talk is dropped once its
// queue passes --max-queue, and cut off after --grace: the others see it
// leave while it still has not read a byte.
TEST(ChatServer, ClientThatNeverReadsIsDisconnected) {
  Server s = chat_server({"--max-queue", "64", "--grace", "1"});
  Client slow = join(s.port(), "slow", 4096);  // a small window: the server's buffers fill sooner
  Client talker = join(s.port(), "talker");
  Client watcher = join(s.port(), "watcher");
  EXPECT_EQ(talker.line(), joined("watcher"));
  std::vector<std::string> notices;
  talk_past(
      talker, watcher,
      [](int, int, const std::vector<std::string>& n) {
        return std::find(n.begin(), n.end(), left("slow")) != n.end();
      },
      notices, deadline_in(2 * kWait));
  // The connection is closed: reading it now ends (after what the kernel
  // still held for it).
  std::string got = slow.read_to_end();
  EXPECT_EQ(got.substr(0, joined("talker").size()), joined("talker"));
  got.erase(0, joined("talker").size() + joined("watcher").size());
  const int lines = count_talker_lines(got);
  EXPECT_GT(lines, 0);
  EXPECT_TRUE(got.size() < 3100 || got == kSlowNotice) << got.substr(0, 100);
  // The others were not affected: one more line reaches the watcher.
  talker.send("still here\n");
  for (;;) {
    const std::string l = watcher.line();
    if (l == "talker> still here\n") break;
    if (!l.starts_with("talker> ") && l != left("slow")) FAIL() << l;
  }
  stop(s);
}

// A client that falls behind is dropped and told so: when it catches up it
// finds every line up to the drop, whole and in order, then the notice, then
// the end of the connection.
TEST(ChatServer, SlowClientGetsTheNoticeThenTheEnd) {
  const int max_queue = 64;
  Server s = chat_server({"--max-queue", std::to_string(max_queue), "--grace", "120"});
  Client slow = join(s.port(), "slow", 4096);
  Client talker = join(s.port(), "talker");
  Client watcher = join(s.port(), "watcher");
  EXPECT_EQ(talker.line(), joined("watcher"));
  // Past this many lines the slow client must have been dropped: the server's
  // socket buffer (at most tcp_wmem's maximum), the client's small window,
  // one batch in the writer's hands and a full queue.
  long wmem_max = 4 << 20;
  if (FILE* f = std::fopen("/proc/sys/net/ipv4/tcp_wmem", "r")) {
    long lo, def;
    if (std::fscanf(f, "%ld %ld %ld", &lo, &def, &wmem_max) != 3) wmem_max = 64L << 20;
    std::fclose(f);
  }
  const int must_drop = static_cast<int>((wmem_max + (64 << 10)) / 3000) + 2 * max_queue + 2;
  std::vector<std::string> notices, watcher_notices;
  talk_past(
      talker, watcher, [&](int, int seen, const std::vector<std::string>&) { return seen > must_drop; }, notices,
      deadline_in(4 * kWait), &watcher_notices);
  std::string got = slow.read_to_end(deadline_in(2 * kWait));
  got.erase(0, joined("talker").size() + joined("watcher").size());
  const int lines = count_talker_lines(got);
  EXPECT_GT(lines, 0);
  EXPECT_LE(lines, must_drop);
  EXPECT_EQ(got, kSlowNotice);
  // And the others see it leave (perhaps already while the talker talked).
  if (std::find(watcher_notices.begin(), watcher_notices.end(), left("slow")) == watcher_notices.end()) {
    for (;;) {
      const std::string l = watcher.line();
      if (l == left("slow")) break;
      if (!l.starts_with("talker> ")) FAIL() << l;
    }
  }
  stop(s);
}

// Clients that vanish mid-line (a FIN or a reset after half a line), mid-name
// or before answering: the server survives, the others see the leaves.
TEST(ChatServer, AbruptDisconnectsMidLine) {
  Server s = chat_server();
  Client watcher = join(s.port(), "watcher");
  const int rounds = 10;
  for (int r = 0; r < rounds; ++r) {
    const std::string fin = "fin" + std::to_string(r), rst = "rst" + std::to_string(r);
    Client a = join(s.port(), fin);
    Client b = join(s.port(), rst);
    EXPECT_EQ(watcher.line(), joined(fin));
    EXPECT_EQ(watcher.line(), joined(rst));
    EXPECT_EQ(a.line(), joined(rst));
    a.send("half a li");
    a.close();
    // The server may pass the unfinished last line on before the leave.
    std::string l = watcher.line();
    if (l == fin + "> half a li\n") l = watcher.line();
    EXPECT_EQ(l, left(fin));
    b.send("half a li");
    b.reset();
    l = watcher.line();
    if (l == rst + "> half a li\n") l = watcher.line();
    EXPECT_EQ(l, left(rst));
    {
      Client c(s.port());  // gone before naming itself
      c.reset();
      Client d(s.port());  // gone in the middle of its name
      d.set_label("unnamed " + std::to_string(r));
      EXPECT_EQ(d.line(), kPrompt);
      d.send("hal");
      d.reset();
    }
  }
  // The server still works.
  Client late = join(s.port(), "late");
  EXPECT_EQ(watcher.line(), joined("late"));
  late.send("hi\n");
  EXPECT_EQ(watcher.line(), "late> hi\n");
  stop(s);
}

// SIGTERM with users connected (one still naming itself): everyone is told,
// disconnected, and the server exits with status 0 within 2 s.
TEST(ChatServer, SigtermWithUsersConnectedExitsZeroWithinTwoSeconds) {
  Server s = chat_server();
  std::vector<Client> users;
  for (int i = 0; i < 5; ++i) {
    users.push_back(join(s.port(), "u" + std::to_string(i)));
    for (int j = 0; j < i; ++j) ASSERT_EQ(users[static_cast<std::size_t>(j)].line(), joined("u" + std::to_string(i)));
  }
  users[0].send("bye\n");
  for (int j = 1; j < 5; ++j) ASSERT_EQ(users[static_cast<std::size_t>(j)].line(), "u0> bye\n");
  Client naming(s.port());
  ASSERT_EQ(naming.line(), kPrompt);
  // Sanitized builds need longer to run the exit (leak check, reports).
  const auto t0 = Clock::now();
  const auto st = s.terminate(kSanitized ? 10s : 2s);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  ASSERT_TRUE(st.has_value()) << "still running " << ms << " ms after SIGTERM";
  ASSERT_TRUE(WIFEXITED(*st)) << "killed by signal " << WTERMSIG(*st);
  EXPECT_EQ(WEXITSTATUS(*st), 0);
  // Each is told, then disconnected. Leaves of users disconnected a moment
  // earlier may follow the notice.
  for (auto& u : users) {
    EXPECT_EQ(u.line(), "## the server is shutting down.\n");
    while (auto l = u.read_line()) EXPECT_TRUE(l->ends_with(" left the chat.\n")) << *l;
  }
  naming.read_to_end();
}

TEST(ChatLoad, SmallRunLosesNothing) {
  Server s = chat_server();
  const auto r = run_to_end(GREEN_E2E_CHAT_LOAD, {"--port", std::to_string(s.port()), "--users", "20", "--lines",
                                                   "20", "--workers", "2", "--timeout", "100"},
                            4 * kWait);
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("users_joined=20 delivered=7600 expected=7600 "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(" lost_or_bad=0\n"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("every line delivered exactly once, in order"), std::string::npos) << r.out;
  stop(s);
}

// The server stops (SIGTERM) while every user is sending and receiving: chat_load
// reports the failures and exits 1. Each user's sender green thread uses
// the user's socket and name; before the fix it outlived them when the
// reader failed, and chat_load died of SIGSEGV most times.
TEST(ChatLoad, ServerGoneMidRunIsReportedNotACrash) {
  Server s = chat_server();
  Client watcher = join(s.port(), "watcher");
  // As many users as the sanitizers allow in reasonable time (ThreadSanitizer
  // took 80 s with 200).
#ifdef GREEN_TEST_TSAN
  const std::string users = "20";
#else
  const std::string users = kSanitized ? "50" : "200";
#endif
  Child load(GREEN_E2E_CHAT_LOAD,
             {"--port", std::to_string(s.port()), "--users", users, "--lines", "20000", "--workers", "2", "--timeout",
              "300"},
             /*capture_stderr=*/true);
  for (int seen = 0; seen < (kSanitized ? 1000 : 20000);) {
    if (!watcher.line(deadline_in(4 * kWait)).starts_with("## ")) ++seen;
  }
  s.child().terminate();
  const auto [out, err] = load.read_all_and_stderr(deadline_in(4 * kWait));
  EXPECT_EQ(load.exit_code(), 1) << err;
  EXPECT_NE(out.find("users_joined=" + users + " "), std::string::npos) << out;
  EXPECT_NE(err.find("chat_load: a user failed: "), std::string::npos) << err;
}
