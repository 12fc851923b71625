// green/errors.hpp — the exceptions green throws.
//
// Failures derive from green::Error (a std::runtime_error), so one
// `catch (const green::Error&)` sees every failure green reports. Two
// exceptions are not failures but control flow, exactly as in gevent, and
// like gevent's BaseExceptions they are deliberately NOT std::exceptions:
//
//   GreenletExit   delivered by Greenlet::kill(); it unwinds the green thread
//                  (destructors run) and ends it quietly: it is never reported
//                  as an unobserved error and Greenlet::successful() is true.
//   TimeoutError   thrown by the blocking call in progress when a
//                  green::Timeout expires, or when a call's own timeout
//                  passes; `e.is(t)` tells which Timeout fired.
//
// Both derive from green::BaseException only. A generic handler,
// `catch (const std::exception&)` or `catch (const green::Error&)`, written
// around a blocking call to deal with its failures therefore does not stop a
// kill or a Timeout: they go on unwinding to the code that asked for them
// (Boost.Context's forced_unwind is not a std::exception for the same
// reason). Catch them by name, or `catch (...)` and rethrow.
#pragma once

#include <cstdint>
#include <exception>
#include <stdexcept>
#include <string>

namespace green {

class Timeout;

// Base of every failure green reports.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// gevent's BaseException: the base of green's control-flow exceptions
// (GreenletExit, TimeoutError), which must reach the code that asked for
// them through any generic handler. Not a std::exception (see above).
class BaseException {
 public:
  virtual ~BaseException() = default;
  virtual const char* what() const noexcept = 0;

 protected:
  BaseException() = default;
  BaseException(const BaseException&) = default;
  BaseException& operator=(const BaseException&) = default;
};

// Asks a green thread to end. Thrown into it by kill(); catching it is allowed
// (to clean up) but a handler that swallows it keeps the green thread alive,
// and Runtime::shutdown() will kill it again at its next blocking call.
class GreenletExit : public BaseException {
 public:
  const char* what() const noexcept override { return "GreenletExit"; }
};

// Thrown by a blocking call when an enclosing green::Timeout expires
// (scope_id() is that Timeout's id), or when the call's own timeout
// argument passes (scope_id() == 0). Not a std::exception, for gevent's
// reason: code bounded by a Timeout must not run on past its deadline
// because a `catch (const std::exception&)` meant for the call's failures
// took the expiry for one of them.
class TimeoutError : public BaseException {
 public:
  explicit TimeoutError(std::uint64_t scope_id) noexcept : scope_id_(scope_id) {}
  const char* what() const noexcept override {
    return scope_id_ ? "green::Timeout expired" : "green: timed out";
  }
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
// The what() of the exception `e` holds (a std::exception or a
// green::BaseException), for reports on stderr (an unobserved failure, a
// handler that threw); "(not a std::exception)" for anything else.
std::string describe(const std::exception_ptr& e);
}  // namespace detail

}  // namespace green
