// green/async_result.hpp — a value (or an exception) delivered once, read by
// any number of parties (gevent.event.AsyncResult).
//
//   green::AsyncResult<int> answer;
//   green::spawn([&] { answer.set(42); });
//   int v = answer.get();          // 42, in as many green threads as like
//
// set() / set_exception() may be called once; a second call throws
// green::Error (the first value stays). get() waits for it and returns the
// value, or rethrows the stored exception, in every getter. A plain OS
// thread may get() a value that a green thread sets, and vice versa.
//
// Blocking. get() and wait() suspend only the calling green thread; a plain
// OS thread blocks on a futex. Both honour green::Timeout scopes and kill.
// get(timeout) throws green::TimeoutError (scope_id() == 0) when the timeout
// passes first, as Greenlet::get(timeout) does.
//
// Thread safety: any member from any green thread or plain thread.
#pragma once

#include <atomic>
#include <exception>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>

#include "green/current.hpp"
#include "green/detail/park_on.hpp"
#include "green/detail/wait_source.hpp"
#include "green/errors.hpp"

namespace green {

template <class T = void>
class AsyncResult {
  // The stored value, or nothing for AsyncResult<void>.
  struct Empty {};
  using Stored = std::conditional_t<std::is_void_v<T>, Empty, std::optional<T>>;

 public:
  AsyncResult() = default;
  AsyncResult(const AsyncResult&) = delete;
  AsyncResult& operator=(const AsyncResult&) = delete;

  // Stores the value and wakes every waiter. Throws green::Error if a value
  // or exception was already stored.
  template <class... Args>
  void set(Args&&... args) {
    std::lock_guard g(lock_);
    check_unset();
    if constexpr (!std::is_void_v<T>) value_.emplace(std::forward<Args>(args)...);
    else static_assert(sizeof...(Args) == 0, "AsyncResult<void>::set takes no value");
    publish(kValue);
  }
  // Stores an exception that every get() rethrows. A null pointer throws
  // green::Error.
  void set_exception(std::exception_ptr e) {
    if (!e) throw Error("green::AsyncResult::set_exception: null exception_ptr");
    std::lock_guard g(lock_);
    check_unset();
    error_ = std::move(e);
    publish(kError);
  }

  // Ready: a value or an exception is stored.
  bool ready() const noexcept { return state_.load(std::memory_order_acquire) != kEmpty; }
  // A value is stored (not an exception).
  bool successful() const noexcept { return state_.load(std::memory_order_acquire) == kValue; }
  // The stored exception, or null.
  std::exception_ptr exception() const noexcept {
    return state_.load(std::memory_order_acquire) == kError ? error_ : nullptr;
  }
  // gevent's done() (the concurrent.futures name for ready()).
  bool done() const noexcept { return ready(); }
  // gevent's `value`: the stored value, or null while none is stored (not
  // ready, or an exception was stored). Never blocks; the pointee lives as
  // long as this AsyncResult.
  const T* value() const noexcept
    requires(!std::is_void_v<T>)
  {
    return successful() ? &*value_ : nullptr;
  }

  // Waits until ready; returns true.
  bool wait() { return wait_until(detail::kNoDeadline); }
  // Waits at most `timeout`; returns ready().
  bool wait(Clock::duration timeout) { return wait_until(detail::deadline_after(timeout)); }

  // Waits until ready, then returns the value (a reference that lives as
  // long as this AsyncResult) or rethrows the stored exception.
  decltype(auto) get() { return get_until(detail::kNoDeadline); }
  decltype(auto) get(Clock::duration timeout) { return get_until(detail::deadline_after(timeout)); }
  // Does not wait: throws TimeoutError (scope 0) unless ready (gevent's
  // get(block=False)).
  decltype(auto) get_nowait() {
    if (!ready()) throw TimeoutError(0);
    return result();
  }

 private:
  template <class>
  friend struct detail::WaitSourceFor;  // green::wait() watches waiters_
  enum : int { kEmpty, kValue, kError };

  void check_unset() const {
    if (state_.load(std::memory_order_relaxed) != kEmpty)
      throw Error("green::AsyncResult: already set (a value can be set only once)");
  }
  void publish(int state) {
    // release: the value/exception is written before readers see the state.
    state_.store(state, std::memory_order_release);
    waiters_.wake_all();
  }
  bool wait_until(detail::Deadline deadline) {
    if (ready()) return true;
    std::unique_lock lk(lock_);
    if (ready()) return true;
    detail::Waiter w;
    detail::park_on(lk, waiters_, w, deadline, "AsyncResult.get");
    return ready();
  }
  decltype(auto) get_until(detail::Deadline deadline) {
    if (!wait_until(deadline)) throw TimeoutError(0);
    return result();
  }
  decltype(auto) result() const {
    if (state_.load(std::memory_order_acquire) == kError) std::rethrow_exception(error_);
    if constexpr (std::is_void_v<T>) {
      return;
    } else {
      return static_cast<const T&>(*value_);
    }
  }

  std::atomic<int> state_{kEmpty};
  Stored value_{};
  std::exception_ptr error_;  // written once, before state_ becomes kError
  detail::SpinLock lock_;
  detail::WaitList waiters_;
};

}  // namespace green

namespace green::detail {
// green::wait(): ready once a value or an exception is stored; publish()
// wakes waiters_ with no hand-off.
template <class T>
struct WaitSourceFor<AsyncResult<T>> {
  static void* address(AsyncResult<T>& r) noexcept { return &r; }
  static bool ready(const void* r) { return static_cast<const AsyncResult<T>*>(r)->ready(); }
  static bool enlist(void* p, Waiter& w) {
    auto& r = *static_cast<AsyncResult<T>*>(p);
    std::lock_guard g(r.lock_);
    if (r.ready()) return false;
    r.waiters_.push_back(w);
    return true;
  }
  static void unlist(void* p, Waiter& w) noexcept {
    auto& r = *static_cast<AsyncResult<T>*>(p);
    std::lock_guard g(r.lock_);
    r.waiters_.remove(w);
  }
  static constexpr WaitSourceOps ops{&ready, nullptr, &enlist, &unlist, /*external=*/false};
};
}  // namespace green::detail

