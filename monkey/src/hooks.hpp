// hooks.hpp — what the files of the hook library (libgreen_monkey.so)
// share. hooks.cpp keeps the user's view of each fd, the blocking emulation
// and the sleeps; multiplex.cpp the waits on several fds (poll, select,
// epoll_wait); resolve.cpp the name lookups; exec.cpp the hand-over of fds
// to an exec'd program. The library is built with hidden visibility: none
// of these names leaves it. The rules of hooks.cpp's header comment hold in
// every file: nothing throws, the fast path takes no lock.
#pragma once

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <dlfcn.h>
#include <poll.h>
#include <time.h>

#include <atomic>
#include <cstdint>

#include "ops.hpp"

#define GREEN_HOOK extern "C" __attribute__((visibility("default")))

namespace green::monkey_hooks {

using monkey_detail::kNoDeadline;
using monkey_detail::Ops;

// libc's definition of `name` (the next one after this library's).
template <class F>
void resolve(F*& slot, const char* name) {
  slot = reinterpret_cast<F*>(dlsym(RTLD_NEXT, name));
}

// green's table, once the bridge registered it (null before, and in a
// program without green).
extern std::atomic<const Ops*> g_ops;
inline const Ops* ops() noexcept { return g_ops.load(std::memory_order_acquire); }

// Set on a thread once green said it is a plain thread (ops.hpp's
// CallerKind): from then on its hooked calls are libc's at the cost of this
// one load. Initial-exec: a fixed offset from the thread pointer (the
// library is loaded with the program, never by dlopen alone).
extern thread_local bool t_plain_thread [[gnu::tls_model("initial-exec")]];

// Asks green where the caller runs, and remembers a plain thread.
bool ask_caller_is_green(const Ops* o) noexcept;

// Whether the caller is a green thread (`o`: a registered table).
[[gnu::always_inline]] inline bool caller_is_green(const Ops* o) noexcept {
  return !t_plain_thread && ask_caller_is_green(o);
}

// Whether the caller is a green thread of a registered green; `o` gets the table.
[[gnu::always_inline]] inline bool green_here(const Ops*& o) noexcept {
  o = ops();
  return o && caller_is_green(o);
}

// ---- time: steady-clock nanoseconds, as ops.hpp's deadlines -------------------
std::int64_t now_ns() noexcept;
std::int64_t after_ns(std::int64_t from, std::int64_t ns) noexcept;
// A poll(2)-style timeout in milliseconds (negative: none) as a deadline.
std::int64_t ms_deadline(int timeout_ms) noexcept;
bool valid(const timespec* ts) noexcept;
std::int64_t to_ns(const timespec& ts) noexcept;
timespec from_ns(std::int64_t ns) noexcept;

// A green thread sleeps until `deadline`: 0, or EINTR with *left_ns set.
int green_sleep(const Ops* o, std::int64_t deadline, std::int64_t* left_ns) noexcept;

// ---- waiting --------------------------------------------------------------------
// A wait_fd result (ops.hpp's WaitResult) as the errno a hooked call fails
// with: 0 for ready, EAGAIN for the deadline (as POSIX reports SO_RCVTIMEO),
// the interrupt's errno, EBADF for a closed fd, `error` for a failure.
// kBusy is the caller's to handle before.
int wait_errno(const Ops* o, int result, int error) noexcept;

// Waits until fd may be ready for `reading` or the deadline passes: 0 to
// retry the call, else the errno to fail with. A plain thread (`green`
// false) blocks in poll(2).
int wait_ready(const Ops* o, bool green, int fd, bool reading, std::int64_t deadline) noexcept;

// multiplex.cpp: waits on a green thread until any of the fds is ready as
// poll(2) would report it, the deadline passes or an interrupt comes; 0 when
// something may be ready (the caller polls again), else the errno (EAGAIN:
// the deadline). close() of any of the fds ends the wait (wake_watchers).
int wait_any(const Ops* o, const pollfd* fds, nfds_t n, std::int64_t deadline) noexcept;

// ---- the fd records (hooks.cpp) --------------------------------------------------
// close(2) through libc, forgetting fd's record (a close_fd_with op).
int close_forget(int fd, void*);

// How many wait_any() calls watch fd now: close() wakes them when not 0.
void watch(int fd, int delta) noexcept;
bool watched(int fd) noexcept;
// multiplex.cpp: wakes every wait_any() watching fd (it was just closed).
void wake_watchers(const Ops* o, int fd) noexcept;

// Calls fn(fd) for each fd that the hooks made non-blocking underneath and
// whose user view is blocking, and that is still the file recorded (its
// inode). Reads the records only (no allocation, no lock, no write): safe
// in a child of fork() or vfork() before it execs.
void for_each_blocking_view(void (*fn)(int fd)) noexcept;

}  // namespace green::monkey_hooks
