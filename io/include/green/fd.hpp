// green/fd.hpp — waiting for readiness of any file descriptor (gevent's
// wait_read / wait_write), and closing one that others may be waiting on.
//
//   int fd = open_some_device(O_NONBLOCK);
//   green::wait_readable(fd);          // suspends only this green thread
//   read(fd, buf, n);
//
// The fd must be in non-blocking mode. It is registered, the first time
// somebody waits on it, with the epoll hub of the worker the waiter runs on
// (edge-triggered, for reading and writing at once) and stays registered
// until it is closed. Readiness wakes the waiter wherever it runs. A
// readiness edge that arrives while nobody waits is remembered, so "try the
// call, wait on EAGAIN, try again" never misses one.
//
// Rules:
//   * One waiter per direction: a second green thread waiting for the same
//     fd and direction at the same time gets green::Error (two readers of
//     one socket would steal each other's data).
//   * Close an fd that green may be watching with green::close_fd() (Socket
//     does): it wakes its waiters, which throw SystemError(EBADF), and makes
//     sure a stale readiness event of the old fd never reaches a new fd that
//     reuses the number.
//
// Several fds at once: green::poll() and green::select() (gevent.select's
// poll and select, green-native: these are not the C library's poll(2) and
// select(2), which green::monkey hooks) give the ready set of one wait, and
// green::wait()/iwait() (green/wait.hpp) take an FdWatch beside Events,
// Queues and Greenlets. They watch each fd through the same per-direction
// slot as wait_readable()/wait_writable(), so the rule above holds for them
// too: an fd and direction another green thread waits on is an Error.
//
// Blocking: the waits suspend only the calling green thread; on a plain
// thread they block in poll(2) (green::wait() on an FdWatch needs a green
// thread, or an fd some green thread registered already). They honour
// green::Timeout scopes and kill.
#pragma once

#include <poll.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "green/detail/wait_source.hpp"

namespace green {

// Waits until fd is readable (or at EOF / in error). With a timeout:
// returns false if it passed first. Throws SystemError(EBADF) if the fd is
// closed with close_fd() meanwhile, Error if another green thread already
// waits to read it.
void wait_readable(int fd);
bool wait_readable(int fd, std::chrono::steady_clock::duration timeout);
// The same for writability.
void wait_writable(int fd);
bool wait_writable(int fd, std::chrono::steady_clock::duration timeout);

// Waits until fd is readable or writable, whichever comes first (gevent's
// wait_readwrite). With a timeout: returns false if it passed first.
// Errors as wait_readable().
void wait_readwrite(int fd);
bool wait_readwrite(int fd, std::chrono::steady_clock::duration timeout);

// poll(2) for green threads: waits until at least one entry of `fds` is
// ready for its `events` (POLLIN, POLLOUT; errors and hang-ups are always
// reported), or `timeout` passes, then fills every entry's `revents` as
// poll(2) does, in one look: the ready set of one wait. Returns how many
// entries have revents set (0: the timeout passed). An entry with fd < 0 is
// ignored, and one that asks for neither POLLIN nor POLLOUT is reported by
// each look but does not end the wait; a bad fd is reported as POLLNVAL, not thrown. No entry: sleeps
// for the timeout. Throws Error when another green thread waits on one of
// the fds in the same direction, SystemError when poll(2) fails.
int poll(std::span<pollfd> fds, std::optional<std::chrono::steady_clock::duration> timeout = std::nullopt);

// select(2) for green threads, on lists: waits until some fd of `readable`
// is readable or some fd of `writable` writable, or `timeout` passes, and
// returns the fds ready in each direction (both empty at the timeout; fds
// in the order given). Throws SystemError(EBADF) for a closed fd (as
// select(2) fails), and as poll() otherwise.
struct SelectResult {
  std::vector<int> readable;
  std::vector<int> writable;
};
SelectResult select(std::span<const int> readable, std::span<const int> writable,
                    std::optional<std::chrono::steady_clock::duration> timeout = std::nullopt);

// One fd and one direction, for green::wait() and iwait(): ready when the
// fd is readable (or at EOF / in error) or writable, as poll(2) would say.
// The Waitable refers to this object, which must outlive the wait.
struct FdWatch {
  enum Direction : std::uint8_t { read, write };
  int fd = -1;
  Direction direction = read;
};

// Wakes every green thread waiting on fd (they throw SystemError(EBADF)),
// forgets its registration and close(2)s it. Never throws; fd < 0 is
// ignored.
void close_fd(int fd) noexcept;

}  // namespace green

namespace green::io_detail {
// fd_table.cpp: the ops below, on the fd's slot for the direction.
bool watch_ready(const void* watch);
void watch_prepare(void* watch);
bool watch_enlist(void* watch, detail::Waiter& w);
void watch_unlist(void* watch, detail::Waiter& w) noexcept;
}  // namespace green::io_detail

namespace green::detail {
template <>
struct WaitSourceFor<FdWatch> {
  static void* address(FdWatch& w) noexcept { return &w; }
  static constexpr WaitSourceOps ops{&io_detail::watch_ready, &io_detail::watch_prepare, &io_detail::watch_enlist,
                                     &io_detail::watch_unlist, /*external=*/true};
};
}  // namespace green::detail

