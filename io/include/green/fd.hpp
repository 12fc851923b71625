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
// Blocking: the waits suspend only the calling green thread; on a plain
// thread they block in poll(2). They honour green::Timeout scopes and kill.
#pragma once

#include <chrono>

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

// Wakes every green thread waiting on fd (they throw SystemError(EBADF)),
// forgets its registration and close(2)s it. Never throws; fd < 0 is
// ignored.
void close_fd(int fd) noexcept;

}  // namespace green
