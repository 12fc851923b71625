// green/errors.hpp — the exceptions green throws.
//
// Every exception the library throws derives from green::Error, so one
// `catch (const green::Error&)` sees them all. Two of them are not failures
// but control flow, exactly as in gevent:
//
//   GreenletExit   delivered by Greenlet::kill(); it unwinds the green thread
//                  (destructors run) and ends it quietly: it is never reported
//                  as an unobserved error and Greenlet::successful() is true.
//   TimeoutError   thrown by the blocking call in progress when a
//                  green::Timeout scope expires; `e.is(scope)` tells which
//                  scope fired when scopes nest.
#pragma once

#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>

namespace green {

class Timeout;

// Base of every exception green throws.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Asks a green thread to end. Thrown into it by kill(); catching it is allowed
// (to clean up) but a handler that swallows it keeps the green thread alive,
// and Runtime::shutdown() will kill it again at its next blocking call.
class GreenletExit : public Error {
 public:
  GreenletExit() : Error("GreenletExit") {}
};

// Thrown by a blocking call when an enclosing green::Timeout scope expires.
class TimeoutError : public Error {
 public:
  explicit TimeoutError(std::uint64_t scope_id)
      : Error("green::Timeout expired"), scope_id_(scope_id) {}
  // True when `scope` is the Timeout that fired (nested scopes: only the one
  // that fired matches; an outer scope should rethrow an inner one's error).
  bool is(const Timeout& scope) const noexcept;
  std::uint64_t scope_id() const noexcept { return scope_id_; }

 private:
  std::uint64_t scope_id_;
};

// gevent's LoopExit: "this operation would block forever". Thrown by a
// plain thread's get() or join() without a timeout (Runtime::run's included)
// when the runtime finds that nothing can ever end the wait: every green
// thread is parked and nothing that could wake one remains. what() holds the
// runtime's dump(). The rule for "nothing can wake" is in runtime.hpp.
class LoopExit : public Error {
 public:
  using Error::Error;
};

// A failed system call: carries errno and says what was attempted, e.g.
// "connect 127.0.0.1:9: Connection refused".
class SystemError : public Error {
 public:
  SystemError(int err, const std::string& what);
  int code() const noexcept { return code_; }

 private:
  int code_;
};

namespace detail {
// The what() of the exception `e` holds, for reports on stderr (an
// unobserved failure, a handler that threw); "(not a std::exception)" for
// anything else.
std::string describe(const std::exception_ptr& e);
}  // namespace detail

}  // namespace green
