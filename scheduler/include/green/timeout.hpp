// green/timeout.hpp — bounding a stretch of code in time.
//
//   try {
//     green::Timeout t(5s);
//     auto line = stream.read_line();   // any blocking call inside
//   } catch (const green::TimeoutError& e) {
//     if (!e.is(t)) throw;             // (t must be in scope; see below)
//   }
//
// A Timeout is an RAII scope on the calling green thread. When its deadline
// passes, the blocking call in progress (or the next one) throws
// green::TimeoutError, whose is(t) identifies the scope that fired. Scopes
// nest: the one with the earliest deadline fires first, and only that one is
// marked expired; an outer scope stays armed. A fired scope does not fire
// again. The scope costs nothing until its green thread blocks: the deadline
// is merged into that park's timer, so a Timeout that never fires never wakes
// a worker.
//
// A CPU-bound stretch is not interrupted (green does not preempt): the
// TimeoutError comes at the next blocking call or yield().
//
// Timeout must be created and destroyed on the same green thread, in LIFO
// order (automatic with RAII). Creating one on a plain thread throws Error.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>

#include "green/detail/fiber.hpp"
#include "green/errors.hpp"

namespace green {

class Timeout {
 public:
  explicit Timeout(std::chrono::steady_clock::duration d);
  // A scope that never fires (gevent's Timeout(None)).
  explicit Timeout(std::nullopt_t);
  ~Timeout();
  Timeout(const Timeout&) = delete;
  Timeout& operator=(const Timeout&) = delete;

  // True once this scope has fired.
  bool expired() const noexcept { return scope_.fired; }
  std::uint64_t id() const noexcept { return scope_.id; }
  std::chrono::steady_clock::time_point deadline() const noexcept { return scope_.deadline; }

 private:
  void arm();
  detail::TimeoutScope scope_;
  detail::Fiber* owner_ = nullptr;
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
