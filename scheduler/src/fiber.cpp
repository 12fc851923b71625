// fiber.cpp — parking, waking, interrupts, completion of green threads.
//
// Park protocol (green thread side), in order:
//   1. throw at once if an interrupt is pending or a Timeout scope has expired;
//   2. take a new park sequence number, switch away (Worker::suspend);
//   3. on the worker, past the switch (after_park): mark `publishing`, store
//      the park word "parked in seq", arm the timer, call the primitive's
//      publish step (which makes the Waiter findable and drops its lock),
//      re-check for a pending interrupt, clear `publishing`;
//   4. when resumed, wait for `publishing` to clear: a waker can win the CAS
//      between steps 3b and 3e (a kill reads the park word directly, and the
//      primitive's lock is released inside publish), and the Waiter on our
//      stack must outlive publish.
//
// Kill (any thread): under the fiber's lock, store the exception and set
// interrupt_pending (seq_cst), then read the park word (seq_cst) and, if
// parked, CAS it. Step 3 stores the park word before it loads
// interrupt_pending: with both seq_cst, one side sees the other, so a kill
// racing with a park is never lost.
//
// A Timeout scope does not arm anything by itself: a park's timer is the
// earlier of the call's own deadline and the innermost-earliest unfired
// scope. When that timer fires for a scope, the scope is marked fired and
// park() reports `interrupted`; throw_if_interrupted() then throws its
// TimeoutError.
#include <csignal>
#include <cstdio>
#include <linux/futex.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <memory>
#include <thread>
#include <utility>

#include "fiber_internal.hpp"
#include "green/current.hpp"
#include "green/detail/park.hpp"
#include "green/greenlet.hpp"
#include "green/local.hpp"
#include "runtime_core.hpp"
#include "switch.hpp"
#include "worker.hpp"

namespace green::detail {

namespace {

thread_local ThreadParker tls_parker;

long futex(std::atomic<std::uint32_t>* addr, int op, std::uint32_t val, const timespec* ts) {
  return syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(addr), op, val, ts, nullptr, 0);
}

std::string describe(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "(not a std::exception)";
  }
}

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

// Cheap pre-check for the common case: nothing to throw.
inline bool has_interrupt(const Fiber* f) noexcept {
  return f->interrupt_pending.load(std::memory_order_relaxed) || f->expired_scope != 0;
}

struct ParkStep {
  Waiter* waiter;
  PublishFn* publish;
  Deadline timer;
};

void after_park(void* arg, Fiber* from, Worker* w) {
  auto* step = static_cast<ParkStep*>(arg);
  const std::uint64_t seq = step->waiter->seq;
  from->publishing.store(true, std::memory_order_relaxed);
  from->park_word.store((seq << 1) | 1, std::memory_order_seq_cst);
  if (step->timer != kNoDeadline) w->arm_timer(step->timer, from, seq);
  if (step->publish) (*step->publish)(*step->waiter);
  if (from->interrupt_pending.load(std::memory_order_seq_cst))
    try_wake_fiber(from, seq, WakeReason::interrupted);
  // release: the fiber, once resumed, may reuse its Waiter.
  from->publishing.store(false, std::memory_order_release);
}

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

Fiber* current_fiber() noexcept {
  Worker* w = current_worker();
  return w ? w->current() : nullptr;
}

bool try_wake_fiber(Fiber* f, std::uint64_t seq, WakeReason reason) noexcept {
  std::uint64_t expected = (seq << 1) | 1;
  // acq_rel: the winner sees what the parker wrote before parking, and the
  // parker (resumed through a queue hand-off) sees wake_reason.
  if (!f->park_word.compare_exchange_strong(expected, seq << 1, std::memory_order_acq_rel,
                                            std::memory_order_relaxed))
    return false;
  f->wake_reason = reason;
  f->runtime->schedule(f);
  return true;
}

WakeReason park(Waiter& w, Deadline deadline, PublishFn publish, const char* what) {
  Worker* worker = current_worker();
  Fiber* self = worker ? worker->current() : nullptr;
  if (!self) return park_thread(w, deadline, &publish);

  if (has_interrupt(self)) throw_if_interrupted();
  Deadline timer = deadline;
  if (self->scopes) {
    const Deadline now = Clock::now();
    if (expire_scope(self, now)) throw_if_interrupted();
    timer = std::min(timer, earliest_scope(self, nullptr));
  }
  w.fiber = self;
  w.thread = nullptr;
  w.seq = ++self->park_seq;
  self->wait_reason.store(what, std::memory_order_relaxed);
  self->wake_reason = WakeReason::none;
  ParkStep step{&w, &publish, timer};
  worker->suspend(self, &after_park, &step);  // worker is stale after this

  // Resumed, possibly on another worker. See step 4 above.
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
    throw TimeoutError(id);
  }
}

unsigned current_worker_count() noexcept {
  Worker* w = current_worker();
  return w ? w->runtime()->worker_count() : 0;
}

bool spinning_may_pay() noexcept {
  Worker* w = current_worker();
  if (!w || !w->current()) return true;
  return w->runtime()->worker_count() > 1 && !w->has_local_work();
}

bool sleep_until(Deadline deadline, const char* what) {
  Waiter w;
  auto nothing = [](Waiter&) {};
  const WakeReason r = park(w, deadline, PublishFn(nothing), what);
  if (r == WakeReason::interrupted) throw_if_interrupted();
  return r == WakeReason::timed_out;
}

// ---------------------------------------------------------------------------
// Fiber

namespace {
// green::local values, newest first: a later one may refer to an earlier one.
void destroy_locals(Fiber& f) noexcept {
  if (f.locals.empty()) return;
  for (auto it = f.locals.rbegin(); it != f.locals.rend(); ++it) it->destroy(it->value);
  f.locals.clear();
}
}  // namespace

Fiber::~Fiber() {
  destroy_locals(*this);
  if (error && !observed.load(std::memory_order_relaxed)) {
    std::fprintf(stderr, "green: green thread %llu (%s) ended with an exception nobody observed: %s\n",
                 static_cast<unsigned long long>(id), name.empty() ? "unnamed" : name.c_str(),
                 describe(error).c_str());
  }
}

std::exception_ptr Fiber::observe_error() noexcept {
  observed.store(true, std::memory_order_relaxed);
  return error;
}

bool Fiber::join(Deadline deadline) {
  if (done()) return true;
  if (current_fiber() == this) throw Error("green: a green thread cannot join itself");
  Waiter w;
  auto publish = [this](Waiter& me) {
    std::lock_guard g(lock);
    if (done()) {
      wake(me);  // ended between our check and now
    } else {
      joiners.push_back(me);
    }
  };
  Fiber* self = current_fiber();
  if (self && !self->pinned) {
    self->join_worker = current_worker();
    self->join_mark = self->join_worker->queue_mark();
  }
  const WakeReason r = park(w, deadline, PublishFn(publish), "join");
  if (self) self->join_worker = nullptr;
  if (r != WakeReason::notified) {
    std::lock_guard g(lock);
    joiners.remove(w);
  }
  if (r == WakeReason::interrupted) throw_if_interrupted();
  return done();
}

bool Fiber::kill(std::exception_ptr exc, bool block, Deadline deadline) {
  if (done()) return true;
  if (!exc) exc = std::make_exception_ptr(GreenletExit());
  if (current_fiber() == this) std::rethrow_exception(exc);
  {
    std::lock_guard g(lock);
    if (status.load(std::memory_order_relaxed) == kDone) return true;
    if (!interrupt_pending.load(std::memory_order_relaxed)) {
      interrupt = std::move(exc);
      interrupt_pending.store(true, std::memory_order_seq_cst);
    }
  }
  const std::uint64_t word = park_word.load(std::memory_order_seq_cst);
  if (word & 1) try_wake_fiber(this, word >> 1, WakeReason::interrupted);
  if (!block) return done();
  return join(deadline);
}

void Fiber::link(std::function<void(Fiber&)> fn) {
  {
    std::lock_guard g(lock);
    if (!done()) {
      links.push_back(std::move(fn));
      return;
    }
  }
  fn(*this);
}

// ---------------------------------------------------------------------------
// Completion

namespace {

void complete(Fiber* f, std::exception_ptr error, bool exited) noexcept {
  destroy_locals(*f);
  if (error) f->error = std::move(error);
  f->exited = exited;
  std::vector<std::function<void(Fiber&)>> links;
  {
    std::lock_guard g(f->lock);
    f->status.store(Fiber::kDone, std::memory_order_release);
    if (f->interrupt) f->interrupt = nullptr;
    f->interrupt_pending.store(false, std::memory_order_relaxed);
    if (f->done_hook) f->done_hook(*f, f->done_hook_arg, f->done_hook_tag);
    f->joiners.wake_all();
    if (!f->links.empty()) links.swap(f->links);
  }

  for (auto& link : links) {
    try {
      link(*f);
    } catch (...) {
      std::fprintf(stderr, "green: a link of green thread %llu (%s) threw: %s\n",
                   static_cast<unsigned long long>(f->id),
                   f->name.empty() ? "unnamed" : f->name.c_str(),
                   describe(std::current_exception()).c_str());
    }
  }
  // After the links: one may spawn, and its child joins f's Nursery before
  // f leaves it, so the Nursery never sees itself empty while a member could
  // still add one. This is the last touch of the Nursery: once the list is
  // empty its owner may destroy it.
  if (SpawnScope* scope = std::exchange(f->scope, nullptr)) scope->release(*f);
  // Last: a link may spawn, and shutdown() must not see the live count reach
  // zero while a green thread that could still spawn is finishing.
  f->runtime->unregister_fiber(f);
}

}  // namespace

void run_fiber(Fiber* self) noexcept {
  self->status.store(Fiber::kStarted, std::memory_order_release);
  std::exception_ptr error;
  bool exited = false;
  try {
    // Killed before its first run: the body never runs.
    if (has_interrupt(self)) throw_if_interrupted();
    self->run_body();
  } catch (const GreenletExit&) {
    exited = true;
  } catch (...) {
    error = std::current_exception();
  }
  complete(self, std::move(error), exited);
}

void complete_unstarted(Fiber* f, std::exception_ptr error) noexcept {
  complete(f, std::move(error), false);
}

// ---------------------------------------------------------------------------
// Spawning and joining many

void submit(RuntimeCore* rt, Fiber* f, const SpawnOptions& opts, Deadline start_at) {
  Worker* here = current_worker();
  if (!rt) {
    if (!here || !here->current())
      throw Error("green::spawn called outside a green thread: use Runtime::spawn");
    rt = here->runtime();
  } else if (here && here->runtime() != rt) {
    here = nullptr;  // a worker of another runtime spawns like a plain thread
  }
  Worker* chosen = nullptr;
  if (opts.worker >= 0) {
    if (static_cast<unsigned>(opts.worker) >= rt->worker_count())
      throw Error("green::spawn: worker " + std::to_string(opts.worker) + " out of range (runtime has " +
                  std::to_string(rt->worker_count()) + " workers)");
    chosen = &rt->worker(static_cast<unsigned>(opts.worker));
  }
  if (opts.stack_size != 0) {
    if (opts.stack_size < 16 * 1024) throw Error("green::spawn: stack_size below 16 KiB");
    f->stack_size = opts.stack_size;
  }
  if (!opts.name.empty()) f->name = opts.name;
  if (opts.pinned) {
    if (!chosen) chosen = here ? here : &rt->worker(0);
    f->pinned = chosen;
  }
  f->start_on = chosen;
  f->start_at = start_at;
  f->urgent = opts.urgent;
  f->id = here ? here->next_id() : rt->allocate_ids(1);
  // A child of a green thread inside a Nursery joins it, before it can run
  // (and so before it can end and be released).
  if (Fiber* parent = here ? here->current() : nullptr; parent && parent->scope && !opts.detached) {
    f->scope = parent->scope;
    f->scope->adopt(*f);
  }
  rt->submit_new(f, here);
}

std::vector<Fiber*> join_many(const std::vector<Fiber*>& fibers, Deadline deadline,
                              std::size_t count, bool raise_error) {
  if (count == 0 || count > fibers.size()) count = fibers.size();
  struct Shared {
    SpinLock lock;
    std::vector<Fiber*> finished;
    WaitList waiting;
    std::size_t needed;
    bool raise;
  };
  auto shared = std::make_shared<Shared>();
  shared->needed = count;
  shared->raise = raise_error;
  for (Fiber* f : fibers) {
    f->link([shared](Fiber& done) {
      std::lock_guard g(shared->lock);
      shared->finished.push_back(&done);
      const bool failed = done.error != nullptr;
      if (shared->finished.size() >= shared->needed || (shared->raise && failed))
        shared->waiting.wake_all();
    });
  }
  auto satisfied = [&] {
    if (shared->finished.size() >= count) return true;
    if (raise_error)
      for (Fiber* f : shared->finished)
        if (f->error) return true;
    return false;
  };
  for (;;) {
    {
      std::lock_guard g(shared->lock);
      if (satisfied()) break;
    }
    Waiter w;
    auto publish = [&](Waiter& me) {
      std::lock_guard g(shared->lock);
      if (satisfied()) {
        wake(me);
      } else {
        shared->waiting.push_back(me);
      }
    };
    const WakeReason r = park(w, deadline, PublishFn(publish), "joinall");
    if (r != WakeReason::notified) {
      std::lock_guard g(shared->lock);
      shared->waiting.remove(w);
    }
    if (r == WakeReason::interrupted) throw_if_interrupted();
    if (r == WakeReason::timed_out) break;
  }
  std::vector<Fiber*> out;
  {
    std::lock_guard g(shared->lock);
    out = shared->finished;
  }
  if (raise_error)
    for (Fiber* f : out)
      if (auto e = f->observe_error()) std::rethrow_exception(e);
  return out;
}

// ---------------------------------------------------------------------------
// green::local storage

void* find_local(const void* key) {
  Fiber* f = current_fiber();
  if (!f) throw Error("green::local used outside a green thread");
  for (const LocalSlot& s : f->locals)
    if (s.key == key) return s.value;
  return nullptr;
}

void clear_locals() noexcept {
  if (Fiber* f = current_fiber()) destroy_locals(*f);
}

void* add_local(const void* key, void* value, void (*destroy)(void*)) {
  Fiber* f = current_fiber();
  if (!f) {
    destroy(value);
    throw Error("green::local used outside a green thread");
  }
  f->locals.push_back({key, value, destroy});
  return value;
}

}  // namespace green::detail

// ---------------------------------------------------------------------------
// green/current.hpp

namespace green {

using detail::current_fiber;

void sleep_until(Clock::time_point t) {
  if (!current_fiber()) {
    std::this_thread::sleep_until(t);
    return;
  }
  detail::sleep_until(t, "sleep");
}

void sleep(Clock::duration d) {
  if (d <= Clock::duration::zero()) {
    yield();
    return;
  }
  sleep_until(detail::deadline_after(d));
}

void yield() {
  detail::Worker* w = detail::current_worker();
  detail::Fiber* self = w ? w->current() : nullptr;
  if (!self) {
    std::this_thread::yield();
    return;
  }
  // A Timeout scope may have expired while this green thread ran: yield is a
  // blocking point, so it raises it (only a park arms timers for scopes).
  if (self->scopes) detail::expire_scope(self, Clock::now());
  if (detail::has_interrupt(self)) detail::throw_if_interrupted();
  w->yield_current(self);  // w is stale once this returns: the switch may migrate us
  if (self->scopes) detail::expire_scope(self, Clock::now());
  if (detail::has_interrupt(self)) detail::throw_if_interrupted();
}

bool in_green_thread() noexcept { return current_fiber() != nullptr; }

std::uint64_t current_id() noexcept {
  auto* f = current_fiber();
  return f ? f->id : 0;
}

std::string current_name() {
  auto* f = current_fiber();
  return f ? f->name : std::string();
}

int this_worker() noexcept {
  auto* w = detail::current_worker();
  return w ? static_cast<int>(w->index()) : -1;
}

}  // namespace green
