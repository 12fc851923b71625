// signal_dump.cpp — see signal_dump.hpp.
#include "signal_dump.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "green/errors.hpp"
#include "runtime_core.hpp"

namespace green::detail {

namespace {

// Leaked on purpose: the reader thread runs until the process ends.
struct SignalDumps {
  std::mutex mu;  // guards all below; held while a dump is printed
  std::vector<std::pair<RuntimeCore*, int>> runtimes;
  std::vector<int> installed;
  int pipe_fds[2] = {-1, -1};
  bool reader_started = false;
};

SignalDumps& dumps() {
  static auto* d = new SignalDumps();
  return *d;
}

std::atomic<int> g_write_fd{-1};

void on_signal(int signo) {
  const int saved = errno;
  const unsigned char byte = static_cast<unsigned char>(signo);
  const int fd = g_write_fd.load(std::memory_order_relaxed);
  if (fd >= 0) (void)!::write(fd, &byte, 1);  // full pipe: a dump is pending anyway
  errno = saved;
}

void read_and_dump() {
  SignalDumps& d = dumps();
  for (;;) {
    unsigned char byte = 0;
    const ssize_t n = ::read(d.pipe_fds[0], &byte, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    std::lock_guard g(d.mu);
    for (auto& [rt, signo] : d.runtimes) {
      if (signo != byte) continue;
      const std::string text = "green: dump on signal " + std::to_string(signo) + "\n" + rt->dump();
      std::fwrite(text.data(), 1, text.size(), stderr);
      std::fflush(stderr);
    }
  }
}

}  // namespace

void dump_on_signal(RuntimeCore* rt, int signo) {
  if (signo <= 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP)
    throw Error("green::Runtime: dump_on_signal " + std::to_string(signo) + " is not a signal that can be caught");
  SignalDumps& d = dumps();
  std::lock_guard g(d.mu);
  if (!d.reader_started) {
    if (::pipe2(d.pipe_fds, O_CLOEXEC) != 0) throw SystemError(errno, "green::Runtime: dump_on_signal pipe");
    // Non-blocking writes: the handler must never block.
    ::fcntl(d.pipe_fds[1], F_SETFL, O_NONBLOCK);
    g_write_fd.store(d.pipe_fds[1], std::memory_order_relaxed);
    std::thread(read_and_dump).detach();
    d.reader_started = true;
  }
  if (std::find(d.installed.begin(), d.installed.end(), signo) == d.installed.end()) {
    struct sigaction sa {};
    sa.sa_handler = &on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (::sigaction(signo, &sa, nullptr) != 0) throw SystemError(errno, "green::Runtime: dump_on_signal sigaction");
    d.installed.push_back(signo);
  }
  d.runtimes.emplace_back(rt, signo);
}

void stop_dump_on_signal(RuntimeCore* rt) noexcept {
  SignalDumps& d = dumps();
  std::lock_guard g(d.mu);
  std::erase_if(d.runtimes, [rt](const auto& r) { return r.first == rt; });
}

}  // namespace green::detail
