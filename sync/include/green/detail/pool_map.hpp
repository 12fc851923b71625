// green/detail/pool_map.hpp — how Group::map, imap and imap_unordered run.
//
// Not part of the user's API: green/pool.hpp declares these calls and says
// what they do, and includes this header at its end for their bodies. The
// type-independent half of map() (following its calls, failure, cleanup) is
// MapRun, in pool_map.cpp.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <iterator>
#include <mutex>
#include <optional>
#include <ranges>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <boost/intrusive_ptr.hpp>

#include "green/detail/group_core.hpp"
#include "green/local.hpp"
#include "green/lock.hpp"
// Group first, whichever of the two headers is included first (the other
// one's include is then a no-op).
#include "green/pool.hpp"

namespace green::detail {

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

// The calls started and not yet read that imap() keeps at most: `window`,
// or by default the pool's size (a Group: 64).
std::size_t map_window(const GroupCore& core, std::size_t window) noexcept;

// One map() call, whatever the types: follows its calls, keeps the failure
// of the earliest input, and knows whether every input was taken.
class MapRun {
 public:
  explicit MapRun(GroupCore& core) : core_(core), watch_(core, false) {}
  MapRun(const MapRun&) = delete;
  MapRun& operator=(const MapRun&) = delete;

  MemberWatch* watch() noexcept { return &watch_; }
  // No new call is to start: every input was taken, or a call failed.
  bool stopping() const { return inputs_done_.load(std::memory_order_relaxed) || watch_.failed(); }
  void inputs_taken() noexcept { inputs_done_.store(true, std::memory_order_relaxed); }
  // The call for input `index` threw (or the input range, producing it).
  void record_failure(std::size_t index, std::exception_ptr e) noexcept { watch_.record_failure(index, e); }
  // Waits until every call started has ended, or one failed.
  void wait() { watch_.wait_all(true); }
  // Kills the calls still running and waits for every call started: for map
  // leaving early, so that nothing it started outlives it.
  void stop_all();
  // Once the calls are over: rethrows the earliest failure, or throws Error
  // when the call for input `first_empty` (of `taken`) or an input not taken
  // was killed from outside (Group::kill). first_empty == taken: none was.
  void finish(std::size_t first_empty, std::size_t taken);

 private:
  GroupCore& core_;
  MemberWatch watch_;
  // Set once every input has been taken (or taking one threw).
  std::atomic<bool> inputs_done_{false};
};

// The typed half of one map() call: the inputs, and one result slot per
// input, filled by its call.
template <class F, class Range>
class MapCall {
  using R = MapResult<F, Range>;
  using In = std::ranges::range_value_t<Range>;
  using Slot = std::conditional_t<std::is_void_v<R>, bool, std::optional<R>>;

 public:
  MapCall(Group& group, F& fn, Range& inputs) : group_(group), fn_(fn), inputs_(inputs), run_(*group.core_) {}

  auto results() {
    try {
      if (group_.core_->capacity() == GroupCore::kUnbounded) {
        spawn_each();
      } else {
        spawn_runners(group_.core_->capacity());
      }
      run_.wait();
    } catch (...) {
      // The caller was killed or timed out, or the input range threw.
      run_.stop_all();
      throw;
    }
    const auto empty = std::ranges::find_if(slots_, [](const Slot& s) { return !s; });
    run_.finish(static_cast<std::size_t>(empty - slots_.begin()), slots_.size());
    if constexpr (std::is_void_v<R>) {
      return;
    } else {
      std::vector<R> results;
      results.reserve(slots_.size());
      for (Slot& slot : slots_) results.push_back(std::move(*slot));
      return results;
    }
  }

 private:
  // A Pool's runners take inputs through this. The iterator is advanced
  // only when the next input is wanted, as a range-for loop does: advancing
  // a streaming input (a Queue) waits for its next item, which must not hold
  // back the call for this one.
  struct Cursor {
    Lock taking;  // guards the rest, and slots_' growth
    decltype(std::begin(std::declval<Range&>())) next;
    const decltype(std::end(std::declval<Range&>())) end;
    std::size_t next_index = 0;
    bool advance_first = false;
    Cursor(decltype(next) first, decltype(end) last) : next(first), end(last) {}
  };

  void call(Slot* slot, std::size_t index, In x) {
    try {
      if constexpr (std::is_void_v<R>) {
        std::invoke(fn_, std::move(x));
        *slot = true;
      } else {
        slot->emplace(std::invoke(fn_, std::move(x)));
      }
    } catch (const GreenletExit&) {
      throw;  // killed: its slot stays empty
    } catch (...) {
      // Kept for map to rethrow; the call itself ends quietly, so the
      // failure is reported once, by map, and not as unobserved.
      run_.record_failure(index, std::current_exception());
    }
  }

  // A Group: every call in its own member, all running at once.
  void spawn_each() {
    std::size_t index = 0;
    for (auto&& x : inputs_) {
      if (run_.stopping()) break;
      Slot* slot = &slots_.emplace_back();
      group_.spawn_member(
          SpawnOptions{}, kNoDeadline, true, run_.watch(),
          [this](Slot* s, std::size_t i, In v) { call(s, i, std::move(v)); }, slot, index++, static_cast<In>(x));
    }
    run_.inputs_taken();
  }

  // A Pool: `cap` runners, each taking the next input while any is left, as
  // a fixed worker pool does. At most `cap` calls run at once, as with a
  // member per call, for a fraction of the cost per call.
  void spawn_runners(std::size_t cap) {
    cursor_.emplace(std::begin(inputs_), std::end(inputs_));
    std::size_t runners = std::max<std::size_t>(cap, 1);
    // No more runners than inputs, where the count is known in advance (a
    // multi-pass range; a Queue's size is only a snapshot).
    if constexpr (std::ranges::forward_range<Range> && std::ranges::sized_range<Range>) {
      runners = std::min<std::size_t>(runners, std::ranges::size(inputs_));
      if (runners == 0) run_.inputs_taken();
    }
    for (std::size_t i = 0; i < runners && !run_.stopping(); ++i)
      group_.spawn_member(SpawnOptions{}, kNoDeadline, true, run_.watch(), [this] { run_inputs(); });
  }

  void run_inputs() {
    for (;;) {
      std::optional<In> x;
      Slot* slot = nullptr;
      std::size_t index = 0;
      if (!take_input(x, slot, index)) return;
      call(slot, index, std::move(*x));
      // Each call starts with fresh green::local values, as in a green
      // thread of its own.
      clear_locals();
    }
  }

  bool take_input(std::optional<In>& x, Slot*& slot, std::size_t& index) {
    Cursor& c = *cursor_;
    std::lock_guard g(c.taking);
    if (run_.stopping()) return false;
    try {
      if (c.advance_first) {
        c.advance_first = false;
        ++c.next;
      }
      if (c.next == c.end) {
        run_.inputs_taken();
        return false;
      }
      x.emplace(static_cast<In>(*c.next));
      c.advance_first = true;
    } catch (const GreenletExit&) {
      throw;
    } catch (...) {
      // The input range threw: map rethrows it as the failure of the input
      // it was producing.
      run_.inputs_taken();
      run_.record_failure(c.next_index, std::current_exception());
      return false;
    }
    index = c.next_index++;
    slot = &slots_.emplace_back();
    return true;
  }

  Group& group_;
  F& fn_;
  Range& inputs_;
  MapRun run_;
  // A deque never moves its elements when it grows, so a call may fill its
  // slot while more are appended. Calls hand back nothing else: no handle
  // is kept, so a long map holds only the control blocks of the green
  // threads running.
  std::deque<Slot> slots_;
  std::optional<Cursor> cursor_;  // a Pool's
};

// What imap and imap_unordered (Map) share: the inputs, started one call at
// a time while fewer than `window` are started and unread, and iteration.
template <class Map, class R, class F, class View>
class MapWindow {
 protected:
  using Value = std::conditional_t<std::is_void_v<R>, std::monostate, R>;

 public:
  // An input iterator: every step is a call on the Map, which knows its
  // own order (Map befriends MapWindow, and so this).
  class iterator {
   public:
    using value_type = Value;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(Map* m) : m_(m) {}
    // Waits for the call at this position; its result, or its exception.
    decltype(auto) operator*() const { return m_->front(); }
    iterator& operator++() {
      m_->pop_front();
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const { return m_->done(); }

   private:
    Map* m_ = nullptr;
  };
  iterator begin() {
    self().fill();
    return iterator(&self());
  }
  std::default_sentinel_t end() const noexcept { return {}; }

  MapWindow(Group& group, F fn, View inputs, std::size_t window)
      : group_(group), fn_(std::move(fn)), inputs_(std::move(inputs)), window_(window) {}
  MapWindow(const MapWindow&) = delete;
  MapWindow& operator=(const MapWindow&) = delete;

 protected:
  ~MapWindow() = default;

  GroupCore& group_core() const { return *group_.core_; }

  // Starts calls while fewer than `window` are outstanding; each started
  // call's handle goes to `started`.
  template <class Started>
  void start_calls(std::size_t outstanding, MemberWatch* watch, Started started) {
    if (!begun_) {
      next_ = std::ranges::begin(inputs_);
      begun_ = true;
    }
    for (; outstanding < window_ && next_ != std::ranges::end(inputs_); ++outstanding) {
      In x = *next_;
      ++next_;
      started(group_.spawn_member(
          SpawnOptions{}, kNoDeadline, true, watch, [f = &fn_](In v) -> R { return std::invoke(*f, std::move(v)); },
          std::move(x)));
    }
  }

  // The result of the finished call `g`, taken once into `value`: the
  // iterator may be dereferenced more than once.
  static decltype(auto) result(const Greenlet<R>& g, std::optional<Value>& value) {
    if constexpr (std::is_void_v<R>) {
      g.get();
      return std::monostate{};
    } else {
      if (!value) value.emplace(take_result(g));
      return static_cast<R&>(*value);
    }
  }

 private:
  using In = std::ranges::range_value_t<View>;
  Map& self() { return static_cast<Map&>(*this); }

  Group& group_;
  F fn_;
  View inputs_;
  std::size_t window_;
  bool begun_ = false;
  std::ranges::iterator_t<View> next_{};
};

}  // namespace green::detail

namespace green {

// ---------------------------------------------------------------------------
// imap: calls in a window that slides along the inputs, read in input order.

template <class R, class F, class View>
class IMap : public detail::MapWindow<IMap<R, F, View>, R, F, View> {
  using Base = detail::MapWindow<IMap, R, F, View>;
  friend Base;

 public:
  using Base::Base;
  // Calls still running are killed and joined: none outlives the object.
  ~IMap() {
    for (auto& g : calls_) g.kill_ptr(nullptr, false, detail::kNoDeadline);
    for (auto& g : calls_) g.join();
  }

 private:
  void fill() {
    this->start_calls(calls_.size(), nullptr, [this](Greenlet<R> g) { calls_.push_back(std::move(g)); });
  }
  bool done() {
    fill();
    return calls_.empty();
  }
  decltype(auto) front() { return Base::result(calls_.front(), current_); }
  void pop_front() {
    calls_.pop_front();
    current_.reset();
    fill();
  }

  std::deque<Greenlet<R>> calls_;
  std::optional<typename Base::Value> current_;
};

// imap_unordered: the same window, read in the order the calls finish.
template <class R, class F, class View>
class IMapUnordered : public detail::MapWindow<IMapUnordered<R, F, View>, R, F, View> {
  using Base = detail::MapWindow<IMapUnordered, R, F, View>;
  friend Base;

 public:
  IMapUnordered(Group& group, F fn, View inputs, std::size_t window)
      : Base(group, std::move(fn), std::move(inputs), window), watch_(this->group_core(), true) {}
  ~IMapUnordered() {
    for (auto& g : running_) g.kill_ptr(nullptr, false, detail::kNoDeadline);
    watch_.wait_all(false);
  }

 private:
  void fill() {
    this->start_calls(outstanding_, &watch_, [this](Greenlet<R> g) {
      running_.push_back(std::move(g));
      ++outstanding_;
    });
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
    return Base::result(current_, value_);
  }
  void pop_front() {
    ensure_current();
    current_ = Greenlet<R>();
    value_.reset();
    --outstanding_;
    fill();
  }

  std::size_t outstanding_ = 0;       // started and not yet read
  detail::MemberWatch watch_;
  std::vector<Greenlet<R>> running_;  // not yet finished (for cleanup)
  Greenlet<R> current_;
  std::optional<typename Base::Value> value_;
};

// ---------------------------------------------------------------------------
// Group's calls

template <class F, class... Args>
auto Group::apply(F&& fn, Args&&... args) {
  using R = detail::SpawnResult<F, Args...>;
  if (core_->contains(detail::current_fiber())) return static_cast<R>(std::invoke(fn, args...));
  return detail::take_result(spawn(std::forward<F>(fn), std::forward<Args>(args)...));
}

template <class F, class Range>
auto Group::map(F fn, Range&& inputs) {
  return detail::MapCall<F, Range>(*this, fn, inputs).results();
}

template <class F, class... Args>
  requires detail::Spawnable<F, Args...>
auto Group::apply_async(F&& fn, Args&&... args) {
  using R = detail::SpawnResult<F, Args...>;
  if (core_->free_count() > 0) {
    try {
      return spawn_member(SpawnOptions{}, detail::kNoDeadline, false, nullptr, std::forward<F>(fn),
                          std::forward<Args>(args)...);
    } catch (const PoolFull&) {  // taken meanwhile: fall through to the helper
    }
  }
  // The helper keeps the books alive while it waits (the Group may go).
  boost::intrusive_ptr<detail::GroupCore> core(core_);
  auto call = [core, fn = std::decay_t<F>(std::forward<F>(fn)),
               args = std::make_tuple(std::decay_t<Args>(std::forward<Args>(args))...)]() mutable -> R {
    // Becomes a member itself, waiting for a slot; its end frees the slot.
    core->admit_existing(detail::current_fiber(), detail::kNoDeadline, true);
    return std::apply(fn, std::move(args));
  };
  return detail::spawn_on(rt_, SpawnOptions{}, detail::Deadline{}, std::move(call));
}

template <class F, class Range>
auto Group::map_async(F fn, Range&& inputs) {
  return detail::spawn_on(rt_, SpawnOptions{}, detail::Deadline{},
                          [this, fn = std::move(fn), inputs = std::decay_t<Range>(std::forward<Range>(inputs))]() mutable {
                            return map(fn, inputs);
                          });
}

template <class F, class Range>
auto Group::imap(F fn, Range&& inputs, std::size_t window) {
  using View = std::views::all_t<Range>;
  return IMap<detail::MapResult<F, Range>, F, View>(*this, std::move(fn), std::views::all(std::forward<Range>(inputs)),
                                                    detail::map_window(*core_, window));
}

template <class F, class Range>
auto Group::imap_unordered(F fn, Range&& inputs, std::size_t window) {
  using View = std::views::all_t<Range>;
  return IMapUnordered<detail::MapResult<F, Range>, F, View>(
      *this, std::move(fn), std::views::all(std::forward<Range>(inputs)), detail::map_window(*core_, window));
}

}  // namespace green
