// run_queue.hpp — a worker's stealable queue of runnable green threads.
//
// A Chase–Lev work-stealing deque with one extra owner operation:
//
//   owner:   push_back / pop_back     newest first (depth-first spawning)
//            push_front               "run after everything queued" (yield)
//   thieves: steal                    oldest first, one item per CAS
//
// Who may call what is in the types: a WorkDeque is only storage, its
// operations are private, and they are reached through two handles:
// WorkDeque::Owner (one, held by the worker whose deque it is; not copyable)
// and WorkDeque::Stealer (any number, any thread). The Owner is a private
// member of its Worker, and Worker::place() (placement.cpp) is the only
// code that pushes through it.
//
// Why LIFO for the owner: a green thread that spawns children and joins them
// should see those children run before older, unrelated work, so a tree of
// spawns is walked depth-first and only its current path holds stacks
// (skynet 1M: tens of stacks alive instead of hundreds of thousands).
// Thieves take from the other end: the oldest entries are the largest pieces
// of work and the least likely to share a cache with the owner.
//
// Indices are 32-bit counters compared by signed difference, so they may
// wrap. `top` also carries a version in its high half that push_front bumps:
// without it a thief could read slot[t], stall while the slot is stolen and
// refilled by push_front, and then win its CAS on the recycled index (ABA).
//
// Memory orders follow Lê et al., "Correct and Efficient Work-Stealing for
// Weak Memory Models" (PPoPP 2013): the seq_cst fence in pop_back and steal is
// what makes the owner and a thief agree on who takes the last item.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "fence.hpp"

namespace green::detail {

class Fiber;

class WorkDeque {
 public:
  static constexpr std::uint32_t kCapacity = 1024;  // power of two
  class Owner;
  class Stealer;

  WorkDeque() {
    for (auto& s : slots_) s.store(nullptr, std::memory_order_relaxed);
  }
  WorkDeque(const WorkDeque&) = delete;
  WorkDeque& operator=(const WorkDeque&) = delete;

 private:
  friend class Owner;
  friend class Stealer;

  // Owner only. False when full (the caller overflows elsewhere).
  bool push_back(Fiber* f) noexcept {
    const std::uint32_t b = bottom_.load(std::memory_order_relaxed);
    const std::uint32_t t = index(top_.load(std::memory_order_acquire));
    if (b - t >= kCapacity) return false;
    slots_[b & kMask].store(f, std::memory_order_relaxed);
    // release: a thief that reads the new bottom also reads the slot.
    bottom_.store(b + 1, std::memory_order_release);
    return true;
  }

  // Owner only. Puts f where it will be taken last by the owner (and first
  // by a thief). False when full.
  bool push_front(Fiber* f) noexcept {
    std::uint64_t t = top_.load(std::memory_order_acquire);
    for (;;) {
      const std::uint32_t b = bottom_.load(std::memory_order_relaxed);
      if (b - index(t) >= kCapacity) return false;
      // Slot index(t)-1 is outside [top, bottom) so no thief may take it
      // until the CAS below publishes it.
      slots_[(index(t) - 1) & kMask].store(f, std::memory_order_relaxed);
      const std::uint64_t moved = pack(version(t) + 1, index(t) - 1);
      if (top_.compare_exchange_weak(t, moved, std::memory_order_seq_cst,
                                     std::memory_order_acquire))
        return true;
    }
  }

  // Owner only. Newest entry, or null.
  Fiber* pop_back() noexcept {
    const std::uint32_t b = bottom_.load(std::memory_order_relaxed) - 1;
    bottom_.store(b, std::memory_order_relaxed);
    // Orders our bottom store before reading top, pairing with the fence in
    // steal(): either the thief sees the smaller bottom or we see its top.
    full_fence();
    std::uint64_t t = top_.load(std::memory_order_relaxed);
    const std::int32_t size = static_cast<std::int32_t>(b - index(t));
    if (size < 0) {  // was empty
      bottom_.store(b + 1, std::memory_order_relaxed);
      return nullptr;
    }
    Fiber* f = slots_[b & kMask].load(std::memory_order_relaxed);
    if (size == 0) {  // the last item: race thieves for it through top
      if (!top_.compare_exchange_strong(t, pack(version(t), index(t) + 1),
                                        std::memory_order_seq_cst,
                                        std::memory_order_relaxed))
        f = nullptr;
      bottom_.store(b + 1, std::memory_order_relaxed);
    }
    return f;
  }

  // Any thread. Oldest entry, or null when empty or when it lost a race
  // (the caller simply moves on to another victim or tries again).
  Fiber* steal() noexcept {
    std::uint64_t t = top_.load(std::memory_order_acquire);
    full_fence();
    const std::uint32_t b = bottom_.load(std::memory_order_acquire);
    if (static_cast<std::int32_t>(b - index(t)) <= 0) return nullptr;
    Fiber* f = slots_[index(t) & kMask].load(std::memory_order_relaxed);
    if (!top_.compare_exchange_strong(t, pack(version(t), index(t) + 1),
                                      std::memory_order_seq_cst,
                                      std::memory_order_relaxed))
      return nullptr;
    return f;
  }

  // Any thread: the position of the oldest entry (it moves on when that
  // entry is taken, by the owner or a thief).
  std::uint32_t top_index() const noexcept { return index(top_.load(std::memory_order_relaxed)); }

  // Owner only: how many pushes minus pops at the owner's end (wraps).
  std::uint32_t bottom_index() const noexcept { return bottom_.load(std::memory_order_relaxed); }

  // Any thread; a snapshot that may be stale by the time it is used.
  std::uint32_t size_approx() const noexcept {
    const std::uint32_t b = bottom_.load(std::memory_order_acquire);
    const std::uint32_t t = index(top_.load(std::memory_order_acquire));
    const auto n = static_cast<std::int32_t>(b - t);
    return n > 0 ? static_cast<std::uint32_t>(n) : 0;
  }

  static constexpr std::uint32_t kMask = kCapacity - 1;
  static std::uint32_t index(std::uint64_t t) noexcept { return static_cast<std::uint32_t>(t); }
  static std::uint32_t version(std::uint64_t t) noexcept { return static_cast<std::uint32_t>(t >> 32); }
  static std::uint64_t pack(std::uint32_t v, std::uint32_t i) noexcept {
    return (std::uint64_t{v} << 32) | i;
  }

  alignas(64) std::atomic<std::uint64_t> top_{0};
  alignas(64) std::atomic<std::uint32_t> bottom_{0};
  alignas(64) std::atomic<Fiber*> slots_[kCapacity];
};

// The owning worker's handle: every operation, the pushes and pop_back only
// here. take_oldest() is steal() from the owner's side (overflow, and the
// starvation guard that runs the oldest entry).
class WorkDeque::Owner {
 public:
  explicit Owner(WorkDeque& d) noexcept : d_(d) {}
  Owner(const Owner&) = delete;
  Owner& operator=(const Owner&) = delete;

  bool push_back(Fiber* f) noexcept { return d_.push_back(f); }
  bool push_front(Fiber* f) noexcept { return d_.push_front(f); }
  Fiber* pop_back() noexcept { return d_.pop_back(); }
  Fiber* take_oldest() noexcept { return d_.steal(); }
  std::uint32_t top_index() const noexcept { return d_.top_index(); }
  std::uint32_t bottom_index() const noexcept { return d_.bottom_index(); }
  std::uint32_t size_approx() const noexcept { return d_.size_approx(); }
  Stealer stealer() const noexcept;

 private:
  WorkDeque& d_;
};

// Any thread's handle: take the oldest entry, or look at the size.
class WorkDeque::Stealer {
 public:
  explicit Stealer(WorkDeque& d) noexcept : d_(&d) {}
  Fiber* steal() const noexcept { return d_->steal(); }
  std::uint32_t top_index() const noexcept { return d_->top_index(); }
  std::uint32_t size_approx() const noexcept { return d_->size_approx(); }

 private:
  WorkDeque* d_;
};

inline WorkDeque::Stealer WorkDeque::Owner::stealer() const noexcept { return Stealer(d_); }

}  // namespace green::detail
