// green/detail/server_lifecycle.hpp — the states StreamServer and
// DatagramServer share (gevent's BaseServer): not started, started,
// stopping, stopped. A stopped server cannot be restarted. Not part of the
// user's API (see green/server.hpp).
#pragma once

#include <atomic>
#include <chrono>

#include "green/current.hpp"
#include "green/errors.hpp"
#include "green/event.hpp"

namespace green::detail {

class ServerLifecycle {
 public:
  explicit ServerLifecycle(const char* kind) noexcept : kind_(kind) {}

  // The checks of start(): throws Error when already started, when stopped,
  // or outside a green thread.
  void check_startable() const {
    if (started_) throw Error(std::string("green::") + kind_ + ": already started");
    if (stopping_) throw Error(std::string("green::") + kind_ + ": stopped servers cannot be restarted");
    if (!in_green_thread()) throw Error(std::string("green::") + kind_ + "::start: call it from a green thread");
  }
  void set_started() noexcept { started_ = true; }

  // The start of stop(): true for the one call that does the stopping;
  // false when the server never started, or when another stop() did it
  // (this call has then waited until it finished).
  bool begin_stop() {
    if (!started_) return false;
    if (stopping_.exchange(true)) {
      stopped_.wait();
      return false;
    }
    return true;
  }
  void set_stopped() {
    started_ = false;
    stopped_.set();
  }

  // serve_forever(): start() unless started, then wait for stop().
  template <class Server>
  void serve_forever(Server& server) {
    if (!started_) server.start();
    stopped_.wait();
  }
  // The destructor's stop: no grace, and nothing may escape a destructor.
  template <class Server>
  void stop_at_destruction(Server& server) noexcept {
    if (!started_ || stopping_) return;
    try {
      server.stop(std::chrono::seconds(0));
    } catch (...) {
    }
  }

  bool started() const noexcept { return started_.load(); }
  // Read by acceptors and receivers on every worker.
  bool stopping() const noexcept { return stopping_.load(); }

 private:
  const char* kind_;
  Event stopped_;
  std::atomic<bool> started_{false};
  std::atomic<bool> stopping_{false};
};

}  // namespace green::detail
