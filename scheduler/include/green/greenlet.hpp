// green/greenlet.hpp — spawning green threads and the Greenlet handle.
//
//   auto g = green::spawn([](int x) { return x * 2; }, 21);
//   int v = g.get();            // 42; blocks only the calling green thread
//
// spawn() never runs the new green thread inside the call: it becomes
// runnable and starts when a worker picks it (gevent's "spawn = create +
// schedule"). Children spawned by one green thread during one turn start in
// the order they were spawned; a newer batch of children runs before older
// queued work on the same worker (depth-first), which keeps few stacks alive
// for trees of spawns. Any worker may run it (idle workers steal) unless
// SpawnOptions::pinned is set.
//
// Blocking. join(), get() and kill(block) suspend only the calling green
// thread; called from a plain OS thread they block that thread (futex). Each
// honours an optional timeout, green::Timeout scopes and kill of the caller.
//
// Ownership. A Greenlet is a cheap, copyable, reference-counted handle; the
// green thread runs to completion whether or not handles remain. If it ends
// with an exception that nobody observes (get(), exception()), the exception
// is reported once on stderr, with the green thread's id and name, when the
// last handle goes. GreenletExit is never reported.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/intrusive_ptr.hpp>

#include "green/detail/fiber.hpp"
#include "green/errors.hpp"

namespace green {

class Runtime;

// How to spawn. Every field has a default; designated initialisers read well:
//   green::spawn({.name = "reader", .pinned = true}, read_loop, sock);
struct SpawnOptions {
  std::string name{};          // shown in reports and current_name()
  std::size_t stack_size = 0;  // bytes; 0 = the runtime's default
  int worker = -1;             // first run on this worker index; -1 = here
  bool pinned = false;         // never migrate from the worker it starts on
  // Not a member of the spawner's green::Nursery: it may outlive the scope
  // (a background task started from a connection's handler, say).
  bool detached = false;
  // Runs ahead of every green thread queued on its worker whenever it is
  // woken (not only the first time): for the few green threads that must
  // react at once under any load, such as a signal's handler. Use sparingly:
  // urgent green threads wait only for each other, and for the green thread
  // running when they are woken.
  bool urgent = false;
};

namespace detail {

template <class T>
class ResultFiber : public Fiber {
 public:
  std::optional<T> value;
};
template <>
class ResultFiber<void> : public Fiber {};

template <class T, class Fn, class Tuple>
class Task final : public ResultFiber<T> {
 public:
  Task(Fn fn, Tuple args) : fn_(std::move(fn)), args_(std::move(args)) {}
  void run_body() override {
    if constexpr (std::is_void_v<T>) {
      std::apply(fn_, std::move(args_));
    } else {
      this->value.emplace(std::apply(fn_, std::move(args_)));
    }
  }

 private:
  Fn fn_;
  Tuple args_;
};

// lifecycle.cpp: registers f with a runtime (the current one when rt is null)
// and makes it runnable, now or at start_at. Throws Error outside a runtime.
void submit(RuntimeCore* rt, Fiber* f, const SpawnOptions& opts, Deadline start_at);
// Green threads done, in the order they finished (see joinall()).
std::vector<Fiber*> join_many(const std::vector<Fiber*>& fibers, Deadline deadline,
                              std::size_t count, bool raise_error);

template <class F, class... Args>
using SpawnResult = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;

// fn(args...) can run in a green thread (and fn is not a SpawnOptions).
template <class F, class... Args>
concept Spawnable = !std::is_same_v<std::decay_t<F>, SpawnOptions> &&
                    std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>;

}  // namespace detail

// Names one callback registered by Greenlet::link(), link_value() or
// link_exception(), for Greenlet::unlink() (gevent unlinks by the callback
// itself; std::function has no identity, so green returns this instead).
// Copyable; an empty Link (default-constructed) unlinks nothing.
class Link {
 public:
  Link() = default;

 private:
  template <class>
  friend class Greenlet;
  enum State : std::uint8_t { kPending, kFired, kUnlinked };
  Link(std::shared_ptr<std::atomic<State>> state, const detail::Fiber* owner)
      : state_(std::move(state)), owner_(owner) {}
  std::shared_ptr<std::atomic<State>> state_;
  const detail::Fiber* owner_ = nullptr;
};

// A handle to a green thread with its result type forgotten: every
// Greenlet<T> is one (a base class), so green threads of mixed result types
// can be kept in one std::unordered_set<GreenletRef>, and getcurrent()
// (green/getcurrent.hpp) can return one for a green thread whose body's
// type the caller does not know. It can be compared (==, the same green
// thread), hashed, joined, killed and asked for its state; the result
// itself is reached only through the typed Greenlet<T>. Ownership and
// blocking as Greenlet<T> (this header's top comment).
class GreenletRef {
 public:
  GreenletRef() = default;
  // Takes a reference of its own.
  explicit GreenletRef(detail::Fiber* f) noexcept : f_(f) {}

  bool valid() const noexcept { return f_ != nullptr; }
  std::uint64_t id() const { return fiber().id; }
  const std::string& name() const { return fiber().name; }

  // gevent's states: started() once scheduled to run at least once... here:
  // once it has begun running; ready()/dead() once it ended (any way).
  bool started() const { return fiber().started(); }
  bool ready() const { return fiber().done(); }
  bool dead() const { return fiber().done(); }
  // Running or waiting to run again: started and not yet ended.
  explicit operator bool() const { return valid() && started() && !ready(); }
  // Ended without an exception, or by GreenletExit (as in gevent).
  bool successful() const { return ready() && !fiber().error; }
  // Ended by GreenletExit (killed); get() then throws GreenletExit.
  bool killed() const { return ready() && fiber().exited; }
  // The exception it ended with (null if none or GreenletExit). Marks the
  // exception observed, so it is not reported on stderr.
  std::exception_ptr exception() const { return ready() ? fiber().observe_error() : nullptr; }

  // Waits until it ends; false if the timeout passed first. A green thread
  // cannot join itself (Error). On a plain thread, join() and get() without
  // a timeout throw LoopExit when the runtime finds it could never end
  // (runtime.hpp, "Deadlock report").
  bool join() const { return fiber().join(detail::kNoDeadline); }
  bool join(detail::Clock::duration timeout) const { return fiber().join(detail::deadline_after(timeout)); }

  // Raises `exc` (GreenletExit by default) in the green thread at its current
  // or next blocking call; a green thread killed before it started never runs
  // its body. With block (the default), waits until it has ended; returns
  // ready(). A second kill while one is pending is ignored. A green thread
  // killing itself gets the exception thrown at once.
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

  // Handles to the same green thread compare equal (and hash alike).
  friend bool operator==(const GreenletRef& a, const GreenletRef& b) noexcept { return a.f_ == b.f_; }

  detail::Fiber* raw() const noexcept { return f_.get(); }

 protected:
  // Adopts the reference it is given (spawn's).
  GreenletRef(detail::Fiber* f, bool add_ref) noexcept : f_(f, add_ref) {}
  detail::Fiber& fiber() const {
    if (!f_) throw Error("green::Greenlet: empty handle");
    return *f_;
  }

 private:
  boost::intrusive_ptr<detail::Fiber> f_;
};

// Handle of a green thread whose body returns T.
template <class T>
class Greenlet : public GreenletRef {
 public:
  using value_type = T;

  Greenlet() = default;
  explicit Greenlet(detail::ResultFiber<T>* f) : GreenletRef(f, false) {}  // adopts one reference

  // Waits until it ends and returns its result (a reference valid while this
  // handle lives), or rethrows its exception. Throws GreenletExit if it was
  // killed, and TimeoutError (scope_id 0) if the timeout passes first.
  decltype(auto) get() const { return get_until(detail::kNoDeadline); }
  decltype(auto) get(detail::Clock::duration timeout) const {
    return get_until(detail::deadline_after(timeout));
  }

  // Calls callback(*this) once it has ended, in the green thread that ends it
  // (at once, in the caller, if it already has). Callbacks run in the order
  // they were linked; an exception from one is reported and dropped. The
  // returned Link names this registration for unlink().
  Link link(std::function<void(Greenlet)> callback) const {
    return add_link(std::move(callback), [](const detail::Fiber&) { return true; });
  }
  // link(), but only if it ends successful() (a return, or a kill by
  // GreenletExit, as gevent's link_value).
  Link link_value(std::function<void(Greenlet)> callback) const {
    return add_link(std::move(callback), [](const detail::Fiber& f) { return !f.error; });
  }
  // link(), but only if it ends with an exception other than GreenletExit
  // (gevent's link_exception).
  Link link_exception(std::function<void(Greenlet)> callback) const {
    return add_link(std::move(callback), [](const detail::Fiber& f) { return f.error != nullptr; });
  }
  // Withdraws a callback that link(), link_value() or link_exception() of
  // this green thread registered. True if it will now never run; false if it
  // already ran or is running, was already withdrawn, or `l` belongs to
  // another green thread (gevent's unlink, which ignores unknown callbacks).
  // Any thread may call it, and a callback may unlink one linked after it
  // while the links run: that one does not run. Non-blocking; the callback
  // itself is destroyed when the green thread ends.
  bool unlink(const Link& l) const noexcept {
    if (!l.state_ || l.owner_ != raw()) return false;
    auto pending = Link::kPending;
    return l.state_->compare_exchange_strong(pending, Link::kUnlinked, std::memory_order_acq_rel);
  }

 private:
  detail::ResultFiber<T>& fiber() const { return static_cast<detail::ResultFiber<T>&>(GreenletRef::fiber()); }
  template <class When>
  Link add_link(std::function<void(Greenlet)> callback, When when) const {
    auto& f = fiber();
    Link handle(std::make_shared<std::atomic<Link::State>>(Link::kPending), &f);
    f.link([cb = std::move(callback), state = handle.state_, when](detail::Fiber& done) {
      auto pending = Link::kPending;
      // Claimed before the filter: an unlink() afterwards reports false.
      if (!state->compare_exchange_strong(pending, Link::kFired, std::memory_order_acq_rel)) return;
      if (!when(done)) return;
      auto* rf = static_cast<detail::ResultFiber<T>*>(&done);
      rf->add_ref();
      cb(Greenlet(rf));
    });
    return handle;
  }
  decltype(auto) get_until(detail::Deadline deadline) const {
    auto& f = fiber();
    if (!f.join(deadline)) throw TimeoutError(0);
    if (auto e = f.observe_error()) std::rethrow_exception(e);
    if (f.exited) throw GreenletExit();
    if constexpr (std::is_void_v<T>) {
      return;
    } else {
      return static_cast<const T&>(*f.value);
    }
  }
};

namespace detail {
// The address of the next instruction, inside whatever function this is
// inlined into: spawn_on and the spawn entry points above it are
// always_inline, so for a spawn it is a point in the function that called
// spawn (Runtime::dump() prints its symbol as "spawned at"). One
// instruction and a store per spawn. Elsewhere than x86-64, none.
[[gnu::always_inline]] inline const void* code_address_here() noexcept {
#if defined(__x86_64__)
  const void* pc;
  asm volatile("lea 0(%%rip), %0" : "=r"(pc));
  return pc;
#else
  return nullptr;
#endif
}

template <class F, class... Args>
auto make_task(F&& fn, Args&&... args) {
  using R = SpawnResult<F, Args...>;
  using Tuple = std::tuple<std::decay_t<Args>...>;
  return new Task<R, std::decay_t<F>, Tuple>(std::forward<F>(fn),
                                             Tuple(std::forward<Args>(args)...));
}
template <class F, class... Args>
[[gnu::always_inline]] inline auto spawn_on(RuntimeCore* rt, const SpawnOptions& opts, Deadline start_at, F&& fn,
                                            Args&&... args) {
  using R = SpawnResult<F, Args...>;
  auto* task = make_task(std::forward<F>(fn), std::forward<Args>(args)...);
  task->spawn_site = code_address_here();
  Greenlet<R> handle(task);  // the handle's reference
  submit(rt, task, opts, start_at);
  return handle;
}
}  // namespace detail

// Spawns fn(args...) on the runtime of the calling green thread. Arguments
// are copied or moved into the green thread. Throws green::Error when called
// outside a green thread (use Runtime::spawn there).
template <class F, class... Args>
  requires detail::Spawnable<F, Args...>
[[gnu::always_inline]] inline auto spawn(F&& fn, Args&&... args) {
  return detail::spawn_on(nullptr, SpawnOptions{}, detail::Deadline{}, std::forward<F>(fn),
                          std::forward<Args>(args)...);
}
template <class F, class... Args>
[[gnu::always_inline]] inline auto spawn(const SpawnOptions& opts, F&& fn, Args&&... args) {
  return detail::spawn_on(nullptr, opts, detail::Deadline{}, std::forward<F>(fn),
                          std::forward<Args>(args)...);
}

// Spawns fn(args...) to start once `delay` has passed. Killing it before then
// cancels it: its body never runs, its links fire.
template <class F, class... Args>
[[gnu::always_inline]] inline auto spawn_later(detail::Clock::duration delay, F&& fn, Args&&... args) {
  return detail::spawn_on(nullptr, SpawnOptions{}, detail::deadline_after(delay),
                          std::forward<F>(fn), std::forward<Args>(args)...);
}

// Waits for the green threads in `greenlets` (any range of Greenlet<...>)
// to end, at most `timeout`. Returns the number that ended.
//
// joinall(gs, timeout, raise_error, count), in gevent's order: stop once
// `count` have ended (0 = all). With raise_error, stop at the first failure
// and rethrow it: green threads that had already ended when joinall was
// called are looked at first, in the order given (as gevent does); after
// that, failures are seen in the order they happen. A green thread ended by
// a kill (GreenletExit) is not a failure.
//
// raise_error must be a bool and count an integer that is not a bool: the
// order (count, raise_error) that green used before gevent's does not
// compile, so a call written either way cannot silently mean the other.
// A negative count throws Error. Blocking as Greenlet::join (green or plain
// thread; honours Timeout scopes and kill of the caller).
template <class Range, class RaiseError = bool, class Count = std::size_t>
  requires std::same_as<RaiseError, bool> && std::integral<Count> && (!std::same_as<Count, bool>)
std::size_t joinall(const Range& greenlets, std::optional<detail::Clock::duration> timeout = std::nullopt,
                    RaiseError raise_error = false, Count count = 0) {
  if constexpr (std::is_signed_v<Count>) {
    if (count < 0) throw Error("green::joinall: negative count");
  }
  std::vector<detail::Fiber*> fibers;
  for (const auto& g : greenlets) fibers.push_back(g.raw());
  const auto deadline = timeout ? detail::deadline_after(*timeout) : detail::kNoDeadline;
  return detail::join_many(fibers, deadline, static_cast<std::size_t>(count), raise_error).size();
}

namespace detail {
// Kills each green thread of `greenlets` once with `exc`; with block, waits
// up to `deadline` for all of them. Returns whether all have ended.
template <class Range>
bool kill_all(const Range& greenlets, std::exception_ptr exc, bool block, Deadline deadline) {
  std::vector<Fiber*> seen;
  for (const auto& g : greenlets) {
    // Once each: a duplicate could otherwise be killed again after it
    // already took (and perhaps caught) the first exception.
    if (std::find(seen.begin(), seen.end(), g.raw()) != seen.end()) continue;
    seen.push_back(g.raw());
    g.kill_ptr(exc, false, kNoDeadline);
  }
  if (!block) {
    for (const auto& g : greenlets)
      if (!g.ready()) return false;
    return true;
  }
  std::vector<Fiber*> fibers;
  for (const auto& g : greenlets) fibers.push_back(g.raw());
  return join_many(fibers, deadline, 0, false).size() == fibers.size();
}
}  // namespace detail

// Kills every green thread in `greenlets` with GreenletExit and waits until
// all have ended; returns true. Each is killed once even if it appears twice.
template <class Range>
bool killall(const Range& greenlets) {
  return detail::kill_all(greenlets, nullptr, true, detail::kNoDeadline);
}

// killall(gs, exception, block, timeout), in gevent's order: kills every
// green thread in `greenlets` with `exception` (an exception object, or a
// std::exception_ptr; null means GreenletExit) and, with block, waits up to
// `timeout` for all of them to end. Returns whether all have ended (without
// block: whether all had already). The exception comes first, as in gevent:
// a bool there (green's old killall(gs, block, timeout, exc)) does not
// compile. Blocking as joinall().
template <class Range, class E>
  requires(!std::same_as<std::decay_t<E>, bool>)
bool killall(const Range& greenlets, E&& exception, bool block = true,
             std::optional<detail::Clock::duration> timeout = std::nullopt) {
  std::exception_ptr exc;
  if constexpr (std::is_same_v<std::decay_t<E>, std::exception_ptr>) {
    exc = std::forward<E>(exception);
  } else {
    exc = std::make_exception_ptr(std::forward<E>(exception));
  }
  const auto deadline = timeout ? detail::deadline_after(*timeout) : detail::kNoDeadline;
  return detail::kill_all(greenlets, std::move(exc), block, deadline);
}

}  // namespace green

// Greenlet handles hash by the green thread they name.
template <>
struct std::hash<green::GreenletRef> {
  std::size_t operator()(const green::GreenletRef& g) const noexcept {
    return std::hash<const void*>{}(g.raw());
  }
};
template <class T>
struct std::hash<green::Greenlet<T>> {
  std::size_t operator()(const green::Greenlet<T>& g) const noexcept {
    return std::hash<const void*>{}(g.raw());
  }
};
