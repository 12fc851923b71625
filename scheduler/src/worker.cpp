// worker.cpp — the worker loop, picking, stealing, parking and switching.
// See worker.hpp for the search order and runtime_core.hpp for the idle
// protocol. Invariants kept here:
//
//   * A fiber is in at most one place: running (current_), the next slot,
//     the burst, a deque, an inbox, the injection queue, or parked (owned by
//     whatever will wake it). Moving it is always a hand-over, never a copy.
//   * A pinned fiber never enters a deque, so no thief can take it: every
//     queueing of a pinned fiber goes through its worker's inbox, except the
//     next slot of its own worker (which thieves never touch).
//   * `this` is not used after jump() returns: the caller may have resumed on
//     another worker's thread. Code after a switch re-reads current_worker().
#include "worker.hpp"

#include <cxxabi.h>
#include <pthread.h>

#include <boost/context/detail/fcontext.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "fence.hpp"
#include "fiber_internal.hpp"
#include "runtime_core.hpp"
#include "stack.hpp"
#include "switch.hpp"

namespace green::detail {

namespace ctx = boost::context::detail;

namespace {
// initial-exec: a fixed offset from the thread pointer, no __tls_get_addr call.
[[gnu::tls_model("initial-exec")]] thread_local Worker* tls_worker = nullptr;
constexpr std::size_t kStackCacheMax = 64;
constexpr auto kSpinFor = std::chrono::microseconds(50);
}  // namespace

Worker* current_worker() noexcept {
  // The asm keeps even LTO from hoisting the TLS load out of a caller's loop.
  Worker* w = tls_worker;
  asm volatile("" : "+r"(w));
  return w;
}

EhGlobals* eh_globals() noexcept {
  return reinterpret_cast<EhGlobals*>(abi::__cxa_get_globals());
}

Worker::Worker(RuntimeCore* rt, unsigned index)
    : rt_(rt), index_(index), rng_(0x9e3779b9u * (index + 1)) {
  burst_.reserve(kBurstMax);
  stack_cache_.reserve(kStackCacheMax);
  io_wakes_.reserve(kIoWakesMax);
}

Worker::~Worker() {
  while (void* b = take_block()) ::operator delete(b);
  timers_.clear();
  for (Stack* s : stack_cache_) rt_->stacks().release(s);
}

void Worker::start() { thread_ = std::thread([this] { main(); }); }
void Worker::join() {
  if (thread_.joinable()) thread_.join();
}

std::uint64_t Worker::next_id() noexcept {
  if (id_next_ == id_end_) {
    constexpr std::uint64_t kBlock = 1024;
    id_next_ = rt_->allocate_ids(kBlock);
    id_end_ = id_next_ + kBlock;
  }
  return id_next_++;
}

// ---------------------------------------------------------------------------
// Control blocks
//
// Spawning a batch and joining it frees blocks in bulk, which overflows
// malloc's small per-thread cache; a worker-owned free list of one size keeps
// spawn+join free of malloc. A block freed on another thread (or on a plain
// thread) goes to that thread's worker list, or back to malloc. Under ASan
// every block goes to malloc so that use-after-free stays detectable.

void* Fiber::operator new(std::size_t size) {
#if !GREEN_ASAN
  if (size <= kBlockSize) {
    if (Worker* w = current_worker())
      if (void* b = w->take_block()) return b;
    return ::operator new(kBlockSize);
  }
#endif
  return ::operator new(size);
}

void Fiber::operator delete(void* p, std::size_t size) noexcept {
#if !GREEN_ASAN
  if (size <= kBlockSize) {
    if (Worker* w = current_worker())
      if (w->keep_block(p)) return;
  }
#else
  (void)size;
#endif
  ::operator delete(p);
}

// ---------------------------------------------------------------------------
// Switching

void Worker::resume_after_switch(ctx::transfer_t t) {
  // Copy first: `after` may recycle the stack the message lives on.
  const SwitchMsg m = *static_cast<SwitchMsg*>(t.data);
  if (m.from) {
    m.from->context = t.fctx;
  } else {
    current_worker()->sched_context_ = t.fctx;
  }
  if (m.after) m.after(m.arg, m.from, current_worker());
}

void Worker::fiber_entry(ctx::transfer_t t) {
#if GREEN_ASAN
  __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
  resume_after_switch(t);
  Fiber* self = current_worker()->current();
  run_fiber(self);
  current_worker()->exit_fiber(self);
}

[[gnu::noinline]] void Worker::jump(Fiber* from, Fiber* to, SwitchMsg* msg,
                                    bool from_is_finishing) {
  // A slab stack has no guard page: it overflowed if we are below its base
  // now (a switch at the deepest point) or its canary was overwritten on
  // the way down and back. Both checks, because either can miss alone: the
  // frames of the overflow may have skipped the canary's bytes (ASan's
  // redzones are never written), and the switch may come after the return.
  if (from && !from->stack->guard &&
      (static_cast<const char*>(__builtin_frame_address(0)) < from->stack->base ||
       !canary_intact(canary_of(*from->stack))))
    report_stack_overflow(from);

  EhGlobals* eh = eh_;  // this thread's; the pointer never changes
  if (from) {
    from->eh_caught = eh->caught_exceptions;
    from->eh_uncaught = eh->uncaught_exceptions;
  } else {
    sched_eh_caught_ = eh->caught_exceptions;
    sched_eh_uncaught_ = eh->uncaught_exceptions;
  }
  if (to) {
    eh->caught_exceptions = to->eh_caught;
    eh->uncaught_exceptions = to->eh_uncaught;
    runs_.store(runs_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  } else {
    eh->caught_exceptions = sched_eh_caught_;
    eh->uncaught_exceptions = sched_eh_uncaught_;
  }
  current_ = to;
  void* target = to ? to->context : sched_context_;

#if GREEN_ASAN
  void* fake_stack = nullptr;
  const void* bottom = to ? to->stack->base : thread_stack_bottom_;
  std::size_t size = to ? to->stack->size : thread_stack_size_;
  __sanitizer_start_switch_fiber(from_is_finishing ? nullptr : &fake_stack, bottom, size);
#else
  (void)from_is_finishing;
#endif
#if GREEN_TSAN
  __tsan_switch_to_fiber(to ? to->stack->tsan_fiber : thread_tsan_fiber_, 0);
#endif

  ctx::transfer_t t = ctx::jump_fcontext(target, msg);

#if GREEN_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
  resume_after_switch(t);
}

void Worker::yield_current(Fiber* self) {
  if (!keep_yielder_private(self)) {
    suspend(self, [](void*, Fiber* from, Worker* w) { w->enqueue_front(from); }, nullptr);
    return;
  }
  // The private FIFO is only read by this worker, and only after this switch
  // completes, so self may be queued before it leaves its stack: no
  // after-switch step, and no switch at all when nothing else is runnable.
  yielded_.push(self);
  Fiber* next = pick_local();
  if (next == self) return;
  SwitchMsg msg{self, nullptr, nullptr};
  jump(self, next, &msg, false);
}

void Worker::suspend(Fiber* self, void (*after)(void*, Fiber*, Worker*), void* arg) {
  Fiber* next = pick_local();
  SwitchMsg msg{self, after, arg};
  jump(self, next, &msg, false);
}

namespace {
void after_exit(void*, Fiber* from, Worker* w) {
  Stack* s = from->stack;
  from->stack = nullptr;
  w->release_stack(s);
  w->count_unbound();
  from->release();  // the runtime's reference
}
}  // namespace

void Worker::exit_fiber(Fiber* self) {
  Fiber* next = pick_local();
  SwitchMsg msg{self, &after_exit, nullptr};
  jump(self, next, &msg, true);
  std::abort();  // unreachable: nobody resumes a finished fiber
}

void Worker::run_from_scheduler(Fiber* f) {
  SwitchMsg msg{nullptr, nullptr, nullptr};
  jump(nullptr, f, &msg, false);
}

// ---------------------------------------------------------------------------
// Stacks

Stack* Worker::acquire_stack(std::size_t size) {
  if ((size == 0 || size == rt_->stacks().default_size()) && !stack_cache_.empty()) {
    Stack* s = stack_cache_.back();
    stack_cache_.pop_back();
    return s;
  }
  return rt_->stacks().acquire(size);
}

void Worker::release_stack(Stack* s) noexcept {
  if (s->pooled_size && stack_cache_.size() < kStackCacheMax) {
    stack_cache_.push_back(s);
    return;
  }
  rt_->stacks().release(s);
}

bool Worker::prepare_to_run(Fiber* f) {
  if (f->context) return true;  // already running before: resume it
  if (f->start_at != Deadline{}) {
    // spawn_later: park it on our timers until it is due. Killing it wakes
    // it early; then it starts, sees the interrupt and never runs its body.
    const Deadline at = f->start_at;
    f->start_at = Deadline{};
    if (at > Clock::now()) {
      const std::uint64_t seq = ++f->park_seq;
      f->wait_reason.store("spawn_later", std::memory_order_relaxed);
      // The timer's reference first: once the park word is stored a kill
      // from another thread may wake it, and it may run and end elsewhere.
      timers_.push(at, f, seq);
      f->park_word.store((seq << 1) | 1, std::memory_order_seq_cst);
      if (f->interrupt_pending.load(std::memory_order_seq_cst))
        try_wake_fiber(f, seq, WakeReason::interrupted);
      return false;
    }
  }
  try {
    f->stack = acquire_stack(f->stack_size);
  } catch (...) {
    complete_unstarted(f, std::current_exception());
    f->release();
    return false;
  }
  bound_.store(bound_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  prepare_stack_for_reuse(f->stack);
  f->context = ctx::make_fcontext(f->stack->top(), f->stack->size, &fiber_entry);
  return true;
}

// ---------------------------------------------------------------------------
// Queues

void Worker::push_overflow(Fiber* f) noexcept {
  // The deque is full: move its older half and f to the injection queue in
  // one batch, as Go does, so that other workers can take them and the
  // cost per green thread stays small.
  Fiber* batch[WorkDeque::kCapacity / 2 + 1];
  std::size_t n = 0;
  while (n < WorkDeque::kCapacity / 2) {
    Fiber* old = deque_.steal();
    if (!old) break;
    batch[n++] = old;
  }
  batch[n++] = f;
  rt_->injected().push_batch(batch, batch + n);
  rt_->wake_one_idle();
}

Fiber* Worker::take_injected() noexcept {
  InjectionQueue& q = rt_->injected();
  if (q.empty()) return nullptr;
  // Our fair share, at most half a deque; the first one runs now.
  const std::size_t share =
      std::min<std::size_t>(q.size() / rt_->worker_count() + 1, WorkDeque::kCapacity / 2);
  Fiber* batch[WorkDeque::kCapacity / 2];
  const std::size_t n = q.pop_batch(share, batch);
  if (n == 0) return nullptr;
  for (std::size_t i = 1; i < n; ++i) enqueue_back(batch[i]);
  return batch[0];
}

void Worker::enqueue_back(Fiber* f) noexcept {
  if (f->pinned) {
    f->pinned->post(f);
  } else if (!deque_.push_back(f)) {
    push_overflow(f);
  }
}

bool Worker::keep_yielder_private(const Fiber* f) const noexcept {
  // Nobody is looking for work (or f may not leave us anyway): the private
  // FIFO costs no atomics. Otherwise the stealable end of the deque.
  return f->pinned == this ||
         (!f->pinned && rt_->idle_count.load(std::memory_order_relaxed) == 0 &&
          rt_->spinning.load(std::memory_order_relaxed) == 0);
}

void Worker::enqueue_front(Fiber* f) noexcept {
  if (f->pinned && f->pinned != this) {
    f->pinned->post(f);
  } else if (keep_yielder_private(f)) {
    yielded_.push(f);
  } else {
    if (!deque_.push_front(f)) push_overflow(f);
    // Workers are idle or searching: a parked one must hear of stealable work.
    rt_->wake_one_idle();
  }
}

void Worker::schedule_local(Fiber* f) noexcept {
  if (f->pinned && f->pinned != this) {
    f->pinned->post(f);
    return;
  }
  if (dispatching_io_) {
    // Queued in readiness order after the poll; past the reserved room
    // (more wakes than one poll usually brings), queued now, never lost.
    if (io_wakes_.size() < kIoWakesMax) {
      io_wakes_.push_back(f);
    } else {
      queue_io_wake(f);
    }
    return;
  }
  if (f->join_worker == this && f->wake_reason == WakeReason::notified &&
      static_cast<std::int32_t>(deque_.bottom_index() - f->join_mark) > 0) {
    deferred_.push_back(f);
    return;
  }
  if (next_streak_ < kNextStreak) {
    Fiber* kicked = next_;
    next_ = f;
    if (kicked) {
      enqueue_back(kicked);
      announce_work();
    }
  } else {
    enqueue_front(f);
    announce_work();
  }
}

void Worker::spawn_local(Fiber* f) noexcept {
  burst_.push_back(f);
  if (burst_.size() >= kBurstMax) flush_burst(0);
}

void Worker::flush_burst(std::size_t from) noexcept {
  // Reverse, so that LIFO popping starts the first-spawned sibling first.
  for (std::size_t i = burst_.size(); i-- > from;) enqueue_back(burst_[i]);
  burst_.clear();
  announce_work();
}

void Worker::announce_work() noexcept {
  // Pairs with the fence in park_in_hub(): either we see the idle worker, or
  // it sees our work when it re-checks.
  full_fence();
  if (rt_->idle_count.load(std::memory_order_relaxed) > 0) rt_->wake_one_idle();
}

void Worker::post(Fiber* f) noexcept {
  // seq_cst push, then a seq_cst load, paired with park_in_hub(): either we
  // see it parked and wake it, or it sees the inbox non-empty before it
  // sleeps.
  inbox_.push(f);
  if (parked_.load(std::memory_order_seq_cst)) hub_.wake();
}

void Worker::post_urgent(Fiber* f) noexcept {
  // The same handshake with park_in_hub() as post().
  urgent_.push(f);
  if (parked_.load(std::memory_order_seq_cst)) hub_.wake();
}

bool Worker::fire_timers() {
  // Scanned on the fair tick and when idle, never per switch: reading the
  // clock costs more than a switch.
  if (timers_.empty()) return false;
  return timers_.fire_due(Clock::now(), [](Fiber* f, std::uint64_t seq) {
           try_wake_fiber(f, seq, WakeReason::timed_out);
         }) > 0;
}

Fiber* Worker::pick_fair() {
  // One green thread from the sources local work hides, trying them in
  // turn from a different one each tick: with a fixed order, a source that
  // is never empty under load (the yield FIFO) would starve the ones after
  // it, and a pinned green thread killed while queued in the inbox would
  // wait for the load to end.
  Fiber* f = nullptr;
  for (std::uint32_t i = 0; i < 4 && !f; ++i) {
    switch ((fair_turn_ + i) % 4) {
      case 0:
        // The oldest deferred joiner, so none waits forever; but only one
        // that was already deferred at the previous fair tick (at least 61
        // picks ago): a joiner woken just now would run before the siblings
        // it was deferred behind, the very order deferral exists to keep.
        if (std::min(deferred_aged_, deferred_.size()) > 0) {
          f = deferred_.front();
          deferred_.erase(deferred_.begin());
          --deferred_aged_;
        }
        break;
      case 1:
        if (!yielded_.empty()) f = yielded_.pop();
        break;
      case 2:
        f = inbox_.pop();
        break;
      default:
        f = take_injected();
        break;
    }
  }
  ++fair_turn_;
  deferred_aged_ = deferred_.size();  // the oldest first: all of them, by the next tick
  // Starvation guard for local work. Depth-first order alone lets a green
  // thread that keeps spawning and joining children (a chain) starve its
  // older siblings forever on a worker nobody steals from (gevent's
  // test_fair_or_hangs on one worker). When the oldest entry has sat through
  // kStarvedFairTicks fair ticks (about five hundred picks) it runs now. Not
  // sooner: every early pick of old work starts another subtree alongside
  // the current one, and skynet-like trees then keep many more stacks alive.
  if (!f && deque_.size_approx() > 1) {
    const std::uint32_t top = deque_.top_index();
    if (top != oldest_top_) {
      oldest_top_ = top;
      oldest_fair_ticks_ = 0;
    } else if (++oldest_fair_ticks_ >= kStarvedFairTicks) {
      f = deque_.steal();
      oldest_fair_ticks_ = 0;
    }
  }
  fire_timers();
  if (hub_.has_watchers()) poll_hub(hub_, 0);
  return f;
}

void Worker::queue_io_wake(Fiber* f) noexcept {
  if (f->pinned) {
    f->pinned->post(f);  // never into a deque, where a thief could take it
  } else if (!deque_.push_front(f)) {
    push_overflow(f);
  }
}

int Worker::poll_hub(Hub& hub, int timeout_ms, bool owner) noexcept {
  dispatching_io_ = true;
  const int dispatched = hub.poll(timeout_ms, owner);
  dispatching_io_ = false;
  if (io_wakes_.empty()) return dispatched;
  // Behind the work already queued here, in the order the events came: the
  // deque's front is the end its owner reaches last (and thieves first).
  // Through the `next` slot and the back, a batch of wakes would run newest
  // first and each batch ahead of the last one's rest, so under load the
  // first connection to become ready would be served last.
  for (Fiber* f : io_wakes_) queue_io_wake(f);
  io_wakes_.clear();
  announce_work();
  return dispatched;
}

Fiber* Worker::pick_local() {
  for (;;) {
    // Urgent first. When nothing was posted this is one relaxed load of a
    // line only producers of urgent work write.
    if (Fiber* u = urgent_.pop()) {
      if (prepare_to_run(u)) return u;
      continue;
    }
    Fiber* f = nullptr;
    if (++tick_ == kFairTick) {
      tick_ = 0;
      f = pick_fair();
    }
    if (!f && next_) {
      f = next_;
      next_ = nullptr;
      ++next_streak_;
      if (!burst_.empty()) flush_burst(0);
    } else {
      next_streak_ = 0;
      if (!burst_.empty()) {
        // The first child of the burst runs now, straight from the private
        // buffer (no fence); the rest become stealable.
        if (!f) f = burst_.front();
        flush_burst(f == burst_.front() ? 1 : 0);
      }
      if (!f && !deferred_.empty()) {
        Fiber* d = deferred_.back();
        if (static_cast<std::int32_t>(deque_.bottom_index() - d->join_mark) <= 0 ||
            deque_.size_approx() == 0) {
          f = d;
          deferred_.pop_back();
        }
      }
      // Cheap emptiness checks first: pop_back() on an empty deque still
      // pays a fence, and the shared queues are rarely non-empty.
      if (!f && deque_.size_approx() > 0) f = deque_.pop_back();
      if (!f) f = inbox_.pop();
      if (!f && !rt_->injected().empty()) f = take_injected();
      if (!f && !yielded_.empty()) f = yielded_.pop();
      if (!f && !deferred_.empty()) {
        f = deferred_.back();
        deferred_.pop_back();
      }
      if (!f) return nullptr;
    }
    if (prepare_to_run(f)) return f;
  }
}

Fiber* Worker::steal_work() {
  const unsigned n = rt_->worker_count();
  if (n < 2) return nullptr;
  rng_ ^= rng_ << 13;
  rng_ ^= rng_ >> 17;
  rng_ ^= rng_ << 5;
  const unsigned start = rng_ % n;
  for (unsigned i = 0; i < n; ++i) {
    Worker& victim = rt_->worker((start + i) % n);
    if (&victim == this) continue;
    const std::uint32_t available = victim.deque_.size_approx();
    if (available == 0) continue;
    Fiber* first = nullptr;
    for (std::uint32_t k = 0; k < (available + 1) / 2; ++k) {
      Fiber* f = victim.deque_.steal();
      if (!f) break;
      if (!first) {
        first = f;
      } else {
        enqueue_back(f);
      }
    }
    if (first) return first;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// The loop

void Worker::stop_spinning() noexcept {
  if (!spinning_) return;
  spinning_ = false;
  // The last spinner to find work wakes another, so that if more work is
  // queued, a second worker comes looking (Go's "spinning M" rule).
  if (rt_->spinning.fetch_sub(1, std::memory_order_seq_cst) == 1) rt_->wake_one_idle();
}

Fiber* Worker::find_runnable() {
  // The search polls cheap, mostly-local state (our inbox, the injection
  // queue's size, our timers) every round with one PAUSE in between, so a
  // wake from another worker is picked up within a fraction of a
  // microsecond. Stealing reads other workers' deques, whose cache lines
  // their owners write constantly, so it is tried only every kStealEvery
  // rounds: a spinning thief must not slow down the worker it waits on.
  constexpr unsigned kStealEvery = 16;
  Deadline spin_until{};
  for (unsigned round = 0;; ++round) {
    if (rt_->workers_stopping()) return nullptr;
    Fiber* f = pick_local();
    if (!f && fire_timers()) continue;
    if (!f && hub_.has_watchers() && poll_hub(hub_, 0) > 0) continue;
    if (!f && round % kStealEvery == 0) {
      f = steal_work();
      if (f && !prepare_to_run(f)) continue;
      if (!f && poll_busy_hubs() > 0) continue;
    }
    if (f) {
      stop_spinning();
      return f;
    }
    if (round % kStealEvery == 0) {
      const Deadline now = Clock::now();
      if (spin_until == Deadline{}) spin_until = now + kSpinFor;
      if (now >= spin_until) {
        park_in_hub();
        spin_until = Deadline{};
        round = ~0u;  // steal right after waking
        continue;
      }
    }
    __builtin_ia32_pause();
  }
}

bool Worker::busy_peer_with_fds() noexcept {
  const unsigned n = rt_->worker_count();
  for (unsigned i = 0; i < n; ++i) {
    Worker& v = rt_->worker(i);
    if (&v != this && !v.parked_.load(std::memory_order_relaxed) && v.hub_.has_watchers()) return true;
  }
  return false;
}

int Worker::poll_busy_hubs() noexcept {
  // Readiness events are edge-triggered, so each goes to exactly one of the
  // pollers (the owner or us); the ready handler is thread-safe, and what it
  // wakes lands on our queues (wakes from a worker stay local).
  int dispatched = 0;
  const unsigned n = rt_->worker_count();
  for (unsigned i = 0; i < n; ++i) {
    Worker& v = rt_->worker(i);
    if (&v != this && !v.parked_.load(std::memory_order_relaxed) && v.hub_.has_watchers())
      dispatched += poll_hub(v.hub_, 0, /*owner=*/false);
  }
  return dispatched;
}

Hub* current_hub() noexcept {
  Worker* w = current_worker();
  return w ? &w->hub() : nullptr;
}

void Worker::park_in_hub() {
  if (spinning_) {
    spinning_ = false;
    rt_->spinning.fetch_sub(1, std::memory_order_seq_cst);
  }
  // Housekeeping (stack.hpp): out of work, so give back what the last
  // burst left cached if a pass is due. One clock read per park, next to
  // an epoll_wait; never on the spawn or finish path.
  rt_->stacks().housekeep(Clock::now());
  rt_->enter_idle(this);
  parked_.store(true, std::memory_order_seq_cst);
  full_fence();
  const bool work = rt_->any_work_visible() ||
                    !inbox_.empty() || !urgent_.empty() || rt_->workers_stopping();
  if (!work) {
    // Back for the next pass while the pool holds free stacks to give back.
    const Deadline next = std::min(timers_.next_deadline(), rt_->stacks().next_housekeeping());
    int timeout_ms = -1;
    if (next != kNoDeadline) {
      const auto left = next - Clock::now();
      timeout_ms = left <= Clock::duration::zero()
                       ? 0
                       : static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count());
    }
    // A busy worker does not poll its own hub while it runs a long green
    // thread: while one has fds registered, come back every millisecond to
    // poll its hub for it (as Go's sysmon polls the network). With every
    // worker idle nobody needs this and the sleep is unbounded.
    if (busy_peer_with_fds() && (timeout_ms < 0 || timeout_ms > kBusyHubPollMs))
      timeout_ms = kBusyHubPollMs;
    poll_hub(hub_, timeout_ms);
    poll_busy_hubs();
  }
  parked_.store(false, std::memory_order_relaxed);
  rt_->leave_idle(this);
  if (woken_to_spin.exchange(false, std::memory_order_acq_rel)) spinning_ = true;
}

void Worker::main() {
  tls_worker = this;
  eh_ = eh_globals();
  altstack_ = install_overflow_handler_for_thread();
#if GREEN_ASAN
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) == 0) {
    void* addr = nullptr;
    std::size_t size = 0;
    pthread_attr_getstack(&attr, &addr, &size);
    thread_stack_bottom_ = addr;
    thread_stack_size_ = size;
    pthread_attr_destroy(&attr);
  }
#endif
#if GREEN_TSAN
  thread_tsan_fiber_ = __tsan_get_current_fiber();
#endif
  while (Fiber* f = find_runnable()) run_from_scheduler(f);
  remove_overflow_handler_for_thread(altstack_);
  tls_worker = nullptr;
}

}  // namespace green::detail
