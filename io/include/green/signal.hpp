// green/signal.hpp — running a function in a green thread when a signal
// arrives (gevent.signal_handler).
//
//   green::SignalHandler on_int(SIGINT, [&] { server.stop(); });
//
// While the SignalHandler object lives, each delivery of the signal spawns
// fn in a new green thread on the runtime that created the handler, where
// it may block, take locks and stop servers like any green code. Deliveries
// that arrive faster than they are handled may be merged into one call.
// Destroying the object restores the signal's previous disposition.
//
// Promptness. The green thread waiting on the signal and each green thread
// running fn are urgent (SpawnOptions::urgent): they run ahead of whatever
// is queued on their worker, so a SIGTERM is acted on within milliseconds
// however much work is runnable; and the green threads that fn kills (a
// server's acceptors and handlers, in stop()) are woken the same way.
//
// How: the process-wide C handler only writes the signal number to a pipe
// (the one async-signal-safe step); a green thread waits on the pipe and
// spawns fn. (A signalfd would need the signal blocked in every thread of
// the process, which a library cannot arrange for threads it does not own.)
//
// One SignalHandler per signal at a time: a second one for the same signal
// throws green::Error, as do SIGKILL, SIGSTOP, SIGSEGV, SIGBUS, SIGFPE and
// SIGILL. Create it from a green thread.
#pragma once

#include <signal.h>

#include <functional>

#include "green/greenlet.hpp"

namespace green {

class SignalHandler {
 public:
  SignalHandler(int signo, std::function<void()> fn);
  SignalHandler(const SignalHandler&) = delete;
  SignalHandler& operator=(const SignalHandler&) = delete;
  ~SignalHandler();

  int signal() const noexcept { return signo_; }

 private:
  int signo_;
  int pipe_[2] = {-1, -1};
  struct sigaction previous_ {};
  Greenlet<void> reader_;
};

// gevent's spelling: green::signal_handler(SIGINT, fn) returns the handler.
inline SignalHandler signal_handler(int signo, std::function<void()> fn) {
  return SignalHandler(signo, std::move(fn));
}

}  // namespace green
