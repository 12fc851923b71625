// multiplex.cpp — waiting on several fds at once: poll, ppoll, select,
// pselect, epoll_wait, epoll_pwait, epoll_pwait2 (green/monkey.hpp says what
// each does), and wait_any(), the wait behind poll and select and behind a
// second green thread waiting on one fd.
//
// ONE WAIT. poll and ppoll are one poll_green(); select and pselect turn
// their fd_sets into a pollfd array and back around it. poll_green tries
// poll(2) with a zero timeout and, with nothing ready, waits in wait_any: a
// private epoll instance watching the fds level-triggered, which is itself
// readable once any of them is, and on which the green thread waits with
// green's fd wait (the hub). epoll_wait waits on the user's epoll fd itself
// the same way (hooks.cpp's wait_ready), then calls epoll_wait with a zero
// timeout.
//
// CLOSE. close(2) does not wake a poll(2) waiter, and an fd closed while in
// an epoll set silently leaves it: a green thread in wait_any would sleep on.
// So each wait_any enlists in a registry (below) and counts itself in the
// watched fds' records (hooks.cpp's watch()); close() of a watched fd wakes
// every wait_any watching it, which returns "maybe ready": poll then finds
// the fd closed (POLLNVAL), select fails with EBADF, a read with EBADF.
#include "hooks.hpp"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>

#include <cerrno>
#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#endif

namespace green::monkey_hooks {

namespace {

struct MuxReal {
  int (*poll)(pollfd*, nfds_t, int);
  int (*ppoll)(pollfd*, nfds_t, const timespec*, const sigset_t*);
  int (*select)(int, fd_set*, fd_set*, fd_set*, timeval*);
  int (*pselect)(int, fd_set*, fd_set*, fd_set*, const timespec*, const sigset_t*);
  int (*epoll_wait)(int, epoll_event*, int, int);
  int (*epoll_pwait)(int, epoll_event*, int, int, const sigset_t*);
  int (*epoll_pwait2)(int, epoll_event*, int, const timespec*, const sigset_t*);
};

const MuxReal& mreal() {
  static const MuxReal r = [] {
    MuxReal m{};
    resolve(m.poll, "poll");
    resolve(m.ppoll, "ppoll");
    resolve(m.select, "select");
    resolve(m.pselect, "pselect");
    resolve(m.epoll_wait, "epoll_wait");
    resolve(m.epoll_pwait, "epoll_pwait");
    resolve(m.epoll_pwait2, "epoll_pwait2");
    return m;
  }();
  return r;
}

// Resolved when the library loads, while the process has one thread. The
// first call otherwise comes from a worker's own epoll_wait inside TSan's
// blocking interceptor, which hides the static's guard from TSan: every
// other worker's read would be a reported race.
[[maybe_unused]] const MuxReal& g_mux_resolved_at_load = mreal();

// ---- who watches what, for close() ---------------------------------------------

// One wait_any in progress, on its caller's stack. Its links are guarded
// by the registry's lock; the rest is fixed before it is enlisted.
struct Watch {
  const pollfd* fds;
  nfds_t n;
  int ep;  // the private epoll instance the green thread waits on
  Watch* prev = nullptr;
  Watch* next = nullptr;
};

// The registry's lock is held for a list splice, or by close() of a watched
// fd for one walk; never across a wait. A spin lock: the hook library holds
// nothing of green and must not throw (std::mutex may).
//
// Under ThreadSanitizer the lock also says what it orders, explicitly:
// poll and ppoll reach wait_any inside TSan's blocking interceptors, where
// TSan ignores atomic operations, so it saw neither the test_and_set nor
// the clear and reported the list and the watchers' pollfd arrays as
// racing with another thread's enlist or close(). Its acquire and release
// annotations are honoured there.
std::atomic_flag g_watch_lock = ATOMIC_FLAG_INIT;
Watch* g_watches = nullptr;

struct WatchLock {
  WatchLock() noexcept {
    while (g_watch_lock.test_and_set(std::memory_order_acquire)) sched_yield();
#if defined(__SANITIZE_THREAD__)
    __tsan_acquire(&g_watch_lock);
#endif
  }
  ~WatchLock() {
#if defined(__SANITIZE_THREAD__)
    __tsan_release(&g_watch_lock);
#endif
    g_watch_lock.clear(std::memory_order_release);
  }
  WatchLock(const WatchLock&) = delete;
  WatchLock& operator=(const WatchLock&) = delete;
};

void enlist(Watch& w) noexcept {
  WatchLock g;
  for (nfds_t i = 0; i < w.n; ++i)
    if (w.fds[i].fd >= 0) watch(w.fds[i].fd, 1);
  w.prev = nullptr;
  w.next = g_watches;
  if (g_watches) g_watches->prev = &w;
  g_watches = &w;
}

void delist(Watch& w) noexcept {
  WatchLock g;
  for (nfds_t i = 0; i < w.n; ++i)
    if (w.fds[i].fd >= 0) watch(w.fds[i].fd, -1);
  (w.prev ? w.prev->next : g_watches) = w.next;
  if (w.next) w.next->prev = w.prev;
}

short poll_to_epoll(short events) noexcept {
  short e = 0;
  if (events & (POLLIN | POLLRDNORM | POLLRDBAND)) e |= EPOLLIN;
  if (events & POLLPRI) e |= EPOLLPRI;
  if (events & (POLLOUT | POLLWRNORM | POLLWRBAND)) e |= EPOLLOUT;
  if (events & POLLRDHUP) e |= EPOLLRDHUP;
  return e;
}

}  // namespace

void wake_watchers(const Ops* o, int fd) noexcept {
  const int saved = errno;
  {
    // Under the lock: a Watch and its epoll fd live until delist(), which
    // takes it, so the fd notified is the watcher's.
    WatchLock g;
    for (Watch* w = g_watches; w; w = w->next) {
      for (nfds_t i = 0; i < w->n; ++i) {
        if (w->fds[i].fd == fd) {
          o->notify_readable(w->ep);
          break;
        }
      }
    }
  }
  errno = saved;
}

int wait_any(const Ops* o, const pollfd* fds, nfds_t n, std::int64_t deadline) noexcept {
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return errno;
  Watch w{fds, n, ep};
  enlist(w);
  // Enlisted before epoll_ctl: a close() from now on either finds this
  // watch, or came first and epoll_ctl fails with EBADF.
  bool closed = false;
  for (nfds_t i = 0; i < n; ++i) {
    if (fds[i].fd < 0) continue;
    epoll_event ev{};
    // Errors and hang-ups are reported whatever was asked, as poll does.
    ev.events = static_cast<std::uint32_t>(poll_to_epoll(fds[i].events));
    ev.data.u64 = i;
    // EEXIST (the same fd twice) keeps the first entry's interest; EPERM (a
    // regular file) cannot happen for poll: poll(0) found such fds ready.
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i].fd, &ev) != 0 && errno == EBADF) closed = true;
  }
  int e = 0;
  if (!closed) {
    int error = 0;
    e = wait_errno(o, o->wait_fd(ep, true, deadline, &error), error);
  }
  delist(w);
  o->close_fd_with(ep, &close_forget, nullptr);
  return e;
}

namespace {

// ---- poll, ppoll -------------------------------------------------------------------

// poll(2) on a green thread until `deadline`: the count of ready fds, 0 at
// the deadline, -1 with errno.
int poll_green(const Ops* o, pollfd* fds, nfds_t n, std::int64_t deadline) noexcept {
  if (n == 0) {  // poll as a sleep
    std::int64_t left;
    if (green_sleep(o, deadline, &left) != 0) {
      errno = EINTR;
      return -1;
    }
    return 0;
  }
  for (;;) {
    const int r = mreal().poll(fds, n, 0);
    if (r != 0) return r;
    const int e = wait_any(o, fds, n, deadline);
    if (e == EAGAIN) return 0;  // the deadline: nothing ready
    if (e != 0) {
      errno = e;
      return -1;
    }
  }
}

// A signal mask for ppoll, pselect, epoll_pwait: the kernel swaps it in for
// the wait atomically, which a green thread's park cannot do (the mask is
// the worker's, shared with every green thread it runs). A mask equal to
// the thread's own changes nothing, so the green thread may park; any
// other is left to libc's call.
bool mask_changes_nothing(const sigset_t* mask) noexcept {
  if (!mask) return true;
  sigset_t now;
  if (pthread_sigmask(SIG_SETMASK, nullptr, &now) != 0) return false;
  for (int s = 1; s < NSIG; ++s)
    if (sigismember(&now, s) != sigismember(mask, s)) return false;
  return true;
}

bool zero(const timespec* ts) noexcept { return ts && ts->tv_sec == 0 && ts->tv_nsec == 0; }

// The deadline of a valid timespec timeout (null: none).
std::int64_t ts_deadline(const timespec* ts) noexcept {
  return ts ? after_ns(now_ns(), to_ns(*ts)) : kNoDeadline;
}

// select's timeout (null: none; not negative) as a deadline. tv_usec past
// a second is carried, as Linux does.
std::int64_t tv_deadline(const timeval* tv) noexcept {
  if (!tv) return kNoDeadline;
  if (tv->tv_sec > INT32_MAX) return kNoDeadline;  // decades: as good as none
  const timespec ts{tv->tv_sec + tv->tv_usec / 1'000'000, (tv->tv_usec % 1'000'000) * 1000};
  return after_ns(now_ns(), to_ns(ts));
}

// ---- select, pselect ---------------------------------------------------------------

// The fds of select's sets as pollfds, one entry per fd.
nfds_t sets_to_pollfds(int nfds, const fd_set* rd, const fd_set* wr, const fd_set* ex, pollfd* out) noexcept {
  nfds_t n = 0;
  for (int fd = 0; fd < nfds; ++fd) {
    short events = 0;
    if (rd && FD_ISSET(fd, rd)) events |= POLLIN;
    if (wr && FD_ISSET(fd, wr)) events |= POLLOUT;
    if (ex && FD_ISSET(fd, ex)) events |= POLLPRI;
    if (events) out[n++] = pollfd{fd, events, 0};
  }
  return n;
}

// poll's answer as select reports it (Linux's POLLIN_SET, POLLOUT_SET,
// POLLEX_SET): the sets rewritten, the count of bits set; -1/EBADF, sets
// untouched, if an fd is not open.
int pollfds_to_sets(const pollfd* p, nfds_t n, fd_set* rd, fd_set* wr, fd_set* ex) noexcept {
  for (nfds_t i = 0; i < n; ++i) {
    if (p[i].revents & POLLNVAL) {
      errno = EBADF;
      return -1;
    }
  }
  if (rd) FD_ZERO(rd);
  if (wr) FD_ZERO(wr);
  if (ex) FD_ZERO(ex);
  int count = 0;
  for (nfds_t i = 0; i < n; ++i) {
    const short asked = p[i].events;
    const short got = p[i].revents;
    if ((asked & POLLIN) && (got & (POLLIN | POLLRDNORM | POLLRDBAND | POLLHUP | POLLERR))) {
      FD_SET(p[i].fd, rd);
      ++count;
    }
    if ((asked & POLLOUT) && (got & (POLLOUT | POLLWRNORM | POLLWRBAND | POLLERR))) {
      FD_SET(p[i].fd, wr);
      ++count;
    }
    if ((asked & POLLPRI) && (got & POLLPRI)) {
      FD_SET(p[i].fd, ex);
      ++count;
    }
  }
  return count;
}

// select on a green thread until `deadline` (nfds already checked).
int select_green(const Ops* o, int nfds, fd_set* rd, fd_set* wr, fd_set* ex, std::int64_t deadline) noexcept {
  pollfd fds[FD_SETSIZE];  // 8 KiB of the green thread's stack
  const nfds_t n = sets_to_pollfds(nfds, rd, wr, ex, fds);
  if (poll_green(o, fds, n, deadline) < 0) return -1;
  return pollfds_to_sets(fds, n, rd, wr, ex);
}

bool bad_nfds(int nfds) noexcept { return nfds < 0 || nfds > FD_SETSIZE; }

// ---- epoll_wait ---------------------------------------------------------------------

// epoll_wait on the user's epoll fd from a green thread: the fd itself is
// readable while events are pending, so the green thread waits on it (a
// second waiter, through wait_any) and then takes them with a zero timeout.
int epoll_green(const Ops* o, int ep, epoll_event* events, int max, std::int64_t deadline) noexcept {
  for (;;) {
    // Also the argument checks: EBADF, EINVAL (maxevents <= 0, not epoll).
    const int r = mreal().epoll_wait(ep, events, max, 0);
    if (r != 0) return r;
    if (const int e = wait_ready(o, true, ep, true, deadline)) {
      if (e == EAGAIN) return 0;
      errno = e;
      return -1;
    }
  }
}

}  // namespace

}  // namespace green::monkey_hooks

using namespace green::monkey_hooks;

GREEN_HOOK int poll(pollfd* fds, nfds_t n, int timeout) {
  const Ops* o = nullptr;
  if (timeout == 0 || !green_here(o)) return mreal().poll(fds, n, timeout);
  return poll_green(o, fds, n, ms_deadline(timeout));
}

GREEN_HOOK int ppoll(pollfd* fds, nfds_t n, const timespec* timeout, const sigset_t* mask) {
  const Ops* o = nullptr;
  if ((timeout && (zero(timeout) || !valid(timeout))) || !green_here(o) || !mask_changes_nothing(mask))
    return mreal().ppoll(fds, n, timeout, mask);
  return poll_green(o, fds, n, ts_deadline(timeout));
}

GREEN_HOOK int select(int nfds, fd_set* rd, fd_set* wr, fd_set* ex, timeval* timeout) {
  const Ops* o = nullptr;
  if ((timeout && timeout->tv_sec == 0 && timeout->tv_usec == 0) || !green_here(o))
    return mreal().select(nfds, rd, wr, ex, timeout);
  if (bad_nfds(nfds) || (timeout && (timeout->tv_sec < 0 || timeout->tv_usec < 0))) {
    errno = EINVAL;
    return -1;
  }
  const std::int64_t deadline = tv_deadline(timeout);
  const int r = select_green(o, nfds, rd, wr, ex, deadline);
  if (timeout) {
    // Linux's select leaves the time not slept in *timeout.
    const int saved = errno;
    const std::int64_t left = deadline == kNoDeadline ? 0 : deadline - now_ns();
    const timespec t = from_ns(left > 0 ? left : 0);
    timeout->tv_sec = t.tv_sec;
    timeout->tv_usec = t.tv_nsec / 1000;
    errno = saved;
  }
  return r;
}

GREEN_HOOK int pselect(int nfds, fd_set* rd, fd_set* wr, fd_set* ex, const timespec* timeout,
                       const sigset_t* mask) {
  const Ops* o = nullptr;
  if (zero(timeout) || !green_here(o) || !mask_changes_nothing(mask))
    return mreal().pselect(nfds, rd, wr, ex, timeout, mask);
  if (bad_nfds(nfds) || (timeout && !valid(timeout))) {
    errno = EINVAL;
    return -1;
  }
  return select_green(o, nfds, rd, wr, ex, ts_deadline(timeout));  // glibc leaves *timeout as it was
}

GREEN_HOOK int epoll_wait(int ep, epoll_event* events, int max, int timeout) {
  const Ops* o = nullptr;
  if (timeout == 0 || !green_here(o)) return mreal().epoll_wait(ep, events, max, timeout);
  return epoll_green(o, ep, events, max, ms_deadline(timeout));
}

GREEN_HOOK int epoll_pwait(int ep, epoll_event* events, int max, int timeout, const sigset_t* mask) {
  const Ops* o = nullptr;
  if (timeout == 0 || !green_here(o) || !mask_changes_nothing(mask))
    return mreal().epoll_pwait(ep, events, max, timeout, mask);
  return epoll_green(o, ep, events, max, ms_deadline(timeout));
}

GREEN_HOOK int epoll_pwait2(int ep, epoll_event* events, int max, const timespec* timeout, const sigset_t* mask) {
  const Ops* o = nullptr;
  if (!mreal().epoll_pwait2) {  // an older libc: the kernel's answer
    errno = ENOSYS;
    return -1;
  }
  if ((timeout && (zero(timeout) || !valid(timeout))) || !green_here(o) || !mask_changes_nothing(mask))
    return mreal().epoll_pwait2(ep, events, max, timeout, mask);
  return epoll_green(o, ep, events, max, ts_deadline(timeout));
}
