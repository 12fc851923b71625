// LoopExit and fds: a green thread waiting on an fd is never reported as
// deadlocked, since the kernel may end its wait at any time (monitor.hpp,
// rule 2). The helper that makes the fd readable acts only once the monitor
// has looked at the runtime with the green thread parked on it.
#include <green/green.hpp>
#include <green/io.hpp>
#include <green/wait.hpp>
#include <poll.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include "monitor_probe.hpp"
#include "parked.hpp"

#include <chrono>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

// A green thread parked on readability of an fd (by `wait_on_fd`, without
// a timeout) is never reported, whatever else the park watches: green::wait()
// and green::poll() park once on several objects, and a park that watches
// an fd is the kernel's to end. `fd_in_dump`: the dump also names the fd
// and says that the kernel, not a green thread, ends the wait.
template <class WaitOnFd>
void expect_fd_wait_never_reported(WaitOnFd wait_on_fd, bool fd_in_dump = false) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  green::Runtime rt({.workers = 2});
  green::Event never;  // a green object nobody sets, watched beside the fd
  auto reader = rt.spawn(green::SpawnOptions{.name = "reader"}, [&] {
    wait_on_fd(sv[0], never);
    char c = 0;
    return ::read(sv[0], &c, 1) == 1 ? c : '?';
  });
  ASSERT_TRUE(green::testing::wait_parked(rt, "reader", ""));
  if (fd_in_dump) {
    const std::string d = rt.dump();
    EXPECT_NE(d.find("waits on fd " + std::to_string(sv[0]) + "; woken from outside the runtime"), std::string::npos)
        << d;
  }
  // The check that the join below triggers then looks at the reader parked
  // and every worker asleep: were the wait not known as the kernel's, that
  // look would report a deadlock before the writer acts.
  ASSERT_TRUE(green::testing::wait_workers_asleep(rt));
  const auto before = green::testing::deadlock_checks(rt);
  std::thread writer([&] {
    EXPECT_TRUE(green::testing::wait_checked(rt, before));
    EXPECT_EQ(::write(sv[1], "x", 1), 1);
  });
  char got = '?';
  try {
    got = reader.get();  // a watched join: no LoopExit
  } catch (const std::exception& e) {
    ADD_FAILURE() << e.what();
  }
  writer.join();
  EXPECT_EQ(got, 'x');
  EXPECT_EQ(green::testing::deadlock_checks_held_off(rt), 0u);
  green::close_fd(sv[0]);
  ::close(sv[1]);
}

TEST(LoopExitIo, AGreenThreadWaitingOnAnFdIsNeverReported) {
  expect_fd_wait_never_reported([](int fd, green::Event&) { green::wait_readable(fd); }, /*fd_in_dump=*/true);
}

TEST(LoopExitIo, GreenWaitOnAnFdAndAnEventIsNeverReported) {
  expect_fd_wait_never_reported([](int fd, green::Event& never) {
    green::FdWatch watch{fd, green::FdWatch::read};
    // count 1: back as soon as either is ready (without it, wait() waits
    // for both, as gevent.wait does, and the Event alone is a deadlock).
    const auto ready = green::wait({watch, never}, std::nullopt, 1);
    EXPECT_EQ(ready, std::vector<std::size_t>{0});
  });
}

TEST(LoopExitIo, GreenPollIsNeverReported) {
  expect_fd_wait_never_reported([](int fd, green::Event&) {
    pollfd p{fd, POLLIN, 0};
    EXPECT_EQ(green::poll(std::span<pollfd>(&p, 1)), 1);
  });
}

}  // namespace
