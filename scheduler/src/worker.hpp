// worker.hpp — one OS worker thread: its run queues, hub, timers and loop.
//
// Where a worker looks for the next green thread (pick_local, then find):
//   1. every kFairTick-th pick: the yield FIFO, the inbox, the injection
//      queue, due timers and the hub first, so none starves behind local work;
//      and the deque's oldest entry once it has waited kStarvedFairTicks
//      such ticks, so old local work does not starve behind newer bursts;
//   2. the `next` slot: the first green thread this worker woke since the
//      slot was last emptied, which gets the rest of the waker's turn
//      (hand-off without a queue trip). Later wakes of the same turn go
//      where a yield goes (the front of the deque or the yield FIFO), so a
//      burst runs in wake order, as in gevent. A wake lands in the slot only
//      while fewer than kNextStreak picks in a row came from it; past that it
//      queues the same way, so two green threads waking each other cannot
//      starve the rest;
//   3. the burst's first child (see below), a deferred joiner whose mark
//      has been reached, then the deque (run_queue.hpp), newest first;
//   4. the inbox (pinned green threads woken by other threads), then the
//      injection queue (spawns and wakes from plain threads, overflow), a
//      fair share of it at a time;
//   5. the yield FIFO: green threads that called yield() while no worker was
//      idle or searching; they run after everything else queued here. When
//      some worker is idle a yielder goes to the front of the deque instead,
//      where it can be stolen;
//   and, only from the scheduler context when those are empty: due timers,
//   its hub without blocking, a steal of half of a random victim's deque, a
//   short spin over all of that, and finally parking in its hub.
//
// I/O wakes. The green threads one poll of a hub wakes (on the fair tick,
// when idle, or polling a busy peer's hub) skip the `next` slot: after the
// poll they go to the front of the deque in the order the events came, so
// they run after the work already queued here, first-ready first (Go's
// netpoller also queues its goroutines behind the local run queue). Newest
// first, the last connection to have data would be served first, and under
// load the first one would wait for every later batch.
//
// Spawn order. Green threads spawned during one turn of their parent are held
// in `burst` and pushed onto the deque in reverse when the parent switches out
// (or the burst fills): the deque is LIFO, so siblings start in the order
// they were spawned (gevent's "1A 2A 1B 2B" holds on one worker), while a
// newer burst still runs before older work (depth-first, see run_queue.hpp).
// When the parent blocks, its first child runs straight from the burst.
//
// Deferred joiners. A green thread parked in join() records the height of
// this worker's deque. When the joined green thread ends and wakes it here
// while work queued above that height (its other children, in the usual
// spawn-then-join pattern) is still waiting, the joiner is held back until
// that work has been picked up, instead of taking the next slot only to park
// again on the next unfinished child. gevent behaves the same way (the
// children's start callbacks were queued before the joiner's wake-up). The
// fair tick releases the oldest deferred joiner, so none waits forever.
//
// Switching. A green thread that blocks switches straight to the next green
// thread when pick_local() finds one, and to the scheduler context otherwise.
// The step that must happen after the switch (publish a waiter, requeue a
// yielder, free a finished stack) travels with the switch (SwitchMsg) and
// runs on the far side, when the old stack is no longer in use. A yield into
// the private FIFO needs no such step: only this worker reads that FIFO, and
// only after the switch.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstdint>
#include <new>
#include <thread>
#include <vector>

#include <boost/context/detail/fcontext.hpp>

#include "green/detail/fiber.hpp"
#include "hub.hpp"
#include "inbox.hpp"
#include "run_queue.hpp"
#include "timers.hpp"

namespace green::detail {

class RuntimeCore;
struct EhGlobals;
struct Stack;

// What runs on the far side of a switch, with the party that switched out.
struct SwitchMsg {
  Fiber* from;  // null: the scheduler context
  void (*after)(void* arg, Fiber* from, Worker* w);
  void* arg;
};

// A growable ring of green threads for one thread's private use.
class LocalFifo {
 public:
  bool empty() const noexcept { return head_ == tail_; }
  void push(Fiber* f) {
    if (tail_ - head_ == capacity_) grow();
    ring_[tail_++ & (capacity_ - 1)] = f;
  }
  Fiber* pop() noexcept { return ring_[head_++ & (capacity_ - 1)]; }

 private:
  void grow() {
    const std::uint32_t bigger = capacity_ ? capacity_ * 2 : 64;
    std::vector<Fiber*> ring(bigger);
    for (std::uint32_t i = 0; head_ + i != tail_; ++i) ring[i] = ring_[(head_ + i) & (capacity_ - 1)];
    tail_ -= head_;
    head_ = 0;
    ring_.swap(ring);
    capacity_ = bigger;
  }
  std::vector<Fiber*> ring_;
  std::uint32_t capacity_ = 0, head_ = 0, tail_ = 0;
};

class Worker {
 public:
  static constexpr std::uint32_t kFairTick = 61;
  static constexpr std::uint32_t kNextStreak = 32;
  static constexpr std::size_t kBurstMax = 64;

  Worker(RuntimeCore* rt, unsigned index);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void start();  // launches the thread
  void join();   // after the runtime asked every worker to stop

  // ---- called on this worker's thread ------------------------------------
  // Why a green thread becomes runnable here; place() decides where it goes.
  enum class Place : std::uint8_t {
    woken,      // a wake: the next slot (hand-off), or as placement.cpp says
    back,       // the deque's newest end (spawn bursts, the extras of a steal)
    after_all,  // behind everything queued here (yield, a wake past the streak)
    io,         // woken by a hub poll: behind the local work, in event order
  };
  // The single placement decision (placement.cpp), pinned check included.
  // Returns true when the caller must announce_work(): `f` went where other
  // workers can take it (the deque, or the injection queue on overflow) as
  // `back` or `io`, which leave the announcement to the caller so that a
  // burst or a poll's wakes make one. `woken` and `after_all` announce
  // themselves, and only work that is stealable: a pinned green thread, the
  // next slot, the private FIFO and the inboxes are nobody else's work, and
  // waking an idle worker for them only makes it spin (and costs the waker
  // an eventfd write).
  bool place(Fiber* f, Place why) noexcept;
  // A freshly spawned green thread: joins the current burst.
  void spawn_local(Fiber* f) noexcept;
  // Switches the running green thread out; `after` runs past the switch.
  void suspend(Fiber* self, void (*after)(void*, Fiber*, Worker*), void* arg);
  // The mark join() records (see Fiber::join_mark).
  std::uint32_t queue_mark() const noexcept { return deque_.bottom_index(); }
  // yield(): runs everything else queued here first.
  void yield_current(Fiber* self);
  // The final switch of a finished green thread. Never returns.
  [[noreturn]] void exit_fiber(Fiber* self);
  void arm_timer(Deadline at, Fiber* f, std::uint64_t seq) { timers_.push(at, f, seq); }
  Stack* acquire_stack(std::size_t size);
  void count_unbound() noexcept {
    bound_.store(bound_.load(std::memory_order_relaxed) - 1, std::memory_order_relaxed);
  }
  void release_stack(Stack* s) noexcept;

  // ---- any thread -----------------------------------------------------------
  // A pinned green thread woken elsewhere, or a spawn aimed at this worker.
  void post(Fiber* f) noexcept;
  // A green thread that must run before anything else queued here: an
  // urgent one (SpawnOptions::urgent), or one just killed, so that a kill
  // takes effect at once even behind a flood of runnable work (shutdown
  // under load). Picked first by pick_local(); never stolen.
  void post_urgent(Fiber* f) noexcept;
  std::uint32_t queued_approx() const noexcept {
    return deque_.size_approx() + (inbox_.has_posted() ? 1 : 0);
  }
  // Other workers steal through this handle (steal.cpp).
  WorkDeque::Stealer stealer() const noexcept { return deque_.stealer(); }

  // For the deadlock check (monitor.hpp): sleeping in its hub, and how many
  // times it has gone to sleep so far.
  bool asleep() const noexcept { return parked_.load(std::memory_order_seq_cst); }
  std::uint64_t idle_epoch() const noexcept { return idle_epoch_.load(std::memory_order_acquire); }

  // Runtime::stats(): counters written only by this worker (relaxed), read
  // by anyone. They sit in this worker's own object, away from its peers'.
  struct Counters {
    std::atomic<std::uint64_t> steals{0}, stolen{0}, hub_polls{0}, cross_wakes{0}, timers_fired{0};
  };
  static void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
    c.store(c.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  const Counters& counters() const noexcept { return counters_; }
  void track_green_threads() noexcept { track_green_threads_ = true; }  // before start()
  // The blocking detector is on: the worker's thread unblocks the stack
  // capture's signal (stack_capture.hpp), which it may have inherited
  // blocked from the thread that made the runtime. Before start().
  void allow_stack_capture() noexcept { allow_stack_capture_ = true; }
  // Its OS thread, for the stack capture's pthread_kill. Set by start(),
  // which happens before the monitor thread starts; valid until join().
  pthread_t native_thread() noexcept { return thread_.native_handle(); }

  Hub& hub() noexcept { return hub_; }
  RuntimeCore* runtime() const noexcept { return rt_; }
  unsigned index() const noexcept { return index_; }
  Fiber* current() const noexcept { return current_.load(std::memory_order_relaxed); }
  std::uint64_t green_threads_run() const noexcept { return runs_.load(std::memory_order_relaxed); }
  // The blocking detector's scheduling tick (blocking.hpp): switches into a
  // green thread, plus yields that found nothing else to run.
  std::uint64_t scheduling_ticks() const noexcept {
    return runs_.load(std::memory_order_relaxed) + yield_ticks_.load(std::memory_order_relaxed);
  }
  // Stacks bound here minus stacks freed here; summed over all workers it
  // is the number of green threads holding a stack.
  std::int64_t stacks_bound_delta() const noexcept { return bound_.load(std::memory_order_relaxed); }
  std::uint64_t next_id() noexcept;

  // Free control blocks of Fiber::kBlockSize bytes; owner thread only.
  void* take_block() noexcept {
    if (!free_blocks_) return nullptr;
    FreeBlock* b = free_blocks_;
    free_blocks_ = b->next;
    --free_block_count_;
    return b;
  }
  bool keep_block(void* p) noexcept {
    if (free_block_count_ >= kFreeBlocksMax) return false;
    free_blocks_ = new (p) FreeBlock{free_blocks_};
    ++free_block_count_;
    return true;
  }

  // Anything runnable queued on this worker (owner thread only; the deque's
  // count is approximate, which is all a spin decision needs).
  bool has_local_work() const noexcept {
    return next_ || !burst_.empty() || deque_.size_approx() > 0 || !yielded_.empty() ||
           !inbox_.empty() || !urgent_.empty();
  }

  // Set by the idle machinery when it wakes this worker to search for work.
  std::atomic<bool> woken_to_spin{false};

 private:
  void main();
  Fiber* pick_local();      // non-blocking, any context
  Fiber* pick_fair();       // inbox, injection queue, timers
  Fiber* find_runnable();   // scheduler context: may steal, spin, park
  Fiber* steal_work();
  Fiber* take_injected() noexcept;
  bool fire_timers();
  void flush_burst(std::size_t from) noexcept;
  void push_overflow(Fiber* f) noexcept;
  void announce_work() noexcept;
  bool keep_yielder_private(const Fiber* f) const noexcept;
  void stop_spinning() noexcept;
  static void resume_after_switch(boost::context::detail::transfer_t t);
  [[noreturn]] static void fiber_entry(boost::context::detail::transfer_t t);
  // Every pick passes here; only a first run leaves the inline path.
  bool prepare_to_run(Fiber* f) { return f->context || prepare_first_run(f); }
  bool prepare_first_run(Fiber* f);  // first_run.cpp: stack, spawn_later
  void run_from_scheduler(Fiber* f);
  void jump(Fiber* from, Fiber* to, SwitchMsg* msg, bool from_is_finishing);
  void park_in_hub();
  // Idle workers poll the hubs of busy workers (not parked, fds registered)
  // without blocking; returns the fd events dispatched.
  int poll_busy_hubs() noexcept;
  bool busy_peer_with_fds() noexcept;
  // Polls `hub` (ours, or a busy peer's with owner = false) and queues the
  // green threads its events woke, in event order (see the definition).
  int poll_hub(Hub& hub, int timeout_ms, bool owner = true) noexcept;
  static constexpr int kBusyHubPollMs = 1;

  RuntimeCore* rt_;
  unsigned index_;
  std::thread thread_;
  // Relaxed atomic (plain moves on x86): Runtime::dump() reads it from
  // other threads to say "running on worker k".
  std::atomic<Fiber*> current_{nullptr};
  void* sched_context_ = nullptr;  // the scheduler's fcontext while a fiber runs
  EhGlobals* eh_ = nullptr;        // this thread's C++ exception globals
  void* sched_eh_caught_ = nullptr;
  unsigned sched_eh_uncaught_ = 0;
  const void* thread_stack_bottom_ = nullptr;  // for ASan fiber switches
  std::size_t thread_stack_size_ = 0;
  void* thread_tsan_fiber_ = nullptr;
  void* altstack_ = nullptr;

  Fiber* next_ = nullptr;
  std::uint32_t next_streak_ = 0;
  std::uint32_t tick_ = 0;
  std::uint32_t fair_turn_ = 0;  // which shared source pick_fair() tries first
  std::uint32_t oldest_top_ = ~0u;       // the deque's oldest entry at the last fair tick
  std::uint32_t oldest_fair_ticks_ = 0;  // fair ticks it has been the oldest
  static constexpr std::uint32_t kStarvedFairTicks = 8;
  std::uint32_t rng_;
  std::vector<Fiber*> burst_;
  LocalFifo yielded_;  // private FIFO of yielders while nobody is idle
  std::vector<Fiber*> deferred_;  // joiners woken early, innermost last
  std::size_t deferred_aged_ = 0;  // how many at deferred_'s front were there at the last fair tick
  bool dispatching_io_ = false;   // inside poll_hub(): wakes go to io_wakes_
  std::vector<Fiber*> io_wakes_;  // reserved: never grows inside a poll
  static constexpr std::size_t kIoWakesMax = 1024;
  WorkDeque deque_storage_;
  WorkDeque::Owner deque_{deque_storage_};
  Inbox inbox_;
  Inbox urgent_;  // see post_urgent()
  std::atomic<bool> parked_{false};
  std::atomic<std::uint64_t> idle_epoch_{0};  // single writer: this worker, before parked_
  Counters counters_;
  bool track_green_threads_ = false;  // RuntimeOptions::green_thread_stats
  bool allow_stack_capture_ = false;  // RuntimeOptions::max_blocking_time
  std::uint64_t switched_in_tsc_ = 0;
  TimerHeap timers_;
  Hub hub_;
  static constexpr std::size_t kStackCacheMax = 64;
  std::vector<Stack*> stack_cache_;
  struct FreeBlock {
    FreeBlock* next;
  };
  static constexpr std::size_t kFreeBlocksMax = 4096;
  FreeBlock* free_blocks_ = nullptr;
  std::size_t free_block_count_ = 0;
  std::uint64_t id_next_ = 0, id_end_ = 0;
  std::atomic<std::uint64_t> runs_{0};
  std::atomic<std::uint64_t> yield_ticks_{0};  // single writer: yield_current's no-switch path
  std::atomic<std::int64_t> bound_{0};  // single writer: this worker
  bool spinning_ = false;
};

// The worker running on this OS thread, or null. Not inlined on purpose: the
// compiler may cache a thread_local's address across a call, and a green
// thread that switched out may resume on another worker's thread.
[[gnu::noinline]] Worker* current_worker() noexcept;

}  // namespace green::detail
