// ops.hpp — what the hook library (hooks.cpp, libgreen_monkey.so) asks of
// green, as a table of plain functions that the bridge (bridge.cpp, linked
// into the program beside green's libraries) registers at start-up.
//
// Why a table and not calls: green's libraries are static by default, so
// the program holds the one copy of the runtime (its workers, fd table,
// thread_locals). Were the shared hook library to link them too, it would
// hold a second copy that no green thread ever runs on. So the hook library
// links nothing of green; the bridge, compiled into the program with
// green's libraries, hands it this table. Until the table is registered
// (static initialisation, or a program without green) every hook is the
// libc call.
#pragma once

#include <cstdint>

namespace green::monkey_detail {

// Where a hooked call runs (Ops::caller).
enum CallerKind : int { kPlainThread, kScheduler, kGreenThread };

// Results of wait_fd (io_detail::FdWaitResult's values).
enum WaitResult : int { kReady, kTimedOut, kInterrupted, kClosed, kBusy, kFailed };

// Deadlines are steady_clock (CLOCK_MONOTONIC) nanoseconds; kNoDeadline waits forever.
inline constexpr std::int64_t kNoDeadline = INT64_MAX;

struct Ops {
  // Where the caller runs: a CallerKind. A thread that is not a worker
  // when it asks never becomes one (a worker is a thread green starts, and
  // it is one from its first instruction to its last hooked call), so the
  // hook library remembers kPlainThread per thread and asks no more.
  int (*caller)() noexcept;
  // Waits for fd's readiness on a green thread; a WaitResult. `error` gets
  // errno for kFailed. Leaves an interrupt pending.
  int (*wait_fd)(int fd, bool reading, std::int64_t deadline_ns, int* error) noexcept;
  // Sleeps the green thread until the deadline: 0 when it got there, or
  // the errno the sleep call reports (interrupt_errno()).
  int (*sleep_until)(std::int64_t deadline_ns) noexcept;
  // The errno a hooked call reports for the green thread's pending
  // interrupt: 0 if none; EINTR the first time this interrupt is reported;
  // ETIMEDOUT (Timeout) or ECANCELED (kill) when a library calls again
  // after that EINTR, so a library that retries on EINTR cannot spin.
  int (*interrupt_errno)() noexcept;
  // io_detail::close_fd_with: waiters on fd are woken with EBADF and the
  // generation moves on, then op(fd, ctx) closes (or dup2s over) it.
  int (*close_fd_with)(int fd, int (*op)(int, void*), void* ctx) noexcept;
  // io_detail::notify_readable: fd's reader is woken as by readiness (or
  // the edge is kept for its next wait). close() wakes a green thread
  // waiting on a private epoll instance that watched the closed fd.
  void (*notify_readable)(int fd) noexcept;
  // Runs job(ctx) on green's blocking pool and parks the green thread
  // until it has run: 0, and ctx is the caller's again. Or the errno of an
  // interrupt (interrupt_errno()) that came first, or ENOMEM: the caller
  // must not touch ctx any more; abandon(ctx) runs once the job is over
  // (the job itself still runs to its end). `what` names the wait in
  // Runtime::dump().
  int (*run_blocking)(void (*job)(void*), void (*abandon)(void*), void* ctx, const char* what) noexcept;
};

}  // namespace green::monkey_detail

// Defined by the hook library: the bridge hands over its table and gets
// libc's close(2), for green's own close_fd (io_detail::set_raw_close).
// The name carries the table's layout (2: Ops::caller): a program whose
// bridge was built against another layout fails to load, rather than have
// the hook library misread the table.
extern "C" int (*green_monkey_register_v2(const green::monkey_detail::Ops* ops))(int);
// Defined by the hook library: how many hooked calls reached it with the
// probe arguments (see green::monkey::active()).
extern "C" bool green_monkey_probe_seen() noexcept;
