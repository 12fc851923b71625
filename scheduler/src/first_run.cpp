// first_run.cpp — a green thread's first run: waiting for spawn_later's
// time, binding a stack, and the worker's cache of free stacks (stack.hpp
// is the pool behind it).
#include <boost/context/detail/fcontext.hpp>

#include "fiber_internal.hpp"
#include "runtime_core.hpp"
#include "stack.hpp"
#include "worker.hpp"

namespace green::detail {

namespace ctx = boost::context::detail;

Stack* Worker::acquire_stack(std::size_t size) {
  if ((size == 0 || size == rt_->stacks().default_size()) && !stack_cache_.empty()) {
    Stack* s = stack_cache_.back();
    stack_cache_.pop_back();
    return s;
  }
  return rt_->stacks().acquire(size);
}

void Worker::release_stack(Stack* s) noexcept {
  if (s->pooled_size && stack_cache_.size() < kStackCacheMax) {
    stack_cache_.push_back(s);
    return;
  }
  rt_->stacks().release(s);
}

bool Worker::prepare_first_run(Fiber* f) {
  if (f->start_at != Deadline{}) {
    // spawn_later: park it on our timers until it is due. Killing it wakes
    // it early; then it starts, sees the interrupt and never runs its body.
    const Deadline at = f->start_at;
    f->start_at = Deadline{};
    if (at > Clock::now()) {
      park_until_start(f, this, at);
      return false;
    }
  }
  try {
    f->stack = acquire_stack(f->stack_size);
  } catch (...) {
    complete_unstarted(f, std::current_exception());
    f->release();
    return false;
  }
  bound_.store(bound_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  f->stack_low.store(reinterpret_cast<std::uintptr_t>(f->stack->base), std::memory_order_relaxed);
  f->stack_high.store(reinterpret_cast<std::uintptr_t>(f->stack->top()), std::memory_order_relaxed);
  f->stack_guarded.store(f->stack->guard != nullptr, std::memory_order_relaxed);
  prepare_stack_for_reuse(f->stack);
  f->context = ctx::make_fcontext(f->stack->top(), f->stack->size, &fiber_entry);
  return true;
}

}  // namespace green::detail
