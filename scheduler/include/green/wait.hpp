// green/wait.hpp — waiting for several objects at once (gevent.wait and
// gevent.iwait).
//
//   green::Event stop;
//   green::Queue<Job> jobs;
//   auto greenlet = green::spawn(work);
//   for (std::size_t i : green::wait({stop, jobs, greenlet}, 5s, 1)) ...
//
//   for (std::size_t i : green::iwait({a, b, c})) handle(i);  // as each is ready
//
// The objects (green::Waitable) may be, mixed: a Greenlet<T> or GreenletRef
// (ready once it has ended), an Event (set), an AsyncResult (a value or an
// exception stored), a Queue, LifoQueue, PriorityQueue or JoinableQueue
// (an item is stored, or it is closed: a get() would not block) and a
// green::FdWatch (green/fd.hpp: an fd readable, or writable). A Channel
// holds no items and cannot be watched. Waiting consumes nothing: a Queue
// keeps its item, an Event stays set. Each Waitable refers to its object,
// which must outlive the wait (a temporary is refused at compile time).
//
// Results are indices into the objects given, in the order the objects
// were found ready (those ready at the call first, in the order given).
//
// Blocking. One park covers every object: each gets a Waiter on its own
// wait list and the first to become ready wakes the caller (no polling).
// wait() and iwait's steps suspend only the calling green thread (a plain
// OS thread blocks on a futex; the no-object wait() needs a green thread),
// and honour green::Timeout scopes and kill (GreenletExit / TimeoutError are
// thrown with nothing left linked).
//
// Thread safety: the objects may be set, filled or ended from any green or
// plain thread, on any worker. An IWait is used by one party at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <mutex>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "green/current.hpp"
#include "green/detail/fiber.hpp"
#include "green/detail/wait_source.hpp"
#include "green/getcurrent.hpp"
#include "green/greenlet.hpp"

namespace green {

namespace detail {
struct WaitAccess;
}

// A reference to one object that wait() can watch (see above).
class Waitable {
 public:
  template <class T>
    requires requires(T& obj) { detail::WaitSourceFor<std::remove_const_t<T>>::address(obj); }
  Waitable(T& obj)  // NOLINT: implicit on purpose, so that wait({a, b}) reads well
      : obj_(detail::WaitSourceFor<std::remove_const_t<T>>::address(const_cast<std::remove_const_t<T>&>(obj))),
        ops_(&detail::WaitSourceFor<std::remove_const_t<T>>::ops) {}

  // Whether a wait on it would not block now (a snapshot).
  bool ready() const { return ops_->ready(obj_); }
  // Identifies the object watched: two Waitables of the same object (or of
  // two handles of one green thread) have the same address.
  const void* address() const noexcept { return obj_; }

 private:
  friend struct detail::WaitAccess;
  void* obj_;
  const detail::WaitSourceOps* ops_;
};

namespace detail {
// wait.cpp: waits until `count` more of the objects not marked in `taken`
// are ready (all of them when count is 0 or too large), or the deadline;
// marks and returns the newly ready ones, in the order found.
std::vector<std::size_t> wait_for(std::span<const Waitable> objects, std::vector<bool>& taken, Deadline deadline,
                                  std::size_t count);
bool wait_for_others(Deadline deadline);
}  // namespace detail

// gevent.wait(objects, timeout, count): waits until `count` of `objects`
// are ready (0: all of them), or `timeout` passes, and returns the indices
// of those ready then (up to count; possibly fewer after the timeout, none
// if none was ready). An empty list returns at once.
inline std::vector<std::size_t> wait(std::span<const Waitable> objects,
                                     std::optional<Clock::duration> timeout = std::nullopt, std::size_t count = 0) {
  std::vector<bool> taken(objects.size());
  return detail::wait_for(objects, taken, timeout ? detail::deadline_after(*timeout) : detail::kNoDeadline, count);
}
inline std::vector<std::size_t> wait(std::initializer_list<Waitable> objects,
                                     std::optional<Clock::duration> timeout = std::nullopt, std::size_t count = 0) {
  return wait(std::span<const Waitable>(objects.begin(), objects.size()), timeout, count);
}

// gevent.wait() with no objects: waits until no other green thread of the
// caller's runtime is alive (those spawned meanwhile included), or
// `timeout` passes; returns whether none is. It joins them one by one (no
// polling), except that a green thread that has ended but whose links are
// still running counts as alive, and the caller yields until it is gone.
// Throws Error on a plain thread.
bool wait(std::optional<Clock::duration> timeout = std::nullopt);

// gevent.iwait(objects, timeout, count): the objects' indices one at a
// time, each as its object becomes ready (those ready at the first step
// first, in the order given), at most `count` of them (0: all), until
// `timeout` (counted from construction, over the whole iteration) passes.
// Each step (next(), or ++ on the iterator) blocks as wait() does. The
// objects are copied (the Waitables, not what they refer to).
class IWait {
 public:
  explicit IWait(std::vector<Waitable> objects, std::optional<Clock::duration> timeout = std::nullopt,
                 std::size_t count = 0)
      : objects_(std::move(objects)),
        taken_(objects_.size()),
        deadline_(timeout ? detail::deadline_after(*timeout) : detail::kNoDeadline),
        left_(count == 0 || count > objects_.size() ? objects_.size() : count) {}

  // The next ready object's index; nullopt once `count` were given, all
  // were, or the timeout passed.
  std::optional<std::size_t> next() {
    if (left_ == 0) return std::nullopt;
    if (ready_.empty()) ready_ = detail::wait_for(objects_, taken_, deadline_, 1);
    if (ready_.empty()) {
      left_ = 0;  // timed out: the iteration ends
      return std::nullopt;
    }
    const std::size_t i = ready_.front();
    ready_.erase(ready_.begin());
    --left_;
    return i;
  }

  class iterator {
   public:
    using value_type = std::size_t;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    std::size_t operator*() const { return *current_; }
    iterator& operator++() {
      current_ = owner_->next();
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const { return !current_; }

   private:
    friend class IWait;
    explicit iterator(IWait* owner) : owner_(owner), current_(owner->next()) {}
    IWait* owner_ = nullptr;
    std::optional<std::size_t> current_;
  };
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

 private:
  std::vector<Waitable> objects_;
  std::vector<bool> taken_;
  detail::Deadline deadline_;
  std::size_t left_;
  std::vector<std::size_t> ready_;  // found ready by one step, given one at a time
};

inline IWait iwait(std::initializer_list<Waitable> objects, std::optional<Clock::duration> timeout = std::nullopt,
                   std::size_t count = 0) {
  return IWait(std::vector<Waitable>(objects), timeout, count);
}
inline IWait iwait(std::vector<Waitable> objects, std::optional<Clock::duration> timeout = std::nullopt,
                   std::size_t count = 0) {
  return IWait(std::move(objects), timeout, count);
}

}  // namespace green

namespace green::detail {

// A green thread is ready once it has ended: its joiners list (under its
// lock) is woken at its end, without a hand-off.
struct FiberWaitSource {
  static bool ready(const void* f) { return static_cast<const Fiber*>(f)->done(); }
  static bool enlist(void* p, Waiter& w) {
    auto* f = static_cast<Fiber*>(p);
    std::lock_guard g(f->lock);
    if (f->done()) return false;
    f->joiners.push_back(w);
    return true;
  }
  static void unlist(void* p, Waiter& w) noexcept {
    auto* f = static_cast<Fiber*>(p);
    std::lock_guard g(f->lock);
    f->joiners.remove(w);
  }
  static constexpr WaitSourceOps ops{&ready, nullptr, &enlist, &unlist, /*external=*/false};
};

template <class T>
struct WaitSourceFor<Greenlet<T>> : FiberWaitSource {
  static void* address(const Greenlet<T>& g) { return checked(g.raw()); }
  static Fiber* checked(Fiber* f) {
    if (!f) throw Error("green::wait: empty Greenlet");
    return f;
  }
};
template <>
struct WaitSourceFor<GreenletRef> : FiberWaitSource {
  static void* address(const GreenletRef& g) { return WaitSourceFor<Greenlet<void>>::checked(g.raw()); }
};

}  // namespace green::detail
