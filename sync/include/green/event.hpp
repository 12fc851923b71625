// green/event.hpp — a flag that green threads wait on (gevent.event.Event).
//
//   green::Event ready;
//   green::spawn([&] { load_config(); ready.set(); });
//   ready.wait();                 // every waiter proceeds once it is set
//
// set() wakes every party waiting at that moment; they return true even if
// clear() follows at once (gevent: "set then clear wakes all"). Parties that
// call wait() while the flag is set return at once without blocking.
//
// Blocking. wait() suspends only the calling green thread; a plain OS thread
// blocks on a futex. It honours green::Timeout scopes and kill (throws
// TimeoutError / GreenletExit after leaving the wait list).
//
// Thread safety: any member from any green thread or plain thread. set()
// and clear() never block.
#pragma once

#include <atomic>

#include <mutex>

#include "green/current.hpp"
#include "green/detail/park_on.hpp"
#include "green/detail/wait_source.hpp"

namespace green {

class Event {
 public:
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  // Sets the flag and wakes every current waiter, without switching: the
  // caller runs on until it blocks or yields. Waiters woken on the caller's
  // worker then run in the order they started waiting (gevent's order);
  // waiters taken by other workers run there, in parallel.
  void set();
  // Resets the flag; later wait()s block until the next set().
  void clear() noexcept;
  bool is_set() const noexcept { return flag_.load(std::memory_order_acquire); }
  bool ready() const noexcept { return is_set(); }

  // Waits until the flag is set. Returns true.
  bool wait();
  // Waits at most `timeout`; returns whether the flag was set (true also
  // when a set() woke this waiter and a clear() has followed since).
  bool wait(Clock::duration timeout);

 private:
  template <class>
  friend struct detail::WaitSourceFor;  // green::wait() watches waiters_
  bool wait_until(detail::Deadline deadline);

  // acquire/release: what the setter wrote before set() is visible to a
  // party that sees the flag set.
  std::atomic<bool> flag_{false};
  detail::SpinLock lock_;  // guards waiters_ and changes of flag_
  detail::WaitList waiters_;
};

}  // namespace green

namespace green::detail {
// green::wait(): ready once set; set() wakes waiters_ with no hand-off.
template <>
struct WaitSourceFor<Event> {
  static void* address(Event& e) noexcept { return &e; }
  static bool ready(const void* e) { return static_cast<const Event*>(e)->is_set(); }
  static bool enlist(void* p, Waiter& w) {
    auto& e = *static_cast<Event*>(p);
    std::lock_guard g(e.lock_);
    if (e.flag_.load(std::memory_order_relaxed)) return false;
    e.waiters_.push_back(w);
    return true;
  }
  static void unlist(void* p, Waiter& w) noexcept {
    auto& e = *static_cast<Event*>(p);
    std::lock_guard g(e.lock_);
    e.waiters_.remove(w);
  }
  static constexpr WaitSourceOps ops{&ready, nullptr, &enlist, &unlist, /*external=*/false};
};
}  // namespace green::detail

