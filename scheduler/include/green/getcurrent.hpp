// green/getcurrent.hpp — a handle to the calling green thread.
//
//   green::GreenletRef me = green::getcurrent();
//   auto helper = green::spawn([me] { ...; me.kill(); });   // kill the spawner
//
// GreenletRef is a Greenlet<T> with its result type forgotten: every
// Greenlet<T> converts to one, so a set of green threads of mixed result
// types can be kept in one std::unordered_set<GreenletRef>, and
// getcurrent() can return one for a green thread whose body's type the
// caller does not know. It can be compared (==, the same green thread),
// hashed, joined, killed and asked for its state; the result itself is
// reached only through the typed Greenlet<T>.
//
// Ownership and blocking: as Greenlet<T> (a reference-counted handle;
// join() and kill(block) suspend only the calling green thread, or block a
// plain thread on a futex). A green thread cannot join itself (Error), and
// one that kills itself gets the exception thrown at once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <string>
#include <utility>

#include <boost/intrusive_ptr.hpp>

#include "green/detail/fiber.hpp"
#include "green/errors.hpp"
#include "green/greenlet.hpp"

namespace green {

class GreenletRef {
 public:
  GreenletRef() = default;
  // Adopts no reference: takes one of its own.
  explicit GreenletRef(detail::Fiber* f) noexcept : f_(f) {}
  template <class T>
  GreenletRef(const Greenlet<T>& g) noexcept : f_(g.raw()) {}  // NOLINT: implicit on purpose

  bool valid() const noexcept { return f_ != nullptr; }
  std::uint64_t id() const { return fiber().id; }
  const std::string& name() const { return fiber().name; }
  bool started() const { return fiber().started(); }
  bool ready() const { return fiber().done(); }
  bool dead() const { return fiber().done(); }
  explicit operator bool() const { return valid() && started() && !ready(); }
  bool successful() const { return ready() && !fiber().error; }
  bool killed() const { return ready() && fiber().exited; }
  std::exception_ptr exception() const { return ready() ? fiber().observe_error() : nullptr; }

  // As Greenlet<T>::join and kill.
  bool join() const { return fiber().join(detail::kNoDeadline); }
  bool join(detail::Clock::duration timeout) const { return fiber().join(detail::deadline_after(timeout)); }
  bool kill(bool block = true) const { return kill_ptr(nullptr, block, detail::kNoDeadline); }
  template <class E>
  bool kill(E exc, bool block = true) const {
    return kill_ptr(std::make_exception_ptr(std::move(exc)), block, detail::kNoDeadline);
  }
  template <class E>
  bool kill(E exc, detail::Clock::duration timeout) const {
    return kill_ptr(std::make_exception_ptr(std::move(exc)), true, detail::deadline_after(timeout));
  }
  bool kill_ptr(std::exception_ptr exc, bool block, detail::Deadline deadline) const {
    return fiber().kill(std::move(exc), block, deadline);
  }

  detail::Fiber* raw() const noexcept { return f_.get(); }
  friend bool operator==(const GreenletRef& a, const GreenletRef& b) noexcept { return a.f_ == b.f_; }

 private:
  detail::Fiber& fiber() const {
    if (!f_) throw Error("green::GreenletRef: empty handle");
    return *f_;
  }
  boost::intrusive_ptr<detail::Fiber> f_;
};

// The calling green thread (gevent's getcurrent()). Throws green::Error on
// a plain OS thread, which is no green thread: there is nothing to kill or
// join there (gevent would return the thread's main greenlet; green's
// plain threads have none). Never blocks.
inline GreenletRef getcurrent() {
  detail::Fiber* self = detail::current_fiber();
  if (!self) throw Error("green::getcurrent called outside a green thread");
  return GreenletRef(self);
}

}  // namespace green

template <>
struct std::hash<green::GreenletRef> {
  std::size_t operator()(const green::GreenletRef& g) const noexcept {
    return std::hash<const void*>{}(g.raw());
  }
};
