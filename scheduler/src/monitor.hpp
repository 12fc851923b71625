// monitor.hpp — a runtime's monitor thread and the deadlock check behind
// green::LoopExit (gevent's "this operation would block forever").
//
// WHO IS WATCHED. A plain thread that joins a green thread without a
// deadline (Greenlet::get()/join(), Runtime::run) registers as a victim
// (join_watched). Only victims are ever told: green threads that join each
// other simply stay parked, as in gevent, where only the hub's switch back
// into the main greenlet raises LoopExit.
//
// THE VERDICT. The runtime is deadlocked when, in one snapshot taken twice
// kSettle apart with nothing changed in between:
//   1. every worker sleeps in its hub (parked_), and no worker has woken
//      since the snapshot began (its idle epoch is unchanged): so no green
//      thread ran during the snapshot;
//   2. every live green thread has started and is parked (odd park word),
//      with no timer (its own deadline or a Timeout scope's) and in a wait
//      that only a green thread can end (Waiter::external clear: not an fd,
//      not an offload/blocking job); its park word is the same in both
//      snapshots (read twice around the wait's attributes, seqlock style);
//   3. nothing outside the runtime may wake one: no KeepAlive of this
//      runtime is held, no offload/blocking job runs anywhere in the
//      process, no plain thread is attached (below), and no other runtime in
//      the process has live green threads.
// A green thread between a wake and its queue has an even park word (the
// wake's CAS comes first), as has one running, queued, stolen or being
// published (the park word goes odd only in enter_park, after the switch);
// a thief or a hub poll in flight runs on a worker, which is then not
// asleep. So a deadlock is never reported while a green thread can run.
//
// PLAIN THREADS. A plain thread is attached (counts as a possible waker)
// from its first park in any green wait (Queue::get, Event::wait, a Lock, a
// timed get()...) until it exits; it is detached while it sits in a watched
// join, and a pool thread is detached after each job (jobs are counted on
// their own). A plain thread that never waits on green but feeds it
// (Event::set, Queue::put, spawn, kill from a thread of its own) is
// invisible, and must hold a Runtime::KeepAlive while it may still do so.
//
// WHEN. The check runs on the monitor thread, woken (kick) when the last
// worker goes to sleep while somebody watches, when a victim registers,
// when a KeepAlive is released, when the last job in the process ends and
// when an attached plain thread detaches. A kick costs the kicker an atomic
// exchange and, once per check, a mutex and a notify; nothing on the hot
// paths beyond one relaxed store per park (Fiber::park_timer) and a relaxed
// load per worker sleep. The monitor sleeps on a condition variable between
// kicks and paces itself to one check every kPace.
//
// THE BLOCKING DETECTOR (blocking.hpp) shares the thread when it is on:
// the thread then starts with the runtime and also wakes every
// BlockingDetector::period() to look at the workers. Off, it adds no wake:
// the thread sleeps until a kick, as above (an idle runtime stays idle).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "green/detail/fiber.hpp"
#include "green/runtime.hpp"

namespace green::detail {

class RuntimeCore;
class BlockingDetector;

// Process-wide possible wakers outside every runtime (rule 3 above).
void plain_thread_attached() noexcept;
void plain_thread_detached() noexcept;
void offload_job_started() noexcept;
void offload_job_finished() noexcept;

class Monitor {
 public:
  explicit Monitor(RuntimeCore& rt);
  ~Monitor();
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;

  // Stops the thread; before the runtime's workers go away.
  void stop() noexcept;

  // Turns the blocking detector on (once, after the workers started):
  // starts the thread, which then also wakes every period to sample.
  void watch_blocking(std::chrono::milliseconds threshold, std::function<void(const BlockingReport&)> on_report);
  // Null when the detector is off.
  const BlockingDetector* blocking() const noexcept { return blocking_.get(); }

  // A plain thread's join of `target` without a deadline: returns once it
  // is done, or throws LoopExit when the runtime is found deadlocked.
  bool join_watched(Fiber& target);

  // Runtime::KeepAlive.
  void hold() noexcept { holds_.fetch_add(1, std::memory_order_seq_cst); }
  void unhold() noexcept;

  // Whether any plain thread in the process waits in a watched join: the
  // only case in which a sleeping worker has to tell a monitor.
  static bool anyone_watching() noexcept;
  // Called by a worker about to sleep in its hub while anyone_watching():
  // kicks the monitors if every worker of this runtime sleeps.
  void worker_sleeping() noexcept;

  // For tests and monitoring: checks run, and snapshots in which every green
  // thread was stuck but something outside the runtime might still wake one
  // (a KeepAlive, a job, an attached plain thread, another runtime).
  std::uint64_t checks() const noexcept { return checks_.load(std::memory_order_acquire); }
  std::uint64_t held_off() const noexcept { return held_off_.load(std::memory_order_acquire); }
  // Times the thread woke (a kick, a sample, pacing, a spurious wake).
  std::uint64_t wakeups() const noexcept { return wakeups_.load(std::memory_order_acquire); }

 private:
  struct Victim {
    Fiber* target;
    Waiter waiter;
    std::string verdict;  // set under target->lock before the wake
    Victim* next = nullptr;
  };
  struct Snapshot {
    std::vector<std::uint64_t> epochs;                          // per worker
    std::vector<std::pair<std::uint64_t, std::uint64_t>> parked;  // (id, park word)
    bool operator==(const Snapshot&) const = default;
  };
  enum class Look { busy, held, stuck };

  void kick() noexcept;
  static void kick_all_watching() noexcept;
  friend void plain_thread_detached() noexcept;
  friend void offload_job_finished() noexcept;
  void ensure_started();
  void loop();
  void check();
  Look look(Snapshot& s);
  bool workers_asleep(std::vector<std::uint64_t>& epochs) const noexcept;
  bool outside_wakers() const;
  void deliver(const std::string& report);
  void remove(Victim& v) noexcept;

  static constexpr auto kSettle = std::chrono::milliseconds(10);
  static constexpr auto kPace = std::chrono::milliseconds(5);

  RuntimeCore& rt_;
  std::atomic<int> holds_{0};
  std::atomic<bool> kicked_{false};
  std::atomic<std::uint64_t> checks_{0}, held_off_{0}, wakeups_{0};
  std::unique_ptr<BlockingDetector> blocking_;  // set before the thread starts
  std::mutex mu_;  // with cv_: the monitor's sleep; guards stop_ and thread_
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
  std::mutex victims_mu_;  // then a target's Fiber::lock, never the reverse
  Victim* victims_ = nullptr;
  std::atomic<int> victim_count_{0};
};

}  // namespace green::detail
