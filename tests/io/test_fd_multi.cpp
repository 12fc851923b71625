// green::poll(), green::select(), wait_readwrite() and green::wait() on
// FdWatches: several fds in one wait (issue 13; gevent.select's poll and
// select, gevent.socket's wait_readwrite, gevent.wait over fds).
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <green/fd.hpp>
#include <green/green.hpp>
#include <green/sync.hpp>
#include <green/wait.hpp>
#include <gtest/gtest.h>

#include "io_test_util.hpp"
#include "parked.hpp"

#include <array>
#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

using green::io_testing::Pipe;

TEST(GreenPoll, ReturnsTheReadySetOfOneWait) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    Pipe a, b, c;
    a.put("x");
    c.put("y");
    std::array<pollfd, 3> fds{{{a.r, POLLIN, 0}, {b.r, POLLIN, 0}, {c.r, POLLIN, 0}}};
    EXPECT_EQ(green::poll(fds, 5s), 2);
    EXPECT_TRUE(fds[0].revents & POLLIN);
    EXPECT_EQ(fds[1].revents, 0);
    EXPECT_TRUE(fds[2].revents & POLLIN);
  });
}

TEST(GreenPoll, WaitsUntilOneIsReadyWrittenFromAnotherWorker) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    Pipe a, b;
    std::array<pollfd, 2> fds{{{a.r, POLLIN, 0}, {b.r, POLLIN, 0}}};
    auto poller = green::spawn({.name = "poller", .worker = 0, .pinned = true}, [&fds] { return green::poll(fds, 5s); });
    ASSERT_TRUE(green::testing::wait_parked(rt, "poller", "wait"));
    auto writer = green::spawn({.worker = 1, .pinned = true}, [&b] { b.put("z"); });
    EXPECT_EQ(poller.get(5s), 1);
    EXPECT_EQ(fds[0].revents, 0);
    EXPECT_TRUE(fds[1].revents & POLLIN);
    EXPECT_TRUE(writer.join(5s));
  });
}

TEST(GreenPoll, TimeoutReturnsZero) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    Pipe a;
    std::array<pollfd, 1> fds{{{a.r, POLLIN, 0}}};
    const auto t0 = Clock::now();
    EXPECT_EQ(green::poll(fds, 30ms), 0);
    EXPECT_GE(Clock::now() - t0, 30ms);
    EXPECT_EQ(fds[0].revents, 0);
  });
}

TEST(GreenPoll, WritableAndReadableOnOneEntry) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    Pipe a;
    std::array<pollfd, 2> fds{{{a.w, POLLOUT, 0}, {a.r, POLLIN | POLLOUT, 0}}};
    EXPECT_EQ(green::poll(fds, 5s), 1) << "an empty pipe: its write end only";
    EXPECT_TRUE(fds[0].revents & POLLOUT);
  });
}

TEST(GreenPoll, BadFdIsPollnvalAndNegativeFdIsIgnored) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    int closed;
    {
      Pipe gone;
      closed = gone.r;
    }
    std::array<pollfd, 2> fds{{{-1, POLLIN, 0}, {closed, POLLIN, 0}}};
    const int n = green::poll(fds, 5s);
    // The number may have been reused meanwhile by another test's fd; it is
    // unused here (single-threaded test), so poll(2) says POLLNVAL.
    EXPECT_EQ(n, 1);
    EXPECT_EQ(fds[0].revents, 0);
    EXPECT_TRUE(fds[1].revents & POLLNVAL);
  });
}

TEST(GreenPoll, NoEntriesSleepsForTheTimeout) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    std::array<pollfd, 1> fds{{{-1, POLLIN, 0}}};
    const auto t0 = Clock::now();
    EXPECT_EQ(green::poll(fds, 20ms), 0);
    EXPECT_GE(Clock::now() - t0, 20ms);
  });
}

TEST(GreenPoll, KillWhileWaitingFreesTheFdsSlots) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    Pipe a;
    std::array<pollfd, 1> fds{{{a.r, POLLIN, 0}}};
    auto poller = green::spawn({.name = "poller"}, [&fds] { (void)green::poll(fds); });
    ASSERT_TRUE(green::testing::wait_parked(rt, "poller", "wait"));
    EXPECT_TRUE(poller.kill(green::GreenletExit(), 5s));
    a.put("q");
    EXPECT_TRUE(green::wait_readable(a.r, 5s)) << "no stale waiter keeps the read slot";
  });
}

TEST(GreenPoll, AnFdAnotherGreenThreadReadsIsAnError) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    Pipe a;
    auto reader = green::spawn({.name = "reader"}, [&a] { green::wait_readable(a.r); });
    ASSERT_TRUE(green::testing::wait_parked(rt, "reader", "wait_readable"));
    std::array<pollfd, 1> fds{{{a.r, POLLIN, 0}}};
    EXPECT_THROW(green::poll(fds, 1s), green::Error);
    a.put("r");
    EXPECT_TRUE(reader.join(5s));
  });
}

TEST(GreenPoll, CloseFdWhilePolledReportsPollnval) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    int fds_raw[2];
    ASSERT_EQ(::pipe2(fds_raw, O_NONBLOCK | O_CLOEXEC), 0);
    std::array<pollfd, 1> fds{{{fds_raw[0], POLLIN, 0}}};
    auto poller = green::spawn({.name = "poller"}, [&fds] { return green::poll(fds, 5s); });
    ASSERT_TRUE(green::testing::wait_parked(rt, "poller", "wait"));
    green::close_fd(fds_raw[0]);
    EXPECT_EQ(poller.get(5s), 1);
    EXPECT_TRUE(fds[0].revents & POLLNVAL);
    green::close_fd(fds_raw[1]);
  });
}

TEST(GreenPoll, FromAPlainThread) {
  green::Runtime rt({.workers = 1});
  Pipe a;
  auto writer = rt.spawn([&a] { a.put("p"); });
  std::array<pollfd, 1> fds{{{a.r, POLLIN, 0}}};
  EXPECT_EQ(green::poll(fds, 5s), 1);
  EXPECT_TRUE(writer.join(5s));
}

TEST(GreenSelect, ReadableAndWritableLists) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    Pipe a, b;
    b.put("s");
    const std::vector<int> readers{a.r, b.r};
    const std::vector<int> writers{a.w};
    const green::SelectResult got = green::select(readers, writers, 5s);
    EXPECT_EQ(got.readable, (std::vector<int>{b.r}));
    EXPECT_EQ(got.writable, (std::vector<int>{a.w}));
  });
}

TEST(GreenSelect, TimeoutGivesEmptyListsAndABadFdThrowsEbadf) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    Pipe a;
    const std::vector<int> readers{a.r};
    const green::SelectResult none = green::select(readers, {}, 20ms);
    EXPECT_TRUE(none.readable.empty());
    EXPECT_TRUE(none.writable.empty());
    const std::vector<int> bad{-1};
    try {
      (void)green::select(bad, {}, 1s);
      ADD_FAILURE() << "select on a bad fd must fail";
    } catch (const green::SystemError& e) {
      EXPECT_EQ(e.code(), EBADF);
    }
  });
}

TEST(WaitReadwrite, ReturnsOnWhicheverComesFirst) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    Pipe a;
    EXPECT_TRUE(green::wait_readwrite(a.w, 5s)) << "writable at once";
    // A socket-like pair where neither direction is ready: the read end of
    // an empty pipe and... the write end of a full one, in one fd: use a
    // socketpair filled up.
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    const std::string chunk(65536, 'x');
    while (::write(sv[0], chunk.data(), chunk.size()) > 0) {
    }
    EXPECT_FALSE(green::wait_readwrite(sv[0], 20ms)) << "full and nothing to read";
    auto waiter = green::spawn({.name = "rw"}, [fd = sv[0]] { return green::wait_readwrite(fd, 5s); });
    ASSERT_TRUE(green::testing::wait_parked(rt, "rw", "wait"));
    ASSERT_EQ(::write(sv[1], "!", 1), 1);  // readable now
    EXPECT_TRUE(waiter.get(5s));
    green::close_fd(sv[0]);
    green::close_fd(sv[1]);
  });
}

TEST(WaitOnFds, FdWatchMixedWithAnEvent) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    Pipe a;
    green::Event never;
    green::FdWatch readable{a.r, green::FdWatch::read};
    auto waiter = green::spawn({.name = "mixed"}, [&] { return green::wait({never, readable}, 5s, 1); });
    ASSERT_TRUE(green::testing::wait_parked(rt, "mixed", "wait"));
    auto writer = green::spawn({.worker = 1, .pinned = true}, [&a] { a.put("m"); });
    EXPECT_EQ(waiter.get(5s), (std::vector<std::size_t>{1}));
    EXPECT_TRUE(writer.join(5s));
  });
}

}  // namespace
