// green/queue.hpp — queues between green threads (gevent.queue): Queue
// (FIFO), LifoQueue, PriorityQueue, JoinableQueue. Channel is in channel.hpp.
//
//   green::Queue<std::string> q(100);          // at most 100 items waiting
//   green::spawn([&] { for (auto& line : q) print(line); });   // until close()
//   q.put("hello");
//   q.close();
//
// Order. Items come out in the queue's order (FIFO, LIFO, or smallest first
// by Compare). Waiting parties are served first come, first served: a put()
// that finds getters waiting hands its item straight to the one that has
// waited longest, and a get() that frees room in a full queue takes the item
// of the longest-waiting putter. A waiter that times out or is killed leaves
// the queue without an item (a getter) or without having put one (a putter):
// its item goes to the next party, nothing is lost or delivered twice.
//
// Bounds. maxsize 0 (the default) means unbounded. A bounded queue makes
// put() wait while size() == maxsize.
//
// Closing. close() ends the queue: every put() after it (and every putter
// still waiting) throws QueueClosed and its item is not added; get() keeps
// returning the items already queued, then throws QueueClosed; a range-for
// over the queue ends there. Waiting getters, putters and peekers wake.
//
// Blocking. put(), get() and peek() suspend only the calling green thread; a
// plain OS thread blocks on a futex (so plain threads can feed or drain a
// queue that green threads use). Each takes an optional timeout (then throws
// QueueFull / QueueEmpty) and honours green::Timeout scopes and kill
// (TimeoutError / GreenletExit, with nothing put or taken). The _nowait
// variants never block.
//
// Thread safety: every member may be called from any green thread or plain
// thread, on any worker. T must be movable; peek() also needs it copyable.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <deque>
#include <functional>
#include <iterator>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "green/current.hpp"
#include "green/detail/queue_core.hpp"
#include "green/detail/wait_source.hpp"
#include "green/errors.hpp"

namespace green {

// get_nowait() on an empty queue, get(timeout) when the timeout passed.
class QueueEmpty : public Error {
 public:
  QueueEmpty() : Error("green::Queue: empty") {}
};
// put_nowait() on a full queue, put(timeout) when the timeout passed.
class QueueFull : public Error {
 public:
  QueueFull() : Error("green::Queue: full") {}
};
// put() on a closed queue; get() on a closed queue with nothing left.
class QueueClosed : public Error {
 public:
  QueueClosed() : Error("green::Queue: closed") {}
};

namespace detail {

// The stores: where a queue keeps its items, in the order get() takes them.
// Each says whether it holds items at all (kHoldsItems); the core only sees
// the capacity that follows from it.

// Items in a sequence, put at its back and taken from its front (FIFO) or
// its back (LIFO).
template <class T, class Sequence, bool kTakeFront>
struct SequenceStore {
  static constexpr bool kHoldsItems = true;
  Sequence items;
  void push(T&& v) { items.push_back(std::move(v)); }
  T pop() {
    T v = std::move(next(items));
    if constexpr (kTakeFront) {
      items.pop_front();
    } else {
      items.pop_back();
    }
    return v;
  }
  const T& peek() const { return next(items); }

 private:
  static auto& next(auto& seq) { return kTakeFront ? seq.front() : seq.back(); }
};

template <class T>
using FifoStore = SequenceStore<T, std::deque<T>, true>;
template <class T>
using LifoStore = SequenceStore<T, std::vector<T>, false>;

// A binary heap whose front is the smallest item by Compare (Python's
// heapq order, which gevent's PriorityQueue uses).
template <class T, class Compare>
struct HeapStore {
  static constexpr bool kHoldsItems = true;
  std::vector<T> items;
  Compare less{};
  bool greater(const T& a, const T& b) const { return less(b, a); }
  void push(T&& v) {
    items.push_back(std::move(v));
    std::push_heap(items.begin(), items.end(), [this](const T& a, const T& b) { return greater(a, b); });
  }
  T pop() {
    std::pop_heap(items.begin(), items.end(), [this](const T& a, const T& b) { return greater(a, b); });
    T v = std::move(items.back());
    items.pop_back();
    return v;
  }
  const T& peek() const { return items.front(); }
};

// Holds nothing: every put waits for a getter to take its item (Channel).
template <class T>
struct RendezvousStore {
  static constexpr bool kHoldsItems = false;
};

struct QueueWaitSource;

// A queue of T kept in Store: the item storage and the moves that depend on
// T. The protocol (who waits, who is served, close, timeouts) is QueueCore's,
// compiled once for every item type.
template <class T, class Store>
class BasicQueue : protected QueueCore {
  static_assert(std::movable<T>, "green queues need a movable item type");
  friend struct QueueWaitSource;  // green::wait() reaches the core

 public:
  using value_type = T;

  // ---- putting ------------------------------------------------------------
  // Adds v, waiting while the queue is full. Throws QueueClosed.
  void put(T v) { put_item(&v, kNoDeadline, true); }
  // As put(), waiting at most `timeout`; then throws QueueFull.
  void put(T v, Clock::duration timeout) { put_item(&v, deadline_after(timeout), true); }
  // Adds v only if that needs no waiting; else throws QueueFull.
  void put_nowait(T v) { put_item(&v, kNoDeadline, false); }
  // As put_nowait(), but reports a full queue by returning false, leaving v
  // untouched (no exception on the hot path of a broadcast). Throws
  // QueueClosed.
  bool try_put(T& v) { return try_put_item(&v); }

  // ---- getting ------------------------------------------------------------
  // Removes and returns the next item, waiting while there is none. Throws
  // QueueClosed once the queue is closed and drained.
  T get() { return take(kNoDeadline, true); }
  // As get(), waiting at most `timeout`; then throws QueueEmpty.
  T get(Clock::duration timeout) { return take(deadline_after(timeout), true); }
  // Returns the next item if there is one now; else throws QueueEmpty (or
  // QueueClosed when closed and drained).
  T get_nowait() { return take(kNoDeadline, false); }
  // The next item if there is one now, else nullopt (closed or not): for
  // draining what is queued without exceptions.
  std::optional<T> try_get() {
    std::optional<T> slot;
    try_get_item(&slot);
    return slot;
  }
  // Moves the items there now, at most `max`, to `out` in the order get()
  // would return them, and returns how many; never waits (0 when empty,
  // closed or not). Waiting putters' items move in as room is made, exactly
  // as one get() after another would take them, but under one acquisition
  // of the queue's lock: for a consumer that handles what has piled up in
  // one go (a writer sending every queued line in one write).
  template <std::output_iterator<T> Out>
  std::size_t try_get_many(Out out, std::size_t max = static_cast<std::size_t>(-1)) {
    std::optional<T> slot;
    auto sink = [](void* o, void* s) {
      Out& it = *static_cast<Out*>(o);
      *it = std::move(*slot_at(s));
      ++it;
      slot_at(s).reset();
    };
    return try_get_items(&slot, max, sink, &out);
  }

  // The next item, left in the queue (a copy); waits while there is none.
  // Throws QueueClosed when closed and drained; QueueEmpty on timeout;
  // peek_nowait() throws QueueEmpty at once. Not on a Channel.
  T peek() requires Store::kHoldsItems { return peek_until(kNoDeadline, true); }
  T peek(Clock::duration timeout) requires Store::kHoldsItems { return peek_until(deadline_after(timeout), true); }
  T peek_nowait() requires Store::kHoldsItems { return peek_until(kNoDeadline, false); }

  // ---- state ----------------------------------------------------------------
  // Items queued now (not counting items of putters still waiting).
  using QueueCore::size;
  bool empty() const { return size() == 0; }
  // True when a put() would wait now.
  using QueueCore::full;
  // The bound given at construction; 0 = unbounded.
  using QueueCore::maxsize;

  // Ends the queue (see the header comment). Idempotent.
  using QueueCore::close;
  using QueueCore::closed;

  // ---- iteration: for (auto& item : queue) ... until closed and drained ----
  class iterator {
   public:
    using value_type = T;
    using difference_type = std::ptrdiff_t;
    iterator() = default;
    explicit iterator(BasicQueue* q) : q_(q) { ++*this; }
    T& operator*() const { return *item_; }
    T* operator->() const { return &**this; }
    iterator& operator++() {
      item_.reset();
      q_->get_item(&item_, kNoDeadline, true);
      return *this;
    }
    void operator++(int) { ++*this; }
    bool operator==(std::default_sentinel_t) const noexcept { return !item_.has_value(); }

   private:
    BasicQueue* q_ = nullptr;
    mutable std::optional<T> item_;  // the current item, owned by the iterator
  };
  // Each step is a get(): it blocks, and it consumes the item.
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }

 protected:
  explicit BasicQueue(std::size_t maxsize)
      : QueueCore(Store::kHoldsItems ? (maxsize == 0 ? kUnbounded : maxsize) : 0, kOps) {}

 private:
  T take(Deadline deadline, bool block) {
    std::optional<T> slot;
    if (!get_item(&slot, deadline, block)) throw QueueClosed();
    return std::move(*slot);
  }
  T peek_until(Deadline deadline, bool block) {
    std::optional<T> slot;
    auto copy = [](const QueueCore& q, void* s) { slot_at(s).emplace(store_of(q).peek()); };
    peek_item(&slot, copy, deadline, block);
    return std::move(*slot);
  }

  // The type-dependent half of the protocol (see QueueOps).
  static std::optional<T>& slot_at(void* slot) { return *static_cast<std::optional<T>*>(slot); }
  static T& item_at(void* item) { return *static_cast<T*>(item); }
  static Store& store_of(QueueCore& q) { return static_cast<BasicQueue&>(q).store_; }
  static const Store& store_of(const QueueCore& q) { return static_cast<const BasicQueue&>(q).store_; }
  static void fill(void* slot, void* item) { slot_at(slot).emplace(std::move(item_at(item))); }
  static void unfill(void* item, void* slot) {
    item_at(item) = std::move(*slot_at(slot));
    slot_at(slot).reset();
  }
  static void push(QueueCore& q, void* item) { store_of(q).push(std::move(item_at(item))); }
  static void pop(QueueCore& q, void* slot) { slot_at(slot).emplace(store_of(q).pop()); }
  static void exchange(QueueCore& q, void* slot) {
    T next = store_of(q).pop();
    store_of(q).push(std::move(*slot_at(slot)));
    *slot_at(slot) = std::move(next);
  }
  static constexpr QueueOps kOps = [] {
    if constexpr (Store::kHoldsItems) {
      return QueueOps{&fill, &unfill, &push, &pop, &exchange};
    } else {
      return QueueOps{&fill, &unfill, nullptr, nullptr, nullptr};  // capacity 0: never called
    }
  }();

  [[no_unique_address]] Store store_;
};

}  // namespace detail

// A FIFO queue.
template <class T>
class Queue : public detail::BasicQueue<T, detail::FifoStore<T>> {
 public:
  // maxsize 0 = unbounded.
  explicit Queue(std::size_t maxsize = 0) : Queue::BasicQueue(maxsize) {}
};

// Last in, first out.
template <class T>
class LifoQueue : public detail::BasicQueue<T, detail::LifoStore<T>> {
 public:
  explicit LifoQueue(std::size_t maxsize = 0) : LifoQueue::BasicQueue(maxsize) {}
};

// Smallest item first, by Compare (std::less: the smallest value), as
// Python's and gevent's PriorityQueue. Items that compare equal come out in
// no particular order; add a sequence number to the item to make it stable.
template <class T, class Compare = std::less<T>>
class PriorityQueue : public detail::BasicQueue<T, detail::HeapStore<T, Compare>> {
 public:
  explicit PriorityQueue(std::size_t maxsize = 0) : PriorityQueue::BasicQueue(maxsize) {}
};

// A FIFO queue that also counts unfinished work: each item put counts as one
// task until a consumer calls task_done() for it; join() waits until the
// count is zero (Python's queue.Queue.join).
template <class T>
class JoinableQueue : public Queue<T> {
 public:
  explicit JoinableQueue(std::size_t maxsize = 0) : Queue<T>(maxsize) {}

  // Marks one item's work finished. Throws green::Error if called more
  // times than items were put.
  using Queue<T>::task_done;
  // Waits until every item put has been task_done(); true at once if none
  // were put. With a timeout: false if work remains when it passes.
  bool join() { return this->join_until(detail::kNoDeadline); }
  bool join(Clock::duration timeout) { return this->join_until(detail::deadline_after(timeout)); }
  // Items put and not yet task_done().
  using Queue<T>::unfinished_tasks;
};

}  // namespace green

namespace green::detail {
// green::wait() on a queue that holds items: see QueueCore::watch_ready().
// (A Channel stores nothing, so it has no WaitSourceFor.)
struct QueueWaitSource {
  template <class T, class Store>
  static void* core(BasicQueue<T, Store>& q) noexcept {
    return static_cast<QueueCore*>(&q);
  }
  static bool ready(const void* q) { return static_cast<const QueueCore*>(q)->watch_ready(); }
  static bool enlist(void* q, Waiter& w) { return static_cast<QueueCore*>(q)->watch_enlist(w); }
  static void unlist(void* q, Waiter& w) noexcept { static_cast<QueueCore*>(q)->watch_unlist(w); }
  static constexpr WaitSourceOps ops{&ready, nullptr, &enlist, &unlist, /*external=*/false};
};
template <class T>
struct WaitSourceFor<Queue<T>> : QueueWaitSource {
  static void* address(Queue<T>& q) noexcept { return core(q); }
};
template <class T>
struct WaitSourceFor<LifoQueue<T>> : QueueWaitSource {
  static void* address(LifoQueue<T>& q) noexcept { return core(q); }
};
template <class T, class Compare>
struct WaitSourceFor<PriorityQueue<T, Compare>> : QueueWaitSource {
  static void* address(PriorityQueue<T, Compare>& q) noexcept { return core(q); }
};
template <class T>
struct WaitSourceFor<JoinableQueue<T>> : QueueWaitSource {
  static void* address(JoinableQueue<T>& q) noexcept { return core(q); }
};
}  // namespace green::detail

