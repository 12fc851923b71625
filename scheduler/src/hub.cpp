// hub.cpp — epoll + eventfd (see hub.hpp).
#include "hub.hpp"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "green/errors.hpp"

namespace green::detail {

namespace {
// Set once by io/ before it registers its first fd; read on every poll.
std::atomic<ReadyFn> ready_handler{nullptr};
}  // namespace

void set_ready_handler(ReadyFn fn) noexcept { ready_handler.store(fn, std::memory_order_release); }

void hub_add(Hub* hub, int fd, std::uint32_t epoll_events, std::uint64_t token) {
  hub->add(fd, epoll_events, token);
}

void hub_remove(Hub* hub, int fd) noexcept { hub->remove(fd); }

Hub::Hub() {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) throw SystemError(errno, "epoll_create1");
  eventfd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (eventfd_ < 0) {
    const int err = errno;
    close(epfd_);
    throw SystemError(err, "eventfd");
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = 0;  // token 0 marks the wake-up eventfd
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, eventfd_, &ev) < 0) {
    const int err = errno;
    close(eventfd_);
    close(epfd_);
    throw SystemError(err, "epoll_ctl(eventfd)");
  }
}

Hub::~Hub() {
  close(eventfd_);
  close(epfd_);
}

void Hub::wake() noexcept {
  // Only the first wake since the last drain writes; the rest are free.
  if (wake_pending_.exchange(true, std::memory_order_acq_rel)) return;
  const std::uint64_t one = 1;
  ssize_t n;
  do {
    n = write(eventfd_, &one, sizeof one);
  } while (n < 0 && errno == EINTR);
}

int Hub::poll(int timeout_ms, bool owner) noexcept {
  constexpr int kBatch = 128;
  epoll_event events[kBatch];
  int n;
  do {
    n = epoll_wait(epfd_, events, kBatch, timeout_ms);
  } while (n < 0 && errno == EINTR);
  const ReadyFn ready = ready_handler.load(std::memory_order_acquire);
  int dispatched = 0;
  for (int i = 0; i < n; ++i) {
    const std::uint64_t token = events[i].data.u64;
    if (token == 0) {
      if (!owner) continue;  // the owner's wake-up: left for it (level-triggered)
      std::uint64_t count;
      while (read(eventfd_, &count, sizeof count) > 0) {
      }
      // After draining: a wake from now on writes again. Whoever woke us
      // published its work first, and the worker re-checks its queues next.
      wake_pending_.store(false, std::memory_order_release);
      continue;
    }
    if (ready) ready(token, events[i].events);
    ++dispatched;
  }
  return dispatched;
}

void Hub::add(int fd, std::uint32_t events, std::uint64_t token) {
  epoll_event ev{};
  ev.events = events | EPOLLET;
  ev.data.u64 = token;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) < 0) throw SystemError(errno, "epoll_ctl(ADD)");
  watched_.fetch_add(1, std::memory_order_relaxed);
}

void Hub::remove(int fd) noexcept {
  if (epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr) == 0)
    watched_.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace green::detail
