// hub.hpp — a worker's hub: its epoll instance and its wake-up eventfd.
//
// An idle worker parks here, in epoll_wait, until an fd it watches is ready,
// its next timer is due, or another thread wakes it. wake() is de-duplicated:
// only the first wake after the worker last drained the eventfd writes to it,
// so a burst of wakes costs one system call.
//
// The hub knows nothing of sockets. io/ registers an fd together with a
// HubWatcher; readiness is dispatched to the watcher's on_ready() on whichever
// worker polls this hub (its owner, or an idle worker polling it without
// blocking so a busy owner does not delay readiness).
#pragma once

#include <atomic>
#include <cstdint>

namespace green::detail {

class HubWatcher {
 public:
  virtual void on_ready(std::uint32_t epoll_events) noexcept = 0;

 protected:
  ~HubWatcher() = default;
};

class Hub {
 public:
  Hub();  // throws SystemError
  ~Hub();
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  // Wakes the owner if it is (or is about to be) parked in poll().
  void wake() noexcept;

  // Waits up to timeout_ms (-1: no limit, 0: just look) and dispatches what is
  // ready. Returns the number of watcher events dispatched (wakes excluded).
  int poll(int timeout_ms) noexcept;

  // Registers fd edge-triggered for `events`. Throws SystemError.
  void add(int fd, std::uint32_t events, HubWatcher* watcher);
  void remove(int fd) noexcept;

  int epoll_fd() const noexcept { return epfd_; }
  bool has_watchers() const noexcept { return watched_.load(std::memory_order_relaxed) > 0; }

 private:
  int epfd_ = -1;
  int eventfd_ = -1;
  std::atomic<bool> wake_pending_{false};
  std::atomic<int> watched_{0};
};

}  // namespace green::detail
