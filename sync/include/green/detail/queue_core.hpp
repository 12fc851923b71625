// green/detail/queue_core.hpp — the hand-off protocol behind every queue.
//
// Not part of the user's API (see green/queue.hpp and green/channel.hpp).
// QueueCore is compiled once, in queue_core.cpp, for every item type: it
// owns the lock, the wait lists, the bound, close() and JoinableQueue's
// count, and decides who gets what. What depends on the item type is left to
// the queue template above it, through a table of plain functions
// (QueueOps): moving an item into or out of the store, and between a waiter
// and the party serving it. Items cross the table as void*, always one of:
//
//   item  a T (a putter's argument, or the store's),
//   slot  a std::optional<T> (a getter's result), empty unless said.
//
// A waiting getter publishes its slot in Waiter::payload, a waiting putter
// its item, with Waiter::tag telling it whether the item was taken.
//
// Capacity: the most items the store may hold. 0 is a rendezvous (Channel):
// nothing is stored, a put waits until a getter takes its item, and no store
// operation is ever called.
#pragma once

#include <cstddef>
#include <limits>

#include "green/detail/park_on.hpp"

namespace green::detail {

class QueueCore;

struct QueueOps {
  // Under the queue's lock, for the item type and store of one queue class.
  void (*fill)(void* slot, void* item);          // the empty slot takes *item
  void (*unfill)(void* item, void* slot);        // gives fill() back: *item, and the slot empties
  void (*push)(QueueCore& q, void* item);        // the store takes *item
  void (*pop)(QueueCore& q, void* slot);         // the store's next item goes to the empty slot
  // The store's next item and the slot's item change places, as pop() then
  // push() would order them: room made by a get() filled at once.
  void (*exchange)(QueueCore& q, void* slot);
};

class QueueCore {
 public:
  static constexpr std::size_t kUnbounded = std::numeric_limits<std::size_t>::max();

  QueueCore(const QueueCore&) = delete;
  QueueCore& operator=(const QueueCore&) = delete;

  std::size_t size() const;
  bool full() const;
  // 0 for an unbounded queue and for a rendezvous.
  std::size_t maxsize() const noexcept { return capacity_ == kUnbounded ? 0 : capacity_; }
  void close();
  bool closed() const;

  // green::wait()'s watch (wait_source.hpp): ready when a get() would not
  // block (an item is stored, or the queue is closed); enlisted on the
  // peekers' list, which a stored item and close() wake with no hand-off.
  bool watch_ready() const;
  bool watch_enlist(Waiter& w);
  void watch_unlist(Waiter& w) noexcept;

 protected:
  QueueCore(std::size_t capacity, const QueueOps& ops) noexcept : ops_(ops), capacity_(capacity) {}
  // Destroying a queue that somebody still waits on is a bug in the caller.
  ~QueueCore() = default;

  // Puts *item (moved from only once it is put), waiting while full when
  // `block`. Throws QueueClosed, QueueFull (not `block`, or the deadline).
  void put_item(void* item, Deadline deadline, bool block);
  // Puts *item if that needs no waiting; false (item untouched) when full.
  bool try_put_item(void* item);
  // Fills the slot with the next item, waiting for one when `block`. False
  // when closed and drained; throws QueueEmpty (not `block`, the deadline).
  bool get_item(void* slot, Deadline deadline, bool block);
  // Fills the slot if an item is there now.
  bool try_get_item(void* slot);
  // Under one acquisition of the lock, up to `max` items, each through
  // `slot` and then `sink(out, slot)`, which must leave the slot empty.
  std::size_t try_get_items(void* slot, std::size_t max, void (*sink)(void* out, void* slot), void* out);
  // copy(q, slot) fills the slot with a copy of the next item, once there is
  // one (waiting when `block`). Throws QueueClosed, QueueEmpty.
  void peek_item(void* slot, void (*copy)(const QueueCore& q, void* slot), Deadline deadline, bool block);

  // JoinableQueue: items put and not yet task_done().
  void task_done();
  bool join_until(Deadline deadline);
  std::size_t unfinished_tasks() const;

 private:
  bool hand_to_getter(void* item);
  bool take_from_putter(void* slot);
  bool put_locked(void* item);
  bool take_locked(void* slot);

  mutable SpinLock lock_;
  const QueueOps& ops_;
  const std::size_t capacity_;
  std::size_t count_ = 0;       // items in the store
  bool closed_ = false;
  std::size_t unfinished_ = 0;
  WaitList getters_;   // Waiter::payload: the slot to fill
  WaitList putters_;   // Waiter::payload: the item to take; Waiter::tag: the outcome
  WaitList peekers_;   // woken whenever an item is stored
  WaitList joiners_;   // join(), woken when unfinished_ reaches 0
};

}  // namespace green::detail
