// test_exec.cpp — fork and exec with fds the hooks made non-blocking
// underneath: the exec'd program sees them as the user's view says
// (blocking), and the parent's own descriptions stay non-blocking.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <green/green.hpp>

#include <gtest/gtest.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <string>

#include "monkey_util.hpp"

namespace {

using namespace std::chrono_literals;
using namespace green::testing;

// Everything the child writes until EOF, or until `limit` (a Timeout: the
// hooked read ends with EINTR); `eof` says which.
std::string read_all(int fd, std::chrono::steady_clock::duration limit, bool& eof) {
  std::string got;
  eof = false;
  green::Timeout t(limit);
  char buf[256];
  for (;;) {
    const ssize_t r = ::read(fd, buf, sizeof buf);
    if (r <= 0) {
      eof = r == 0;
      return got;
    }
    got.append(buf, static_cast<std::size_t>(r));
  }
}

// The child's exit status; a child still running after a failed read is killed first.
int reap(pid_t pid, bool kill_first) {
  if (kill_first) ::kill(pid, SIGKILL);
  int status = 0;
  return ::waitpid(pid, &status, 0) == pid && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The O_NONBLOCK bit of "flags:\t<octal>" in a /proc/<pid>/fdinfo dump, or -1.
long fdinfo_nonblock(const std::string& text) {
  const auto at = text.find("flags:");
  if (at == std::string::npos) return -1;
  return std::strtol(text.c_str() + at + 6, nullptr, 8) & O_NONBLOCK;
}

// The case: a green thread runs `sh -c 'read x; echo got:$x'` with
// a hooked pipe as its stdin and another as its stdout, writes a line and
// reads the answer. The shell's stdin is blocking (it reports its flags);
// the parent's ends, which the child inherited too, stay non-blocking.
TEST(MonkeyExec, AShellGetsBlockingPipesFromAGreenThread) {
  green::Runtime rt(workers(2));
  rt.run([] {
    int in[2], out[2];
    ASSERT_EQ(::pipe(in), 0);
    ASSERT_EQ(::pipe(out), 0);
    ASSERT_NE(kernel_flags(in[0]) & O_NONBLOCK, 0) << "the hooks made it non-blocking underneath";
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::execl("/bin/sh", "sh", "-c", "read x; echo got:$x; cat /proc/self/fdinfo/0", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ASSERT_GT(pid, 0);
    ::close(in[0]);
    ::close(out[1]);
    ASSERT_EQ(::write(in[1], "hello\n", 6), 6);
    bool eof = false;
    const std::string got = read_all(out[0], 10s, eof);
    EXPECT_EQ(reap(pid, !eof), 0) << got;
    EXPECT_EQ(got.rfind("got:hello\n", 0), 0u) << got;
    EXPECT_EQ(fdinfo_nonblock(got), 0) << "the shell's stdin: " << got;
    EXPECT_NE(kernel_flags(in[1]) & O_NONBLOCK, 0) << "the parent's write end";
    EXPECT_NE(kernel_flags(out[0]) & O_NONBLOCK, 0) << "the parent's read end";
    EXPECT_EQ(::fcntl(in[1], F_GETFL) & O_NONBLOCK, 0) << "the user's view";
    ::close(in[1]);
    ::close(out[0]);
  });
}

// A socket cannot be reopened: its own description is made blocking, as
// the child sees it.
TEST(MonkeyExec, ASocketIsHandedOverBlocking) {
  green::Runtime rt(workers(2));
  rt.run([] {
    Pair p;
    int out[2];
    ASSERT_EQ(::pipe2(out, O_CLOEXEC), 0);
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::dup2(p.b, 0);
      ::dup2(out[1], 1);
      ::execl("/bin/cat", "cat", "/proc/self/fdinfo/0", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ASSERT_GT(pid, 0);
    ::close(out[1]);
    bool eof = false;
    const std::string got = read_all(out[0], 10s, eof);
    EXPECT_EQ(reap(pid, !eof), 0) << got;
    EXPECT_EQ(fdinfo_nonblock(got), 0) << got;
    ::close(out[0]);
  });
}

// An exec that fails leaves the fds as the hooks' records say: non-blocking
// underneath, and a green thread's blocking read on one still parks.
TEST(MonkeyExec, AFailedExecTakesTheFdsBack) {
  green::Runtime rt(workers(2));
  rt.run([] {
    int pp[2];
    ASSERT_EQ(::pipe(pp), 0);
    errno = 0;
    EXPECT_EQ(::execl("/nonexistent/green-monkey", "x", static_cast<char*>(nullptr)), -1);
    EXPECT_EQ(errno, ENOENT);
    EXPECT_NE(kernel_flags(pp[0]) & O_NONBLOCK, 0);
    EXPECT_NE(kernel_flags(pp[1]) & O_NONBLOCK, 0);
    EXPECT_EQ(::fcntl(pp[0], F_GETFL) & O_NONBLOCK, 0);
    char c = 0;
    ssize_t r = -2;
    auto reader = green::spawn([&] { r = ::read(pp[0], &c, 1); });
    ASSERT_EQ(::write(pp[1], "k", 1), 1);
    ASSERT_TRUE(reader.join(5s));
    EXPECT_EQ(r, 1);
    EXPECT_EQ(c, 'k');
    ::close(pp[0]);
    ::close(pp[1]);
  });
}

}  // namespace
