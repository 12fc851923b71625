// test_calls.cpp — recv's and recvmsg's MSG_WAITALL on a blocking view, and the
// positional calls (pread, pwrite, preadv, pwritev), which the hooks leave
// to libc: they work on files and fail with ESPIPE on pipes and sockets,
// even ones non-blocking underneath.
#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <green/green.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "monkey_util.hpp"
#include "parked.hpp"
#include "test_util.hpp"

namespace {

using namespace std::chrono_literals;
using namespace green::testing;

// Bytes waiting in fd's receive queue.
int unread(int fd) {
  int n = -1;
  return ::ioctl(fd, FIONREAD, &n) == 0 ? n : -1;
}

// The reader has taken all that was sent and waits again: its read of the
// part that came is done, not merely pending.
bool took_all_and_waits(const green::Runtime& rt, int fd, const char* name) {
  const std::string needle = std::string("(") + name + "): parked: read (hooked)";
  return wait_until([&] { return unread(fd) == 0 && rt.dump().find(needle) != std::string::npos; });
}

TEST(MonkeyCalls, RecvWaitallWaitsForTheWholeLength) {
  green::Runtime rt(workers(2));
  rt.run([&] {
    Pair p;
    char buf[16] = {};
    ssize_t r = -2;
    auto g = green::spawn(green::SpawnOptions{.name = "reader"}, [&] { r = ::recv(p.a, buf, 10, MSG_WAITALL); });
    ASSERT_TRUE(wait_parked(rt, "reader", "read (hooked)"));
    ASSERT_EQ(::write(p.b, "abc", 3), 3);
    ASSERT_TRUE(took_all_and_waits(rt, p.a, "reader"));
    ASSERT_EQ(::write(p.b, "defghijXYZ", 10), 10);
    ASSERT_TRUE(g.join(5s));
    EXPECT_EQ(r, 10);
    EXPECT_EQ(std::string(buf, 10), "abcdefghij");
    EXPECT_EQ(unread(p.a), 3) << "no byte past the length taken";

    // EOF after a part: the count so far.
    char rest[3];
    ASSERT_EQ(::read(p.a, rest, 3), 3);
    auto h = green::spawn(green::SpawnOptions{.name = "reader2"}, [&] {
      sockaddr_storage from{};
      socklen_t len = sizeof from;
      r = ::recvfrom(p.a, buf, 10, MSG_WAITALL, reinterpret_cast<sockaddr*>(&from), &len);
    });
    ASSERT_TRUE(wait_parked(rt, "reader2", "read (hooked)"));
    ASSERT_EQ(::write(p.b, "1234", 4), 4);
    ASSERT_TRUE(took_all_and_waits(rt, p.a, "reader2"));
    ASSERT_EQ(::shutdown(p.b, SHUT_WR), 0);
    ASSERT_TRUE(h.join(5s));
    EXPECT_EQ(r, 4);
    EXPECT_EQ(std::string(buf, 4), "1234");
  });
}

// recvmsg's MSG_WAITALL fills every iovec, across reads, and keeps the
// control data of the first: an fd passed with the first bytes arrives.
TEST(MonkeyCalls, RecvmsgWaitallFillsEveryIovecAndKeepsTheFirstControlData) {
  green::Runtime rt(workers(2));
  rt.run([&] {
    Pair p;
    char head[4] = {}, tail[6] = {};
    iovec iov[2] = {{head, sizeof head}, {tail, sizeof tail}};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = 2;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    ssize_t r = -2;
    auto g = green::spawn(green::SpawnOptions{.name = "reader"}, [&] { r = ::recvmsg(p.a, &msg, MSG_WAITALL); });
    ASSERT_TRUE(wait_parked(rt, "reader", "read (hooked)"));

    // The first three bytes carry a pipe's read end.
    int pipe_fds[2];
    ASSERT_EQ(::pipe(pipe_fds), 0);
    char first[3] = {'a', 'b', 'c'};
    iovec out{first, sizeof first};
    alignas(cmsghdr) char out_control[CMSG_SPACE(sizeof(int))] = {};
    msghdr sent{};
    sent.msg_iov = &out;
    sent.msg_iovlen = 1;
    sent.msg_control = out_control;
    sent.msg_controllen = sizeof out_control;
    cmsghdr* c = CMSG_FIRSTHDR(&sent);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &pipe_fds[0], sizeof(int));
    ASSERT_EQ(::sendmsg(p.b, &sent, 0), 3);
    ASSERT_TRUE(took_all_and_waits(rt, p.a, "reader"));
    ASSERT_EQ(::write(p.b, "defghijXYZ", 10), 10);
    ASSERT_TRUE(g.join(5s));
    EXPECT_EQ(r, 10);
    EXPECT_EQ(std::string(head, 4), "abcd");
    EXPECT_EQ(std::string(tail, 6), "efghij");
    EXPECT_EQ(unread(p.a), 3) << "no byte past the length taken";
    EXPECT_EQ(msg.msg_flags & MSG_CTRUNC, 0);
    cmsghdr* got = CMSG_FIRSTHDR(&msg);
    ASSERT_NE(got, nullptr);
    ASSERT_EQ(got->cmsg_type, SCM_RIGHTS);
    int passed = -1;
    std::memcpy(&passed, CMSG_DATA(got), sizeof(int));
    ASSERT_GE(passed, 0);
    // The fd that came is the pipe's read end.
    ASSERT_EQ(::write(pipe_fds[1], "!", 1), 1);
    char bang = 0;
    EXPECT_EQ(::read(passed, &bang, 1), 1);
    EXPECT_EQ(bang, '!');
    ::close(passed);
    ::close(pipe_fds[0]);
    ::close(pipe_fds[1]);
  });
}

// A kill after part of the length came: the count so far (POSIX's rule for
// an interrupted MSG_WAITALL), and GreenletExit at the next green call.
TEST(MonkeyCalls, KillDuringRecvWaitallReturnsTheCountSoFar) {
  green::Runtime rt(workers(2));
  rt.run([&] {
    Pair p;
    char buf[10];
    ssize_t r = -2;
    bool exit_raised = false;
    auto g = green::spawn(green::SpawnOptions{.name = "reader"}, [&] {
      r = ::recv(p.a, buf, sizeof buf, MSG_WAITALL);
      green::testing::next_green_call_raises_exit(exit_raised);
    });
    ASSERT_TRUE(wait_parked(rt, "reader", "read (hooked)"));
    ASSERT_EQ(::write(p.b, "abc", 3), 3);
    ASSERT_TRUE(took_all_and_waits(rt, p.a, "reader"));
    g.kill();
    EXPECT_TRUE(g.killed());
    EXPECT_EQ(r, 3);
    EXPECT_TRUE(exit_raised);
  });
}

// A datagram is one message: MSG_WAITALL does not wait for a second.
TEST(MonkeyCalls, RecvWaitallOnADatagramSocketTakesOneMessage) {
  green::Runtime rt(workers(2));
  rt.run([&] {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
    ASSERT_EQ(::send(sv[1], "abc", 3, 0), 3);
    char buf[10];
    EXPECT_EQ(::recv(sv[0], buf, sizeof buf, MSG_WAITALL), 3);
    ::close(sv[0]);
    ::close(sv[1]);
  });
}

TEST(MonkeyCalls, PlainThreadRecvWaitallWaitsForTheWholeLength) {
  green::Runtime rt(workers(2));  // green is present: the hooks are registered
  Pair p;
  ASSERT_NE(kernel_flags(p.a) & O_NONBLOCK, 0);
  std::atomic<pid_t> tid{0};
  char buf[10];
  ssize_t r = -2;
  std::thread reader([&] {
    tid.store(gettid_now());
    r = ::recv(p.a, buf, sizeof buf, MSG_WAITALL);
  });
  auto asleep = [&] { return tid.load() != 0 && thread_state(tid.load()) == 'S'; };
  ASSERT_TRUE(wait_until(asleep));
  ASSERT_EQ(::write(p.b, "abc", 3), 3);
  ASSERT_TRUE(wait_until([&] { return unread(p.a) == 0 && asleep(); }));
  ASSERT_EQ(::write(p.b, "defghij", 7), 7);
  reader.join();
  EXPECT_EQ(r, 10);
  EXPECT_EQ(std::string(buf, 10), "abcdefghij");
}

// pread and friends on a file, then on a pipe and a socket the hooks made
// non-blocking underneath: ESPIPE, as libc gives, never EAGAIN. Both on a
// green thread and on a plain thread.
void positional_calls() {
  char path[] = "/tmp/green_monkey_preadXXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::unlink(path);
  EXPECT_EQ(::pwrite(fd, "hello world", 11, 0), 11);
  char buf[16] = {};
  EXPECT_EQ(::pread(fd, buf, 5, 6), 5);
  EXPECT_EQ(std::string(buf, 5), "world");
  char a[3] = {'A', 'B', 'C'}, b[2] = {'D', 'E'};
  iovec out[2] = {{a, sizeof a}, {b, sizeof b}};
  EXPECT_EQ(::pwritev(fd, out, 2, 20), 5);
  char x[2], y[3];
  iovec in[2] = {{x, sizeof x}, {y, sizeof y}};
  EXPECT_EQ(::preadv(fd, in, 2, 20), 5);
  EXPECT_EQ(std::string(x, 2) + std::string(y, 3), "ABCDE");
  EXPECT_EQ(::lseek(fd, 0, SEEK_CUR), 0) << "the positional calls move no offset";
  ::close(fd);

  int pp[2];
  ASSERT_EQ(::pipe(pp), 0);
  EXPECT_NE(kernel_flags(pp[0]) & O_NONBLOCK, 0);
  errno = 0;
  EXPECT_EQ(::pread(pp[0], buf, 1, 0), -1);
  EXPECT_EQ(errno, ESPIPE);
  errno = 0;
  EXPECT_EQ(::pwrite(pp[1], "x", 1, 0), -1);
  EXPECT_EQ(errno, ESPIPE);
  errno = 0;
  EXPECT_EQ(::preadv(pp[0], in, 2, 0), -1);
  EXPECT_EQ(errno, ESPIPE);
  ::close(pp[0]);
  ::close(pp[1]);

  Pair p;
  errno = 0;
  EXPECT_EQ(::pread(p.a, buf, 1, 0), -1);
  EXPECT_EQ(errno, ESPIPE);
  errno = 0;
  EXPECT_EQ(::pwritev(p.b, out, 2, 0), -1);
  EXPECT_EQ(errno, ESPIPE);
}

TEST(MonkeyCalls, PositionalCallsPassThroughOnFilesAndFailWithEspipeElsewhere) {
  green::Runtime rt(workers(2));
  rt.run([] { positional_calls(); });
  std::thread plain([] { positional_calls(); });
  plain.join();
}

}  // namespace
