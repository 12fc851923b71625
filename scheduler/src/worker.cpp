// worker.cpp — a worker's loop and how it picks the next green thread
// (worker.hpp gives the order). The other concepts of a worker have files of
// their own: placement.cpp (where a runnable green thread goes), steal.cpp,
// idle.cpp (spinning, parking, waking), switch.cpp, first_run.cpp (stacks),
// control_block.cpp.
#include "worker.hpp"

#include <pthread.h>

#include <algorithm>
#include <csignal>
#include <cstdlib>

#include "fiber_internal.hpp"
#include "runtime_core.hpp"
#include "stack.hpp"
#include "stack_capture.hpp"
#include "switch.hpp"

namespace green::detail {

namespace {
// initial-exec: a fixed offset from the thread pointer, no __tls_get_addr call.
[[gnu::tls_model("initial-exec")]] thread_local Worker* tls_worker = nullptr;
}  // namespace

Worker* current_worker() noexcept {
  // The asm keeps even LTO from hoisting the TLS load out of a caller's loop.
  Worker* w = tls_worker;
  asm volatile("" : "+r"(w));
  return w;
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
// Picking

bool Worker::fire_timers() {
  // Scanned on the fair tick and when idle, never per switch: reading the
  // clock costs more than a switch.
  if (timers_.empty()) return false;
  const auto fired = timers_.fire_due(Clock::now(), [](Fiber* f, std::uint64_t seq) {
    try_wake_fiber(f, seq, WakeReason::timed_out);
  });
  if (fired > 0) bump(counters_.timers_fired, static_cast<std::uint64_t>(fired));
  return fired > 0;
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
      f = deque_.take_oldest();
      oldest_fair_ticks_ = 0;
    }
  }
  fire_timers();
  if (hub_.has_watchers()) poll_hub(hub_, 0);
  return f;
}

int Worker::poll_hub(Hub& hub, int timeout_ms, bool owner) noexcept {
  bump(counters_.hub_polls);
  dispatching_io_ = true;
  const int dispatched = hub.poll(timeout_ms, owner);
  dispatching_io_ = false;
  if (io_wakes_.empty()) return dispatched;
  // Behind the work already queued here, in the order the events came: the
  // deque's front is the end its owner reaches last (and thieves first).
  // Through the `next` slot and the back, a batch of wakes would run newest
  // first and each batch ahead of the last one's rest, so under load the
  // first connection to become ready would be served last.
  // Announced only if some of it is stealable: green threads pinned here
  // (blocked in a hooked C call, green/monkey.hpp) are ours to run, and an
  // idle worker woken for them would spin and find nothing.
  bool stealable = false;
  for (Fiber* f : io_wakes_) stealable |= place(f, Place::io);
  io_wakes_.clear();
  if (stealable) announce_work();
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

// ---------------------------------------------------------------------------
// Giving the worker to the next green thread: pick, then jump (switch.cpp).
// Here, beside pick_local(), so the compiler can inline the pick into the
// blocking path every park and yield takes.

void Worker::yield_current(Fiber* self) {
  if (!keep_yielder_private(self)) {
    suspend(self, [](void*, Fiber* from, Worker* w) { w->place(from, Worker::Place::after_all); }, nullptr);
    return;
  }
  // The private FIFO is only read by this worker, and only after this switch
  // completes, so self may be queued before it leaves its stack: no
  // after-switch step, and no switch at all when nothing else is runnable.
  yielded_.push(self);
  Fiber* next = pick_local();
  if (next == self) {
    // Nothing else to run: no switch, but a scheduling point all the same
    // (the pick looked at the queues, and on the fair tick at the hub and
    // the timers). The blocking detector counts it as a tick (blocking.hpp);
    // only this no-op yield pays the store, not a switch.
    yield_ticks_.store(yield_ticks_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    return;
  }
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
  from->stack_low.store(0, std::memory_order_relaxed);  // see Fiber::stack_low
  from->stack_high.store(0, std::memory_order_relaxed);
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
// The loop

Hub* current_hub() noexcept {
  Worker* w = current_worker();
  return w ? &w->hub() : nullptr;
}

void Worker::main() {
  tls_worker = this;
  eh_ = eh_globals();
  altstack_ = install_overflow_handler_for_thread();
  if (allow_stack_capture_) {
    sigset_t capture;
    sigemptyset(&capture);
    sigaddset(&capture, stack_capture_signal());
    pthread_sigmask(SIG_UNBLOCK, &capture, nullptr);
  }
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
