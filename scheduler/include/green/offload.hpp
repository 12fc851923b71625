// green/offload.hpp — running work off the workers: offload() for CPU-bound
// work, blocking() for calls that block in the kernel or in a C library.
//
//   auto digest = green::offload([&] { return sha256(big_buffer); });
//   auto addrs  = green::blocking([&] { return lookup(host); });   // getaddrinfo
//
// Workers must never block (DESIGN.md): a green thread that computes for a
// long time delays every other green thread on its worker, and one that
// blocks in the kernel stalls the worker outright. These calls move fn to
// another thread and suspend only the calling green thread until fn returns
// its result or throws its exception, which the call then rethrows.
//
//   offload(fn)   runs fn on a oneTBB task_arena sized to the machine: for
//                 CPU-bound work, which then competes fairly with the workers.
//   blocking(fn)  runs fn on an elastic pool of plain threads: it grows on
//                 demand up to a bound (GREEN_BLOCKING_THREADS, default 64),
//                 queues jobs beyond it, and lets threads idle for 10 s exit.
//
// Kill and Timeout. Both honour green::Timeout scopes and kill of the
// caller, which then throws at once. fn itself cannot be interrupted: it
// runs to its end on its thread and its result is dropped. fn therefore
// owns (or shares) everything it touches; capturing the caller's locals by
// reference is safe only if the caller cannot be killed or timed out.
//
// From a plain thread both simply block that thread until fn is done.
#pragma once

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "green/detail/park.hpp"
#include "green/detail/spin_lock.hpp"

namespace green {

namespace detail {

// The rendezvous between a job and the party waiting for it; shared, so
// that a waiter that is killed can leave while the job still runs.
class Completion {
 public:
  virtual ~Completion() = default;
  // Called by the job's thread when fn has returned or thrown.
  void finish() noexcept;
  // Waits for finish(); throws the caller's interrupt (kill, Timeout).
  void wait(const char* what);

  std::exception_ptr error;

 private:
  SpinLock lock_;
  bool done_ = false;
  WaitList waiter_;
};

template <class R>
class ResultCompletion : public Completion {
 public:
  template <class F>
  void run(F& fn) noexcept {
    try {
      if constexpr (std::is_void_v<R>) {
        fn();
      } else {
        value.emplace(fn());
      }
    } catch (...) {
      error = std::current_exception();
    }
    finish();
  }
  R take() {
    if (error) {
      // Moved out, so the waiting thread is the exception's only owner: the
      // job's thread may drop the Completion at any time, and must not be
      // the one that destroys an exception this thread is still reading.
      std::exception_ptr e = std::move(error);
      error = nullptr;
      std::rethrow_exception(e);
    }
    if constexpr (std::is_void_v<R>) {
      return;
    } else {
      return std::move(*value);
    }
  }
  std::conditional_t<std::is_void_v<R>, bool, std::optional<R>> value{};
};

// offload.cpp: hand a job to the TBB arena / the blocking pool.
void run_on_arena(std::function<void()> job);
void run_on_blocking_pool(std::function<void()> job);

template <class F>
auto run_elsewhere(F&& fn, void (*runner)(std::function<void()>), const char* what) {
  using R = std::invoke_result_t<std::decay_t<F>&>;
  auto state = std::make_shared<ResultCompletion<R>>();
  runner([state, fn = std::forward<F>(fn)]() mutable { state->run(fn); });
  state->wait(what);
  return state->take();
}

}  // namespace detail

// Runs fn() on the CPU arena and returns its result (see above).
template <class F>
auto offload(F&& fn) {
  return detail::run_elsewhere(std::forward<F>(fn), &detail::run_on_arena, "offload");
}

// Runs fn() on the blocking pool and returns its result (see above).
template <class F>
auto blocking(F&& fn) {
  return detail::run_elsewhere(std::forward<F>(fn), &detail::run_on_blocking_pool, "blocking");
}

}  // namespace green
