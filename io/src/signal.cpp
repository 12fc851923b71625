// signal.cpp — SignalHandler: a self-pipe per handled signal.
#include "green/signal.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <string>

#include "green/current.hpp"
#include "green/errors.hpp"
#include "green/fd.hpp"

namespace green {

namespace {

// The write end of each handled signal's pipe; -1 when not handled. Read by
// the C handler: lock-free atomics are async-signal-safe.
std::atomic<int> pipe_for[NSIG];
struct InitPipes {
  InitPipes() {
    for (auto& p : pipe_for) p.store(-1);
  }
} init_pipes;

extern "C" void on_signal(int signo) {
  const int saved = errno;
  const int fd = pipe_for[signo].load(std::memory_order_relaxed);
  if (fd >= 0) {
    const unsigned char b = static_cast<unsigned char>(signo);
    [[maybe_unused]] const ssize_t n = ::write(fd, &b, 1);  // a full pipe already has a pending wake
  }
  errno = saved;
}

}  // namespace

SignalHandler::SignalHandler(int signo, std::function<void()> fn) : signo_(signo) {
  if (signo <= 0 || signo >= NSIG || signo == SIGKILL || signo == SIGSTOP || signo == SIGSEGV ||
      signo == SIGBUS || signo == SIGFPE || signo == SIGILL)
    throw Error("green::SignalHandler: signal " + std::to_string(signo) + " cannot be handled");
  if (!fn) throw Error("green::SignalHandler: empty function");
  if (!in_green_thread()) throw Error("green::SignalHandler: create it from a green thread");
  if (::pipe2(pipe_, O_NONBLOCK | O_CLOEXEC) < 0) throw SystemError(errno, "pipe2");
  int expected = -1;
  if (!pipe_for[signo].compare_exchange_strong(expected, pipe_[1])) {
    ::close(pipe_[0]);
    ::close(pipe_[1]);
    throw Error("green::SignalHandler: signal " + std::to_string(signo) + " already has a handler");
  }
  struct sigaction sa {};
  sa.sa_handler = &on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  if (sigaction(signo, &sa, &previous_) < 0) {
    const int err = errno;
    pipe_for[signo].store(-1);
    ::close(pipe_[0]);
    ::close(pipe_[1]);
    throw SystemError(err, "sigaction");
  }
  const int read_end = pipe_[0];
  // Urgent, and so is each call of fn: a signal (SIGTERM, typically) must be
  // acted on within milliseconds even when every worker has a long queue.
  reader_ = spawn({.name = "signal " + std::to_string(signo), .urgent = true}, [read_end, fn = std::move(fn)] {
    unsigned char buf[64];
    for (;;) {
      wait_readable(read_end);
      bool got = false;
      while (::read(read_end, buf, sizeof buf) > 0) got = true;
      if (got) spawn({.name = "signal handler", .urgent = true}, fn);
    }
  });
}

SignalHandler::~SignalHandler() {
  sigaction(signo_, &previous_, nullptr);
  pipe_for[signo_].store(-1);
  // Closing the read end wakes the reader with EBADF; kill ends it quietly.
  reader_.kill(false);
  close_fd(pipe_[0]);
  reader_.join();
  ::close(pipe_[1]);
}

}  // namespace green
