// bridge.cpp — green's side of the hooks: the table of ops.hpp, registered
// with the hook library at start-up, and green::monkey::active().
//
// This file is compiled into the program (the static green_monkey_bridge,
// linked whole-archive through green::monkey), beside the one copy of
// green's runtime, which it calls. Every function here is noexcept and
// catches what green may throw: it is called from the hooks, under C frames.
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <unistd.h>

#include "green/current.hpp"
#include "green/detail/fd_wait.hpp"
#include "green/detail/hub.hpp"
#include "green/detail/park.hpp"
#include "green/local.hpp"
#include "green/monkey.hpp"
#include "green/offload.hpp"
#include "ops.hpp"

namespace green::monkey_detail {

namespace {

detail::Deadline deadline_of(std::int64_t ns) noexcept {
  if (ns == kNoDeadline) return detail::kNoDeadline;
  return detail::Deadline(std::chrono::duration_cast<detail::Clock::duration>(std::chrono::nanoseconds(ns)));
}

int caller() noexcept {
  if (!detail::current_hub()) return kPlainThread;  // the hub is the worker's
  return green::in_green_thread() ? kGreenThread : kScheduler;
}

// Every wait goes through park.hpp's run_wait_under_c_frames: it ends on
// the worker it began on (the C code above may hold &errno), and under TSan
// outside the blocking interceptor's state.
template <class F>
void under_c_frames(F& f) noexcept {
  detail::run_wait_under_c_frames([](void* p) { (*static_cast<F*>(p))(); }, &f);
}

int wait_fd(int fd, bool reading, std::int64_t deadline_ns, int* error) noexcept {
  io_detail::FdWaitResult r{};
  auto wait = [&] {
    r = io_detail::wait_fd_status(fd, reading, deadline_of(deadline_ns),
                                  reading ? "read (hooked)" : "write (hooked)", *error);
  };
  under_c_frames(wait);
  return static_cast<int>(r);
}

// The last interrupt reported as EINTR on this green thread: a second
// report of the same one is a library retrying after EINTR.
green::local<std::uint64_t> reported;

int interrupt_errno() noexcept {
  const detail::PendingInterrupt p = detail::pending_interrupt();
  if (p.kind == detail::PendingInterrupt::none) return 0;
  const std::uint64_t token = (p.token << 2) | p.kind;
  try {
    std::uint64_t& last = *reported;
    if (last != token) {
      last = token;
      return EINTR;
    }
  } catch (...) {
    return EINTR;  // no memory for the local: report as a first time
  }
  return p.kind == detail::PendingInterrupt::timeout ? ETIMEDOUT : ECANCELED;
}

int sleep_until(std::int64_t deadline_ns) noexcept {
  // An interrupt already reported: the sleep ends at once (see green_sleep).
  if (const int e = interrupt_errno()) return e;
  detail::WakeReason r{};
  auto sleep = [&] {
    try {
      r = detail::sleep_until_nothrow(deadline_of(deadline_ns), "sleep (hooked)");
    } catch (...) {
      r = detail::WakeReason::timed_out;  // no memory for the timer: the sleep ends
    }
  };
  under_c_frames(sleep);
  return r == detail::WakeReason::interrupted ? interrupt_errno() : 0;
}

// A job on the blocking pool and the green thread waiting for it, shared:
// the waiter may leave (interrupted) while the job runs on.
struct PoolCall {
  detail::SpinLock lock;
  bool done = false;                 // under lock
  detail::Waiter* waiter = nullptr;  // under lock
  // Set by the first of "the waiter left" and "the job is over"; the
  // second to come owns ctx from then on.
  std::atomic<bool> one_gone{false};
};

int run_blocking(void (*job)(void*), void (*abandon)(void*), void* ctx, const char* what) noexcept {
  std::shared_ptr<PoolCall> call;
  try {
    call = std::make_shared<PoolCall>();
  } catch (...) {
    abandon(ctx);
    return ENOMEM;
  }
  try {
    detail::run_on_blocking_pool([call, job, abandon, ctx] {
      job(ctx);
      {
        std::lock_guard g(call->lock);
        call->done = true;
        if (detail::Waiter* w = call->waiter) {
          call->waiter = nullptr;
          detail::wake(*w);
        }
      }
      if (call->one_gone.exchange(true)) abandon(ctx);  // its caller has gone
    });
  } catch (...) {
    // No thread for it (the job may still be queued): as an interrupt.
    if (call->one_gone.exchange(true)) abandon(ctx);
    return ENOMEM;
  }
  detail::WakeReason r{};
  auto wait = [&] {
    detail::Waiter w;
    w.external = true;  // a pool thread ends this wait (monitor.hpp)
    r = detail::park_unlocked_status(
        call->lock, w, detail::kNoDeadline, what,
        [&](detail::Waiter& me) {
          if (call->done) return false;
          call->waiter = &me;
          return true;
        },
        [&](detail::Waiter& me) {
          if (call->waiter == &me) call->waiter = nullptr;
        });
  };
  under_c_frames(wait);
  if (r != detail::WakeReason::interrupted) return 0;  // only the job wakes it: done
  // The job may have ended meanwhile: then its results are the caller's.
  if (call->one_gone.exchange(true)) return 0;
  const int e = interrupt_errno();
  return e != 0 ? e : EINTR;  // never 0 here: ctx is the job's now
}

// Closing takes the fd's lock in io's table, and a hook may close from
// inside TSan's blocking interceptor too (poll's private epoll instance,
// closed once the wait is over): there TSan ignores atomics, so it would not
// see the lock's release, and the next green thread to use that fd number
// (libcurl's 20 transfers reuse them at once) was reported as racing with
// the close. So the close runs under the same wrapper as the waits.
//
// An fd green never registered needs none of that, and takes none of it: the
// sanitizers' own runtimes close files through this hook too (TSan's
// symbolizer, while it writes a report and holds its thread registry, which
// making a TSan fiber here would take again: a deadlock).
int close_fd_with(int fd, int (*op)(int, void*), void* ctx) noexcept {
  if (!io_detail::fd_ever_registered(fd)) return op(fd, ctx);
  int r = 0;
  int error = 0;
  auto close = [&] {
    r = io_detail::close_fd_with(fd, op, ctx);
    error = errno;
  };
  under_c_frames(close);
  errno = error;
  return r;
}

const Ops ops_table{
    &caller,          &wait_fd, &sleep_until, &interrupt_errno, &close_fd_with, &io_detail::notify_readable,
    &run_blocking,
};

// Registers the table before main() runs. The hook library is a
// dependency of the program, so its own initialisation came first.
[[maybe_unused]] const bool registered = [] {
  io_detail::set_raw_close(green_monkey_register_v2(&ops_table));
  return true;
}();

}  // namespace

}  // namespace green::monkey_detail

namespace green::monkey {

bool active() noexcept {
  static const bool live = [] {
    // One harmless call through the process's own read symbol: it reaches
    // the hook only if the dynamic linker bound read to it (directly, or
    // through a sanitizer's interceptor), and the hook notes the probe.
    [[maybe_unused]] const ssize_t r = ::read(-1, reinterpret_cast<void*>(0x6772'6565'6e00), 0);
    return green_monkey_probe_seen();
  }();
  return live;
}

}  // namespace green::monkey
