// monitor.cpp — the monitor thread and the deadlock check (the rules are in
// monitor.hpp).
#include "monitor.hpp"

#include <algorithm>

#include "blocking.hpp"
#include "fiber_internal.hpp"
#include "green/detail/park.hpp"
#include "green/errors.hpp"
#include "runtime_core.hpp"
#include "worker.hpp"

namespace green::detail {

namespace {

// Process-wide state. Leaked on purpose: a plain thread's thread_local
// presence detaches (and kicks) while the process exits.
struct Process {
  std::atomic<int> attached_threads{0};
  std::atomic<int> jobs{0};
  std::atomic<int> watchers{0};  // victims in every runtime
  std::mutex mu;                  // guards monitors
  std::vector<Monitor*> monitors;
};

Process& process() {
  static auto* p = new Process();
  return *p;
}

}  // namespace

void plain_thread_attached() noexcept { process().attached_threads.fetch_add(1, std::memory_order_seq_cst); }

void plain_thread_detached() noexcept {
  process().attached_threads.fetch_sub(1, std::memory_order_seq_cst);
  Monitor::kick_all_watching();
}

void offload_job_started() noexcept { process().jobs.fetch_add(1, std::memory_order_seq_cst); }

void offload_job_finished() noexcept {
  if (process().jobs.fetch_sub(1, std::memory_order_seq_cst) == 1) Monitor::kick_all_watching();
}

Monitor::Monitor(RuntimeCore& rt) : rt_(rt) {
  std::lock_guard g(process().mu);
  process().monitors.push_back(this);
}

Monitor::~Monitor() {
  stop();
  std::lock_guard g(process().mu);
  auto& all = process().monitors;
  all.erase(std::remove(all.begin(), all.end(), this), all.end());
}

void Monitor::stop() noexcept {
  std::thread t;
  {
    std::lock_guard g(mu_);
    stop_ = true;
    t = std::move(thread_);
  }
  cv_.notify_all();
  if (t.joinable()) t.join();
}

bool Monitor::anyone_watching() noexcept {
  return process().watchers.load(std::memory_order_relaxed) > 0;
}

void Monitor::kick() noexcept {
  if (kicked_.exchange(true, std::memory_order_acq_rel)) return;
  // Taking the lock orders this kick after the monitor's look at kicked_
  // under it, so the notify cannot fall between its look and its wait.
  { std::lock_guard g(mu_); }
  cv_.notify_one();
}

void Monitor::kick_all_watching() noexcept {
  if (!anyone_watching()) return;
  std::lock_guard g(process().mu);
  for (Monitor* m : process().monitors)
    if (m->victim_count_.load(std::memory_order_relaxed) > 0) m->kick();
}

void Monitor::unhold() noexcept {
  if (holds_.fetch_sub(1, std::memory_order_seq_cst) == 1 && victim_count_.load(std::memory_order_relaxed) > 0)
    kick();
}

void Monitor::worker_sleeping() noexcept {
  for (unsigned i = 0; i < rt_.worker_count(); ++i)
    if (!rt_.worker(i).asleep()) return;
  // Every worker of this runtime sleeps: a check is due here, and in any
  // other runtime whose green threads this one's might have woken.
  kick_all_watching();
}

void Monitor::ensure_started() {
  std::lock_guard g(mu_);
  if (stop_ || thread_.joinable()) return;
  thread_ = std::thread([this] { loop(); });
}

void Monitor::watch_blocking(std::chrono::milliseconds threshold,
                             std::function<void(const BlockingReport&)> on_report) {
  {
    std::lock_guard g(mu_);
    if (blocking_ || thread_.joinable()) return;  // the thread reads blocking_ unlocked
    blocking_ = std::make_unique<BlockingDetector>(rt_, threshold, std::move(on_report));
  }
  ensure_started();
}

void Monitor::loop() {
  std::unique_lock lk(mu_);
  const auto woken = [&] { return stop_ || kicked_.load(std::memory_order_acquire); };
  // The blocking detector's next look; without it the thread sleeps until
  // a kick (no periodic wake).
  Clock::time_point next_sample = blocking_ ? Clock::now() + blocking_->period() : Clock::time_point::max();
  for (;;) {
    if (blocking_) {
      cv_.wait_until(lk, next_sample, woken);
    } else {
      cv_.wait(lk, woken);
    }
    wakeups_.fetch_add(1, std::memory_order_release);
    if (stop_) return;
    if (blocking_ && Clock::now() >= next_sample) {
      lk.unlock();
      blocking_->sample();
      lk.lock();
      next_sample = Clock::now() + blocking_->period();
      if (stop_) return;
    }
    if (!kicked_.load(std::memory_order_acquire)) continue;
    kicked_.store(false, std::memory_order_release);
    lk.unlock();
    check();
    lk.lock();
    // Pacing: a server that goes idle thousands of times a second costs at
    // most one check every kPace (the detector's next look waits as long).
    if (cv_.wait_for(lk, kPace, [&] { return stop_; })) return;
  }
}

// ---------------------------------------------------------------------------
// The check

bool Monitor::workers_asleep(std::vector<std::uint64_t>& epochs) const noexcept {
  epochs.resize(rt_.worker_count());
  for (unsigned i = 0; i < rt_.worker_count(); ++i) {
    const Worker& w = rt_.worker(i);
    if (!w.asleep()) return false;
    epochs[i] = w.idle_epoch();
  }
  return true;
}

bool Monitor::outside_wakers() const {
  if (holds_.load(std::memory_order_seq_cst) > 0) return true;
  Process& p = process();
  if (p.attached_threads.load(std::memory_order_seq_cst) > 0 || p.jobs.load(std::memory_order_seq_cst) > 0)
    return true;
  std::lock_guard g(p.mu);
  for (const Monitor* m : p.monitors)
    if (m != this && m->rt_.live() > 0) return true;
  return false;
}

Monitor::Look Monitor::look(Snapshot& s) {
  if (rt_.stopping()) return Look::busy;
  s.parked.clear();
  if (!workers_asleep(s.epochs)) return Look::busy;
  bool stuck = true;
  rt_.for_each_live([&](Fiber* f) {
    if (!stuck) return;
    if (f->status.load(std::memory_order_acquire) != Fiber::kStarted) {
      stuck = false;  // not started yet (runnable), or ending (running)
      return;
    }
    const std::uint64_t word = f->park_word.load(std::memory_order_acquire);
    // acquire: the second read of the park word stays after this one.
    const std::int64_t timer = f->park_timer.load(std::memory_order_acquire);
    if (!(word & 1) || timer != Fiber::kNoParkTimer || f->park_word.load(std::memory_order_relaxed) != word) {
      stuck = false;
      return;
    }
    s.parked.emplace_back(f->id, word);
    // Stamp "parked since" as a dump would, so the report's durations
    // count from the first look rather than from the report.
    if (f->seen_park_word.load(std::memory_order_relaxed) != word) {
      f->seen_since.store(Clock::now().time_since_epoch().count(), std::memory_order_relaxed);
      f->seen_park_word.store(word, std::memory_order_relaxed);
    }
  });
  if (!stuck) return Look::busy;
  std::vector<std::uint64_t> after;
  if (!workers_asleep(after) || after != s.epochs) return Look::busy;
  if (outside_wakers()) return Look::held;
  std::sort(s.parked.begin(), s.parked.end());
  return Look::stuck;
}

void Monitor::check() {
  if (victim_count_.load(std::memory_order_acquire) == 0) return;
  Snapshot first;
  Look verdict = look(first);
  if (verdict == Look::stuck) {
    // Settle: a state that lasts kSettle with nothing changed is no passing
    // moment (and gives a plain thread that just left a green wait time to
    // act, beyond what the rule requires).
    std::unique_lock lk(mu_);
    if (cv_.wait_for(lk, kSettle, [&] { return stop_; })) return;
    lk.unlock();
    Snapshot second;
    verdict = look(second);
    if (verdict == Look::stuck && second == first) deliver(rt_.dump());
  }
  if (verdict == Look::held) held_off_.fetch_add(1, std::memory_order_release);
  checks_.fetch_add(1, std::memory_order_release);
}

void Monitor::deliver(const std::string& dump) {
  std::lock_guard g(victims_mu_);
  for (Victim* v = victims_; v; v = v->next) {
    std::lock_guard fl(v->target->lock);
    if (!v->waiter.linked) continue;  // already woken by the target's end
    v->target->joiners.remove(v->waiter);
    v->verdict = "green::LoopExit: this operation would block forever: joining green thread " +
                 std::to_string(v->target->id) + " (" + (v->target->name.empty() ? "unnamed" : v->target->name) +
                 "), and every green thread of the runtime is parked with nothing left that could wake one\n" +
                 dump;
    wake(v->waiter);
  }
}

// ---------------------------------------------------------------------------
// Victims

void Monitor::remove(Victim& v) noexcept {
  std::lock_guard g(victims_mu_);
  for (Victim** p = &victims_; *p; p = &(*p)->next) {
    if (*p == &v) {
      *p = v.next;
      break;
    }
  }
  victim_count_.fetch_sub(1, std::memory_order_relaxed);
  process().watchers.fetch_sub(1, std::memory_order_relaxed);
}

bool Monitor::join_watched(Fiber& target) {
  ensure_started();
  Victim v{&target, {}, {}, nullptr};
  {
    std::lock_guard g(victims_mu_);
    v.next = victims_;
    victims_ = &v;
    victim_count_.fetch_add(1, std::memory_order_relaxed);
    process().watchers.fetch_add(1, std::memory_order_relaxed);
  }
  enter_watched_join();
  struct Leave {
    Monitor* m;
    Victim& v;
    ~Leave() {
      leave_watched_join();
      m->remove(v);
    }
  } leave{this, v};
  park_unlocked(
      target.lock, v.waiter, kNoDeadline, "join",
      [&](Waiter& me) {
        if (target.done()) return false;
        target.joiners.push_back(me);
        kick();  // the runtime may have been asleep since before we came
        return true;
      },
      [&](Waiter& me) { target.joiners.remove(me); });
  if (!v.verdict.empty()) throw LoopExit(std::move(v.verdict));
  return target.done();
}

}  // namespace green::detail
