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
#include "green/detail/park_on.hpp"
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

template <class T>
struct FifoStore {
  std::deque<T> items;
  void push(T&& v) { items.push_back(std::move(v)); }
  T pop() {
    T v = std::move(items.front());
    items.pop_front();
    return v;
  }
  const T& peek() const { return items.front(); }
};

template <class T>
struct LifoStore {
  std::vector<T> items;
  void push(T&& v) { items.push_back(std::move(v)); }
  T pop() {
    T v = std::move(items.back());
    items.pop_back();
    return v;
  }
  const T& peek() const { return items.back(); }
};

// A binary heap whose front is the smallest item by Compare (Python's
// heapq order, which gevent's PriorityQueue uses).
template <class T, class Compare>
struct HeapStore {
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

// What a waiting putter learns when it is woken (Waiter::tag).
enum PutOutcome : std::uintptr_t { kPutPending = 0, kPutTaken = 1, kPutClosed = 2 };

// The queue machinery shared by every queue type and by Channel. With
// `rendezvous` it stores nothing: a put waits until a getter takes its item.
template <class T, class Store>
class BasicQueue {
  static_assert(std::movable<T>, "green queues need a movable item type");

 public:
  using value_type = T;

  BasicQueue(const BasicQueue&) = delete;
  BasicQueue& operator=(const BasicQueue&) = delete;
  // Destroying a queue that somebody still waits on is a bug in the caller.
  ~BasicQueue() = default;

  // ---- putting ------------------------------------------------------------
  // Adds v, waiting while the queue is full. Throws QueueClosed.
  void put(T v) { put_until(std::move(v), kNoDeadline, true); }
  // As put(), waiting at most `timeout`; then throws QueueFull.
  void put(T v, Clock::duration timeout) { put_until(std::move(v), deadline_after(timeout), true); }
  // Adds v only if that needs no waiting; else throws QueueFull.
  void put_nowait(T v) { put_until(std::move(v), kNoDeadline, false); }
  // As put_nowait(), but reports a full queue by returning false, leaving v
  // untouched (no exception on the hot path of a broadcast). Throws
  // QueueClosed.
  bool try_put(T& v) {
    std::lock_guard g(lock_);
    if (closed_) throw QueueClosed();
    return put_locked(v);
  }

  // ---- getting ------------------------------------------------------------
  // Removes and returns the next item, waiting while there is none. Throws
  // QueueClosed once the queue is closed and drained.
  T get() { return unwrap(get_until(kNoDeadline, true)); }
  // As get(), waiting at most `timeout`; then throws QueueEmpty.
  T get(Clock::duration timeout) { return unwrap(get_until(deadline_after(timeout), true)); }
  // Returns the next item if there is one now; else throws QueueEmpty (or
  // QueueClosed when closed and drained).
  T get_nowait() { return unwrap(get_until(kNoDeadline, false)); }
  // The next item if there is one now, else nullopt (closed or not): for
  // draining what is queued without exceptions.
  std::optional<T> try_get() {
    std::lock_guard g(lock_);
    if (store_.items.empty() && !rendezvous_) return std::nullopt;
    return take_locked();
  }
  // Moves the items there now, at most `max`, to `out` in the order get()
  // would return them, and returns how many; never waits (0 when empty,
  // closed or not). Waiting putters' items move in as room is made, exactly
  // as one get() after another would take them, but under one acquisition
  // of the queue's lock: for a consumer that handles what has piled up in
  // one go (a writer sending every queued line in one write).
  template <std::output_iterator<T> Out>
  std::size_t try_get_many(Out out, std::size_t max = static_cast<std::size_t>(-1)) {
    std::lock_guard g(lock_);
    std::size_t n = 0;
    for (; n < max; ++n) {
      std::optional<T> v = take_locked();
      if (!v) break;
      *out = std::move(*v);
      ++out;
    }
    return n;
  }

  // ---- state ----------------------------------------------------------------
  // Items queued now (not counting items of putters still waiting).
  std::size_t size() const {
    std::lock_guard g(lock_);
    return store_.items.size();
  }
  bool empty() const { return size() == 0; }
  // True when a put() would wait now.
  bool full() const {
    std::lock_guard g(lock_);
    return rendezvous_ ? getters_.empty() : (maxsize_ != 0 && store_.items.size() >= maxsize_);
  }
  // The bound given at construction; 0 = unbounded.
  std::size_t maxsize() const noexcept { return maxsize_; }

  // Ends the queue (see the header comment). Idempotent.
  void close() {
    std::lock_guard g(lock_);
    closed_ = true;
    getters_.wake_all();  // their slots stay empty: they see QueueClosed
    while (Waiter* p = putters_.pop_front()) {
      p->tag = kPutClosed;
      if (!wake(*p)) p->tag = kPutPending;
    }
    peekers_.wake_all();
  }
  bool closed() const {
    std::lock_guard g(lock_);
    return closed_;
  }

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
      item_ = q_->get_until(kNoDeadline, true);
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
  BasicQueue(std::size_t maxsize, bool rendezvous) : maxsize_(maxsize), rendezvous_(rendezvous) {}

  // Returns a copy of the next item without removing it.
  T peek_until(Deadline deadline, bool block) {
    std::unique_lock lk(lock_);
    for (;;) {
      if (!store_.items.empty()) return store_.peek();
      if (closed_) throw QueueClosed();
      if (!block) throw QueueEmpty();
      Waiter w;
      if (!park_on(lk, peekers_, w, deadline, "Queue.peek")) throw QueueEmpty();
      lk.lock();
    }
  }

  // JoinableQueue's bookkeeping: items put and not yet task_done().
  void task_done() {
    std::lock_guard g(lock_);
    if (unfinished_ == 0) throw Error("green::JoinableQueue::task_done: called more times than items were put");
    if (--unfinished_ == 0) joiners_.wake_all();
  }
  bool join_until(Deadline deadline) {
    std::unique_lock lk(lock_);
    if (unfinished_ == 0) return true;
    Waiter w;
    if (park_on(lk, joiners_, w, deadline, "JoinableQueue.join")) return true;
    std::lock_guard g(lock_);
    return unfinished_ == 0;
  }
  std::size_t unfinished_tasks() const {
    std::lock_guard g(lock_);
    return unfinished_;
  }

 private:
  static T unwrap(std::optional<T>&& v) {
    if (!v) throw QueueClosed();
    return std::move(*v);
  }

  // Under lock_: gives v to the longest-waiting getter. The item moves into
  // the getter's slot before its wake() (once woken it may return at once)
  // and moves back if the wake fails (it timed out or was killed).
  bool hand_to_getter(T& v) {
    while (Waiter* g = getters_.pop_front()) {
      auto* slot = static_cast<std::optional<T>*>(g->payload);
      slot->emplace(std::move(v));
      if (wake(*g)) return true;
      v = std::move(**slot);
      slot->reset();
    }
    return false;
  }

  // Under lock_: takes the item of the longest-waiting putter.
  std::optional<T> take_from_putter() {
    while (Waiter* p = putters_.pop_front()) {
      T* item = static_cast<T*>(p->payload);
      std::optional<T> v(std::move(*item));
      p->tag = kPutTaken;
      if (wake(*p)) return v;
      *item = std::move(*v);
      p->tag = kPutPending;
    }
    return std::nullopt;
  }

  // Under lock_: hands v to a getter or stores it, if that needs no
  // waiting. False (v untouched) when the queue is full.
  bool put_locked(T& v) {
    if (hand_to_getter(v)) {
      ++unfinished_;
      return true;
    }
    if (!rendezvous_ && (maxsize_ == 0 || store_.items.size() < maxsize_)) {
      store_.push(std::move(v));
      ++unfinished_;
      peekers_.wake_all();
      return true;
    }
    return false;
  }

  // Under lock_: the next item (moving a waiting putter's item in behind
  // it), or nullopt when none is there.
  std::optional<T> take_locked() {
    if (!store_.items.empty()) {
      std::optional<T> v(store_.pop());
      // Room was made: the longest-waiting putter's item moves in.
      if (!putters_.empty()) {
        if (auto next = take_from_putter()) {
          store_.push(std::move(*next));
          ++unfinished_;
        }
      }
      return v;
    }
    if (rendezvous_) {
      if (auto v = take_from_putter()) {
        ++unfinished_;
        return v;
      }
    }
    return std::nullopt;
  }

  void put_until(T v, Deadline deadline, bool block) {
    std::unique_lock lk(lock_);
    if (closed_) throw QueueClosed();
    if (put_locked(v)) return;
    if (!block) throw QueueFull();
    Waiter w;
    w.payload = &v;
    w.tag = kPutPending;
    if (!park_on(lk, putters_, w, deadline, "Queue.put")) throw QueueFull();
    if (w.tag == kPutClosed) throw QueueClosed();
  }

  // nullopt: closed and drained.
  std::optional<T> get_until(Deadline deadline, bool block) {
    std::unique_lock lk(lock_);
    if (auto v = take_locked()) return v;
    if (closed_) return std::nullopt;
    if (!block) throw QueueEmpty();
    std::optional<T> slot;
    Waiter w;
    w.payload = &slot;
    if (!park_on(lk, getters_, w, deadline, "Queue.get")) throw QueueEmpty();
    return slot;  // empty: woken by close()
  }

  mutable SpinLock lock_;
  Store store_;
  const std::size_t maxsize_;
  const bool rendezvous_;
  bool closed_ = false;
  std::size_t unfinished_ = 0;
  WaitList getters_;   // Waiter::payload: std::optional<T>* to fill
  WaitList putters_;   // Waiter::payload: T* to take; Waiter::tag: PutOutcome
  WaitList peekers_;   // woken whenever an item is stored
  WaitList joiners_;   // JoinableQueue::join(), woken when unfinished_ hits 0
};

}  // namespace detail

// A FIFO queue.
template <class T>
class Queue : public detail::BasicQueue<T, detail::FifoStore<T>> {
  using Base = detail::BasicQueue<T, detail::FifoStore<T>>;

 public:
  // maxsize 0 = unbounded.
  explicit Queue(std::size_t maxsize = 0) : Base(maxsize, false) {}

  // The next item, left in the queue (a copy); waits while there is none.
  // Throws QueueClosed when closed and drained; QueueEmpty on timeout.
  T peek() { return this->peek_until(detail::kNoDeadline, true); }
  T peek(Clock::duration timeout) { return this->peek_until(detail::deadline_after(timeout), true); }
  T peek_nowait() { return this->peek_until(detail::kNoDeadline, false); }
};

// Last in, first out.
template <class T>
class LifoQueue : public detail::BasicQueue<T, detail::LifoStore<T>> {
  using Base = detail::BasicQueue<T, detail::LifoStore<T>>;

 public:
  explicit LifoQueue(std::size_t maxsize = 0) : Base(maxsize, false) {}
  T peek() { return this->peek_until(detail::kNoDeadline, true); }
  T peek(Clock::duration timeout) { return this->peek_until(detail::deadline_after(timeout), true); }
  T peek_nowait() { return this->peek_until(detail::kNoDeadline, false); }
};

// Smallest item first, by Compare (std::less: the smallest value), as
// Python's and gevent's PriorityQueue. Items that compare equal come out in
// no particular order; add a sequence number to the item to make it stable.
template <class T, class Compare = std::less<T>>
class PriorityQueue : public detail::BasicQueue<T, detail::HeapStore<T, Compare>> {
  using Base = detail::BasicQueue<T, detail::HeapStore<T, Compare>>;

 public:
  explicit PriorityQueue(std::size_t maxsize = 0) : Base(maxsize, false) {}
  T peek() { return this->peek_until(detail::kNoDeadline, true); }
  T peek(Clock::duration timeout) { return this->peek_until(detail::deadline_after(timeout), true); }
  T peek_nowait() { return this->peek_until(detail::kNoDeadline, false); }
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
  void task_done() { Queue<T>::task_done(); }
  // Waits until every item put has been task_done(); true at once if none
  // were put. With a timeout: false if work remains when it passes.
  bool join() { return this->join_until(detail::kNoDeadline); }
  bool join(Clock::duration timeout) { return this->join_until(detail::deadline_after(timeout)); }
  // Items put and not yet task_done().
  std::size_t unfinished_tasks() const { return Queue<T>::unfinished_tasks(); }
};

}  // namespace green
