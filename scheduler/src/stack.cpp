// stack.cpp — see stack.hpp for the policy.
#include "stack.hpp"

#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <new>

#include "green/errors.hpp"
#include "green/detail/fiber.hpp"
#include "switch.hpp"
#include "worker.hpp"

namespace green::detail {

namespace {

constexpr std::size_t kSlabStacks = 64;
constexpr std::size_t kSharedPoolMax = 4096;
constexpr long kMapsReserve = 32768;  // left for malloc, libraries, threads
// Housekeeping (see stack.hpp): below this many idle stacks a pass gives
// back all of them instead of half; after this many given back, malloc_trim.
constexpr std::size_t kTrimAllBelow = 64;
constexpr std::size_t kMallocTrimAfter = 128;

std::size_t page_size() {
  static const std::size_t size = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return size;
}

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

// Process-wide: how many guarded stacks may exist at once. The environment
// variable GREEN_STACK_GUARD_BUDGET overrides it (0: slab stacks only).
long guard_budget() {
  static const long budget = [] {
    if (const char* env = std::getenv("GREEN_STACK_GUARD_BUDGET")) return std::atol(env);
    long max_maps = 65530;
    std::ifstream in("/proc/sys/vm/max_map_count");
    in >> max_maps;
    const long left = max_maps - kMapsReserve;
    return left > 0 ? left / 2 : 0;
  }();
  return budget;
}
std::atomic<long> guarded_live{0};

}  // namespace

StackPool::StackPool(std::size_t default_size, Clock::duration trim_interval)
    : default_size_(round_up(default_size, page_size())), trim_interval_(trim_interval) {}

namespace {
// ASan: frames that exception unwinding skipped leave poisoned redzones in
// the shadow of a stack, and GCC 12's libasan does not clear the shadow of
// a later mmap at the same address, so whoever maps there next (tbbmalloc,
// say) would inherit stale poison. Unpoison before giving memory back.
void unmap_memory(void* base, std::size_t size) noexcept {
#if GREEN_ASAN
  __asan_unpoison_memory_region(base, size);
#endif
  munmap(base, size);
}
}  // namespace

StackPool::~StackPool() {
  for (Stack* s : shared_) unmap(s);
  for (Stack* s : cold_) unmap(s);
  for (Stack* t : slab_free_) delete t;
  for (auto& [base, size] : slabs_) unmap_memory(base, size);
}

Stack* StackPool::acquire(std::size_t size) {
  const bool default_sized = size == 0 || round_up(size, page_size()) == default_size_;
  Stack* s = nullptr;
  if (default_sized) {
    std::lock_guard g(shared_mu_);
    if (!shared_.empty()) {
      s = shared_.back();
      shared_.pop_back();
      low_ = std::min(low_, shared_.size());
      shared_count_.store(shared_.size(), std::memory_order_relaxed);
    } else if (!cold_.empty()) {
      s = cold_.back();  // pages given back: they fault in again as it is used
      cold_.pop_back();
    }
  }
  if (s) {
    // reused
  } else if (default_sized && guarded_live.load(std::memory_order_relaxed) >= guard_budget()) {
    s = carve_from_slab();
  } else {
    s = map_guarded(default_sized ? default_size_ : round_up(size, page_size()));
    s->pooled_size = default_sized;
  }
  in_use_.fetch_add(1, std::memory_order_relaxed);
  return s;
}

void StackPool::release(Stack* s) noexcept {
  in_use_.fetch_sub(1, std::memory_order_relaxed);
  if (s->pooled_size) {
    std::lock_guard g(shared_mu_);
    // Slab stacks always come back here: they cannot be unmapped one by one.
    if (!s->guard || shared_.size() < kSharedPoolMax) {
      shared_.push_back(s);
      shared_count_.store(shared_.size(), std::memory_order_relaxed);
      return;
    }
  }
  unmap(s);
}

Stack* StackPool::map_guarded(std::size_t size) {
  const std::size_t guard = page_size();
  const std::size_t total = size + guard;
  void* mem = mmap(nullptr, total, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
  if (mem == MAP_FAILED) {
    throw SystemError(errno, "mmap green thread stack of " + std::to_string(size) +
                                 " bytes (stacks in use: " + std::to_string(in_use()) + ")");
  }
  char* base = static_cast<char*>(mem);
  if (mprotect(base, guard, PROT_NONE) != 0) {
    const int err = errno;
    munmap(mem, total);
    throw SystemError(err, "mprotect guard page (vm.max_map_count reached?)");
  }
  auto* s = new Stack;
  s->guard = base;
  s->base = base + guard;
  s->size = size;
  s->mapped = total;
#if GREEN_TSAN
  s->tsan_fiber = __tsan_create_fiber(0);
#endif
  guarded_live.fetch_add(1, std::memory_order_relaxed);
  return s;
}

Stack* StackPool::carve_from_slab() {
  std::lock_guard lock(slab_mu_);
  if (slab_free_.empty()) {
    // Slot i's canary is in the top kCanaryRoom bytes of slot i-1; slot 0's
    // in an extra page below the slots.
    const std::size_t total = page_size() + default_size_ * kSlabStacks;
    void* mem = mmap(nullptr, total, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (mem == MAP_FAILED) {
      throw SystemError(errno, "mmap slab of green thread stacks (stacks in use: " +
                                   std::to_string(in_use()) + ")");
    }
    slabs_.emplace_back(static_cast<char*>(mem), total);
    char* slots = static_cast<char*>(mem) + page_size();
    for (std::size_t i = 0; i < kSlabStacks; ++i) {
      auto* s = new Stack;
      s->base = slots + i * default_size_;
      s->size = default_size_ - kCanaryRoom;
      s->pooled_size = true;
#if GREEN_TSAN
      s->tsan_fiber = __tsan_create_fiber(0);
#endif
      slab_free_.push_back(s);
    }
  }
  Stack* s = slab_free_.back();
  slab_free_.pop_back();
  return s;
}

void StackPool::unmap(Stack* s) noexcept {
#if GREEN_TSAN
  if (s->tsan_fiber) __tsan_destroy_fiber(s->tsan_fiber);
#endif
  if (s->guard) {
    unmap_memory(s->guard, s->mapped);
    guarded_live.fetch_sub(1, std::memory_order_relaxed);
  }
  // A slab stack's memory goes with its slab, in ~StackPool.
  delete s;
}

// ---------------------------------------------------------------------------
// Giving memory back (the policy is at the top of stack.hpp)

void StackPool::housekeep(Clock::time_point now) noexcept {
  if (trim_interval_ <= Clock::duration::zero()) return;
  Clock::rep due = next_pass_.load(std::memory_order_relaxed);
  const Clock::rep t = now.time_since_epoch().count();
  if (t < due) return;
  // One pass per interval, on whichever worker claims it.
  if (!next_pass_.compare_exchange_strong(due, t + trim_interval_.count(), std::memory_order_relaxed))
    return;
  trim_pass();
}

StackPool::Clock::time_point StackPool::next_housekeeping() const noexcept {
  if (trim_interval_ <= Clock::duration::zero() || shared_count_.load(std::memory_order_relaxed) == 0)
    return Clock::time_point::max();
  return Clock::time_point(Clock::duration(next_pass_.load(std::memory_order_relaxed)));
}

void StackPool::trim_pass() noexcept {
  // One pass at a time, even if one outlasts a short interval.
  std::unique_lock passing(pass_mu_, std::try_to_lock);
  if (!passing.owns_lock()) return;
  std::vector<Stack*> victims;
  {
    std::lock_guard g(shared_mu_);
    // shared_[0, idle) was never popped since the last pass: it sat unused.
    const std::size_t idle = std::min(low_, shared_.size());
    const std::size_t n = idle < kTrimAllBelow ? idle : (idle + 1) / 2;
    if (n > 0) {
      try {
        // Every allocation first: past this block nothing can fail.
        victims.assign(shared_.begin(), shared_.begin() + static_cast<std::ptrdiff_t>(n));
        cold_.reserve(cold_.size() + n);
      } catch (const std::bad_alloc&) {
        return;  // the next pass tries again
      }
      shared_.erase(shared_.begin(), shared_.begin() + static_cast<std::ptrdiff_t>(n));
      shared_count_.store(shared_.size(), std::memory_order_relaxed);
    }
    low_ = shared_.size();
  }
  if (victims.empty()) return;
  const std::size_t given = victims.size();
  // System calls outside the lock: other workers keep taking and returning
  // stacks meanwhile.
  const auto slab_end = std::partition(victims.begin(), victims.end(),
                                       [](const Stack* s) { return s->guard == nullptr; });
  for (auto it = slab_end; it != victims.end(); ++it) unmap(*it);
  victims.erase(slab_end, victims.end());
  drop_slab_pages(victims);
  bool trim_malloc = false;
  {
    std::lock_guard g(shared_mu_);
    cold_.insert(cold_.end(), victims.begin(), victims.end());  // reserved above: no throw
    given_back_ += given;
    if (given_back_ >= kMallocTrimAfter) {
      given_back_ = 0;
      trim_malloc = true;
    }
  }
#if defined(__GLIBC__)
  // Walks every arena and drops the pages of its free chunks: a few
  // milliseconds after a large burst, and only after one.
  if (trim_malloc) malloc_trim(0);
#else
  (void)trim_malloc;
#endif
}

void StackPool::drop_slab_pages(std::vector<Stack*>& slab) noexcept {
  if (slab.empty()) return;
  std::sort(slab.begin(), slab.end(), [](const Stack* a, const Stack* b) { return a->base < b->base; });
  const std::size_t page = page_size();
  for (std::size_t i = 0; i < slab.size();) {
    // A run of neighbouring slots: the top page of each but the last holds
    // the canary of the next, which is free (prepare_stack_for_reuse writes
    // it again); the last one's holds the canary of a slot that may be
    // running, so it stays.
    std::size_t j = i + 1;
    while (j < slab.size() && slab[j]->base == slab[j - 1]->base + default_size_) ++j;
    char* from = slab[i]->base;
    char* to = slab[j - 1]->base + default_size_ - page;
    if (to > from) madvise(from, static_cast<std::size_t>(to - from), MADV_DONTNEED);
    i = j;
  }
}

void prepare_stack_for_reuse(Stack* s) noexcept {
  if (std::uint64_t* canary = canary_of(*s))
    for (std::size_t i = 0; i < kCanaryWords; ++i) canary[i * kCanaryStride] = kStackCanary;
#if GREEN_ASAN
  // Frames of the previous green thread that never returned (its entry
  // function, the final switch) leave poisoned redzones behind.
  __asan_unpoison_memory_region(s->base, s->size);
#endif
}

// ---------------------------------------------------------------------------
// Overflow reporting

namespace {

struct sigaction previous_segv;

void write_str(const char* s) {
  ssize_t r = write(STDERR_FILENO, s, std::strlen(s));
  (void)r;
}

void write_u64(std::uint64_t v) {
  char buf[24];
  int i = sizeof buf;
  buf[--i] = '\0';
  do {
    buf[--i] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v && i > 0);
  write_str(buf + i);
}

bool addr_below(const void* addr, const char* base) {
  const char* a = static_cast<const char*>(addr);
  return a < base && a >= base - 64 * 1024;
}

// Async-signal-safe: write(2) only.
[[noreturn]] void overflow_message_and_abort(const Fiber* f) {
  write_str("stack overflow in green thread ");
  write_u64(f->id);
  write_str(" (");
  write_str(f->name.empty() ? "unnamed" : f->name.c_str());
  write_str(")\n");
  signal(SIGABRT, SIG_DFL);
  abort();
}

void on_segv(int sig, siginfo_t* info, void* uctx) {
  Worker* w = current_worker();
  const Fiber* f = w ? w->current() : nullptr;
  if (f && f->stack && f->stack->guard) {
    const char* addr = static_cast<const char*>(info->si_addr);
    // The guard page, or just below it (a large frame can skip over it).
    if (addr >= f->stack->guard - 64 * 1024 && addr < f->stack->base) overflow_message_and_abort(f);
  } else if (f && f->stack && addr_below(info->si_addr, f->stack->base)) {
    overflow_message_and_abort(f);  // a slab stack ran off the slab's end
  }
  // Not ours: hand over to whoever was there before (ASan, a crash handler)
  // or to the default action.
  if (previous_segv.sa_flags & SA_SIGINFO) {
    if (previous_segv.sa_sigaction) {
      previous_segv.sa_sigaction(sig, info, uctx);
      return;
    }
  } else if (previous_segv.sa_handler != SIG_DFL && previous_segv.sa_handler != SIG_IGN) {
    previous_segv.sa_handler(sig);
    return;
  }
  signal(SIGSEGV, SIG_DFL);  // returning re-executes the access: default crash
}

}  // namespace

void report_stack_overflow(const Fiber* f) noexcept { overflow_message_and_abort(f); }

void* install_overflow_handler_for_thread() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction sa {};
    sa.sa_sigaction = &on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &previous_segv);
  });
  stack_t current{};
  if (sigaltstack(nullptr, &current) == 0 && !(current.ss_flags & SS_DISABLE)) return nullptr;
  const std::size_t size = 64 * 1024;
  void* mem = std::malloc(size);
  if (!mem) return nullptr;
  stack_t ss{};
  ss.ss_sp = mem;
  ss.ss_size = size;
  if (sigaltstack(&ss, nullptr) != 0) {
    std::free(mem);
    return nullptr;
  }
  return mem;
}

void remove_overflow_handler_for_thread(void* token) noexcept {
  if (!token) return;
  stack_t ss{};
  ss.ss_flags = SS_DISABLE;
  sigaltstack(&ss, nullptr);
  std::free(token);
}

}  // namespace green::detail
