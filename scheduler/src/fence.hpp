// fence.hpp — a full (StoreLoad) fence that ThreadSanitizer accepts.
//
// GCC refuses std::atomic_thread_fence under -fsanitize=thread (TSan does not
// model fences). A seq_cst read-modify-write on a private atomic is a full
// barrier on x86 and is understood by TSan, so that build uses it instead;
// the protocol it protects is the same in both builds.
#pragma once

#include <atomic>

namespace green::detail {

inline void full_fence() noexcept {
#if defined(__SANITIZE_THREAD__)
  static std::atomic<int> dummy{0};
  dummy.fetch_add(0, std::memory_order_seq_cst);
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
}

}  // namespace green::detail
