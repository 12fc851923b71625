// queue_core.cpp — the queue protocol, once for every item type.
//
// Invariants, under lock_:
// - Getters wait only while no item is stored and no putter waits with one;
//   putters only while count_ == capacity_ and no getter waits. So a put
//   first looks for a getter, a get first at the store, then at the putters.
// - An item is handed over before the wake() that tells its receiver, and
//   handed back if the wake fails (the receiver timed out or was killed and
//   is about to unlink itself): nothing is lost or delivered twice, and the
//   item goes on to the next party in line (the waker's side in green/detail/park.hpp).
// - unfinished_ counts every item put, whichever way it went.
#include "green/detail/queue_core.hpp"

#include <cstdint>
#include <initializer_list>
#include <mutex>

#include "green/queue.hpp"

namespace green::detail {

namespace {
// What a waiting party learns when it is woken (Waiter::tag). A getter's
// slot is filled unless it was closed.
enum Outcome : std::uintptr_t { kPending = 0, kPutTaken = 1, kClosed = 2 };
}  // namespace

std::size_t QueueCore::size() const {
  std::lock_guard g(lock_);
  return count_;
}

bool QueueCore::full() const {
  std::lock_guard g(lock_);
  return getters_.empty() && count_ >= capacity_;
}

void QueueCore::close() {
  std::lock_guard g(lock_);
  closed_ = true;
  for (WaitList* list : {&getters_, &putters_}) {
    while (Waiter* w = list->pop_front()) {
      w->tag = kClosed;
      if (!wake(*w)) w->tag = kPending;
    }
  }
  peekers_.wake_all();
}

bool QueueCore::closed() const {
  std::lock_guard g(lock_);
  return closed_;
}

// The getter may return as soon as it is woken, so its slot is filled first.
bool QueueCore::hand_to_getter(void* item) {
  while (Waiter* g = getters_.pop_front()) {
    ops_.fill(g->payload, item);
    if (wake(*g)) return true;
    ops_.unfill(item, g->payload);
  }
  return false;
}

bool QueueCore::take_from_putter(void* slot) {
  while (Waiter* p = putters_.pop_front()) {
    ops_.fill(slot, p->payload);
    p->tag = kPutTaken;
    if (wake(*p)) return true;
    ops_.unfill(p->payload, slot);
    p->tag = kPending;
  }
  return false;
}

// put_locked() and take_locked() are the hot path of every queue: inline,
// and the wait lists looked at before any call that walks them.
inline bool QueueCore::put_locked(void* item) {
  if (!getters_.empty() && hand_to_getter(item)) {
    ++unfinished_;
    return true;
  }
  if (count_ < capacity_) {
    ops_.push(*this, item);
    ++count_;
    ++unfinished_;
    peekers_.wake_all();
    return true;
  }
  return false;
}

inline bool QueueCore::take_locked(void* slot) {
  if (count_ == 0) {
    // Only a rendezvous has putters waiting while nothing is stored.
    if (putters_.empty() || !take_from_putter(slot)) return false;
    ++unfinished_;
    return true;
  }
  // Room is made: the longest-waiting putter's item moves in.
  if (!putters_.empty() && take_from_putter(slot)) {
    ops_.exchange(*this, slot);
    ++unfinished_;
  } else {
    ops_.pop(*this, slot);
    --count_;
  }
  return true;
}

void QueueCore::put_item(void* item, Deadline deadline, bool block) {
  std::unique_lock lk(lock_);
  if (closed_) throw QueueClosed();
  if (put_locked(item)) return;
  if (!block) throw QueueFull();
  Waiter w;
  w.payload = item;
  w.tag = kPending;
  if (!park_on(lk, putters_, w, deadline, "Queue.put")) throw QueueFull();
  if (w.tag == kClosed) throw QueueClosed();
}

bool QueueCore::try_put_item(void* item) {
  std::lock_guard g(lock_);
  if (closed_) throw QueueClosed();
  return put_locked(item);
}

bool QueueCore::get_item(void* slot, Deadline deadline, bool block) {
  std::unique_lock lk(lock_);
  if (take_locked(slot)) return true;
  if (closed_) return false;
  if (!block) throw QueueEmpty();
  Waiter w;
  w.payload = slot;
  w.tag = kPending;
  if (!park_on(lk, getters_, w, deadline, "Queue.get")) throw QueueEmpty();
  return w.tag != kClosed;
}

bool QueueCore::try_get_item(void* slot) {
  std::lock_guard g(lock_);
  return take_locked(slot);
}

std::size_t QueueCore::try_get_items(void* slot, std::size_t max, void (*sink)(void*, void*), void* out) {
  std::lock_guard g(lock_);
  std::size_t n = 0;
  for (; n < max && take_locked(slot); ++n) sink(out, slot);
  return n;
}

void QueueCore::peek_item(void* slot, void (*copy)(const QueueCore&, void*), Deadline deadline, bool block) {
  std::unique_lock lk(lock_);
  for (;;) {
    if (count_ > 0) {
      copy(*this, slot);
      return;
    }
    if (closed_) throw QueueClosed();
    if (!block) throw QueueEmpty();
    Waiter w;
    if (!park_on(lk, peekers_, w, deadline, "Queue.peek")) throw QueueEmpty();
    lk.lock();
  }
}

bool QueueCore::watch_ready() const {
  std::lock_guard g(lock_);
  return count_ > 0 || closed_;
}

bool QueueCore::watch_enlist(Waiter& w) {
  std::lock_guard g(lock_);
  if (count_ > 0 || closed_) return false;
  peekers_.push_back(w);
  return true;
}

void QueueCore::watch_unlist(Waiter& w) noexcept {
  std::lock_guard g(lock_);
  peekers_.remove(w);
}

void QueueCore::task_done() {
  std::lock_guard g(lock_);
  if (unfinished_ == 0) throw Error("green::JoinableQueue::task_done: called more times than items were put");
  if (--unfinished_ == 0) joiners_.wake_all();
}

bool QueueCore::join_until(Deadline deadline) {
  std::unique_lock lk(lock_);
  if (unfinished_ == 0) return true;
  Waiter w;
  if (park_on(lk, joiners_, w, deadline, "JoinableQueue.join")) return true;
  std::lock_guard g(lock_);
  return unfinished_ == 0;
}

std::size_t QueueCore::unfinished_tasks() const {
  std::lock_guard g(lock_);
  return unfinished_;
}

}  // namespace green::detail
