// monkey_util.hpp — what the monkey tests share: a runtime of n workers, a
// hooked socketpair, the kernel's view of an fd's flags, a thread's state.
#pragma once

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <green/current.hpp>
#include <green/errors.hpp>
#include <green/runtime.hpp>

#include <fstream>
#include <stdexcept>
#include <string>

namespace green::testing {

inline green::RuntimeOptions workers(unsigned n) {
  green::RuntimeOptions o;
  o.workers = n;
  return o;
}

// The flags the kernel holds, past the fcntl hook.
inline int kernel_flags(int fd) { return static_cast<int>(::syscall(SYS_fcntl, fd, F_GETFL)); }

// A connected AF_UNIX stream pair made through the hooks (blocking view,
// non-blocking underneath); closes what is still open (>= 0) at the end.
struct Pair {
  int a = -1, b = -1;
  Pair() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) throw std::runtime_error("socketpair");
    a = sv[0];
    b = sv[1];
  }
  ~Pair() {
    if (a >= 0) ::close(a);
    if (b >= 0) ::close(b);
  }
  Pair(const Pair&) = delete;
  Pair& operator=(const Pair&) = delete;
};

// The thread's scheduling state from /proc: 'S' while it sleeps in a call.
inline char thread_state(pid_t tid) {
  std::ifstream f("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string s;
  std::getline(f, s);
  const auto close = s.rfind(')');
  return close == std::string::npos || close + 2 >= s.size() ? '?' : s[close + 2];
}

inline pid_t gettid_now() { return static_cast<pid_t>(::syscall(SYS_gettid)); }

// In a green thread a kill interrupted inside a hook: its next green call
// raises the pending GreenletExit, which goes on (the green thread ends
// killed); `raised` records that it came there.
inline void next_green_call_raises_exit(bool& raised) {
  try {
    green::yield();
  } catch (const green::GreenletExit&) {
    raised = true;
    throw;
  }
}

}  // namespace green::testing
