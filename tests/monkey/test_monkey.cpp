// test_monkey.cpp — green::monkey: unmodified blocking POSIX code suspends
// only its green thread. The code under test calls the C library by its
// plain names (::read, ::accept, ::usleep); green's API appears only to
// spawn, to kill and to time out. Every wait is bounded; "it waits" is
// observed through Runtime::dump() (the hooks park as "read (hooked)",
// "write (hooked)", "sleep (hooked)") or /proc, never by sleeping.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <green/event.hpp>
#include <green/green.hpp>
#include <green/monkey.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "monkey_util.hpp"
#include "parked.hpp"
#include "test_env.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using green::testing::kernel_flags;
using green::testing::Pair;
using green::testing::per_build;
using green::testing::thread_state;
using green::testing::wait_parked;
using green::testing::workers;

// Raises RLIMIT_NOFILE's soft limit towards the hard one; whether `want`
// fds are now allowed.
bool raise_fd_limit(rlim_t want) {
  rlimit r{};
  if (::getrlimit(RLIMIT_NOFILE, &r) != 0) return false;
  if (r.rlim_cur >= want) return true;
  r.rlim_cur = std::min(want, r.rlim_max);
  return ::setrlimit(RLIMIT_NOFILE, &r) == 0 && r.rlim_cur >= want;
}

TEST(Monkey, HooksAreLive) { EXPECT_TRUE(green::monkey::active()); }

// 1,000 green threads on 2 workers each call ::sleep(1): together they take
// about one second, not 1,000 (or 500 on each worker). Under a sanitizer,
// spawning and parking 1,000 green threads costs a second or two more
// (ThreadSanitizer: about 2.9 s in all on 2 cores), still far from serial.
TEST(Monkey, ThousandSleepsTakeAboutOneSecond) {
  constexpr int n = 1000;
  green::Runtime rt(workers(2));
  const auto t0 = Clock::now();
  std::atomic<int> done{0};
  rt.run([&] {
    std::vector<green::Greenlet<void>> gs;
    for (int i = 0; i < n; ++i)
      gs.push_back(green::spawn([&] {
        EXPECT_EQ(::sleep(1), 0u);
        done.fetch_add(1);
      }));
    for (auto& g : gs) g.join();
  });
  EXPECT_EQ(done.load(), n);
  green::testing::expect_took(Clock::now() - t0, 1s, per_build(3s, 5s, 8s));
}

// ::sleep(1), ::usleep and std::this_thread::sleep_for (nanosleep
// underneath), 150 of them on one worker.
TEST(Monkey, SleepUsleepAndSleepForSuspendOnlyTheGreenThread) {
  green::Runtime rt(workers(1));
  const auto t0 = Clock::now();
  rt.run([&] {
    std::vector<green::Greenlet<void>> gs;
    for (int i = 0; i < 50; ++i) {
      gs.push_back(green::spawn([] { EXPECT_EQ(::sleep(1), 0u); }));
      gs.push_back(green::spawn([] { std::this_thread::sleep_for(300ms); }));
      gs.push_back(green::spawn([] { EXPECT_EQ(::usleep(300'000), 0); }));
    }
    for (auto& g : gs) g.join();
  });
  const auto took = Clock::now() - t0;
  EXPECT_GE(took, 1s);
  EXPECT_LT(took, per_build(3s, 5s, 8s));
}

// A plain-POSIX blocking echo server: socket/bind/listen/accept/read/write,
// no green call but spawn, on 2 workers, holding 1,000 connections at once.
// The clients (socket/connect/write/read) all connect first; only once the
// server holds every connection, each handler blocked in its read, do they
// talk: three rounds each, and every client gets its own bytes back.
TEST(Monkey, PlainPosixEchoServerServesThousandConcurrentConnections) {
  constexpr int clients = 1000;
  ASSERT_TRUE(raise_fd_limit(2 * clients + 64)) << "RLIMIT_NOFILE's hard limit is too low";
  green::Runtime rt(workers(2));
  std::atomic<int> ok{0}, connected{0}, open_now{0}, served{0};
  rt.run([&] {
    const int lfd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(lfd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    ASSERT_EQ(::listen(lfd, 4096), 0);
    socklen_t len = sizeof addr;
    ASSERT_EQ(::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len), 0);

    // The server.
    auto acceptor = green::spawn([&] {
      for (;;) {
        const int c = ::accept(lfd, nullptr, nullptr);
        if (c < 0) return;  // the listener was closed: EBADF
        green::spawn([c, &open_now, &served] {
          open_now.fetch_add(1);
          char buf[256];
          for (;;) {
            const ssize_t r = ::read(c, buf, sizeof buf);
            if (r <= 0) break;
            if (::write(c, buf, static_cast<size_t>(r)) != r) break;
          }
          open_now.fetch_sub(1);
          ::close(c);
          served.fetch_add(1);
        });
      }
    });

    green::Event talk;
    std::vector<green::Greenlet<void>> cs;
    for (int i = 0; i < clients; ++i) {
      cs.push_back(green::spawn([&, i] {
        const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0) return;
        if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
          connected.fetch_add(1);
          talk.wait();
          bool good = true;
          for (int round = 0; round < 3 && good; ++round) {
            const std::string msg = "client " + std::to_string(i) + " round " + std::to_string(round);
            good = ::write(fd, msg.data(), msg.size()) == static_cast<ssize_t>(msg.size());
            std::string got;
            while (good && got.size() < msg.size()) {
              char buf[256];
              const ssize_t r = ::read(fd, buf, sizeof buf);
              if (r <= 0) good = false;
              else got.append(buf, static_cast<size_t>(r));
            }
            good = good && got == msg;
          }
          if (good) ok.fetch_add(1);
        }
        ::close(fd);
      }));
    }
    const bool all_open =
        green::testing::wait_until([&] { return connected.load() == clients && open_now.load() == clients; }, 60s);
    EXPECT_TRUE(all_open) << connected.load() << " clients connected, the server holds " << open_now.load();
    talk.set();
    for (auto& c : cs) c.join();
    ::close(lfd);  // wakes the acceptor with EBADF
    EXPECT_TRUE(acceptor.join(10s));
    EXPECT_TRUE(green::testing::wait_until([&] { return served.load() == clients; }, 10s));
  });
  EXPECT_EQ(ok.load(), clients);
  EXPECT_EQ(served.load(), clients);
}

// F_GETFL reports the user's view; the kernel's fd is non-blocking. A user
// who set O_NONBLOCK (fcntl or ioctl FIONBIO) gets EAGAIN.
TEST(Monkey, UserViewOfONonblock) {
  green::Runtime rt(workers(1));
  rt.run([] {
    Pair p;
    EXPECT_EQ(::fcntl(p.a, F_GETFL) & O_NONBLOCK, 0);
    EXPECT_NE(kernel_flags(p.a) & O_NONBLOCK, 0);

    ASSERT_EQ(::fcntl(p.a, F_SETFL, ::fcntl(p.a, F_GETFL) | O_NONBLOCK), 0);
    EXPECT_NE(::fcntl(p.a, F_GETFL) & O_NONBLOCK, 0);
    char c;
    errno = 0;
    EXPECT_EQ(::read(p.a, &c, 1), -1);
    EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK);

    ASSERT_EQ(::fcntl(p.a, F_SETFL, ::fcntl(p.a, F_GETFL) & ~O_NONBLOCK), 0);
    EXPECT_EQ(::fcntl(p.a, F_GETFL) & O_NONBLOCK, 0);
    EXPECT_NE(kernel_flags(p.a) & O_NONBLOCK, 0) << "stays non-blocking underneath";

    int on = 1;
    ASSERT_EQ(::ioctl(p.b, FIONBIO, &on), 0);
    EXPECT_NE(::fcntl(p.b, F_GETFL) & O_NONBLOCK, 0);
    errno = 0;
    EXPECT_EQ(::recv(p.b, &c, 1, 0), -1);
    EXPECT_TRUE(errno == EAGAIN || errno == EWOULDBLOCK);

    // A socket asked for non-blocking from the start is the user's to handle.
    const int s = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    EXPECT_NE(::fcntl(s, F_GETFL) & O_NONBLOCK, 0);
    // dup shares the view, as it shares the open file description.
    const int d = ::dup(p.a);
    EXPECT_EQ(::fcntl(d, F_GETFL) & O_NONBLOCK, 0);
    ::close(d);
    ::close(s);
  });
}

// A plain thread reading a hooked (non-blocking underneath) socket with a
// blocking view blocks until data comes, then gets it (not EAGAIN).
TEST(Monkey, PlainThreadBlockingReadStillBlocks) {
  green::Runtime rt(workers(1));  // green is present: the hooks are registered
  Pair p;
  ASSERT_NE(kernel_flags(p.a) & O_NONBLOCK, 0);
  std::atomic<pid_t> tid{0};
  ssize_t got = -2;
  int err = 0;
  char c = 0;
  std::thread reader([&] {
    // A first hooked call makes the thread known as plain: the read below
    // takes the plain thread's fast path, then waits.
    ASSERT_EQ(::read(p.a, &c, 0), 0);
    tid.store(static_cast<pid_t>(::syscall(SYS_gettid)));
    got = ::read(p.a, &c, 1);
    err = errno;
  });
  ASSERT_TRUE(green::testing::wait_until([&] { return tid.load() != 0 && thread_state(tid.load()) == 'S'; }));
  ASSERT_EQ(::write(p.b, "x", 1), 1);
  reader.join();
  EXPECT_EQ(got, 1) << std::strerror(err);
  EXPECT_EQ(c, 'x');
}

// A plain thread's write larger than the socket's buffer, on a blocking
// view: all of it goes out (the hook waits for room, as the kernel would),
// and with O_NONBLOCK set by the user the same write stops short.
TEST(Monkey, PlainThreadBlockingWriteMovesEverything) {
  green::Runtime rt(workers(1));  // green is present: the hooks are registered
  Pair p;
  ASSERT_NE(kernel_flags(p.a) & O_NONBLOCK, 0);
  const std::string big(4 << 20, 'w');
  std::size_t received = 0;
  std::thread reader([&] {
    char buf[65536];
    for (;;) {
      const ssize_t n = ::read(p.b, buf, sizeof buf);
      if (n <= 0) break;
      received += static_cast<std::size_t>(n);
    }
  });
  // Twice: the first hooked call on a thread asks green where it runs, the
  // later ones take the plain thread's fast path.
  EXPECT_EQ(::write(p.a, big.data(), big.size()), static_cast<ssize_t>(big.size()));
  EXPECT_EQ(::write(p.a, big.data(), big.size()), static_cast<ssize_t>(big.size()));
  ::shutdown(p.a, SHUT_WR);
  reader.join();
  EXPECT_EQ(received, 2 * big.size());

  Pair q;
  ASSERT_EQ(::fcntl(q.a, F_SETFL, ::fcntl(q.a, F_GETFL) | O_NONBLOCK), 0);
  const ssize_t n = ::write(q.a, big.data(), big.size());
  EXPECT_GT(n, 0);
  EXPECT_LT(n, static_cast<ssize_t>(big.size()));
}

// SO_RCVTIMEO bounds a blocking read: -1/EAGAIN after the timeout, while the
// worker ran other green threads.
TEST(Monkey, SoRcvtimeoIsHonoured) {
  green::Runtime rt(workers(1));
  rt.run([] {
    Pair p;
    timeval tv{0, 150'000};
    ASSERT_EQ(::setsockopt(p.a, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv), 0);
    std::atomic<bool> stop{false};
    int ticks = 0;
    auto other = green::spawn([&] {
      while (!stop.load()) {
        ++ticks;
        green::sleep(5ms);
      }
    });
    const auto t0 = Clock::now();
    char c;
    errno = 0;
    const ssize_t r = ::read(p.a, &c, 1);
    const int e = errno;
    const auto took = Clock::now() - t0;
    stop.store(true);
    other.join();
    EXPECT_EQ(r, -1);
    EXPECT_TRUE(e == EAGAIN || e == EWOULDBLOCK) << std::strerror(e);
    EXPECT_GE(took, 140ms);
    EXPECT_LT(took, 2s);
    EXPECT_GT(ticks, 3) << "the worker was blocked during the read";
  });
}

// A kill while a green thread is blocked in a hooked read: the C code gets
// -1/EINTR; the GreenletExit comes at the next green call. A library that
// retries gets ECANCELED, not a second EINTR.
TEST(Monkey, KillGivesEintrThenGreenletExitAtNextGreenCall) {
  green::Runtime rt(workers(2));
  rt.run([&] {
    Pair p;
    ssize_t first = 0, retry = 0;
    int first_errno = 0, retry_errno = 0;
    bool exit_raised = false;
    auto g = green::spawn(green::SpawnOptions{.name = "reader"}, [&] {
      char c;
      first = ::read(p.a, &c, 1);
      first_errno = errno;
      retry = ::read(p.a, &c, 1);
      retry_errno = errno;
      green::testing::next_green_call_raises_exit(exit_raised);
    });
    ASSERT_TRUE(wait_parked(rt, "reader", "read (hooked)"));
    g.kill();
    EXPECT_TRUE(g.killed());
    EXPECT_EQ(first, -1);
    EXPECT_EQ(first_errno, EINTR);
    EXPECT_EQ(retry, -1);
    EXPECT_EQ(retry_errno, ECANCELED);
    EXPECT_TRUE(exit_raised);
  });
}

// close() from another green thread wakes a reader with EBADF.
TEST(Monkey, CloseWakesAReaderWithEbadf) {
  green::Runtime rt(workers(2));
  rt.run([&] {
    Pair p;
    ssize_t r = 0;
    int e = 0;
    auto g = green::spawn(green::SpawnOptions{.name = "reader"}, [&] {
      char c;
      r = ::read(p.a, &c, 1);
      e = errno;
    });
    ASSERT_TRUE(wait_parked(rt, "reader", "read (hooked)"));
    green::spawn([&] { ::close(p.a); }).join();
    p.a = -1;
    ASSERT_TRUE(g.join(5s));
    EXPECT_EQ(r, -1);
    EXPECT_EQ(e, EBADF);
  });
}

// A green::Timeout around a hooked read: the read fails with EINTR at the
// deadline, the TimeoutError comes at the next green call inside the scope.
TEST(Monkey, TimeoutAroundAHookedRead) {
  green::Runtime rt(workers(1));
  rt.run([] {
    Pair p;
    const auto t0 = Clock::now();
    ssize_t r = 0;
    int e = 0;
    bool raised = false;
    try {
      green::Timeout t(100ms);
      char c;
      r = ::read(p.a, &c, 1);
      e = errno;
      green::yield();
    } catch (const green::TimeoutError&) {
      raised = true;
    }
    const auto took = Clock::now() - t0;
    EXPECT_EQ(r, -1);
    EXPECT_EQ(e, EINTR);
    EXPECT_TRUE(raised);
    EXPECT_GE(took, 90ms);
    EXPECT_LT(took, 2s);
  });
}

// A green thread blocked in a hook resumes on the worker it parked on, even
// when woken from another: C code may hold its OS thread's &errno across
// the call (unpinned, a wake from worker 1 would run it on worker 1).
TEST(Monkey, HookedWaitResumesOnItsWorker) {
  green::Runtime rt(workers(2));
  rt.run([&] {
    for (int round = 0; round < 20; ++round) {
      Pair p;
      int before = -2, after = -3;
      ssize_t r = 0;
      auto reader = green::spawn(green::SpawnOptions{.name = "reader", .worker = 0}, [&] {
        char c;
        before = green::this_worker();
        r = ::read(p.a, &c, 1);
        after = green::this_worker();
      });
      ASSERT_TRUE(wait_parked(rt, "reader", "read (hooked)"));
      // Unpinned, the reader may have been stolen before its first run: the
      // writer runs on whichever worker the reader did not park on.
      ASSERT_TRUE(before == 0 || before == 1) << before;
      green::spawn(green::SpawnOptions{.worker = 1 - before, .pinned = true}, [&] { (void)::write(p.b, "w", 1); })
          .join();
      ASSERT_TRUE(reader.join(5s));
      EXPECT_EQ(r, 1);
      EXPECT_EQ(after, before) << "round " << round;
    }
  });
}

// An fd closed behind the hooks' back (a raw system call here; glibc's own
// fclose and pclose do the same) leaves a stale record; a non-blocking
// eventfd that takes its number must still get its EAGAIN, not a wait.
TEST(Monkey, StaleRecordOfAnFdClosedBehindTheHooks) {
  green::Runtime rt(workers(1));
  rt.run([] {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ::close(sv[1]);
    ASSERT_EQ(::syscall(SYS_close, sv[0]), 0);
    const int efd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ASSERT_EQ(efd, sv[0]) << "the number was not reused";
    std::uint64_t v;
    errno = 0;
    EXPECT_EQ(::read(efd, &v, sizeof v), -1);
    EXPECT_EQ(errno, EAGAIN);
    EXPECT_NE(::fcntl(efd, F_GETFL) & O_NONBLOCK, 0);
    ::close(efd);
  });
}

// A blocking write larger than the socket buffer writes everything, waiting
// (suspended) for the reader to make room.
TEST(Monkey, BlockingWriteWritesEverything) {
  green::Runtime rt(workers(1));
  rt.run([&] {
    Pair p;
    const std::string big(4 << 20, 'z');
    ssize_t wrote = 0;
    auto w = green::spawn([&] { wrote = ::write(p.a, big.data(), big.size()); });
    std::size_t total = 0;
    std::vector<char> buf(1 << 16);
    while (total < big.size()) {
      const ssize_t r = ::read(p.b, buf.data(), buf.size());
      ASSERT_GT(r, 0);
      total += static_cast<std::size_t>(r);
    }
    ASSERT_TRUE(w.join(5s));
    EXPECT_EQ(wrote, static_cast<ssize_t>(big.size()));
  });
}

}  // namespace
