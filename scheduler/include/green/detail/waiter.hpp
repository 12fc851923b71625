// green/detail/waiter.hpp — a parked party as wakers see it, and wait lists.
//
// See park.hpp for the protocol. This header has no dependency on Fiber so
// that a Fiber can embed the list of green threads joining it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace green::detail {

class Fiber;
enum class WakeReason : std::uint8_t { none, notified, timed_out, interrupted };

// Parking state of a plain OS thread (one per thread, thread_local).
struct ThreadParker {
  std::atomic<std::uint64_t> park_word{0};
  std::uint64_t park_seq = 0;
  std::atomic<std::uint32_t> futex{0};
  WakeReason wake_reason = WakeReason::none;
};

// The tags of Waiter::object (its low two bits; the objects are aligned).
struct WaitObject {
  static constexpr std::uintptr_t kPlain = 0;  // a primitive's wait list, at this address
  static constexpr std::uintptr_t kHeld = 1;   // a HeldBy word of a primitive with a holder
  static constexpr std::uintptr_t kFd = 2;     // an fd number, shifted left by 2
  static constexpr std::uintptr_t kMask = 3;
  static std::uintptr_t plain(const void* p) noexcept { return reinterpret_cast<std::uintptr_t>(p); }
  static std::uintptr_t held(const void* p) noexcept { return reinterpret_cast<std::uintptr_t>(p) | kHeld; }
  static std::uintptr_t fd(int fd) noexcept { return (static_cast<std::uintptr_t>(fd) << 2) | kFd; }
};

// Who holds a Lock, for Runtime::dump(): the address of a frame of the
// green thread (or plain thread) that took it last, written at every
// acquisition with one relaxed store (no call, no thread-local read); the
// dump finds the green thread whose stack holds that address.
struct HeldBy {
  std::atomic<std::uintptr_t> frame{0};
  void set(const void* f) noexcept { frame.store(reinterpret_cast<std::uintptr_t>(f), std::memory_order_relaxed); }
};

struct Waiter {
  // Intrusive links for the primitive's wait list; touched under its lock.
  Waiter* next = nullptr;
  Waiter* prev = nullptr;
  bool linked = false;
  // Set by the waiting party before parking when something outside the
  // runtime ends the wait (the kernel's fd readiness, a pool thread's
  // offload job): the deadlock check (LoopExit) never counts such a wait as
  // stuck.
  bool external = false;
  // What the party waits on, for Runtime::dump(): a tagged word (see
  // WaitObject); 0 when there is nothing to name. Set before parking.
  std::uintptr_t object = 0;
  // Exactly one of these is set by park().
  Fiber* fiber = nullptr;
  ThreadParker* thread = nullptr;
  std::uint64_t seq = 0;
  // Free for the primitive: the item handed over, a requested count...
  void* payload = nullptr;
  std::uintptr_t tag = 0;
};

// Wakes the party parked through `w`. True if this call won the wake; false
// if it was already woken, timed out or interrupted. Never blocks.
// Call it while holding the lock that guards the wait list `w` is (or was)
// on: a waiter that timed out takes that lock to unlink itself before its
// stack frame (and the Waiter in it) goes away, so the lock keeps `w` alive.
bool wake(Waiter& w) noexcept;

// An intrusive FIFO of Waiters; the owner provides the locking.
class WaitList {
 public:
  bool empty() const noexcept { return head_ == nullptr; }
  Waiter* front() const noexcept { return head_; }
  void push_back(Waiter& w) noexcept { link_between(w, tail_, nullptr); }
  void push_front(Waiter& w) noexcept { link_between(w, nullptr, head_); }
  void remove(Waiter& w) noexcept {
    if (!w.linked) return;
    if (w.prev) w.prev->next = w.next; else head_ = w.next;
    if (w.next) w.next->prev = w.prev; else tail_ = w.prev;
    w.next = w.prev = nullptr;
    w.linked = false;
  }
  Waiter* pop_front() noexcept {
    Waiter* w = head_;
    if (w) remove(*w);
    return w;
  }
  // Wakes waiters front to back until one accepts; returns it or null.
  Waiter* wake_one() noexcept {
    while (Waiter* w = pop_front())
      if (wake(*w)) return w;
    return nullptr;
  }
  // Wakes every waiter; returns how many accepted.
  std::size_t wake_all() noexcept {
    std::size_t n = 0;
    while (Waiter* w = pop_front()) n += wake(*w) ? 1 : 0;
    return n;
  }

 private:
  void link_between(Waiter& w, Waiter* prev, Waiter* next) noexcept {
    w.prev = prev;
    w.next = next;
    (prev ? prev->next : head_) = &w;
    (next ? next->prev : tail_) = &w;
    w.linked = true;
  }

  Waiter* head_ = nullptr;
  Waiter* tail_ = nullptr;
};

}  // namespace green::detail
