// stack_capture.hpp — the call stack of an OS thread that is running right
// now (a worker stuck in a green thread that does not switch out), taken on
// that thread by a signal, for the blocking detector (blocking.hpp).
//
// THE SIGNAL. SIGURG, as Go's preemption uses: its default action is to
// ignore it, so a stray one (or one arriving after a capture gave up) kills
// nothing, and programs rarely use it (it reports out-of-band data on a
// socket that asked for it with F_SETOWN). The handler is installed once
// per process, the first time a runtime turns the detector on, with
// SA_SIGINFO | SA_RESTART | SA_ONSTACK, and stays. A SIGURG that is not a
// capture request for the receiving thread goes on to the handler that was
// there before (if it was a function). A program that installs its own
// SIGURG handler later takes the signal away: captures then time out and
// the reports come without a stack.
//
// WHAT IT DOES TO THE STUCK THREAD. SA_RESTART restarts most interrupted
// system calls, but not all: one that the stuck green thread is blocked in
// and that the kernel never restarts after a handler (nanosleep, poll,
// epoll_wait, select, a socket call with a timeout: signal(7)) returns EINTR
// once. Code that retries on EINTR, as it must for any signal, sees nothing.
// The handler runs on the worker's alternate signal stack (the one the
// stack-overflow check installs, stack.cpp), so it needs no room on the
// green thread's stack, which may be a small slab stack without a guard.
//
// THE HANDLER is async-signal-safe: it checks that a request is pending for
// its own thread (a generation-stamped word, so a late signal never answers
// a newer request), walks its own stack with libunwind (getcontext, then
// unw_init_local and unw_step through the kernel's signal frame into the
// interrupted code), keeps the raw instruction addresses in a static buffer,
// and posts completion (an atomic store and a futex wake). It calls only the
// functions libunwind(3) lists as signal-safe (unw_init_local, unw_step,
// unw_get_reg, unw_is_signal_frame): naming the frames (unw_get_proc_name,
// which opens and maps ELF files) and demangling (malloc) happen afterwards
// on the capturing thread (unwind.hpp's describe_code_address). That keeps
// the stuck thread interrupted for microseconds, and off the handler any call
// that is not documented as signal-safe.
//
// THREADSANITIZER delivers an asynchronous signal only when the thread next
// enters an intercepted call (or at once if it is blocked in one): a green
// thread spinning in pure computation never runs the handler, and its
// report comes without a stack. When it does run, it runs from the
// interceptor, without a kernel signal frame between the handler and the
// interrupted code; the walk then keeps every frame and the names show the
// interceptor on top.
#pragma once

#include <pthread.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace green::detail {

struct CapturedStack {
  // Innermost first, the capture's own frames left out.
  std::vector<std::uintptr_t> ips;
  // ips[0] is the interrupted instruction itself (past a kernel signal
  // frame), not a return address.
  bool first_exact = false;
  // False: ips holds every frame from the handler's own down (a signal
  // delivered by ThreadSanitizer from an interceptor); the caller drops the
  // handler's frames by name.
  bool past_signal_frame = false;
  // Why there is no stack; empty when there is one.
  std::string failure;
};

// The handler's name as unwind.hpp's describe_code_address prints it (its
// frames are dropped from a capture without a signal frame).
extern const char* const kStackCaptureHandlerName;

// Installs the handler (once per process; thread-safe). Throws SystemError
// if sigaction fails.
void install_stack_capture_handler();
// The signal a worker must leave unblocked for captures.
int stack_capture_signal() noexcept;

// Asks `thread` (of this process, alive throughout) for its stack and waits
// up to `bound` for its handler. One capture runs at a time in the
// process; a second caller waits for the first.
CapturedStack capture_stack(pthread_t thread, std::chrono::milliseconds bound);

}  // namespace green::detail
