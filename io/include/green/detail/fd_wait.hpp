// green/detail/fd_wait.hpp — io's fd waits for the layer above that must not
// throw: green::monkey's hooks, which run under a C library's frames. Not
// part of the user's API. The waits are io's own (fd_table.cpp: the per-fd
// state, its generation, the hub's edge-triggered registration); only the
// way they end differs: a status instead of an exception, and an interrupt
// (kill, Timeout) left pending for the green thread's next throwing call.
#pragma once

#include "green/detail/fiber.hpp"

namespace green::io_detail {

enum class FdWaitResult {
  ready,        // readiness came (or was remembered): retry the call
  timed_out,    // the deadline passed
  interrupted,  // a kill or an expired Timeout scope; still pending
  closed,       // the fd was closed (close_fd) while waiting: EBADF
  busy,         // another green thread waits on this fd in this direction
  failed,       // registering the fd failed; `error` says why
};

// Waits, on a green thread, until fd is ready for reading (`reading`) or
// writing, the deadline passes or the green thread is interrupted. On a
// plain thread it polls. `error` receives errno for `failed`.
FdWaitResult wait_fd_status(int fd, bool reading, detail::Deadline deadline, const char* op,
                            int& error) noexcept;

// close_fd() with the closing call supplied: `op(fd, ctx)` runs where
// close(2) would (under the fd's lock, after the generation moved on and the
// waiters were woken with EBADF), and its result is returned, errno as `op`
// left it. monkey's close() and dup2() use it with libc's own calls.
int close_fd_with(int fd, int (*op)(int fd, void* ctx), void* ctx) noexcept;

// Whether fd's number was ever registered with a hub. Until it was,
// close_fd_with() only calls `op`: no lock, no waiter, nothing of green's.
// Lock-free (an atomic load), allocates nothing.
bool fd_ever_registered(int fd) noexcept;

// Wakes fd's reader as readiness would, or keeps the edge for its next wait
// if none waits. monkey's close() uses it to end the wait of a green thread
// on a private epoll instance that watched the fd just closed.
void notify_readable(int fd) noexcept;

// The close(2) green's own close_fd() calls: ::close unless set. With
// green::monkey linked, ::close is the hook, which itself goes through
// close_fd_with() and so would take the fd's lock a second time; the hook
// library points this at libc's close instead.
void set_raw_close(int (*close_call)(int)) noexcept;

}  // namespace green::io_detail
