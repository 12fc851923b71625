// green/pool.hpp — groups of green threads (gevent.pool): Group tracks the
// green threads spawned through it; Pool also bounds how many run at once.
//
//   green::Pool pool(20);                              // the talk's downloader
//   auto pages = pool.map(download, urls);             // in the order of urls
//
//   green::Group group;
//   for (auto& c : clients) group.spawn(serve, c);
//   group.join();                                      // all of them
//
// Members. A green thread spawned through a group is a member until it ends;
// size() counts the members. Members keep running if the Group object is
// destroyed first (nothing is killed behind the caller's back).
//
// Pool slots. A Pool of size n lets at most n members run at once: spawn()
// waits while all n slots are taken; waiting spawners get freed slots first
// come, first served. A slot is free again as soon as its member ends,
// before anyone joining that member wakes up.
//
// map(fn, inputs) calls fn on every input and returns the results in input
// order. A Group runs each call in a member of its own, all at once. A Pool
// of size n runs them in at most n members that each take the next input
// while any is left (a fixed worker pool: no green thread per input); each
// call still starts with fresh green::local values. If calls fail,
// no new calls start, the calls still running are killed and joined, and map
// rethrows the exception of the failing input that comes first in the input
// order: nothing map started outlives it. The same cleanup happens when the
// caller of map is itself killed or its Timeout fires. imap() yields results
// lazily in input order (an exception comes out of the step that reaches its
// input, and iteration may continue after it); imap_unordered() in the order
// the calls finish. Both keep at most `window` calls started and unread.
//
// Blocking. spawn() on a full Pool, join(), kill(), map() and iterating an
// imap suspend the calling green thread (a plain OS thread blocks on a
// futex), honour green::Timeout scopes and kill, and take timeouts where
// shown. Spawning from a plain thread needs the Runtime: pass it to the
// constructor.
//
// Thread safety: every member function may be called from any green thread
// or plain thread. An imap result object is used by one party at a time.
#pragma once

#include <concepts>
#include <cstddef>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "green/current.hpp"
#include "green/detail/group_core.hpp"
#include "green/errors.hpp"
#include "green/greenlet.hpp"
#include "green/runtime.hpp"

namespace green {

// A Pool had no free slot within the timeout (add_nowait, add(g, timeout),
// spawn_nowait).
class PoolFull : public Error {
 public:
  PoolFull() : Error("green::Pool: full") {}
};

// How map() and imap() run: green/detail/pool_map.hpp.
template <class R, class F, class View>
class IMap;
template <class R, class F, class View>
class IMapUnordered;
namespace detail {
template <class F, class Range>
class MapCall;
template <class Map, class R, class F, class View>
class MapWindow;
}  // namespace detail

class Group {
 public:
  // Spawns on the caller's runtime; from a plain thread, pass the runtime.
  Group() : Group(detail::GroupCore::kUnbounded, nullptr) {}
  explicit Group(Runtime& rt) : Group(detail::GroupCore::kUnbounded, &rt) {}
  Group(const Group&) = delete;
  Group& operator=(const Group&) = delete;
  ~Group() { core_->release(); }

  // ---- spawning --------------------------------------------------------------
  // Spawns fn(args...) as a member (in a Pool: waits for a free slot).
  template <class F, class... Args>
    requires detail::Spawnable<F, Args...>
  [[gnu::always_inline]] auto spawn(F&& fn, Args&&... args) {
    return spawn_member(SpawnOptions{}, detail::kNoDeadline, true, nullptr, std::forward<F>(fn),
                        std::forward<Args>(args)...);
  }
  template <class F, class... Args>
  [[gnu::always_inline]] auto spawn(const SpawnOptions& opts, F&& fn, Args&&... args) {
    return spawn_member(opts, detail::kNoDeadline, true, nullptr, std::forward<F>(fn),
                        std::forward<Args>(args)...);
  }
  // Adds a green thread spawned elsewhere (in a Pool: takes a slot, waiting
  // for one). Adding a member again does nothing.
  template <class T>
  void add(const Greenlet<T>& g) {
    add_until(g, detail::kNoDeadline, true);
  }

  // ---- the members -------------------------------------------------------------
  std::size_t size() const { return core_->size(); }
  bool empty() const { return size() == 0; }
  template <class T>
  bool contains(const Greenlet<T>& g) const {
    return core_->contains(g.raw());
  }

  // Waits until no member is left; with a timeout, false if some remain.
  bool join() { return core_->join_until(detail::kNoDeadline); }
  bool join(Clock::duration timeout) { return core_->join_until(detail::deadline_after(timeout)); }

  // Kills every member with GreenletExit (each once, even when called
  // again); with block, waits (at most `timeout`) until the group is empty.
  // Returns whether it is.
  bool kill(bool block = true) { return kill_until(block, detail::kNoDeadline); }
  bool kill(Clock::duration timeout) { return kill_until(true, detail::deadline_after(timeout)); }

  // gevent's killone(greenlet, exception, block, timeout): kills member `g`
  // with `exception` (GreenletExit by default; an exception object or a
  // std::exception_ptr) unless it is no member or was already killed
  // through the group (kill() or killone(): each member is killed once).
  // With block, waits at most `timeout` for g to end, member or not.
  // Returns g.ready(). A bool in the exception's place does not compile.
  template <class T, class E = GreenletExit>
    requires(!std::same_as<std::decay_t<E>, bool>)
  bool killone(const Greenlet<T>& g, E&& exception = E{}, bool block = true,
               std::optional<Clock::duration> timeout = std::nullopt) {
    if (!g.valid()) throw Error("green::Group::killone: empty Greenlet");
    if (core_->take_unkilled(g.raw())) {
      std::exception_ptr exc;
      if constexpr (std::is_same_v<std::decay_t<E>, std::exception_ptr>) {
        exc = std::forward<E>(exception);
      } else {
        exc = std::make_exception_ptr(std::forward<E>(exception));
      }
      g.kill_ptr(std::move(exc), false, detail::kNoDeadline);
    }
    if (block) return timeout ? g.join(*timeout) : g.join();
    return g.ready();
  }

  // gevent's discard(greenlet): stops tracking member `g` without killing
  // it. It leaves size() and contains() at once, a join() no longer waits
  // for it, and in a Pool its slot is free at once. Returns false (and does
  // nothing) when g is no member, or is running a call of map() or imap(),
  // which must see it end. Non-blocking.
  template <class T>
  bool discard(const Greenlet<T>& g) {
    return core_->discard(g.raw());
  }

  // ---- running calls -------------------------------------------------------------
  // Runs fn(args...) in a member and returns its result (or rethrows). Called
  // from a member of this group it runs fn inline, so a Pool(1) can apply()
  // from inside itself without deadlock.
  template <class F, class... Args>
  auto apply(F&& fn, Args&&... args);

  // fn(x) for every x in inputs, each in a member; results in input order
  // (void when fn returns void). See the header comment for failures.
  template <class F, class Range>
  auto map(F fn, Range&& inputs);

  // gevent's apply_async: runs fn(args...) in a member and returns at once,
  // never waiting for a slot; the returned Greenlet's result is fn's (or
  // its exception). If a slot is free now, the Greenlet is the member
  // itself. In a full Pool it is a helper green thread, not yet a member,
  // that waits for a slot (first come, first served with spawn()), becomes
  // a member and calls fn itself; so join() and size() see it only from
  // then on, and killing the helper while it waits cancels the call.
  // gevent's callback argument is link_value() on the result (it runs when
  // fn returns, in the green thread that ran it). Spawning from a plain
  // thread needs the Runtime given to the constructor.
  template <class F, class... Args>
    requires detail::Spawnable<F, Args...>
  auto apply_async(F&& fn, Args&&... args);

  // gevent's map_async: map(fn, inputs) in a green thread of its own (not a
  // member), spawned now; its result is map's vector (or its exception).
  // `inputs` is copied or moved into it. The Group must outlive that green
  // thread: join it, or kill it, before destroying the Group (kill cleans
  // up as map does: the calls it started are killed and joined).
  template <class F, class Range>
  auto map_async(F fn, Range&& inputs);

  // Lazy, ordered: results as the loop reaches them. `window` bounds the
  // calls started and not yet read (0: the pool's size; a Group: 64).
  template <class F, class Range>
  auto imap(F fn, Range&& inputs, std::size_t window = 0);
  // Lazy, in the order the calls finish.
  template <class F, class Range>
  auto imap_unordered(F fn, Range&& inputs, std::size_t window = 0);

 protected:
  Group(std::size_t capacity, Runtime* rt)
      : core_(new detail::GroupCore(capacity)), rt_(rt ? rt->core() : nullptr) {}

  template <class T>
  void add_until(const Greenlet<T>& g, detail::Deadline deadline, bool block) {
    if (!g.valid()) throw Error("green::Group::add: empty Greenlet");
    if (!core_->admit_existing(g.raw(), deadline, block)) throw PoolFull();
  }

  template <class F, class... Args>
  [[gnu::always_inline]] auto spawn_member(const SpawnOptions& opts, detail::Deadline deadline, bool block,
                                           detail::MemberWatch* watch, F&& fn, Args&&... args) {
    using R = detail::SpawnResult<F, Args...>;
    // The handle owns the new control block: it is freed if we throw.
    Greenlet<R> handle(detail::make_task(std::forward<F>(fn), std::forward<Args>(args)...));
    handle.raw()->spawn_site = detail::code_address_here();  // see greenlet.hpp
    if (!core_->admit_spawned(handle.raw(), watch, deadline, block)) throw PoolFull();
    try {
      detail::submit(rt_, handle.raw(), opts, detail::Deadline{});
    } catch (...) {
      core_->abandon(handle.raw());
      throw;
    }
    return handle;
  }

  detail::GroupCore* core_;
  detail::RuntimeCore* rt_;

 private:
  template <class F, class Range>
  friend class detail::MapCall;
  template <class Map, class R, class F, class View>
  friend class detail::MapWindow;

  bool kill_until(bool block, detail::Deadline deadline) {
    for (auto& f : core_->take_unkilled()) f->kill(nullptr, false, detail::kNoDeadline);
    if (!block) return core_->size() == 0;
    return core_->join_until(deadline);
  }
};

// A Group that runs at most `size` members at once.
class Pool : public Group {
 public:
  explicit Pool(std::size_t size) : Group(size, nullptr) {}
  Pool(std::size_t size, Runtime& rt) : Group(size, &rt) {}

  // Spawns fn(args...) if a slot is free now; else throws PoolFull.
  template <class F, class... Args>
  auto spawn_nowait(F&& fn, Args&&... args) {
    return spawn_member(SpawnOptions{}, detail::kNoDeadline, false, nullptr, std::forward<F>(fn),
                        std::forward<Args>(args)...);
  }
  using Group::add;
  // As add(), waiting at most `timeout` for a slot; then throws PoolFull.
  template <class T>
  void add(const Greenlet<T>& g, Clock::duration timeout) {
    add_until(g, detail::deadline_after(timeout), true);
  }
  // As add(), throwing PoolFull at once when no slot is free.
  template <class T>
  void add_nowait(const Greenlet<T>& g) {
    add_until(g, detail::kNoDeadline, false);
  }

  std::size_t capacity() const noexcept { return core_->capacity(); }
  // Slots free now.
  std::size_t free_count() const { return core_->free_count(); }
  bool full() const { return free_count() == 0; }
  // Waits until a slot is free (at most `timeout`); returns free_count().
  std::size_t wait_available() { return core_->wait_available(detail::kNoDeadline); }
  std::size_t wait_available(Clock::duration timeout) {
    return core_->wait_available(detail::deadline_after(timeout));
  }
};

}  // namespace green

// The bodies of apply(), map() and the imap objects.
#include "green/detail/pool_map.hpp"
