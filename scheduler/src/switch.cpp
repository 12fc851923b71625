// switch.cpp — the switch itself, between green threads and the scheduler
// context, with what every switch carries besides registers (switch.hpp):
// the sanitizers' fiber hooks, the C++ exception globals, the stack-overflow
// check, and the step that runs on the far side (SwitchMsg). Who is switched
// to is decided in worker.cpp (suspend, yield_current, exit_fiber).
//
// `this` is not used after jump() returns: the caller may have resumed on
// another worker's thread. Code after a switch re-reads current_worker().
#include <cstdlib>

#include <boost/context/detail/fcontext.hpp>
#include <cxxabi.h>
#include <x86intrin.h>

#include "fiber_internal.hpp"
#include "stack.hpp"
#include "switch.hpp"
#include "worker.hpp"

namespace green::detail {

namespace ctx = boost::context::detail;


EhGlobals* eh_globals() noexcept {
  return reinterpret_cast<EhGlobals*>(abi::__cxa_get_globals());
}

void Worker::resume_after_switch(ctx::transfer_t t) {
  // Copy first: `after` may recycle the stack the message lives on.
  const SwitchMsg m = *static_cast<SwitchMsg*>(t.data);
  if (m.from) {
    m.from->context = t.fctx;
  } else {
    current_worker()->sched_context_ = t.fctx;
  }
  if (m.after) m.after(m.arg, m.from, current_worker());
}

void Worker::fiber_entry(ctx::transfer_t t) {
#if GREEN_ASAN
  __sanitizer_finish_switch_fiber(nullptr, nullptr, nullptr);
#endif
  resume_after_switch(t);
  Fiber* self = current_worker()->current();
  run_fiber(self);
  current_worker()->exit_fiber(self);
}

[[gnu::noinline]] void Worker::jump(Fiber* from, Fiber* to, SwitchMsg* msg,
                                    bool from_is_finishing) {
  // A slab stack has no guard page: it overflowed if we are below its base
  // now (a switch at the deepest point) or its canary was overwritten on
  // the way down and back. Both checks, because either can miss alone: the
  // frames of the overflow may have skipped the canary's bytes (ASan's
  // redzones are never written), and the switch may come after the return.
  if (from && !from->stack->guard &&
      (static_cast<const char*>(__builtin_frame_address(0)) < from->stack->base ||
       !canary_intact(canary_of(*from->stack))))
    report_stack_overflow(from);

  EhGlobals* eh = eh_;  // this thread's; the pointer never changes
  if (from) {
    from->eh_caught = eh->caught_exceptions;
    from->eh_uncaught = eh->uncaught_exceptions;
  } else {
    sched_eh_caught_ = eh->caught_exceptions;
    sched_eh_uncaught_ = eh->uncaught_exceptions;
  }
  if (to) {
    eh->caught_exceptions = to->eh_caught;
    eh->uncaught_exceptions = to->eh_uncaught;
    runs_.store(runs_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  } else {
    eh->caught_exceptions = sched_eh_caught_;
    eh->uncaught_exceptions = sched_eh_uncaught_;
  }
  current_.store(to, std::memory_order_relaxed);
  if (track_green_threads_) [[unlikely]] {
    // The TSC, not the clock: a clock read costs more than a switch.
    const std::uint64_t now = __rdtsc();
    if (from) Worker::bump(from->run_ticks, now - switched_in_tsc_);
    if (to) Worker::bump(to->switches_in);
    switched_in_tsc_ = now;
  }
  void* target = to ? to->context : sched_context_;

#if GREEN_ASAN
  void* fake_stack = nullptr;
  const void* bottom = to ? to->stack->base : thread_stack_bottom_;
  std::size_t size = to ? to->stack->size : thread_stack_size_;
  __sanitizer_start_switch_fiber(from_is_finishing ? nullptr : &fake_stack, bottom, size);
#else
  (void)from_is_finishing;
#endif
#if GREEN_TSAN
  __tsan_switch_to_fiber(to ? to->stack->tsan_fiber : thread_tsan_fiber_, 0);
#endif

  ctx::transfer_t t = ctx::jump_fcontext(target, msg);

#if GREEN_ASAN
  __sanitizer_finish_switch_fiber(fake_stack, nullptr, nullptr);
#endif
  resume_after_switch(t);
}

}  // namespace green::detail

namespace green::detail {

// A wait made under a C library's frames (green::monkey's hooks).
//
// The green thread stays on this worker until the wait is over. C code may
// hold the address of its OS thread's errno or thread-locals across the
// call: glibc declares __errno_location() const, so the compiler computes
// &errno once for "n = read(...); if (n < 0 && errno == EINTR)". Had the
// green thread resumed on another worker, that code would read (and the
// hook would have set) another thread's errno. So the green thread is
// pinned here for the wait, and unpinned (or left pinned, if it was) after.
//
// Under ThreadSanitizer the hook also runs inside a "blocking" interceptor
// (read, recv, poll, nanosleep: BLOCK_REAL), which ignores the calling
// fiber's interceptors and atomics, expecting only the system call inside.
// green's park protocol is atomics and spin locks: TSan would see none of
// its ordering and report races on every Waiter. So the wait runs on a TSan
// fiber of its own, made for it and switched to and from like a green
// thread's (flags 0: each switch orders what came before it). The stack's
// TSan fiber is the inner one for the duration, so that the worker that
// resumes the parked green thread switches TSan to it too.
void run_wait_under_c_frames(void (*fn)(void*), void* arg) {
  Worker* w = current_worker();
  Fiber* self = w ? w->current() : nullptr;
  if (!self) {
    fn(arg);
    return;
  }
  Worker* const was_pinned = self->pinned;
  self->pinned = w;
#if GREEN_TSAN
  Stack* stack = self->stack;  // a green thread keeps its stack across parks
  void* outer = stack->tsan_fiber;
  void* inner = __tsan_create_fiber(0);
  stack->tsan_fiber = inner;
  __tsan_switch_to_fiber(inner, 0);
  fn(arg);
  stack->tsan_fiber = outer;
  __tsan_switch_to_fiber(outer, 0);
  __tsan_destroy_fiber(inner);
#else
  fn(arg);
#endif
  self->pinned = was_pinned;
}

}  // namespace green::detail
