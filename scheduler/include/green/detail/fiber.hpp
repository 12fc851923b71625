// green/detail/fiber.hpp — the control block of one green thread.
//
// Not part of the user's API: Greenlet<T> is the handle users hold. This
// header is public only because Greenlet<T> is a template and sync/ and io/
// build their waits on it.
//
// A Fiber is created by spawn(), owned by reference counts (one for the
// runtime while the green thread is alive, one per Greenlet handle, one per
// armed timer) and destroyed when the last reference goes. Its stack is a
// separate resource: bound when the green thread first runs and returned to
// the pool the moment it finishes, so "spawn a million, join them later"
// holds a million small control blocks, not a million stacks.
//
// Life cycle (`status`):  created ──first run──▶ started ──body ends──▶ done
// A green thread killed before its first run goes created ──▶ done without
// running its body; its links still fire.
//
// Waiting (`park_word`) and interrupts (kill, Timeout): the wait protocol in
// park.hpp is their contract.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <vector>

#include "green/detail/spin_lock.hpp"
#include "green/detail/waiter.hpp"

namespace green::detail {

class Worker;
class RuntimeCore;
struct Stack;

using Clock = std::chrono::steady_clock;
using Deadline = Clock::time_point;
inline constexpr Deadline kNoDeadline = Deadline::max();

// Turns an optional relative timeout into an absolute deadline, saturating.
inline Deadline deadline_after(Clock::duration timeout) noexcept {
  const Deadline now = Clock::now();
  if (timeout >= kNoDeadline - now) return kNoDeadline;
  return now + (timeout < Clock::duration::zero() ? Clock::duration::zero() : timeout);
}


// One pending green::Timeout; lives in the Timeout, linked into its green
// thread's list, most recently started first.
struct TimeoutScope {
  TimeoutScope* outer = nullptr;
  Deadline deadline = kNoDeadline;
  std::uint64_t id = 0;
  bool fired = false;
  std::exception_ptr exception;  // thrown when it fires; null: TimeoutError
};

// Where a green thread's children go: green::Nursery implements it. A green
// thread spawned (green::spawn, a Group's spawn...) by a green thread whose
// `scope` is set gets the same scope, is adopt()ed before it can run, and is
// released() once it has ended, after its links ran (a link may spawn). Both calls may come from
// any worker at once; neither may block or throw.
struct SpawnScope {
  virtual void adopt(class Fiber& child) noexcept = 0;
  virtual void release(class Fiber& child) noexcept = 0;

 protected:
  ~SpawnScope() = default;
};

// Told once that a green thread has ended, by whichever layer keeps books on
// it (a Group or Pool in sync/, a server in io/). finished() runs under the
// green thread's lock, right after its status became done and before its
// joiners wake, so whoever joins it sees the books already updated. It must
// be short, must not throw or block, and must not take a lock that is held
// anywhere while a Fiber's lock is taken. Registering costs no allocation:
// the link lives in the listener, which must outlive the registration.
class CompletionListener {
 public:
  virtual void finished(class Fiber& f) noexcept = 0;

  // The green thread's list, under its lock; not the listener's to touch.
  CompletionListener* next_listener_ = nullptr;

 protected:
  CompletionListener() = default;
  // A copy is a new, unregistered listener: the link is never copied.
  CompletionListener(const CompletionListener&) noexcept {}
  CompletionListener& operator=(const CompletionListener&) noexcept { return *this; }
  ~CompletionListener() = default;
};

// A value per green thread for green::local<T>.
struct LocalSlot {
  const void* key;
  void* value;
  void (*destroy)(void*);
};

class Fiber {
 public:
  enum Status : std::uint8_t { kCreated, kStarted, kDone };

  Fiber() = default;
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;
  virtual ~Fiber();

  // Control blocks up to kBlockSize bytes come from a per-worker free list:
  // spawn and finish then cost no malloc (see control_block.cpp).
  static constexpr std::size_t kBlockSize = 512;
  static void* operator new(std::size_t size);
  static void operator delete(void* p, std::size_t size) noexcept;

  // ---- identity ----------------------------------------------------------
  std::uint64_t id = 0;
  std::string name;
  RuntimeCore* runtime = nullptr;
  std::uint64_t parent_id = 0;      // the spawning green thread; 0: a plain thread
  const void* spawn_site = nullptr;  // code address in the spawn's caller (dump)

  // ---- scheduling (owned by the worker that runs or parks it) -------------
  void* context = nullptr;          // saved boost fcontext while switched out
  Stack* stack = nullptr;           // bound at first run, returned at finish
  // The bound stack's usable range and whether it has a guard page, for
  // dump() and stats() on other threads (relaxed): set with `stack`,
  // cleared before it is given back. They never dereference `stack`, which
  // a trim may free under them; a green thread that ends during their
  // snapshot leaves a stale range, never a dangling pointer.
  std::atomic<std::uintptr_t> stack_low{0}, stack_high{0};
  std::atomic<bool> stack_guarded{false};
  std::size_t stack_size = 0;       // requested size; 0 = runtime default
  Worker* pinned = nullptr;         // never leaves this worker when set
  Worker* start_on = nullptr;       // preferred worker for the first run
  bool urgent = false;              // SpawnOptions::urgent: see Worker::post_urgent
  Deadline start_at{};              // spawn_later: not before this instant
  Fiber* inbox_next = nullptr;      // link while posted to a worker's Inbox
  Fiber* registry_prev = nullptr;   // the runtime's list of live green threads
  Fiber* registry_next = nullptr;
  unsigned registry_shard = 0;
  // While parked in join(): the worker it parked on and that worker's deque
  // height then. Its wake is deferred until the work queued above that mark
  // (typically the children it is about to join) has been picked up.
  Worker* join_worker = nullptr;
  std::uint32_t join_mark = 0;
  void* eh_caught = nullptr;        // C++ exception globals while switched out
  unsigned eh_uncaught = 0;

  // ---- waiting: see park.hpp ---------------------------------------------
  // (seq << 1) | 1 while parked in wait number `seq`, (seq << 1) otherwise.
  std::atomic<std::uint64_t> park_word{0};
  // Dumps walking this green thread's parked stack right now (dump.cpp,
  // STACKS). The waker that wins park_word waits until none is before it
  // makes the green thread runnable (try_wake_fiber), so the stack a dump
  // reads cannot change under it. Beside park_word: the waker reads it
  // right after its CAS on that line.
  std::atomic<std::uint32_t> inspectors{0};
  std::uint64_t park_seq = 0;       // written only by the fiber itself
  WakeReason wake_reason = WakeReason::none;  // written by the CAS winner
  // What it is parked on ("join", "sleep", "Queue.get"...), for dumps; read
  // by other threads, hence atomic (relaxed: a dump is a snapshot).
  std::atomic<const char*> wait_reason{""};
  // The current park's timer (steady_clock ticks; kNoParkTimer: none), or
  // kExternalWake when something outside the runtime ends it (an fd, an
  // offload job). Stored by the fiber before its park word goes odd
  // (relaxed); the deadlock check (monitor.cpp) reads it between two reads
  // of the park word.
  static constexpr std::int64_t kNoParkTimer = INT64_MAX;
  static constexpr std::int64_t kExternalWake = INT64_MIN;
  std::atomic<std::int64_t> park_timer{kNoParkTimer};
  // What the current park waits on (Waiter::object), stored with park_timer.
  std::atomic<std::uintptr_t> wait_object{0};
  // The park word a dump first saw, and when (steady_clock ticks): "parked
  // for at least ..." costs the park nothing (Go's waitsince is as lazy).
  std::atomic<std::uint64_t> seen_park_word{0};
  std::atomic<std::int64_t> seen_since{0};
  // RuntimeOptions::green_thread_stats: TSC ticks run and switches in,
  // written by the worker switching it (relaxed; the run queue's hand-off
  // orders one worker's writes before the next's), read by stats().
  std::atomic<std::uint64_t> run_ticks{0};
  std::atomic<std::uint64_t> switches_in{0};
  // True while the worker runs the park's after-switch step: a waker may win
  // the CAS during it, and the fiber then waits for the step to finish
  // before it touches its Waiter again (PUBLISHING in park.hpp).
  std::atomic<bool> publishing{false};

  // ---- interrupts: kill and Timeout --------------------------------------
  std::atomic<bool> interrupt_pending{false};
  std::exception_ptr interrupt;     // guarded by `lock`
  // Interrupts made pending so far (guarded by `lock`): tells one pending
  // kill from the next (pending_interrupt() in park.hpp).
  std::uint32_t interrupt_count = 0;
  TimeoutScope* scopes = nullptr;   // innermost first; only the fiber touches it
  std::uint64_t expired_scope = 0;  // a scope fired while parked: throw it

  // ---- completion ----------------------------------------------------------
  std::atomic<std::uint8_t> status{kCreated};
  SpinLock lock;                    // guards interrupt, joiners, links
  WaitList joiners;                 // parked in join(), woken at finish
  std::vector<std::function<void(Fiber&)>> links;
  std::exception_ptr error;         // set before status becomes kDone
  bool exited = false;              // ended by GreenletExit
  std::atomic<bool> observed{false};
  std::vector<LocalSlot> locals;
  // The Nursery this green thread belongs to (null: none). Written before
  // the fiber is submitted and by its own Nursery's constructor/destructor
  // (on the fiber itself), read at its spawns and at its end.
  SpawnScope* scope = nullptr;
  Fiber* scope_prev = nullptr;      // the scope's member list, under its lock
  Fiber* scope_next = nullptr;
  CompletionListener* listeners = nullptr;  // guarded by `lock`

  // ---- ownership -----------------------------------------------------------
  std::atomic<std::uint32_t> refs{1};
  void add_ref() noexcept { refs.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    // acq_rel: the last owner must see every write other owners made.
    if (refs.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  bool done() const noexcept { return status.load(std::memory_order_acquire) == kDone; }
  bool started() const noexcept { return status.load(std::memory_order_acquire) != kCreated; }

  // Runs the user's callable and stores its result; exceptions propagate.
  virtual void run_body() = 0;

  // Blocks the caller (green or plain thread) until this green thread is
  // done or the deadline passes; returns done(). Honours kill and Timeout.
  bool join(Deadline deadline);
  // Delivers `exc` (GreenletExit when null) to this green thread. With
  // `block`, waits until it is done or the deadline passes.
  bool kill(std::exception_ptr exc, bool block, Deadline deadline);
  // Calls `fn(*this)` once it is done (at once when it already is), after
  // its joiners woke, outside its lock; it may block and spawn.
  void link(std::function<void(Fiber&)> fn);
  // Registers `l` (see CompletionListener). False, registering nothing, when
  // the green thread is done already: the caller does the books itself.
  bool listen(CompletionListener& l) noexcept;
  // Withdraws `l` before it fired (a member that was never submitted).
  void unlisten(CompletionListener& l) noexcept;
  // error if not GreenletExit; marks it observed.
  std::exception_ptr observe_error() noexcept;
};

inline void intrusive_ptr_add_ref(Fiber* f) noexcept { f->add_ref(); }
inline void intrusive_ptr_release(Fiber* f) noexcept { f->release(); }

// The green thread running on this OS thread, or null on a plain thread.
Fiber* current_fiber() noexcept;

}  // namespace green::detail
