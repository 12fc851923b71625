// green/timeout.hpp — bounding a stretch of code in time.
//
//   try {
//     green::Timeout t(5s);
//     auto line = stream.read_line();   // any blocking call inside
//   } catch (const green::TimeoutError& e) {
//     if (!e.is(t)) throw;             // (t must be in scope; see below)
//   }
//
// A Timeout belongs to the green thread that started it. When its deadline
// passes, the blocking call in progress there (or the next one) throws
// green::TimeoutError, whose is(t) identifies the Timeout that fired, or the
// exception given to the constructor (gevent's Timeout(seconds, exception)).
// Timeouts nest: the one with the earliest deadline fires first, and only
// that one is marked fired; the others stay pending. A fired Timeout does
// not fire again unless started again. A pending Timeout costs nothing
// until its green thread blocks: the deadline is merged into that park's
// timer, so one that never fires never wakes a worker.
//
// Scope form: the constructor starts it and the destructor cancels it.
// Object form (gevent's start()/cancel()): cancel() stops it early, start()
// starts it again for the same duration from now (after it fired or was
// cancelled), Timeout::start_new(d) is the constructor under gevent's name.
//
// A CPU-bound stretch is not interrupted (green does not preempt): the
// exception comes at the next blocking call or yield().
//
// Thread safety: a Timeout is used by one green thread only: it is started
// on the calling green thread, and start(), cancel() and the destructor must
// run on the green thread that started it (a Timeout is not something one
// green thread sets on another: kill() is). Creating or starting one on a
// plain thread throws Error. Timeouts need not end in LIFO order.
//
// TimeoutError is not a std::exception (see errors.hpp): a
// `catch (const std::exception&)` inside the bounded stretch does not stop
// it. An exception given to the constructor is thrown as given, so one that
// is a std::exception can be caught by such a handler.
#pragma once

#include <chrono>
#include <concepts>
#include <cstddef>
#include <exception>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>

#include "green/detail/fiber.hpp"
#include "green/errors.hpp"

namespace green {

class Timeout {
 public:
  // Starts a Timeout of `d` that throws TimeoutError when it fires.
  explicit Timeout(std::chrono::steady_clock::duration d);
  // Starts a Timeout of `d` that throws `exception` (an exception object or
  // a std::exception_ptr; a null one means TimeoutError) when it fires. A
  // bool is refused: gevent's Timeout(seconds, False), a timeout that ends
  // its `with` block silently, is with_timeout(d, fn, value) here.
  template <class E>
    requires(!std::same_as<std::decay_t<E>, bool> && !std::same_as<std::decay_t<E>, std::nullptr_t> &&
             !std::same_as<std::decay_t<E>, std::exception_ptr>)
  Timeout(std::chrono::steady_clock::duration d, E&& exception)
      : Timeout(d, to_exception_ptr(std::forward<E>(exception))) {}
  Timeout(std::chrono::steady_clock::duration d, std::exception_ptr exception);
  // A Timeout that never fires (gevent's Timeout(None)).
  explicit Timeout(std::nullopt_t);
  // Cancels it (a fired Timeout's exception not yet thrown is dropped).
  ~Timeout();
  Timeout(const Timeout&) = delete;
  Timeout& operator=(const Timeout&) = delete;

  // gevent's Timeout.start_new: a started Timeout (as the constructor).
  static Timeout start_new(std::chrono::steady_clock::duration d) { return Timeout(d); }
  template <class E>
  static Timeout start_new(std::chrono::steady_clock::duration d, E&& exception) {
    return Timeout(d, std::forward<E>(exception));
  }

  // Starts it again, with the same duration counted from now, on the
  // calling green thread, after it fired or was cancelled. Throws Error
  // while it is still pending (cancel() first, as gevent asks) or on a
  // plain thread. Non-blocking.
  void start();
  // Stops it: it will not fire, and if it fired but its exception has not
  // been thrown yet (it fired while its green thread was not blocked), it
  // will not be thrown. Harmless when not pending. Non-blocking; on the
  // green thread that started it.
  void cancel() noexcept;

  // True while started and neither fired nor cancelled.
  bool pending() const noexcept { return linked_ && !scope_.fired; }
  // True once it has fired (until start() again).
  bool expired() const noexcept { return scope_.fired; }
  // Identifies it in TimeoutError::is(); the same across restarts.
  std::uint64_t id() const noexcept { return scope_.id; }
  std::chrono::steady_clock::time_point deadline() const noexcept { return scope_.deadline; }

 private:
  template <class E>
  static std::exception_ptr to_exception_ptr(E&& e) {
    if constexpr (std::is_same_v<std::decay_t<E>, std::exception_ptr>) {
      return std::forward<E>(e);
    } else {
      return std::make_exception_ptr(std::forward<E>(e));
    }
  }
  void unlink() noexcept;

  std::optional<std::chrono::steady_clock::duration> duration_;  // nullopt: never fires
  detail::TimeoutScope scope_;
  detail::Fiber* owner_ = nullptr;
  bool linked_ = false;  // in owner_'s list of scopes
};

// Runs fn() under a Timeout of d; the TimeoutError propagates.
template <class F>
decltype(auto) with_timeout(std::chrono::steady_clock::duration d, F&& fn) {
  Timeout t(d);
  return std::forward<F>(fn)();
}

// Runs fn() under a Timeout of d; returns `timeout_value` if it fires.
template <class F, class V>
auto with_timeout(std::chrono::steady_clock::duration d, F&& fn, V timeout_value)
    -> std::invoke_result_t<F> {
  Timeout t(d);
  try {
    return std::forward<F>(fn)();
  } catch (const TimeoutError& e) {
    if (!e.is(t)) throw;
    return timeout_value;
  }
}

}  // namespace green
