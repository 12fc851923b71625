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
#pragma once

#include <atomic>
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
  explicit StackPool(std::size_t default_size);
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

 private:
  Stack* map_guarded(std::size_t size);
  Stack* carve_from_slab();
  void unmap(Stack* s) noexcept;

  std::size_t default_size_;
  std::atomic<std::size_t> in_use_{0};
  std::mutex shared_mu_;
  std::vector<Stack*> shared_;              // free default-sized stacks, hottest last
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
