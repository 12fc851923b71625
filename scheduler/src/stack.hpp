// stack.hpp — green thread stacks: mapping, guarding, pooling.
//
// Policy (documented for users in green/runtime.hpp):
//   * A stack is an mmap'd region, committed lazily by the kernel as it is
//     touched, so a 256 KiB stack whose green thread uses 2 KiB costs one
//     page of memory.
//   * While the process-wide guard budget lasts, each stack has a PROT_NONE
//     guard page below it. A hit on it is caught by a SIGSEGV handler running
//     on an alternate signal stack, which prints "stack overflow in green
//     thread <id> (<name>)" and aborts.
//   * Each guarded stack costs two kernel mappings and vm.max_map_count
//     (65530 by default) caps them per process. Past the budget (half of
//     what max_map_count leaves after a reserve for the rest of the
//     program), stacks are carved from unguarded slabs of kSlabStacks stacks
//     each: one mapping per slab. Such a stack has canary words just below
//     its lowest address, checked every time its green thread switches out; a
//     smashed canary, or a switch found below the base, prints the same
//     message and aborts. Overflow is still detected, only later and without
//     a guarantee that nothing else was overwritten. The canary sits in the
//     top bytes of the slot below (kept out of that slot's own stack), a page
//     its own green thread touches anyway: at its lowest address it would
//     commit a page of its own, and a parked green thread would cost two
//     pages instead of one.
//     GREEN_STACK_GUARD_BUDGET=N in the environment sets the budget by hand
//     (0: slab stacks only).
//   * Stacks are reused hottest-first: a per-worker cache (owner only, no
//     atomics) in front of a shared pool. The shared pool is a mutex and a
//     vector: it is touched only when a worker's cache runs empty or full,
//     and Boost.Lockfree's freelist is not clean under ThreadSanitizer. Only default-sized stacks
//     are pooled; a custom-sized one is unmapped when its green thread ends.
//   * Running out of address space or mappings is reported as a
//     green::SystemError from the green thread that needed the stack (its
//     get() throws it); nothing crashes.
//
// Giving memory back after a burst (housekeep()). Free stacks beyond the
// working set go back to the system, and so does the free heap that the
// green threads which used them left behind:
//   * The working set is measured in the shared pool: `low_` is the fewest
//     free stacks it held since the last pass. Those at the cold end of the
//     pool sat unused through a whole interval. A pass gives back half of
//     them (all of them below kTrimAllBelow), so an idle pool halves every
//     interval and a load that comes and goes every few intervals still
//     finds most of its stacks: a decaying working set, not a hard cut.
//   * A guarded stack given back is unmapped (its two mappings too). A slab
//     stack cannot be: its pages are dropped with madvise(MADV_DONTNEED) and
//     it moves to `cold_`, taken after the hot stacks and before any new
//     mapping. Runs of neighbouring slab stacks are dropped with one call;
//     the top page of a run's highest slot stays, since it holds the canary
//     of the slot above, which may be running.
//   * Once passes have given back kMallocTrimAfter stacks since the last
//     time, the pass also calls malloc_trim(0): that many green threads
//     ended, and what they allocated (stream buffers, sockets) is free heap
//     in the workers' malloc arenas, which glibc returns only on request.
//   * Passes run at most once per interval (RuntimeOptions::trim_interval,
//     1 s by default; zero turns them off), on whichever worker parks first
//     after one is due: never on the spawn or finish path. A parking worker
//     sleeps no longer than the next pass while the shared pool holds free
//     stacks, and as long as it likes otherwise, so an idle runtime with
//     nothing to give back is never woken for it. A worker that never runs
//     out of work never trims; memory goes back when the load drops.
//   * Not trimmed: each worker's own cache (at most kStackCacheMax = 64
//     stacks, the hottest), and the workers' free lists of control blocks
//     (at most 4096 blocks of 512 bytes each).
// Measured with examples/echo_server (2 workers) after 15,000 connections
// each echoed a line and closed (medians of 3): RSS 321 MiB while
// connected; before this policy 258 MiB stayed for good, with it 15 MiB
// stay 2 s after the close and 7 MiB after 10 s (README, "Memory after a
// burst"). Nearly all of the rest was heap: 16 KiB stream buffers, freed
// but kept by glibc until malloc_trim; the stacks held 60 MiB while
// connected (one page each) and 17 MiB in the pool after the close.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>


namespace green::detail {

class Fiber;

struct Stack {
  char* base = nullptr;        // lowest usable byte
  std::size_t size = 0;        // usable bytes; base + size is the top
  char* guard = nullptr;       // the guard page, or null for a slab stack
  std::size_t mapped = 0;      // bytes to munmap (guard included); 0 for slab
  void* tsan_fiber = nullptr;  // ThreadSanitizer's fiber for this stack
  bool pooled_size = false;    // default size: may go back to a pool
  char* top() const noexcept { return base + size; }
};

inline constexpr std::uint64_t kStackCanary = 0x6772'6565'6e21'c0deULL;
// A slab stack's canary is kCanaryWords words, kCanaryStride words apart,
// in the 256 bytes below its base: an overflow's frames may leave a few
// dozen bytes unwritten (ASan's redzones, padding), not all of them.
inline constexpr std::size_t kCanaryWords = 4;
inline constexpr std::size_t kCanaryStride = 8;
// The top bytes of a slab slot that hold the canary of the slot above.
inline constexpr std::size_t kCanaryRoom = kCanaryWords * kCanaryStride * sizeof(std::uint64_t);
// A slab stack's canary words (none for a guarded stack).
inline std::uint64_t* canary_of(const Stack& s) noexcept {
  return s.guard ? nullptr : reinterpret_cast<std::uint64_t*>(s.base - kCanaryRoom);
}
inline bool canary_intact(const std::uint64_t* canary) noexcept {
  for (std::size_t i = 0; i < kCanaryWords; ++i)
    if (canary[i * kCanaryStride] != kStackCanary) return false;
  return true;
}

class StackPool {
 public:
  using Clock = std::chrono::steady_clock;
  // trim_interval: how often housekeep() may give memory back (zero: never).
  StackPool(std::size_t default_size, Clock::duration trim_interval);
  ~StackPool();
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;

  std::size_t default_size() const noexcept { return default_size_; }
  // A stack of at least `size` bytes (0 = default). Throws SystemError.
  Stack* acquire(std::size_t size);
  // Returns a stack no longer in use by any green thread.
  void release(Stack* s) noexcept;
  // Stacks currently handed out (for tests and the memory report).
  std::size_t in_use() const noexcept { return in_use_.load(std::memory_order_relaxed); }
  // Free stacks in the shared pool that still hold memory (for tests).
  std::size_t cached() const noexcept { return shared_count_.load(std::memory_order_relaxed); }

  // Called by a worker about to park, with the time. When a pass is due
  // and no other worker has claimed it, gives memory back (see the top of
  // this file); otherwise one atomic load and a comparison.
  void housekeep(Clock::time_point now) noexcept;
  // How long a parking worker may sleep as far as housekeeping goes: the
  // next pass while there is something to give back, else time_point::max().
  Clock::time_point next_housekeeping() const noexcept;

 private:
  Stack* map_guarded(std::size_t size);
  Stack* carve_from_slab();
  void unmap(Stack* s) noexcept;
  void trim_pass() noexcept;
  void drop_slab_pages(std::vector<Stack*>& slab) noexcept;

  std::size_t default_size_;
  std::atomic<std::size_t> in_use_{0};
  std::mutex shared_mu_;
  std::vector<Stack*> shared_;              // free default-sized stacks, hottest last
  std::vector<Stack*> cold_;                // free slab stacks whose pages went back
  std::size_t low_ = 0;                     // fewest in shared_ since the last pass
  std::size_t given_back_ = 0;              // by passes, since the last malloc_trim
  // shared_.size(), for cached() and parking workers: written under
  // shared_mu_, read without it. Relaxed: a worker that makes it non-zero
  // parks later itself and sees its own store; a stale zero elsewhere only
  // means that worker sleeps without a housekeeping deadline.
  std::atomic<std::size_t> shared_count_{0};
  const Clock::duration trim_interval_;
  // When the next pass is due (steady_clock ticks). Claimed by one
  // compare-and-swap; relaxed: the pass's own state is under shared_mu_.
  std::atomic<Clock::rep> next_pass_{0};
  std::mutex pass_mu_;  // held through a pass
  std::mutex slab_mu_;                      // cold: one lock per kSlabStacks
  std::vector<std::pair<char*, std::size_t>> slabs_;
  std::vector<Stack*> slab_free_;           // carved, never handed out yet
};

// Aborts with "stack overflow in green thread <id> (<name>)".
[[noreturn]] void report_stack_overflow(const Fiber* f) noexcept;

// Installs the process-wide SIGSEGV handler (once) and an alternate signal
// stack for the calling worker thread (freed by the returned token's owner).
void* install_overflow_handler_for_thread();
void remove_overflow_handler_for_thread(void* token) noexcept;

// Poisoning and TSAN fiber bookkeeping when a stack is handed to a new fiber.
void prepare_stack_for_reuse(Stack* s) noexcept;

}  // namespace green::detail
