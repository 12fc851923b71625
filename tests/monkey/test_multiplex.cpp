// test_multiplex.cpp — poll, ppoll, select, pselect and epoll_wait through
// the hooks: on a green thread they park only that green thread (dump()
// shows it parked on "read (hooked)": the hooks wait on an epoll fd), honour
// their timeouts, report what the kernel would, end with EINTR on a kill or
// a Timeout, and end when a watched fd is closed; on a plain thread they
// are libc's calls.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <unistd.h>

#include <green/green.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <stdexcept>
#include <chrono>
#include <thread>
#include <vector>

#include "monkey_util.hpp"
#include "parked.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using namespace green::testing;

constexpr const char* kParked = "read (hooked)";

// A new epoll instance watching fd for input, with `data` as its events' data.
int epoll_on(int fd, std::uint64_t data = 0) {
  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = data;
  if (ep < 0 || ::epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) throw std::runtime_error("epoll");
  return ep;
}

// A set holding fd alone.
fd_set only(int fd) {
  fd_set s;
  FD_ZERO(&s);
  FD_SET(fd, &s);
  return s;
}

// A green thread in wait(fds, 2, 5 s) on two pairs parks until the second
// is readable and sees just that; then wait(fds, 1, 100 ms) with nothing
// ready returns 0 at its timeout. `wait` is poll or ppoll.
template <class Wait>
void waits_for_any_then_times_out(green::Runtime& rt, Pair& p1, Pair& p2, Wait wait) {
  pollfd fds[2] = {{p1.a, POLLIN, 0}, {p2.a, POLLIN, 0}};
  int r = -2;
  auto g = green::spawn(green::SpawnOptions{.name = "poller"}, [&] { r = wait(fds, 2, 5000); });
  ASSERT_TRUE(wait_parked(rt, "poller", kParked));
  ASSERT_EQ(::write(p2.b, "y", 1), 1);
  ASSERT_TRUE(g.join(5s));
  EXPECT_EQ(r, 1);
  EXPECT_EQ(fds[0].revents, 0);
  EXPECT_NE(fds[1].revents & POLLIN, 0);
  char c;
  ASSERT_EQ(::read(p2.a, &c, 1), 1);

  pollfd none[1] = {{p1.a, POLLIN, 0}};
  const auto t0 = Clock::now();
  EXPECT_EQ(wait(none, 1, 100), 0);
  EXPECT_GE(Clock::now() - t0, 90ms);
}

// poll() waits without holding the worker, on one worker and on two.
TEST(MonkeyMultiplex, PollWaitsForAnyFd) {
  for (unsigned n : {1u, 2u}) {
    green::Runtime rt(workers(n));
    rt.run([&] {
      Pair p1, p2;
      waits_for_any_then_times_out(rt, p1, p2, [](pollfd* fds, nfds_t k, int ms) { return ::poll(fds, k, ms); });
    });
  }
}

TEST(MonkeyMultiplex, PpollWaitsForAnyFdAndHonoursItsTimeout) {
  green::Runtime rt(workers(2));
  rt.run([&] {
    Pair p1, p2;
    timespec last{};
    waits_for_any_then_times_out(rt, p1, p2, [&](pollfd* fds, nfds_t n, int ms) {
      last = timespec{ms / 1000, (ms % 1000) * 1'000'000L};
      return ::ppoll(fds, n, &last, nullptr);
    });
    EXPECT_EQ(last.tv_nsec, 100'000'000) << "glibc leaves ppoll's timeout as it was";

    // A mask equal to the thread's own changes nothing: the green thread parks.
    sigset_t mine;
    ASSERT_EQ(::pthread_sigmask(SIG_SETMASK, nullptr, &mine), 0);
    pollfd one[1] = {{p1.a, POLLIN, 0}};
    int masked = -2;
    auto m = green::spawn(green::SpawnOptions{.name = "masked"},
                          [&] { masked = ::ppoll(one, 1, nullptr, &mine); });
    ASSERT_TRUE(wait_parked(rt, "masked", kParked));
    ASSERT_EQ(::write(p1.b, "z", 1), 1);
    ASSERT_TRUE(m.join(5s));
    EXPECT_EQ(masked, 1);

    // Another mask is libc's call (it holds the worker): with the fd ready
    // it returns at once, as libc's.
    sigset_t other = mine;
    sigaddset(&other, SIGUSR2);
    timespec five{5, 0};
    EXPECT_EQ(::ppoll(one, 1, &five, &other), 1);

    timespec bad{0, 2'000'000'000};
    errno = 0;
    EXPECT_EQ(::ppoll(one, 1, &bad, nullptr), -1);
    EXPECT_EQ(errno, EINVAL);
  });
}

TEST(MonkeyMultiplex, SelectReportsReadyFdsAndUpdatesItsTimeout) {
  green::Runtime rt(workers(2));
  rt.run([&] {
    Pair p1, p2;
    const int nfds = std::max({p1.a, p1.b, p2.a, p2.b}) + 1;
    // Ready at once: only what is ready is left in the sets.
    fd_set rd = only(p1.a), wr = only(p1.b);
    timeval tv{5, 0};
    EXPECT_EQ(::select(nfds, &rd, &wr, nullptr, &tv), 1);
    EXPECT_FALSE(FD_ISSET(p1.a, &rd));
    EXPECT_TRUE(FD_ISSET(p1.b, &wr));

    // A wait: the green thread parks until p2.a is readable; the timeout
    // comes back holding the time not slept, as Linux's select leaves it.
    rd = only(p1.a);
    FD_SET(p2.a, &rd);
    tv = timeval{5, 0};
    int r = -2;
    auto g = green::spawn(green::SpawnOptions{.name = "selector"},
                          [&] { r = ::select(nfds, &rd, nullptr, nullptr, &tv); });
    ASSERT_TRUE(wait_parked(rt, "selector", kParked));
    ASSERT_EQ(::write(p2.b, "y", 1), 1);
    ASSERT_TRUE(g.join(5s));
    EXPECT_EQ(r, 1);
    EXPECT_FALSE(FD_ISSET(p1.a, &rd));
    EXPECT_TRUE(FD_ISSET(p2.a, &rd));
    const long left_us = tv.tv_sec * 1'000'000 + tv.tv_usec;
    EXPECT_LT(left_us, 5'000'000);
    EXPECT_GT(left_us, 2'000'000);

    // The timeout: 0, the sets emptied, the timeout used up.
    rd = only(p1.a);
    tv = timeval{0, 100'000};
    const auto t0 = Clock::now();
    EXPECT_EQ(::select(nfds, &rd, nullptr, nullptr, &tv), 0);
    EXPECT_GE(Clock::now() - t0, 90ms);
    EXPECT_FALSE(FD_ISSET(p1.a, &rd));
    EXPECT_EQ(tv.tv_sec, 0);
    EXPECT_EQ(tv.tv_usec, 0);

    // No fds: select as a sleep, parked.
    tv = timeval{0, 50'000};
    const auto t1 = Clock::now();
    EXPECT_EQ(::select(0, nullptr, nullptr, nullptr, &tv), 0);
    EXPECT_GE(Clock::now() - t1, 45ms);
  });
}

TEST(MonkeyMultiplex, SelectAndPselectRejectBadInput) {
  green::Runtime rt(workers(2));
  rt.run([&] {
    Pair p;
    fd_set rd = only(p.a);
    timeval tv{1, 0};
    timespec ts{1, 0};
    errno = 0;
    EXPECT_EQ(::select(-1, &rd, nullptr, nullptr, &tv), -1);
    EXPECT_EQ(errno, EINVAL);
    errno = 0;
    EXPECT_EQ(::select(FD_SETSIZE + 1, &rd, nullptr, nullptr, &tv), -1);
    EXPECT_EQ(errno, EINVAL);
    timeval negative{-1, 0};
    errno = 0;
    EXPECT_EQ(::select(p.a + 1, &rd, nullptr, nullptr, &negative), -1);
    EXPECT_EQ(errno, EINVAL);
    errno = 0;
    EXPECT_EQ(::pselect(-1, &rd, nullptr, nullptr, &ts, nullptr), -1);
    EXPECT_EQ(errno, EINVAL);
    timespec bad{0, -5};
    errno = 0;
    EXPECT_EQ(::pselect(p.a + 1, &rd, nullptr, nullptr, &bad, nullptr), -1);
    EXPECT_EQ(errno, EINVAL);

    // A closed fd in a set: EBADF, the sets as they were.
    const int fd = p.a;
    ASSERT_EQ(::close(p.a), 0);
    p.a = -1;
    rd = only(fd);
    errno = 0;
    EXPECT_EQ(::select(fd + 1, &rd, nullptr, nullptr, &tv), -1);
    EXPECT_EQ(errno, EBADF);
    EXPECT_TRUE(FD_ISSET(fd, &rd));
    errno = 0;
    EXPECT_EQ(::pselect(fd + 1, &rd, nullptr, nullptr, &ts, nullptr), -1);
    EXPECT_EQ(errno, EBADF);
  });
}

TEST(MonkeyMultiplex, PselectWaitsAndTimesOut) {
  green::Runtime rt(workers(2));
  rt.run([&] {
    Pair p;
    fd_set rd = only(p.a);
    int r = -2;
    auto g = green::spawn(green::SpawnOptions{.name = "pselector"}, [&] {
      const timespec ts{5, 0};
      r = ::pselect(p.a + 1, &rd, nullptr, nullptr, &ts, nullptr);
    });
    ASSERT_TRUE(wait_parked(rt, "pselector", kParked));
    ASSERT_EQ(::write(p.b, "y", 1), 1);
    ASSERT_TRUE(g.join(5s));
    EXPECT_EQ(r, 1);
    EXPECT_TRUE(FD_ISSET(p.a, &rd));

    char c;
    ASSERT_EQ(::read(p.a, &c, 1), 1);
    const timespec ts{0, 100'000'000};
    const auto t0 = Clock::now();
    EXPECT_EQ(::pselect(p.a + 1, &rd, nullptr, nullptr, &ts, nullptr), 0);
    EXPECT_GE(Clock::now() - t0, 90ms);
    EXPECT_FALSE(FD_ISSET(p.a, &rd));
  });
}

TEST(MonkeyMultiplex, EpollWaitOnTheUsersEpollFd) {
  green::Runtime rt(workers(2));
  rt.run([&] {
    Pair p;
    const int ep = epoll_on(p.a, 42);
    epoll_event out[4];
    int r = -2;
    auto g = green::spawn(green::SpawnOptions{.name = "epoller"}, [&] { r = ::epoll_wait(ep, out, 4, 5000); });
    ASSERT_TRUE(wait_parked(rt, "epoller", kParked));
    ASSERT_EQ(::write(p.b, "y", 1), 1);
    ASSERT_TRUE(g.join(5s));
    ASSERT_EQ(r, 1);
    EXPECT_EQ(out[0].data.u64, 42u);
    EXPECT_NE(out[0].events & EPOLLIN, 0u);

    char c;
    ASSERT_EQ(::read(p.a, &c, 1), 1);
    auto t0 = Clock::now();
    EXPECT_EQ(::epoll_wait(ep, out, 4, 100), 0);
    EXPECT_GE(Clock::now() - t0, 90ms);
    t0 = Clock::now();
    EXPECT_EQ(::epoll_pwait(ep, out, 4, 100, nullptr), 0);
    EXPECT_GE(Clock::now() - t0, 90ms);
    const timespec ts{0, 100'000'000};
    t0 = Clock::now();
    EXPECT_EQ(::epoll_pwait2(ep, out, 4, &ts, nullptr), 0);
    EXPECT_GE(Clock::now() - t0, 90ms);

    errno = 0;
    EXPECT_EQ(::epoll_wait(ep, out, 0, 100), -1);
    EXPECT_EQ(errno, EINVAL) << "maxevents <= 0";
    errno = 0;
    EXPECT_EQ(::epoll_wait(p.a, out, 4, 100), -1);
    EXPECT_EQ(errno, EINVAL) << "not an epoll fd";
    errno = 0;
    EXPECT_EQ(::epoll_wait(-1, out, 4, 100), -1);
    EXPECT_EQ(errno, EBADF);
    ::close(ep);
  });
}

// What under_timeout() saw.
struct TimedOut {
  int r = -2, e = 0, retry = -2, retry_errno = 0;
  bool raised = false;
};

// call() twice inside a 100 ms Timeout, then a green call: the results,
// their errnos, and whether the TimeoutError came there.
template <class Call>
TimedOut under_timeout(Call call) {
  TimedOut out;
  try {
    green::Timeout t(100ms);
    out.r = call();
    out.e = errno;
    out.retry = call();
    out.retry_errno = errno;
    green::yield();
  } catch (const green::TimeoutError&) {
    out.raised = true;
  }
  return out;
}

// A Timeout or a kill ends the waits as it ends a hooked read: EINTR, then
// a retry gets ETIMEDOUT or ECANCELED, and the exception comes at the next
// green call.
TEST(MonkeyMultiplex, TimeoutAndKillInterruptTheWaits) {
  green::Runtime rt(workers(2));
  rt.run([&] {
    Pair p;
    fd_set rd = only(p.a);
    pollfd f{p.a, POLLIN, 0};
    for (const auto& got : {under_timeout([&] { return ::select(p.a + 1, &rd, nullptr, nullptr, nullptr); }),
                            under_timeout([&] { return ::ppoll(&f, 1, nullptr, nullptr); })}) {
      EXPECT_EQ(got.r, -1);
      EXPECT_EQ(got.e, EINTR);
      EXPECT_EQ(got.retry, -1);
      EXPECT_EQ(got.retry_errno, ETIMEDOUT);
      EXPECT_TRUE(got.raised);
    }

    int r = -2, e = 0, retry = -2, retry_errno = 0;
    const int ep = epoll_on(p.a);
    bool exit_raised = false;
    auto g = green::spawn(green::SpawnOptions{.name = "epoller"}, [&] {
      epoll_event out[1];
      r = ::epoll_wait(ep, out, 1, -1);
      e = errno;
      retry = ::epoll_wait(ep, out, 1, -1);
      retry_errno = errno;
      green::testing::next_green_call_raises_exit(exit_raised);
    });
    ASSERT_TRUE(wait_parked(rt, "epoller", kParked));
    g.kill();
    EXPECT_TRUE(g.killed());
    EXPECT_EQ(r, -1);
    EXPECT_EQ(e, EINTR);
    EXPECT_EQ(retry, -1);
    EXPECT_EQ(retry_errno, ECANCELED);
    EXPECT_TRUE(exit_raised);
    ::close(ep);
  });
}

// close() of an fd wakes every green thread waiting on it, not only the one
// io's table holds: poll sees POLLNVAL, select EBADF, epoll_wait (its epoll
// fd closed) EBADF, and a second reader of a socket EBADF.
TEST(MonkeyMultiplex, CloseWakesEveryWaiter) {
  green::Runtime rt(workers(2));
  rt.run([&] {
    {
      Pair p;
      pollfd f{p.a, POLLIN, 0};
      int r = -2;
      auto g = green::spawn(green::SpawnOptions{.name = "poller"}, [&] { r = ::poll(&f, 1, 10'000); });
      ASSERT_TRUE(wait_parked(rt, "poller", kParked));
      ASSERT_EQ(::close(p.a), 0);
      p.a = -1;
      ASSERT_TRUE(g.join(5s));
      EXPECT_EQ(r, 1);
      EXPECT_EQ(f.revents, POLLNVAL);
    }
    {
      Pair p;
      fd_set rd = only(p.a);
      const int nfds = p.a + 1;
      int r = -2, e = 0;
      auto g = green::spawn(green::SpawnOptions{.name = "selector"}, [&] {
        timeval tv{10, 0};
        r = ::select(nfds, &rd, nullptr, nullptr, &tv);
        e = errno;
      });
      ASSERT_TRUE(wait_parked(rt, "selector", kParked));
      ASSERT_EQ(::close(p.a), 0);
      p.a = -1;
      ASSERT_TRUE(g.join(5s));
      EXPECT_EQ(r, -1);
      EXPECT_EQ(e, EBADF);
    }
    {
      // Two green threads in epoll_wait on one epoll fd: io's table holds
      // the first, the second waits through a private epoll instance.
      const int ep = ::epoll_create1(EPOLL_CLOEXEC);
      int r[2] = {-2, -2}, e[2] = {0, 0};
      std::vector<green::Greenlet<void>> gs;
      for (int i = 0; i < 2; ++i) {
        gs.push_back(green::spawn([&, i] {
          epoll_event out[1];
          r[i] = ::epoll_wait(ep, out, 1, 10'000);
          e[i] = errno;
        }));
      }
      ASSERT_TRUE(wait_parked(rt, kParked, 2));
      ASSERT_EQ(::close(ep), 0);
      for (int i = 0; i < 2; ++i) {
        ASSERT_TRUE(gs[i].join(5s));
        EXPECT_EQ(r[i], -1);
        EXPECT_EQ(e[i], EBADF);
      }
    }
    {
      Pair p;
      ssize_t r[2] = {-2, -2};
      int e[2] = {0, 0};
      std::vector<green::Greenlet<void>> gs;
      for (int i = 0; i < 2; ++i) {
        gs.push_back(green::spawn([&, i] {
          char c;
          r[i] = ::read(p.a, &c, 1);
          e[i] = errno;
        }));
      }
      ASSERT_TRUE(wait_parked(rt, kParked, 2));
      ASSERT_EQ(::close(p.a), 0);
      p.a = -1;
      for (int i = 0; i < 2; ++i) {
        ASSERT_TRUE(gs[i].join(5s));
        EXPECT_EQ(r[i], -1);
        EXPECT_EQ(e[i], EBADF);
      }
    }
  });
}

// Shutdown with green threads waiting in the hooks: the runtime kills them,
// each call ends with EINTR, and the runtime stops.
TEST(MonkeyMultiplex, ShutdownEndsGreenThreadsWaitingInTheHooks) {
  Pair p;
  const int ep = epoll_on(p.a);
  fd_set rd = only(p.a);
  pollfd f{p.a, POLLIN, 0};
  std::atomic<int> eintr{0}, ended{0};
  auto record = [&](int r) {
    if (r == -1 && errno == EINTR) eintr.fetch_add(1);
    ended.fetch_add(1);
  };
  {
    green::Runtime rt(workers(2));
    rt.spawn([&] { record(::select(p.a + 1, &rd, nullptr, nullptr, nullptr)); });
    rt.spawn([&] { record(::ppoll(&f, 1, nullptr, nullptr)); });
    rt.spawn([&] {
      epoll_event out[1];
      record(::epoll_wait(ep, out, 1, -1));
    });
    ASSERT_TRUE(wait_parked(rt, kParked, 3));
  }
  EXPECT_EQ(ended.load(), 3);
  EXPECT_EQ(eintr.load(), 3);
  ::close(ep);
}

// On a plain thread the calls are libc's: they block that thread.
TEST(MonkeyMultiplex, PlainThreadsGetLibcsCalls) {
  green::Runtime rt(workers(2));  // green is present: the hooks are registered
  Pair p;
  const int ep = epoll_on(p.a);
  std::atomic<pid_t> tid{0};
  int r = -2, sel = -2;
  std::thread waiter([&] {
    tid.store(gettid_now());
    epoll_event out[1];
    r = ::epoll_wait(ep, out, 1, 5000);
    fd_set rd = only(p.a);
    timeval tv{1, 0};
    sel = ::select(p.a + 1, &rd, nullptr, nullptr, &tv);
  });
  ASSERT_TRUE(green::testing::wait_until([&] { return tid.load() != 0 && thread_state(tid.load()) == 'S'; }));
  ASSERT_EQ(::write(p.b, "x", 1), 1);
  waiter.join();
  EXPECT_EQ(r, 1);
  EXPECT_EQ(sel, 1);
  pollfd f{p.b, POLLIN, 0};
  timespec t{0, 50'000'000};
  const auto t0 = Clock::now();
  EXPECT_EQ(::ppoll(&f, 1, &t, nullptr), 0);
  EXPECT_GE(Clock::now() - t0, 45ms);
  ::close(ep);
}

}  // namespace
