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

#include <atomic>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <iterator>
#include <optional>
#include <ranges>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "green/current.hpp"
#include "green/detail/group_core.hpp"
#include "green/errors.hpp"
#include "green/greenlet.hpp"
#include "green/local.hpp"
#include "green/lock.hpp"
#include "green/runtime.hpp"

namespace green {

// A Pool had no free slot within the timeout (add_nowait, add(g, timeout),
// spawn_nowait).
class PoolFull : public Error {
 public:
  PoolFull() : Error("green::Pool: full") {}
};

template <class R, class F, class View>
class IMap;
template <class R, class F, class View>
class IMapUnordered;

namespace detail {
// Moves the result out of a green thread that only the caller reads.
template <class R>
R take_result(const Greenlet<R>& g) {
  g.get();  // waits; rethrows its exception
  if constexpr (!std::is_void_v<R>) {
    return std::move(*static_cast<ResultFiber<R>*>(g.raw())->value);
  }
}
template <class F, class Range>
using MapResult = std::invoke_result_t<F&, std::ranges::range_value_t<Range>>;
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
  auto spawn(F&& fn, Args&&... args) {
    return spawn_member(SpawnOptions{}, detail::kNoDeadline, true, nullptr, std::forward<F>(fn),
                        std::forward<Args>(args)...);
  }
  template <class F, class... Args>
  auto spawn(const SpawnOptions& opts, F&& fn, Args&&... args) {
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

  // ---- running calls -------------------------------------------------------------
  // Runs fn(args...) in a member and returns its result (or rethrows). Called
  // from a member of this group it runs fn inline, so a Pool(1) can apply()
  // from inside itself without deadlock.
  template <class F, class... Args>
  auto apply(F&& fn, Args&&... args) {
    using R = detail::SpawnResult<F, Args...>;
    if (core_->contains(detail::current_fiber())) return static_cast<R>(std::invoke(fn, args...));
    return detail::take_result(spawn(std::forward<F>(fn), std::forward<Args>(args)...));
  }

  // fn(x) for every x in inputs, each in a member; results in input order
  // (void when fn returns void). See the header comment for failures.
  template <class F, class Range>
  auto map(F fn, Range&& inputs);

  // Lazy, ordered: results as the loop reaches them. `window` bounds the
  // calls started and not yet read (0: the pool's size; a Group: 64).
  template <class F, class Range>
  auto imap(F fn, Range&& inputs, std::size_t window = 0) {
    using View = std::views::all_t<Range>;
    return IMap<detail::MapResult<F, Range>, F, View>(*this, std::move(fn),
                                                      std::views::all(std::forward<Range>(inputs)),
                                                      window_or_default(window));
  }
  // Lazy, in the order the calls finish.
  template <class F, class Range>
  auto imap_unordered(F fn, Range&& inputs, std::size_t window = 0) {
    using View = std::views::all_t<Range>;
    return IMapUnordered<detail::MapResult<F, Range>, F, View>(
        *this, std::move(fn), std::views::all(std::forward<Range>(inputs)), window_or_default(window));
  }

 protected:
  Group(std::size_t capacity, Runtime* rt)
      : core_(new detail::GroupCore(capacity)), rt_(rt ? rt->core() : nullptr) {}

  template <class T>
  void add_until(const Greenlet<T>& g, detail::Deadline deadline, bool block) {
    if (!g.valid()) throw Error("green::Group::add: empty Greenlet");
    if (!core_->admit_existing(g.raw(), deadline, block)) throw PoolFull();
  }

  template <class F, class... Args>
  auto spawn_member(const SpawnOptions& opts, detail::Deadline deadline, bool block,
                    detail::MemberWatch* watch, F&& fn, Args&&... args) {
    using R = detail::SpawnResult<F, Args...>;
    // The handle owns the new control block: it is freed if we throw.
    Greenlet<R> handle(detail::make_task(std::forward<F>(fn), std::forward<Args>(args)...));
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
  template <class R, class F, class View>
  friend class IMap;
  template <class R, class F, class View>
  friend class IMapUnordered;

  bool kill_until(bool block, detail::Deadline deadline) {
    for (auto& f : core_->take_unkilled()) f->kill(nullptr, false, detail::kNoDeadline);
    if (!block) return core_->size() == 0;
    return core_->join_until(deadline);
  }
  std::size_t window_or_default(std::size_t window) const {
    if (window) return window;
    const std::size_t cap = core_->capacity();
    return cap == detail::GroupCore::kUnbounded ? 64 : std::max<std::size_t>(cap, 1);
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

// ---------------------------------------------------------------------------
// map

template <class F, class Range>
auto Group::map(F fn, Range&& inputs) {
  using R = detail::MapResult<F, Range>;
  using In = std::ranges::range_value_t<Range>;
  using Slot = std::conditional_t<std::is_void_v<R>, bool, std::optional<R>>;
  detail::MemberWatch watch(*core_, false);
  // One slot per input, filled by its call. A deque never moves its
  // elements when it grows, so a call may fill its slot while more are
  // appended. Calls hand back nothing else: no handle is kept, so a long
  // map holds only the control blocks of the green threads running.
  std::deque<Slot> slots;
  auto call = [&fn, &watch](Slot* slot, std::size_t index, In x) {
    try {
      if constexpr (std::is_void_v<R>) {
        std::invoke(fn, std::move(x));
        *slot = true;
      } else {
        slot->emplace(std::invoke(fn, std::move(x)));
      }
    } catch (const GreenletExit&) {
      throw;  // killed: its slot stays empty
    } catch (...) {
      // Kept for map to rethrow; the call itself ends quietly, so the
      // failure is reported once, by map, and not as unobserved.
      watch.record_failure(index, std::current_exception());
    }
  };
  // Kills the calls still running and waits for every call started.
  auto stop_all = [&] {
    core_->kill_watched(&watch);
    watch.wait_all(false);
  };
  const std::size_t cap = core_->capacity();
  // Set once every input has been taken (or taking one threw).
  std::atomic<bool> inputs_done{false};
  // A Pool's runners take inputs through this; it lives as long as map, so
  // it outlasts every runner whatever way map leaves.
  struct Cursor {
    Lock taking;  // guards the rest, and slots' growth
    decltype(std::begin(inputs)) next;
    const decltype(std::end(inputs)) end;
    std::size_t next_index = 0;
    // The iterator is advanced only when the next input is wanted, as a
    // range-for loop does: advancing a streaming input (a Queue) waits for
    // its next item, which must not hold back the call for this one.
    bool advance_first = false;
    Cursor(decltype(next) first, decltype(end) last) : next(first), end(last) {}
  };
  std::optional<Cursor> cursor;
  try {
    if (cap == detail::GroupCore::kUnbounded) {
      // A Group: every call in its own member, all running at once.
      std::size_t index = 0;
      for (auto&& x : inputs) {
        if (watch.failed()) break;
        Slot* slot = &slots.emplace_back();
        spawn_member(SpawnOptions{}, detail::kNoDeadline, true, &watch, call, slot, index++,
                     static_cast<In>(x));
      }
      inputs_done.store(true, std::memory_order_relaxed);
    } else {
      // A Pool: `cap` runners, each taking the next input while any is
      // left, as a fixed worker pool does. At most `cap` calls run at once,
      // as with a member per call, for a fraction of the cost per call.
      cursor.emplace(std::begin(inputs), std::end(inputs));
      auto runner = [&] {
        Cursor& c = *cursor;
        for (;;) {
          std::optional<In> x;
          Slot* slot = nullptr;
          std::size_t index = 0;
          {
            std::lock_guard g(c.taking);
            if (inputs_done.load(std::memory_order_relaxed) || watch.failed()) return;
            try {
              if (c.advance_first) {
                c.advance_first = false;
                ++c.next;
              }
              if (c.next == c.end) {
                inputs_done.store(true, std::memory_order_relaxed);
                return;
              }
              x.emplace(static_cast<In>(*c.next));
              c.advance_first = true;
            } catch (const GreenletExit&) {
              throw;
            } catch (...) {
              // The input range threw: map rethrows it as the failure of
              // the input it was producing.
              inputs_done.store(true, std::memory_order_relaxed);
              watch.record_failure(c.next_index, std::current_exception());
              return;
            }
            index = c.next_index++;
            slot = &slots.emplace_back();
          }
          call(slot, index, std::move(*x));
          // Each call starts with fresh green::local values, as in a
          // green thread of its own.
          detail::clear_locals();
        }
      };
      std::size_t runners = std::max<std::size_t>(cap, 1);
      // No more runners than inputs, where the count is known in advance (a
      // multi-pass range; a Queue's size is only a snapshot).
      if constexpr (std::ranges::forward_range<Range> && std::ranges::sized_range<Range>) {
        runners = std::min<std::size_t>(runners, std::ranges::size(inputs));
        if (runners == 0) inputs_done.store(true, std::memory_order_relaxed);
      }
      for (std::size_t i = 0; i < runners; ++i) {
        if (inputs_done.load(std::memory_order_relaxed) || watch.failed()) break;
        spawn_member(SpawnOptions{}, detail::kNoDeadline, true, &watch, runner);
      }
    }
    watch.wait_all(true);
  } catch (...) {
    // The caller was killed or timed out, or the input range threw.
    stop_all();
    throw;
  }
  if (watch.failed()) {
    stop_all();
    std::rethrow_exception(watch.first_failure());
  }
  // Every call has ended; one killed from outside (Group::kill) left its
  // slot empty, or inputs that no call took. That is an error for map's
  // caller, not a kill of it.
  for (std::size_t i = 0; i < slots.size(); ++i)
    if (!slots[i]) throw Error("green::Group::map: the call for input #" + std::to_string(i) + " was killed");
  if (!inputs_done.load(std::memory_order_relaxed))
    throw Error("green::Group::map: killed before input #" + std::to_string(slots.size()) + " was taken");
  if constexpr (std::is_void_v<R>) {
    return;
  } else {
    std::vector<R> results;
    results.reserve(slots.size());
    for (Slot& slot : slots) results.push_back(std::move(*slot));
    return results;
  }
}

namespace detail {
// The input iterator of imap() and imap_unordered(): every step is a call
// on the map object, which knows its own order.
template <class Map, class R>
class MapIterator {
 public:
  using value_type = std::conditional_t<std::is_void_v<R>, std::monostate, R>;
  using difference_type = std::ptrdiff_t;
  MapIterator() = default;
  explicit MapIterator(Map* m) : m_(m) {}
  // Waits for the call at this position; its result, or its exception.
  decltype(auto) operator*() const { return m_->front(); }
  MapIterator& operator++() {
    m_->pop_front();
    return *this;
  }
  void operator++(int) { ++*this; }
  bool operator==(std::default_sentinel_t) const { return m_->done(); }

 private:
  Map* m_ = nullptr;
};
}  // namespace detail

// ---------------------------------------------------------------------------
// imap: calls in a window that slides along the inputs, read in input order.

template <class R, class F, class View>
class IMap {
 public:
  IMap(Group& group, F fn, View inputs, std::size_t window)
      : group_(group), fn_(std::move(fn)), inputs_(std::move(inputs)), window_(window) {}
  IMap(const IMap&) = delete;
  IMap& operator=(const IMap&) = delete;
  // Calls still running are killed and joined: none outlives the object.
  ~IMap() {
    for (auto& g : calls_) g.kill_ptr(nullptr, false, detail::kNoDeadline);
    for (auto& g : calls_) g.join();
  }

  using iterator = detail::MapIterator<IMap, R>;
  friend iterator;
  iterator begin() {
    fill();
    return iterator(this);
  }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  using In = std::ranges::range_value_t<View>;
  void fill() {
    if (!started_) {
      next_ = std::ranges::begin(inputs_);
      started_ = true;
    }
    while (calls_.size() < window_ && next_ != std::ranges::end(inputs_)) {
      In x = *next_;
      ++next_;
      calls_.push_back(group_.spawn_member(
          SpawnOptions{}, detail::kNoDeadline, true, nullptr,
          [f = &fn_](In v) -> R { return std::invoke(*f, std::move(v)); }, std::move(x)));
    }
  }
  bool done() {
    fill();
    return calls_.empty();
  }
  decltype(auto) front() {
    if constexpr (std::is_void_v<R>) {
      calls_.front().get();
      return std::monostate{};
    } else {
      if (!current_) current_.emplace(detail::take_result(calls_.front()));
      return static_cast<R&>(*current_);
    }
  }
  void pop_front() {
    calls_.pop_front();
    current_.reset();
    fill();
  }

  Group& group_;
  F fn_;
  View inputs_;
  std::size_t window_;
  bool started_ = false;
  std::ranges::iterator_t<View> next_{};
  std::deque<Greenlet<R>> calls_;
  std::optional<std::conditional_t<std::is_void_v<R>, std::monostate, R>> current_;
};

// imap_unordered: the same window, read in the order the calls finish.
template <class R, class F, class View>
class IMapUnordered {
 public:
  IMapUnordered(Group& group, F fn, View inputs, std::size_t window)
      : group_(group),
        fn_(std::move(fn)),
        inputs_(std::move(inputs)),
        window_(window),
        watch_(*group.core_, true) {}
  IMapUnordered(const IMapUnordered&) = delete;
  IMapUnordered& operator=(const IMapUnordered&) = delete;
  ~IMapUnordered() {
    for (auto& g : running_) g.kill_ptr(nullptr, false, detail::kNoDeadline);
    watch_.wait_all(false);
  }

  using iterator = detail::MapIterator<IMapUnordered, R>;
  friend iterator;
  iterator begin() {
    fill();
    return iterator(this);
  }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  using In = std::ranges::range_value_t<View>;
  using Value = std::conditional_t<std::is_void_v<R>, std::monostate, R>;
  void fill() {
    if (!started_) {
      next_ = std::ranges::begin(inputs_);
      started_ = true;
    }
    while (outstanding_ < window_ && next_ != std::ranges::end(inputs_)) {
      In x = *next_;
      ++next_;
      running_.push_back(group_.spawn_member(
          SpawnOptions{}, detail::kNoDeadline, true, &watch_,
          [f = &fn_](In v) -> R { return std::invoke(*f, std::move(v)); }, std::move(x)));
      ++outstanding_;
    }
  }
  // Takes the next finished call, if any is left.
  bool ensure_current() {
    if (current_.valid()) return true;
    fill();
    detail::Fiber* f = watch_.next_finished();
    if (!f) return false;
    current_ = Greenlet<R>(static_cast<detail::ResultFiber<R>*>(f));  // adopts the reference
    std::erase_if(running_, [f](const Greenlet<R>& g) { return g.raw() == f; });
    return true;
  }
  bool done() { return !ensure_current(); }
  decltype(auto) front() {
    ensure_current();
    if constexpr (std::is_void_v<R>) {
      current_.get();
      return std::monostate{};
    } else {
      if (!value_) value_.emplace(detail::take_result(current_));
      return static_cast<R&>(*value_);
    }
  }
  void pop_front() {
    ensure_current();
    current_ = Greenlet<R>();
    value_.reset();
    --outstanding_;
    fill();
  }

  Group& group_;
  F fn_;
  View inputs_;
  std::size_t window_;
  bool started_ = false;
  std::ranges::iterator_t<View> next_{};
  std::size_t outstanding_ = 0;         // started and not yet read
  detail::MemberWatch watch_;
  std::vector<Greenlet<R>> running_;    // not yet finished (for cleanup)
  Greenlet<R> current_;
  std::optional<Value> value_;
};

}  // namespace green
