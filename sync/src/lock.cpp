// lock.cpp — Lock (a barging mutex with a hand-off for starving waiters)
// and RLock on top of it.
//
// Lock's state word holds three bits:
//   kLocked   somebody holds the lock;
//   kWaiters  the wait list is not empty (so unlock() must look at it);
//   kWoken    one waiter has been woken to compete and has not yet run, so
//             unlock() need not wake another (no herd of woken waiters).
// kLocked is taken by a compare-and-swap from any state without it: that is
// the fast path, and it lets a running green thread take a free lock ahead of
// a woken waiter still on its way (barging, as Go's sync.Mutex in normal
// mode). kWaiters changes only under wait_lock_, together with the list, so
// a waiter that set it is on the list by the time an unlocker can take
// wait_lock_ (park_on() releases that lock only once the waiter is parked):
// the fast unlock (a CAS from exactly kLocked to 0) fails whenever somebody
// waits, and the slow one always finds them. No wake-up is lost.
//
// Starvation: each waiter records when it first queued (Waiter::tag). An
// unlock that finds the front waiter older than kStarvation hands the lock
// over without releasing it (kLocked stays set, the waiter's `handed` flag
// is set before its wake); the waiter returns owning the lock.
//
// Kill: a waiter interrupted while parked never competes: its wake() fails
// and the unlocker moves on to the next waiter. One woken (or handed the
// lock) whose kill arrives before it runs gives the wake, or the lock, back.
#include "green/lock.hpp"

#include <chrono>

namespace green {

namespace {

constexpr auto kStarvation = std::chrono::milliseconds(1);
// Spinning before parking: a few short rounds, only when another worker may
// be running the holder and this worker has nothing else queued (see
// spinning_may_pay()). A park and wake costs a microsecond or more; the
// holder of a hot lock usually releases it within a few dozen nanoseconds.
constexpr int kSpinRounds = 4;
constexpr int kPausesPerRound = 30;

std::uintptr_t now_ticks() noexcept {
  return static_cast<std::uintptr_t>(detail::Clock::now().time_since_epoch().count());
}

}  // namespace

namespace detail {
std::uint64_t current_owner_id() noexcept {
  if (const std::uint64_t id = current_id()) return id;
  // Plain threads: a process-wide number per thread, high bit set.
  static std::atomic<std::uint64_t> next_thread{1};
  thread_local const std::uint64_t thread_id =
      (std::uint64_t{1} << 63) | next_thread.fetch_add(1, std::memory_order_relaxed);
  return thread_id;
}
}  // namespace detail

bool Lock::try_lock_for(Clock::duration timeout) {
  if (try_lock()) return true;
  if (timeout <= Clock::duration::zero()) return false;
  if (!lock_slow(detail::deadline_after(timeout))) return false;
  held_by_.set(__builtin_frame_address(0));
  return true;
}

bool Lock::lock_slow(detail::Deadline deadline) {
  bool woken = false;  // we carry kWoken: unlock() woke us to compete
  std::uintptr_t first_queued = 0;
  int spins = detail::spinning_may_pay() ? kSpinRounds : 0;
  for (;;) {
    std::uint32_t s = state_.load(std::memory_order_relaxed);
    while (!(s & kLocked)) {
      const std::uint32_t taken = woken ? ((s | kLocked) & ~kWoken) : (s | kLocked);
      if (state_.compare_exchange_weak(s, taken, std::memory_order_acquire,
                                       std::memory_order_relaxed))
        return true;
    }
    if (spins > 0) {
      --spins;
      for (int i = 0; i < kPausesPerRound; ++i) __builtin_ia32_pause();
      continue;
    }

    std::unique_lock lk(wait_lock_);
    s = state_.load(std::memory_order_relaxed);
    bool queued = false;
    while (s & kLocked) {
      const std::uint32_t waiting = woken ? ((s | kWaiters) & ~kWoken) : (s | kWaiters);
      if (state_.compare_exchange_weak(s, waiting, std::memory_order_relaxed)) {
        queued = true;
        break;
      }
    }
    if (!queued) continue;  // freed meanwhile: compete again (lk unlocks)

    detail::Waiter w;
    bool handed = false;
    w.payload = &handed;
    if (!first_queued) first_queued = now_ticks();
    w.tag = first_queued;
    w.object = detail::WaitObject::held(&held_by_);
    // A waiter that lost the race after being woken goes back to the front:
    // it keeps its place in the queue.
    if (!detail::park_on(lk, waiters_, w, deadline, "Lock", woken)) return false;
    if (handed) {
      try {
        detail::throw_if_interrupted();
      } catch (...) {
        unlock();  // killed before it ran: the lock goes to the next one
        throw;
      }
      return true;
    }
    woken = true;
    try {
      detail::throw_if_interrupted();
    } catch (...) {
      pass_on_wake();
      throw;
    }
  }
}

void Lock::pass_on_wake() noexcept {
  std::lock_guard g(wait_lock_);
  std::uint32_t s = state_.load(std::memory_order_relaxed);
  while (!state_.compare_exchange_weak(s, s & ~kWoken, std::memory_order_relaxed)) {
  }
  s &= ~kWoken;
  if (s & kLocked) return;  // the holder's unlock() will wake somebody
  if (waiters_.empty()) return;
  state_.fetch_or(kWoken, std::memory_order_relaxed);
  if (!waiters_.wake_one()) {
    state_.fetch_and(waiters_.empty() ? ~(kWoken | kWaiters) : ~kWoken, std::memory_order_relaxed);
  }
}

void Lock::unlock_slow() {
  std::uint32_t s = state_.load(std::memory_order_relaxed);
  if (!(s & kLocked)) throw Error("green::Lock::unlock: the lock is not locked");
  // A woken waiter is already on its way (or nobody waits): release without
  // wait_lock_ or a look at the clock. The woken one competes; if it loses,
  // it queues again and that holder's unlock() wakes the next, so nobody is
  // left behind. A starving front waiter is served by the next unlock() that
  // has to wake somebody.
  while (!(s & kWaiters) || (s & kWoken)) {
    // release: publishes the critical section to the next holder.
    if (state_.compare_exchange_weak(s, s & ~kLocked, std::memory_order_release,
                                     std::memory_order_relaxed))
      return;
  }
  std::lock_guard g(wait_lock_);

  // A starving front waiter gets the lock itself: kLocked stays set.
  detail::Waiter* front = waiters_.front();
  if (front && now_ticks() - front->tag >
                   static_cast<std::uintptr_t>(
                       std::chrono::duration_cast<detail::Clock::duration>(kStarvation).count())) {
    while (detail::Waiter* w = waiters_.pop_front()) {
      bool* handed = static_cast<bool*>(w->payload);
      *handed = true;
      if (detail::wake(*w)) {
        if (waiters_.empty()) state_.fetch_and(~kWaiters, std::memory_order_relaxed);
        return;
      }
      *handed = false;
    }
  }

  // Release, and wake one waiter to compete unless one is already on its way.
  s = state_.load(std::memory_order_relaxed);
  bool wake_one;
  std::uint32_t released;
  do {
    wake_one = !waiters_.empty() && !(s & kWoken);
    released = s & ~kLocked;
    if (waiters_.empty()) released &= ~kWaiters;
    if (wake_one) released |= kWoken;
    // release: publishes the critical section to the next holder.
  } while (!state_.compare_exchange_weak(s, released, std::memory_order_release,
                                         std::memory_order_relaxed));
  if (!wake_one) return;
  if (!waiters_.wake_one()) {
    // Every waiter had timed out or been killed meanwhile.
    state_.fetch_and(waiters_.empty() ? ~(kWoken | kWaiters) : ~kWoken, std::memory_order_relaxed);
  }
}

// ---------------------------------------------------------------------------
// RLock

void RLock::lock() {
  const std::uint64_t me = detail::current_owner_id();
  if (owner_.load(std::memory_order_relaxed) == me) {
    ++count_;
    return;
  }
  inner_.lock();
  owner_.store(me, std::memory_order_relaxed);
  count_ = 1;
}

bool RLock::try_lock() {
  const std::uint64_t me = detail::current_owner_id();
  if (owner_.load(std::memory_order_relaxed) == me) {
    ++count_;
    return true;
  }
  if (!inner_.try_lock()) return false;
  owner_.store(me, std::memory_order_relaxed);
  count_ = 1;
  return true;
}

bool RLock::try_lock_for(Clock::duration timeout) {
  const std::uint64_t me = detail::current_owner_id();
  if (owner_.load(std::memory_order_relaxed) == me) {
    ++count_;
    return true;
  }
  if (!inner_.try_lock_for(timeout)) return false;
  owner_.store(me, std::memory_order_relaxed);
  count_ = 1;
  return true;
}

void RLock::unlock() {
  if (owner_.load(std::memory_order_relaxed) != detail::current_owner_id())
    throw Error(inner_.locked() ? "green::RLock::unlock: the caller does not own the lock"
                                : "green::RLock::unlock: the lock is not locked");
  if (--count_ > 0) return;
  owner_.store(0, std::memory_order_relaxed);
  inner_.unlock();
}

bool RLock::is_owned() const noexcept {
  return owner_.load(std::memory_order_relaxed) == detail::current_owner_id();
}

}  // namespace green
