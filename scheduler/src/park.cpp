// park.cpp — the wait protocol of green/detail/park.hpp, which is its
// contract: the park word, publishing, the kill/timer/wake race. This is the
// only file that writes a park word or touches a ThreadParker.
#include <csignal>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include "fiber_internal.hpp"
#include "monitor.hpp"
#include "green/detail/park.hpp"
#include "green/timeout.hpp"
#include "runtime_core.hpp"
#include "switch.hpp"
#include "worker.hpp"

namespace green::detail {

namespace {

thread_local ThreadParker tls_parker;

// Whether this plain thread counts as a possible waker for the deadlock
// check (LoopExit, monitor.hpp): from its first park in a green wait until
// it exits, parks in a watched join (it is then the one waiting, not a
// waker), or a pool thread finishes its job.
struct PlainThreadPresence {
  bool attached = false;
  bool in_watched_join = false;
  void attach() noexcept {
    if (attached || in_watched_join) return;
    attached = true;
    plain_thread_attached();
  }
  void detach() noexcept {
    if (!attached) return;
    attached = false;
    plain_thread_detached();
  }
  ~PlainThreadPresence() { detach(); }
};
thread_local PlainThreadPresence tls_presence;

long futex(std::atomic<std::uint32_t>* addr, int op, std::uint32_t val, const timespec* ts) {
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(addr), op, val, ts, nullptr, 0);
}

// ---------------------------------------------------------------------------
// Timeout scopes: a park's timer covers the earliest unfired one.

// Earliest deadline among the scopes that have not fired.
Deadline earliest_scope(const Fiber* f, TimeoutScope** which) {
  Deadline best = kNoDeadline;
  for (TimeoutScope* s = f->scopes; s; s = s->outer) {
    if (!s->fired && s->deadline <= best) {  // <=: the outermost wins a tie
      best = s->deadline;
      if (which) *which = s;
    }
  }
  return best;
}

// Fires the earliest expired scope, if any: it will be thrown.
bool expire_scope(Fiber* f, Deadline now) {
  TimeoutScope* s = nullptr;
  if (earliest_scope(f, &s) > now || !s) return false;
  s->fired = true;
  f->expired_scope = s->id;
  return true;
}

// ---------------------------------------------------------------------------
// A green thread's park: steps 2 and 3 of PUBLISHING in park.hpp.

// Step 2, on the worker past the switch (or, for spawn_later, before the
// first run): the timer first, so that it holds its reference before the
// park word makes `f` wakeable by other threads. Inlined into its two
// callers: after_park runs on every park.
[[gnu::always_inline]] inline void enter_park(Fiber* f, Worker* w, std::uint64_t seq,
                                              Deadline timer, Waiter* waiter, PublishFn* publish) {
  f->publishing.store(true, std::memory_order_relaxed);
  if (timer != kNoDeadline) w->arm_timer(timer, f, seq);
  f->park_word.store((seq << 1) | 1, std::memory_order_seq_cst);
  if (publish) (*publish)(*waiter);
  if (f->interrupt_pending.load(std::memory_order_seq_cst)) try_wake_fiber(f, seq, WakeReason::interrupted);
  // release: the fiber, once resumed, may reuse its Waiter.
  f->publishing.store(false, std::memory_order_release);
}

struct ParkStep {
  Waiter* waiter;
  PublishFn* publish;
  Deadline timer;
};

void after_park(void* arg, Fiber* from, Worker* w) {
  auto* step = static_cast<ParkStep*>(arg);
  enter_park(from, w, step->waiter->seq, step->timer, step->waiter, step->publish);
}

// ---------------------------------------------------------------------------
// A plain thread's park: the same steps inline, then the futex.

#if GREEN_TSAN
// Under ThreadSanitizer a signal's handler runs at once only in a thread
// blocked in a call TSan intercepts; otherwise it waits for that thread's
// next intercepted call. A plain thread parked here sits in a raw futex and
// makes none, so a process-directed SIGTERM the kernel gave it (it prefers
// the main thread, typically the one in Runtime::run) would never be
// handled. While parked, such a thread blocks asynchronous signals, so the
// kernel hands them to a worker instead, which waits in epoll_wait (an
// intercepted call) when idle. Only under TSan: elsewhere a handler runs
// whatever the thread is doing, and signals sent to this very thread keep
// arriving while it waits.
class AsyncSignalsBlocked {
 public:
  AsyncSignalsBlocked() {
    sigset_t async;
    sigfillset(&async);
    for (int sync : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGABRT, SIGSYS})
      sigdelset(&async, sync);
    pthread_sigmask(SIG_BLOCK, &async, &saved_);
  }
  ~AsyncSignalsBlocked() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  AsyncSignalsBlocked(const AsyncSignalsBlocked&) = delete;
  AsyncSignalsBlocked& operator=(const AsyncSignalsBlocked&) = delete;

 private:
  sigset_t saved_;
};
#endif

WakeReason park_thread(Waiter& w, Deadline deadline, PublishFn* publish) {
#if GREEN_TSAN
  const AsyncSignalsBlocked blocked;
#endif
  tls_presence.attach();
  ThreadParker& p = tls_parker;
  const std::uint64_t seq = ++p.park_seq;
  w.thread = &p;
  w.fiber = nullptr;
  w.seq = seq;
  p.futex.store(0, std::memory_order_relaxed);
  p.park_word.store((seq << 1) | 1, std::memory_order_seq_cst);
  if (publish) (*publish)(w);
  for (;;) {
    if (p.futex.load(std::memory_order_acquire) == 1) return p.wake_reason;
    if (deadline == kNoDeadline) {
      futex(&p.futex, FUTEX_WAIT_PRIVATE, 0, nullptr);
      continue;
    }
    const auto left = deadline - Clock::now();
    if (left <= Clock::duration::zero()) {
      std::uint64_t expected = (seq << 1) | 1;
      if (p.park_word.compare_exchange_strong(expected, seq << 1, std::memory_order_acq_rel))
        return WakeReason::timed_out;
      // A waker won the race; it is about to set the futex word.
      futex(&p.futex, FUTEX_WAIT_PRIVATE, 0, nullptr);
      continue;
    }
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    futex(&p.futex, FUTEX_WAIT_PRIVATE, 0, &ts);
  }
}

}  // namespace

namespace {

// park() and park_nothrow(): `throwing` decides what an interrupt pending
// before the park does (throw it, or report `interrupted` without parking).
// A template, inlined into each: as one function taking a flag, called
// through a wrapper, it made every park about 15% slower (hand-off on one
// worker, measured side by side).
template <bool throwing>
[[gnu::always_inline]] inline WakeReason park_impl(Waiter& w, Deadline deadline, PublishFn& publish,
                                                   const char* what) {
  Worker* worker = current_worker();
  Fiber* self = worker ? worker->current() : nullptr;
  if (!self) return park_thread(w, deadline, &publish);

  // Step 1.
  if (has_interrupt(self)) {
    if constexpr (throwing) throw_if_interrupted();
    return WakeReason::interrupted;
  }
  Deadline timer = deadline;
  if (self->scopes) {
    const Deadline now = Clock::now();
    if (expire_scope(self, now)) {
      if constexpr (throwing) throw_if_interrupted();
      return WakeReason::interrupted;
    }
    timer = std::min(timer, earliest_scope(self, nullptr));
  }
  w.fiber = self;
  w.thread = nullptr;
  w.seq = ++self->park_seq;
  self->wait_reason.store(what, std::memory_order_relaxed);
  self->park_timer.store(w.external ? Fiber::kExternalWake : timer.time_since_epoch().count(),
                         std::memory_order_relaxed);
  self->wait_object.store(w.object, std::memory_order_relaxed);
  self->wake_reason = WakeReason::none;
  ParkStep step{&w, &publish, timer};
  worker->suspend(self, &after_park, &step);  // worker is stale after this

  // Step 3: resumed, possibly on another worker.
  while (self->publishing.load(std::memory_order_acquire)) __builtin_ia32_pause();
  self->wait_reason.store("", std::memory_order_relaxed);
  WakeReason r = self->wake_reason;
  if (r == WakeReason::timed_out && timer != deadline) {
    // The timer was a scope's, unless the call's own deadline is also due.
    const Deadline now = Clock::now();
    if (deadline > now && expire_scope(self, now)) r = WakeReason::interrupted;
  }
  return r;
}

}  // namespace

WakeReason park(Waiter& w, Deadline deadline, PublishFn publish, const char* what) {
  return park_impl<true>(w, deadline, publish, what);
}

WakeReason park_nothrow(Waiter& w, Deadline deadline, PublishFn publish, const char* what) {
  return park_impl<false>(w, deadline, publish, what);
}

void park_until_start(Fiber* f, Worker* w, Deadline at) {
  const std::uint64_t seq = ++f->park_seq;
  f->wait_reason.store("spawn_later", std::memory_order_relaxed);
  f->park_timer.store(at.time_since_epoch().count(), std::memory_order_relaxed);
  f->wait_object.store(0, std::memory_order_relaxed);
  enter_park(f, w, seq, at, nullptr, nullptr);
}

// A dump is walking f's stack (dump.cpp, STACKS): f must not become
// runnable until the walk ends. Rare (only during a dump) and short (a few
// microseconds: the dump names the frames after letting go). The waker may
// hold a primitive's lock meanwhile; the dump takes none of those.
[[gnu::noinline, gnu::cold]] void wait_for_inspectors(Fiber* f) noexcept {
  for (std::uint32_t n; (n = f->inspectors.load(std::memory_order_acquire)) != 0;)
    f->inspectors.wait(n, std::memory_order_acquire);
}

bool try_wake_fiber(Fiber* f, std::uint64_t seq, WakeReason reason) noexcept {
  std::uint64_t expected = (seq << 1) | 1;
  // acquire: the winner sees what the parker wrote before parking; release:
  // the parker (resumed through a queue hand-off) sees wake_reason. seq_cst
  // besides (the same locked instruction on x86), and the load after it: a
  // dump walking the parked stack relies on both being in one total order
  // with its own (dump.cpp, STACKS).
  if (!f->park_word.compare_exchange_strong(expected, seq << 1, std::memory_order_seq_cst,
                                            std::memory_order_relaxed))
    return false;
  if (f->inspectors.load(std::memory_order_seq_cst) != 0) [[unlikely]]
    wait_for_inspectors(f);
  f->wake_reason = reason;
  f->runtime->schedule(f);
  return true;
}

bool wake(Waiter& w) noexcept {
  if (w.fiber) return try_wake_fiber(w.fiber, w.seq, WakeReason::notified);
  ThreadParker* p = w.thread;
  std::uint64_t expected = (w.seq << 1) | 1;
  if (!p->park_word.compare_exchange_strong(expected, w.seq << 1, std::memory_order_acq_rel,
                                            std::memory_order_relaxed))
    return false;
  p->wake_reason = WakeReason::notified;
  p->futex.store(1, std::memory_order_release);
  futex(&p->futex, FUTEX_WAKE_PRIVATE, 1, nullptr);
  return true;
}

// ---------------------------------------------------------------------------
// Interrupts: KILL AGAINST PARK in park.hpp.

bool hold_interrupt(Fiber& f, std::exception_ptr e) {
  std::lock_guard g(f.lock);
  if (f.status.load(std::memory_order_relaxed) == Fiber::kDone) return false;
  if (!f.interrupt_pending.load(std::memory_order_relaxed)) {
    ++f.interrupt_count;
    f.interrupt = std::move(e);
    f.interrupt_pending.store(true, std::memory_order_seq_cst);
  }
  return true;
}

void deliver_interrupt(Fiber& f, std::exception_ptr e) {
  if (!hold_interrupt(f, std::move(e))) return;
  const std::uint64_t word = f.park_word.load(std::memory_order_seq_cst);
  if (word & 1) try_wake_fiber(&f, word >> 1, WakeReason::interrupted);
}

void throw_if_interrupted() {
  Fiber* self = current_fiber();
  if (!self) return;
  if (self->interrupt_pending.load(std::memory_order_acquire)) {
    std::exception_ptr e;
    self->lock.lock();
    e = std::move(self->interrupt);
    self->interrupt = nullptr;
    self->interrupt_pending.store(false, std::memory_order_relaxed);
    self->lock.unlock();
    if (e) std::rethrow_exception(e);
  }
  if (self->expired_scope) {
    const std::uint64_t id = self->expired_scope;
    self->expired_scope = 0;
    // A Timeout given its own exception throws that (gevent's
    // Timeout(seconds, exception)).
    for (const TimeoutScope* s = self->scopes; s; s = s->outer)
      if (s->id == id && s->exception) std::rethrow_exception(s->exception);
    throw TimeoutError(id);
  }
}

void check_scopes_and_interrupts(Fiber* self) {
  // Only a park arms timers for scopes, so one may have expired unseen.
  if (self->scopes) expire_scope(self, Clock::now());
  if (has_interrupt(self)) throw_if_interrupted();
}

PendingInterrupt pending_interrupt() noexcept {
  Fiber* self = current_fiber();
  if (!self) return {};
  // Only a park arms timers for scopes, so one may have expired unseen.
  if (self->scopes) expire_scope(self, Clock::now());
  if (self->interrupt_pending.load(std::memory_order_acquire)) {
    std::lock_guard g(self->lock);
    return {PendingInterrupt::kill, self->interrupt_count};
  }
  if (self->expired_scope) return {PendingInterrupt::timeout, self->expired_scope};
  return {};
}

// ---------------------------------------------------------------------------

WakeReason sleep_until_nothrow(Deadline deadline, const char* what) {
  Waiter w;
  auto nothing = [](Waiter&) {};
  return park_nothrow(w, deadline, PublishFn(nothing), what);
}

bool sleep_until(Deadline deadline, const char* what) {
  Waiter w;
  auto nothing = [](Waiter&) {};
  const WakeReason r = park(w, deadline, PublishFn(nothing), what);
  if (r == WakeReason::interrupted) throw_if_interrupted();
  return r == WakeReason::timed_out;
}

void enter_watched_join() noexcept {
  tls_presence.detach();
  tls_presence.in_watched_join = true;
}

void leave_watched_join() noexcept { tls_presence.in_watched_join = false; }

void detach_plain_thread() noexcept { tls_presence.detach(); }

unsigned current_worker_count() noexcept {
  Worker* w = current_worker();
  return w ? w->runtime()->worker_count() : 0;
}

bool spinning_may_pay() noexcept {
  Worker* w = current_worker();
  if (!w || !w->current()) return true;
  return w->runtime()->worker_count() > 1 && !w->has_local_work();
}

}  // namespace green::detail
