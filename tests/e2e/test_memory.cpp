// End-to-end: memory after a burst. echo_server (its own process) takes a
// burst of connections, each echoing a line, and then they all close; the
// server must give most of the memory the burst took back to the system
// within a few trim intervals (1 s each by default; the policy is at the top
// of scheduler/src/stack.hpp). The test reads the server's VmRSS from
// /proc/PID/status: while connected, when the server has closed every
// socket (its fd count is back where it started), and then polled with a
// deadline until it has dropped. Nothing sleeps to synchronise.
#include <gtest/gtest.h>
#include <sys/epoll.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "e2e_util.hpp"

using namespace e2e;

namespace {

// 15,000 is the burst of the issue. Sanitized servers use several times the
// memory per connection and TSan maps a trace per live green thread, so
// they get fewer.
#if defined(GREEN_TEST_TSAN)
constexpr int kConnections = 2000;
#elif defined(GREEN_TEST_SANITIZED)
constexpr int kConnections = 3000;
#else
constexpr int kConnections = 15000;
#endif
constexpr int kBatch = 500;  // connections opened (and echoing) at once

// Resident kB of the green-thread stacks: the anonymous read-write mappings
// of exactly the default stack size (256 KiB; a guarded stack's guard page
// is a mapping of its own) and the slabs of 64 such stacks plus a page
// (merged by the kernel when neighbours, hence "a multiple of").
long stacks_rss_kb(pid_t pid) {
  constexpr unsigned long kStack = 256 * 1024, kSlab = 64 * kStack + 4096;
  std::ifstream in("/proc/" + std::to_string(pid) + "/smaps");
  std::string line;
  long kb = 0;
  bool counting = false;
  while (std::getline(in, line)) {
    unsigned long lo = 0, hi = 0;
    char perms[8] = {};
    int end = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx %7s %*s %*s %*s%n", &lo, &hi, perms, &end) == 3) {
      const bool anonymous = line.find_first_not_of(' ', static_cast<std::size_t>(end)) == std::string::npos;
      counting = anonymous && perms[0] == 'r' && perms[1] == 'w' && (hi - lo == kStack || (hi - lo) % kSlab == 0);
    } else if (counting && line.rfind("Rss:", 0) == 0) {
      kb += std::stol(line.substr(4));
    }
  }
  return kb;
}

int open_fds(pid_t pid) {
  DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str());
  if (!d) fail_errno("opendir /proc/PID/fd");
  int n = 0;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n;
}

// The soft RLIMIT_NOFILE raised to the hard one (the server, started
// after, inherits it); returns the new soft limit.
rlim_t raise_fd_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) fail_errno("getrlimit");
  rl.rlim_cur = rl.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &rl);
  ::getrlimit(RLIMIT_NOFILE, &rl);
  return rl.rlim_cur;
}

// Opens `count` connections, kBatch at a time; each sends one line and
// reads it back before the next batch starts. All of them stay open.
std::vector<int> connect_and_echo(std::uint16_t port, int count) {
  std::vector<int> fds;
  fds.reserve(static_cast<std::size_t>(count));
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) fail_errno("epoll_create1");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const auto deadline = deadline_in(kSanitized ? 120s : 60s);
  for (int first = 0; first < count; first += kBatch) {
    const int n = std::min(kBatch, count - first);
    struct Conn {
      std::string line, got;
      bool sent = false;
    };
    std::vector<Conn> conns(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
      const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      if (fd < 0) fail_errno("socket (connection " + std::to_string(first + i) + ")");
      fds.push_back(fd);
      if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno != EINPROGRESS)
        fail_errno("connect");
      conns[static_cast<std::size_t>(i)].line = "line " + std::to_string(first + i) + "\n";
      epoll_event ev{};
      ev.events = EPOLLOUT | EPOLLIN;
      ev.data.u32 = static_cast<std::uint32_t>(i);
      if (::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) fail_errno("epoll_ctl");
    }
    int done = 0;
    epoll_event evs[256];
    while (done < n) {
      if (Clock::now() > deadline) fail("echoes timed out with " + std::to_string(first + done) + " done");
      const int k = ::epoll_wait(ep, evs, 256, 1000);
      if (k < 0 && errno != EINTR) fail_errno("epoll_wait");
      for (int e = 0; e < k; ++e) {
        const std::uint32_t i = evs[e].data.u32;
        Conn& c = conns[i];
        const int fd = fds[static_cast<std::size_t>(first) + i];
        if (evs[e].events & (EPOLLERR | EPOLLHUP)) fail("connection " + std::to_string(first + i) + " failed");
        if (!c.sent && (evs[e].events & EPOLLOUT)) {
          // A few bytes on a fresh socket: all of it goes at once.
          if (::send(fd, c.line.data(), c.line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(c.line.size()))
            fail_errno("send");
          c.sent = true;
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.u32 = i;
          ::epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
        }
        if (evs[e].events & EPOLLIN) {
          char buf[256];
          const ssize_t r = ::recv(fd, buf, sizeof buf, 0);
          if (r == 0) fail("connection " + std::to_string(first + i) + " closed early");
          if (r < 0 && errno != EAGAIN && errno != EINTR) fail_errno("recv");
          if (r > 0) c.got.append(buf, static_cast<std::size_t>(r));
          if (c.got.size() >= c.line.size()) {
            if (c.got != c.line) fail("echo \"" + c.got + "\" for \"" + c.line + "\"");
            ::epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
            ++done;
          }
        }
      }
    }
  }
  ::close(ep);
  return fds;
}

}  // namespace

TEST(Memory, EchoServerGivesBackMemoryAfterABurst) {
  const rlim_t limit = raise_fd_limit();
  const int connections = static_cast<int>(std::min<rlim_t>(kConnections, limit > 200 ? limit - 200 : 0));
  if (connections < 1000)
    GTEST_SKIP() << "RLIMIT_NOFILE allows " << limit << " descriptors: too few for a burst";

  Server s(GREEN_E2E_ECHO_SERVER, {"--workers", "2"});
  const pid_t pid = s.child().pid();
  const int idle_fds = open_fds(pid);
  const long idle = vm_rss_kb(pid);

  std::vector<int> fds = connect_and_echo(s.port(), connections);
  const long connected = vm_rss_kb(pid);
  const long stacks_connected = stacks_rss_kb(pid);

  const auto closed_at = Clock::now();
  for (int fd : fds) ::close(fd);
  // The server has ended every handler once its fd count is back.
  const auto closing_deadline = deadline_in();
  while (open_fds(pid) > idle_fds) {
    if (Clock::now() > closing_deadline) fail("the server still has " + std::to_string(open_fds(pid)) + " fds");
    ::poll(nullptr, 0, 10);  // look again shortly (bounded by the deadline)
  }
  const long closed = vm_rss_kb(pid);
  const long stacks_closed = stacks_rss_kb(pid);

  // What must go back, polled until it has or the deadline passes (the
  // policy needs two or three 1 s intervals):
  //   * the stacks: at most a quarter of their resident pages while
  //     connected may stay (the workers' own caches and a decaying rest);
  //   * release: at most a quarter of everything the burst added (measured:
  //     about 5% two seconds after the close; without the policy 70-85%
  //     stayed for good).
  //   * sanitized: ASan keeps freed heap in its quarantine (256 MB by
  //     default) and neither sanitizer's allocator answers malloc_trim, so
  //     the heap the connections used cannot be asked back there. The RSS
  //     must still fall, by at least half of what the stacks gave back.
  const long grown = connected - idle;
  long now = closed, stacks_now = stacks_closed;
  auto done = [&] {
    const bool stacks_ok = stacks_now <= stacks_connected / 4;
    const bool total_ok = kSanitized ? closed - now >= (stacks_closed - stacks_now) / 2 : now <= idle + grown / 4;
    return stacks_ok && total_ok;
  };
  const auto trim_deadline = closed_at + (kSanitized ? 40s : 20s);
  for (;;) {
    now = vm_rss_kb(pid);
    stacks_now = stacks_rss_kb(pid);
    if (done() || Clock::now() > trim_deadline) break;
    ::poll(nullptr, 0, 100);  // poll the RSS until it drops (bounded by the deadline)
  }
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - closed_at);
  std::printf("echo_server, %d connections: RSS %ld kB idle, %ld kB connected (stacks %ld kB), "
              "%ld kB when all had closed (stacks %ld kB), %ld kB %lld ms after the close (stacks %ld kB)\n",
              connections, idle, connected, stacks_connected, closed, stacks_closed, now,
              static_cast<long long>(took.count()), stacks_now);
  EXPECT_LE(stacks_now, stacks_connected / 4) << "stacks kept " << stacks_now << " of " << stacks_connected << " kB";
  if (kSanitized) {
    EXPECT_GE(closed - now, (stacks_closed - stacks_now) / 2) << "RSS " << closed << " kB at the close, now " << now;
  } else {
    EXPECT_LE(now, idle + grown / 4) << "kept " << (now - idle) << " of the " << grown << " kB the burst added";
  }

  // The server still serves.
  Client c(s.port());
  c.send("still here\n");
  EXPECT_EQ(c.line(), "still here\n");
  c.close();

  const auto st = s.terminate(kWait);
  ASSERT_TRUE(st.has_value()) << "no exit within the deadline after SIGTERM";
  ASSERT_TRUE(WIFEXITED(*st)) << "killed by signal " << WTERMSIG(*st);
  EXPECT_EQ(WEXITSTATUS(*st), 0);
}
