// control_block.cpp — where Fiber control blocks come from.
//
// Spawning a batch and joining it frees blocks in bulk, which overflows
// malloc's small per-thread cache; a worker-owned free list of one size keeps
// spawn+join free of malloc. A block freed on another thread (or on a plain
// thread) goes to that thread's worker list, or back to malloc. Under ASan
// every block goes to malloc so that use-after-free stays detectable.
#include "switch.hpp"
#include "worker.hpp"

namespace green::detail {

void* Fiber::operator new(std::size_t size) {
#if !GREEN_ASAN
  if (size <= kBlockSize) {
    if (Worker* w = current_worker())
      if (void* b = w->take_block()) return b;
    return ::operator new(kBlockSize);
  }
#endif
  return ::operator new(size);
}

void Fiber::operator delete(void* p, std::size_t size) noexcept {
#if !GREEN_ASAN
  if (size <= kBlockSize) {
    if (Worker* w = current_worker())
      if (w->keep_block(p)) return;
  }
#else
  (void)size;
#endif
  ::operator delete(p);
}

}  // namespace green::detail
