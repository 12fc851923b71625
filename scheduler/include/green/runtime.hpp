// green/runtime.hpp — the M:N runtime: m worker threads running n green threads.
//
//   green::Runtime rt;                       // one worker per core
//   int total = rt.run([] {                  // the main green thread
//     auto a = green::spawn(compute, 1);
//     auto b = green::spawn(compute, 2);
//     return a.get() + b.get();
//   });
//
// Workers start in the constructor and park in epoll_wait when there is
// nothing to do (an idle runtime uses no CPU). Several runtimes may live in one
// process; a green thread belongs to the runtime that spawned it.
//
// Thread safety: every member may be called from any plain thread. spawn()
// from a plain thread queues the green thread on the runtime's injection
// queue; Greenlet::get() from a plain thread blocks that thread.
//
// Shutdown: shutdown() (and the destructor) raise GreenletExit in every live
// green thread, wait for all of them to unwind (destructors run; a green
// thread that catches GreenletExit and blocks again is killed again at that
// call), then join the workers and unmap every stack. Calling it from one of
// the runtime's own green threads throws green::Error (it would wait for
// itself). A green thread that never reaches a blocking call keeps shutdown
// waiting: green does not preempt.
//
// Stacks: each green thread gets its own stack of `stack_size` bytes
// (default 256 KiB), committed lazily by the kernel as it is touched and
// reused from a pool. While vm.max_map_count allows, each stack has a guard
// page, and overflowing onto it aborts with "stack overflow in green thread
// <id> (<name>)". Past that budget (about 16,000 stacks with the default
// max_map_count of 65530) stacks come from unguarded slabs with a canary
// checked at every switch: the same message, reported when the overflowing
// green thread next switches out. Running out of memory for a stack makes
// that green thread fail with green::SystemError (its get() throws).
//
// Deadlock report (gevent's LoopExit). A plain thread that waits for a green
// thread without a timeout (run(), Greenlet::get() or join() with no
// argument) gets green::LoopExit instead of waiting forever once the runtime
// can no longer make progress: every green thread is parked, none with a
// timer (sleep, a timeout, a green::Timeout scope, spawn_later) or on an fd
// (a socket, a signal handler, a hooked C call) or on an offload()/blocking()
// job, and nothing outside it may still wake one. Its what() names the green
// thread joined and holds dump(). It is reported within about 20 ms of the
// last possible waker going away (a monitor thread looks when the last worker
// falls asleep, and again 10 ms later; it sleeps otherwise).
//   Outside wakers the runtime knows of, and so never a false report:
//   * a KeepAlive of this runtime (keep_alive() below), held by anybody;
//   * an offload()/blocking() job running anywhere in the process;
//   * a plain thread that has waited on anything green (Queue::get,
//     Event::wait, a Lock, a timed get()...): from its first such wait until
//     it exits, except while it waits in such a join itself;
//   * the live green threads of any other Runtime in the process.
//   A plain thread that feeds green threads without ever waiting on green
//   (Event::set, Queue::put, spawn() or kill() from a std::thread of its own)
//   is invisible to the runtime: give it a KeepAlive for as long as it may
//   still do so, or the waits it would end may be reported as deadlocked.
//   Green threads joining each other are never told: only the plain thread.
//
// Blocking detector (opt-in). green does not preempt: a green thread that
// computes, or calls a blocking function that green does not hook (a plain
// read(2) on a blocking fd, a mutex held elsewhere, a long loop), keeps its
// worker to itself, and every other green thread that worker would have
// run waits. With RuntimeOptions::max_blocking_time set (or the environment
// variable GREEN_MAX_BLOCKING_MS, for a binary you cannot change), the
// runtime's monitor thread notices a worker that has run the same green
// thread without a switch for that long and reports it, once per stall:
// the worker, the green thread's id and name, how long so far, and that
// green thread's stack, taken on the stuck worker at that moment. The report
// goes to RuntimeOptions::on_blocking, or to stderr as one block of lines:
//
//   green: worker 1 has run green thread 7 (parser) for 104 ms without a
//   switch (max_blocking_time 100 ms); its stack:
//       #0 parse_everything(std::string const&)+0x4e
//       #1 ...
//
//   * A stall ends when the worker switches (the green thread parks, yields,
//     ends); the next one is a new stall, reported again. "For 104 ms" is
//     at least that long (counted from the first look that saw it): the
//     monitor looks every max_blocking_time/4, so a stall is reported
//     between max_blocking_time and 1.5 times that after it began (plus the
//     time to take the stack), and one shorter than max_blocking_time never.
//   * The worker's other green threads are not stuck with it: idle workers
//     steal what waits in its queue and poll its hub's fds (only green
//     threads pinned to it, and those in its private queues, wait). The
//     detector reports; it never interrupts or moves the green thread.
//   * The stack. The monitor sends SIGURG to the stuck worker's OS thread
//     (pthread_kill). The runtime installs a handler for it once per
//     process, the first time a runtime turns the detector on, and keeps it
//     (SA_RESTART, on the worker's alternate signal stack), and each worker
//     unblocks SIGURG on its own thread (it may have inherited it blocked);
//     a SIGURG that is not its own request goes on to the handler that was
//     there before (one arriving with a request may be taken for it).
//     The handler only records the return addresses (libunwind); the
//     monitor names and demangles them. Most interrupted system calls
//     restart, but one the stuck green thread is blocked in that the kernel
//     never restarts after a handler (nanosleep, poll, select, a socket call
//     with a timeout: signal(7)) returns EINTR, once per report. If the
//     handler has not run within 100 ms (SIGURG blocked on that thread,
//     replaced by another handler, or under ThreadSanitizer, which delivers
//     a signal only at the thread's next intercepted call), the report comes
//     without frames and says why (BlockingReport::stack_missing).
//     Names come from the binary's symbol table: a stripped binary shows
//     addresses, and static functions need the symbols kept.
//   * on_blocking gets the report by reference, valid during the call only
//     (copy what you keep). It runs on the monitor thread, one report at a
//     time, while
//     the green thread may still be stuck: keep it short, do not block in
//     it, and call nothing of green that waits (get(), join(), a sync/ wait,
//     shutdown()); an exception it throws is dropped with a line on stderr.
//     The runtime's deadlock check (LoopExit, above) shares the thread and
//     waits meanwhile.
//   * Off (the default): no signal handler, no thread, nothing sampled.
//     On: the monitor thread wakes every max_blocking_time/4 and reads a
//     few counters per worker; the workers do nothing more than when off
//     (the scheduling tick it reads is the switch count they keep anyway,
//     plus a count of yields that found nothing else to run: such a yield
//     is a scheduling point too, and is never reported as a stall).
//   * GREEN_MAX_BLOCKING_MS=<n>, a whole number of milliseconds from 1 to
//     3600000, turns the detector on with that threshold for every runtime
//     whose options leave max_blocking_time at zero (a value in the options
//     wins). Empty counts as unset. Anything else (0, a sign, a unit, spaces,
//     a fraction, too large) is reported on stderr, once per process and
//     value, naming the variable and the value, and the detector stays off:
//     a bad setting never stops the program.
//
// Memory after a burst: free stacks beyond the working set go back to the
// system. Every `trim_interval` (1 s by default) a worker that runs out of
// work gives back half of the free stacks that sat unused in the shared pool
// through the whole last interval (all of them once fewer than 64 are
// left), and after a pass has given many back, calls malloc_trim(0) so the
// heap those green threads freed goes back too. An idle runtime with nothing
// cached is not woken for it; a busy one does this when it next runs out of
// work. Each worker also keeps up to 64 free stacks of its own, never
// trimmed. The policy in detail is at the top of scheduler/src/stack.hpp.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "green/greenlet.hpp"

namespace green {

namespace detail {
class RuntimeCore;
}

// What the blocking detector reports (see "Blocking detector" above).
struct BlockingReport {
  unsigned worker = 0;                        // the stuck worker's index
  std::uint64_t green_thread_id = 0;          // the green thread it runs
  std::string name;                           // its name ("" if unnamed)
  std::chrono::nanoseconds stalled_for{0};    // without a switch, at least
  std::chrono::milliseconds threshold{0};     // max_blocking_time in effect
  // The green thread's stack at the report, innermost first, one
  // "function+0xoffset" (demangled) or bare address per frame; empty when
  // it could not be taken, and then stack_missing says why.
  std::vector<std::string> frames;
  std::string stack_missing;
  // The report as printed on stderr: a first line, then one per frame.
  std::string to_string() const;
};

// A threshold for those who just want the blocking detector on.
inline constexpr std::chrono::milliseconds kDefaultMaxBlockingTime{100};

struct RuntimeOptions {
  unsigned workers = 0;                 // 0 = std::thread::hardware_concurrency()
  std::size_t stack_size = 256 * 1024;  // default stack per green thread, bytes
  // How often idle workers give unused cached stacks (and free heap) back
  // to the system (see above); zero: never.
  std::chrono::milliseconds trim_interval{1000};
  // A signal (SIGQUIT, say) on which dump() is printed to stderr, as the JVM
  // does on SIGQUIT; 0: none. The runtime installs a handler for it
  // (replacing any other) that only writes to a pipe; a plain thread of the
  // library's reads it and prints, so the dump comes even while every
  // worker is stuck in a green thread that never yields. Several runtimes
  // may share a signal: each is dumped. Throws Error for a signal that
  // cannot be caught. The handler stays installed after the runtime ends
  // (a signal then prints nothing).
  int dump_on_signal = 0;
  // Per green thread run time and switch count in stats(): off by default;
  // on, each switch reads the CPU's time-stamp counter and books both
  // (callgrind: about 14 more instructions per switch, +3% of a one-worker
  // hand-off's instructions; off, one branch: docs/DESIGN.md section 12a).
  bool green_thread_stats = false;
  // The blocking detector (see above): zero leaves it off unless
  // GREEN_MAX_BLOCKING_MS turns it on; kDefaultMaxBlockingTime (100 ms) is
  // a sensible value. Throws Error when negative.
  std::chrono::milliseconds max_blocking_time{0};
  // Where its reports go: called on the monitor thread, once per stall (see
  // above for what it may do). Empty: each report is written to stderr.
  // Setting it does not turn the detector on.
  std::function<void(const BlockingReport&)> on_blocking{};
};

// Runtime::stats(): counters summed on read. Each worker writes its own
// (relaxed) and nobody else's, so counting shares no cache line between
// workers; a read is a consistent-enough snapshot, not an atomic one.
struct WorkerStats {
  std::uint64_t green_threads_run = 0;   // switches into a green thread
  std::uint64_t steals = 0;              // successful steals from a peer's queue
  std::uint64_t stolen = 0;              // green threads those steals took
  std::uint64_t hub_polls = 0;           // polls of its own or a busy peer's hub
  std::uint64_t parks = 0;               // times it went to sleep with nothing to do
  std::uint64_t cross_worker_wakes = 0;  // green threads it woke or spawned onto another worker
  std::uint64_t timers_fired = 0;        // timers that came due here
};

struct GreenThreadStats {
  std::uint64_t id = 0;
  std::string name;
  std::chrono::nanoseconds run_time{0};  // with green_thread_stats; else 0
  std::uint64_t switches = 0;            // times switched in; with green_thread_stats
  // Bytes of its stack ever touched (resident pages, from the top), for a
  // parked green thread with a guarded stack of its own; 0 where not known
  // (running, not started, a slab stack). A reused stack also counts what
  // earlier green threads touched.
  std::size_t stack_high_water = 0;
};

struct RuntimeStats {
  std::vector<WorkerStats> workers;             // by worker index
  std::vector<GreenThreadStats> green_threads;  // every live one, by id
  WorkerStats total() const;                    // the workers' sum
  std::string to_string() const;                // a table, for logs
};

class Runtime {
 public:
  Runtime();
  explicit Runtime(const RuntimeOptions& options);  // throws Error on bad options
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Runs fn() as a green thread and blocks the calling plain thread until it
  // ends; returns its result or rethrows its exception. Other green threads
  // it spawned keep running. Throws Error if called from a green thread.
  template <class F>
  [[gnu::always_inline]] decltype(auto) run(F&& fn) {
    using R = std::invoke_result_t<std::decay_t<F>>;
    auto g = spawn(SpawnOptions{.name = "main"}, std::forward<F>(fn));
    if constexpr (std::is_void_v<R>) {
      g.get();
    } else {
      return R(g.get());
    }
  }

  // Spawns fn(args...) from any thread (see green::spawn). What it spawns
  // is never a member of a green::Nursery (it is always `detached`).
  template <class F, class... Args>
    requires detail::Spawnable<F, Args...>
  [[gnu::always_inline]] auto spawn(F&& fn, Args&&... args) {
    return detail::spawn_on(core(), SpawnOptions{.detached = true}, detail::Deadline{},
                            std::forward<F>(fn), std::forward<Args>(args)...);
  }
  template <class F, class... Args>
  [[gnu::always_inline]] auto spawn(const SpawnOptions& opts, F&& fn, Args&&... args) {
    SpawnOptions detached = opts;
    detached.detached = true;
    return detail::spawn_on(core(), detached, detail::Deadline{}, std::forward<F>(fn),
                            std::forward<Args>(args)...);
  }
  template <class F, class... Args>
  [[gnu::always_inline]] auto spawn_later(std::chrono::steady_clock::duration delay, F&& fn, Args&&... args) {
    return detail::spawn_on(core(), SpawnOptions{.detached = true}, detail::deadline_after(delay),
                            std::forward<F>(fn), std::forward<Args>(args)...);
  }

  // Kills every green thread and stops the workers (see above). Idempotent.
  void shutdown();

  unsigned workers() const noexcept;
  // Green threads spawned and not yet finished. A green thread counts until
  // its links have run, which is a moment after join() on it returns.
  std::size_t live_green_threads() const noexcept;
  // Green threads switched to on worker i so far (for balance checks).
  std::uint64_t switches_on(unsigned worker) const;
  // Stacks handed out by the pool: bound to green threads or cached by a
  // worker for reuse. 0 after shutdown.
  std::size_t stacks_in_use() const noexcept;
  // Green threads holding a stack right now (started and not ended); a
  // racy snapshot, for monitoring.
  std::size_t green_threads_with_stack() const noexcept;
  // Free stacks in the shared pool that still hold memory: what the next
  // trims may give back (a worker's own cache of up to 64 is not counted).
  std::size_t stacks_cached() const noexcept;

  // Every live green thread, by id: a first line with its id, name and state
  // ("not started", "running on worker 1", "runnable", "ending", or
  // "parked: <wait>", e.g. "parked: Queue.get"), then indented details:
  // what it waits on (a primitive and its address, "join of green thread 7
  // (name)", "fd 12", a Lock and the green thread holding it), whether a
  // timer will end the wait and when, how long it has been parked (at least:
  // counted from the first dump or deadlock check that saw this wait), the
  // green thread that spawned it and where ("spawned by green thread 3 at
  // serve(Socket)+0x5a": the function that called spawn, by its symbol and
  // offset; a plain thread's spawn says "spawned at ..."), and the Locks it
  // holds that others want. The spawn site is a code address recorded by
  // the inlined spawn call, not a std::source_location: spawn's argument
  // pack leaves no room for a defaulted location parameter. Names need the
  // symbol table (a stripped binary shows addresses); functions in
  // anonymous namespaces show as such.
  // Each parked green thread's stack follows ("stack:", one frame a line,
  // innermost first, at most 32), walked from the registers it saved when
  // it parked. The walk holds that one green thread still: were it woken
  // meanwhile, whoever wakes it (a green thread, a plain thread, a timer or
  // fd on a worker) waits the few microseconds until the walk ends before
  // it becomes runnable. Nothing else stops. Stacks of green threads that are
  // running or runnable are not shown (they change as they are read; the
  // blocking detector shows a stuck one's), nor of one that wakes between
  // being seen parked and being walked ("stack not walked: it woke during
  // the dump"), nor beyond the first 1000 parked ones in a dump.
  // A snapshot taken without stopping the runtime, so a green thread that
  // moves meanwhile is shown as it was; safe to call from any thread at any
  // time, including while every worker is stuck. It costs microseconds per
  // green thread (tens for a stack, more the first time a frame's function
  // is named): for diagnosis, not for a hot loop.
  std::string dump() const;

  // Counters per worker and per live green thread (see RuntimeStats); any
  // thread, any time. Walks the live green threads (and asks the kernel
  // which stack pages are resident for the parked ones): for monitoring,
  // not for a hot loop.
  RuntimeStats stats() const;

  // The blocking detector's threshold in effect: the option, or
  // GREEN_MAX_BLOCKING_MS's value where the option was zero; zero when off.
  std::chrono::milliseconds max_blocking_time() const noexcept;

  // A possible waker the runtime cannot see (see "Deadlock report" above):
  // while any KeepAlive of this runtime lives, no wait on it ends in
  // LoopExit. Movable, not copyable; release it (destroy or reset()) when
  // its thread will no longer feed the runtime's green threads. It must not
  // outlive the Runtime. Thread-safe: take and drop it on any thread.
  class KeepAlive {
   public:
    KeepAlive() noexcept = default;
    KeepAlive(KeepAlive&& other) noexcept : core_(std::exchange(other.core_, nullptr)) {}
    KeepAlive& operator=(KeepAlive&& other) noexcept;
    ~KeepAlive();
    void reset() noexcept;

   private:
    friend class Runtime;
    explicit KeepAlive(detail::RuntimeCore* core) noexcept;
    detail::RuntimeCore* core_ = nullptr;
  };
  KeepAlive keep_alive() const;

  detail::RuntimeCore* core() const;

 private:
  std::unique_ptr<detail::RuntimeCore> core_;
};

}  // namespace green
