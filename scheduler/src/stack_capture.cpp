// stack_capture.cpp — see stack_capture.hpp.
//
// libunwind's generic API (libunwind-x86_64), as unwind.cpp uses it and for
// the same reason (unwind.cpp's header comment).
#include "stack_capture.hpp"

#include <libunwind.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <csignal>
#include <cstring>
#include <ctime>
#include <mutex>

#include "green/errors.hpp"

namespace green::detail {

const char* const kStackCaptureHandlerName = "green::detail::(anonymous namespace)::on_capture_signal";

namespace {

constexpr int kSignal = SIGURG;
constexpr std::size_t kMaxIps = 96;
// Steps the handler takes at most (a corrupt stack must not loop forever).
constexpr std::size_t kMaxSteps = 256;

// The request word: (generation << 2) | phase. Only the capturing thread
// (under g_capture_mu) moves it out of kIdle or kDone; the handler moves it
// from kRequested to kCapturing (a CAS, so a late signal of an abandoned
// request, whose generation is gone, never takes a newer one) and from
// kCapturing to kDone.
constexpr std::uint32_t kIdle = 0, kRequested = 1, kCapturing = 2, kDone = 3;
constexpr std::uint32_t kPhaseMask = 3;

struct Slot {
  std::atomic<std::uint32_t> word{kIdle};
  std::atomic<pthread_t> target{};
  // Written by the handler between kCapturing and kDone, read by the
  // capturing thread after it saw kDone (acquire).
  std::uintptr_t ips[kMaxIps];
  std::size_t count = 0;
  std::ptrdiff_t signal_frame_at = -1;  // the step that reached the interrupted frame; -1: none
};
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));

// Static storage, never destroyed: a late handler may run at any time.
Slot g_slot;
std::mutex g_capture_mu;
std::once_flag g_install_once;
struct sigaction g_previous {};

long futex(std::atomic<std::uint32_t>* word, int op, std::uint32_t value, const timespec* timeout) noexcept {
  return ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), op, value, timeout, nullptr, 0);
}

// Walks the calling thread's stack into g_slot. Async-signal-safe: only the
// libunwind calls that libunwind(3) lists as signal-safe, and plain stores
// into static storage.
[[gnu::noinline]] void walk_own_stack(Slot& s) noexcept {
  s.count = 0;
  s.signal_frame_at = -1;
  unw_context_t uc;
  // unw_getcontext is not in the generic API; getcontext(3) fills the same
  // ucontext_t on x86-64 (unwind.cpp).
  if (getcontext(reinterpret_cast<ucontext_t*>(&uc)) != 0) return;
  unw_cursor_t cursor;
  if (unw_init_local(&cursor, &uc) != 0) return;
  for (std::size_t step = 0; step < kMaxSteps; ++step) {
    unw_word_t ip = 0;
    if (unw_get_reg(&cursor, UNW_REG_IP, &ip) != 0 || ip == 0) break;
    if (s.signal_frame_at < 0 && unw_is_signal_frame(&cursor) > 0) {
      // libunwind marks the frame it stepped to through the kernel's signal
      // frame (its registers came from the sigcontext): the interrupted
      // instruction. What came before it is this handler and the restorer
      // (__restore_rt): start again here.
      s.count = 0;
      s.signal_frame_at = static_cast<std::ptrdiff_t>(step);
    }
    if (s.count < kMaxIps) s.ips[s.count++] = static_cast<std::uintptr_t>(ip);
    if (unw_step(&cursor) <= 0) break;
  }
}

void chain_to_previous(int signo, siginfo_t* info, void* uctx) {
  if (g_previous.sa_flags & SA_SIGINFO) {
    if (g_previous.sa_sigaction) g_previous.sa_sigaction(signo, info, uctx);
  } else if (g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN && g_previous.sa_handler) {
    g_previous.sa_handler(signo);
  }
}

void on_capture_signal(int signo, siginfo_t* info, void* uctx) {
  const int saved_errno = errno;
  Slot& s = g_slot;
  std::uint32_t word = s.word.load(std::memory_order_acquire);
  // pthread_self() reads the thread pointer (glibc): safe in a handler.
  if ((word & kPhaseMask) == kRequested && pthread_equal(s.target.load(std::memory_order_relaxed), pthread_self()) &&
      s.word.compare_exchange_strong(word, (word & ~kPhaseMask) | kCapturing, std::memory_order_acquire,
                                     std::memory_order_relaxed)) {
    walk_own_stack(s);
    s.word.store((word & ~kPhaseMask) | kDone, std::memory_order_release);
    futex(&s.word, FUTEX_WAKE_PRIVATE, 1, nullptr);
  } else {
    chain_to_previous(signo, info, uctx);
  }
  errno = saved_errno;
}

}  // namespace

int stack_capture_signal() noexcept { return kSignal; }

void install_stack_capture_handler() {
  int error = 0;
  std::call_once(g_install_once, [&] {
    struct sigaction sa {};
    sa.sa_sigaction = &on_capture_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_SIGINFO | SA_RESTART | SA_ONSTACK;
    if (::sigaction(kSignal, &sa, &g_previous) != 0) error = errno;
  });
  if (error) throw SystemError(error, "green::Runtime: max_blocking_time: sigaction(SIGURG)");
}

CapturedStack capture_stack(pthread_t thread, std::chrono::milliseconds bound) {
  CapturedStack out;
  std::lock_guard g(g_capture_mu);
  Slot& s = g_slot;
  const std::uint32_t was = s.word.load(std::memory_order_acquire);
  if ((was & kPhaseMask) != kIdle && (was & kPhaseMask) != kDone) {
    // A handler that started an earlier capture never finished (see below).
    out.failure = "an earlier stack capture never finished";
    return out;
  }
  const std::uint32_t base = ((was >> 2) + 1) << 2;  // a new generation
  s.target.store(thread, std::memory_order_relaxed);
  s.word.store(base | kRequested, std::memory_order_release);
  if (const int err = ::pthread_kill(thread, kSignal); err != 0) {
    s.word.store(base | kIdle, std::memory_order_release);
    out.failure = std::string("pthread_kill failed: ") + std::strerror(err);
    return out;
  }
  // The handler runs within microseconds of the signal unless the thread
  // blocks SIGURG, another handler took it, or ThreadSanitizer defers it
  // to an intercepted call that never comes (stack_capture.hpp). A handler
  // that has started a walk is given a second, longer grace before the slot
  // is written off (it never is in practice: the walk is a few microseconds).
  auto deadline = std::chrono::steady_clock::now() + bound;
  bool grace = false;
  for (;;) {
    std::uint32_t now_word = s.word.load(std::memory_order_acquire);
    if (now_word == (base | kDone)) break;
    const auto left = deadline - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) {
      if (now_word == (base | kRequested) &&
          s.word.compare_exchange_strong(now_word, base | kIdle, std::memory_order_acq_rel)) {
        out.failure = "its thread did not take the signal (SIGURG) within " + std::to_string(bound.count()) +
                      " ms: blocked, handled by someone else, or (ThreadSanitizer) not in an intercepted call";
        return out;
      }
      if (now_word == (base | kDone)) break;
      if (grace) {
        out.failure = "the signal handler did not finish its walk";
        return out;  // the slot stays busy: later captures say so
      }
      grace = true;
      deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      continue;
    }
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(left).count();
    timespec ts{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
    futex(&s.word, FUTEX_WAIT_PRIVATE, now_word, &ts);  // EAGAIN, EINTR, ETIMEDOUT: look again
  }
  out.ips.assign(s.ips, s.ips + s.count);
  out.past_signal_frame = s.signal_frame_at >= 0;
  out.first_exact = out.past_signal_frame;
  s.word.store(base | kIdle, std::memory_order_release);
  return out;
}

}  // namespace green::detail
