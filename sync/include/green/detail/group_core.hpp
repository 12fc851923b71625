// green/detail/group_core.hpp — the books of a Group or Pool.
//
// Not part of the user's API (see green/pool.hpp). A GroupCore counts the
// slots a Pool has handed out and knows its live members. It is shared, by
// reference count, between the Group object and its members: a member that
// finishes after its Group was destroyed still finds the books it updates.
//
// A member spawned by the group carries the core in its Fiber::done_hook, so
// joining the group costs no allocation per member. The hook runs as the
// member becomes done and before its joiners wake (see fiber.hpp): once
// g.join() returns, the group no longer counts g and its slot is free.
// Members add()ed from outside use an ordinary link instead.
//
// Lock order: a member's Fiber::lock (held while its hook runs) before the
// core's lock_, before a MemberWatch's lock. Nothing here takes a fiber's
// lock while holding lock_ (kill() works on a snapshot).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <vector>

#include <boost/intrusive_ptr.hpp>

#include "green/detail/fiber.hpp"
#include "green/detail/park_on.hpp"

namespace green::detail {

// Follows some of a group's members for one map()/imap() call: counts those
// still running, notes the first failure, and (for imap_unordered) queues
// the finished ones in the order they finished. One party waits on it.
class MemberWatch {
 public:
  explicit MemberWatch(bool queue_finished) : queue_finished_(queue_finished) {}
  MemberWatch(const MemberWatch&) = delete;
  MemberWatch& operator=(const MemberWatch&) = delete;
  ~MemberWatch();

  void started() noexcept;
  void finished(Fiber& f) noexcept;  // from the member's done hook

  // Waits until none is running, or (stop_on_failure) one has failed.
  void wait_all(bool stop_on_failure);
  // Waits for the next finished member (imap_unordered); null when none is
  // running and none is queued. The caller owns one reference to it.
  Fiber* next_finished();
  bool failed() const;
  std::size_t running() const;

 private:
  mutable SpinLock lock_;
  std::size_t running_ = 0;
  bool failed_ = false;
  const bool queue_finished_;
  std::deque<Fiber*> finished_;  // each holds a reference
  WaitList waiter_;
};

class GroupCore {
 public:
  static constexpr std::size_t kUnbounded = std::numeric_limits<std::size_t>::max();

  explicit GroupCore(std::size_t capacity) : capacity_(capacity) {}
  GroupCore(const GroupCore&) = delete;
  GroupCore& operator=(const GroupCore&) = delete;

  void add_ref() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    // acq_rel: the last owner sees every update the others made.
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // ---- slots (a Pool's capacity; a Group never runs out) -----------------
  // Reserves a slot, waiting for one until `deadline` when `block`. False if
  // none was free in time. Waiters are served first come, first served.
  bool reserve(Deadline deadline, bool block);
  // Gives back a reserved slot that was not used.
  void unreserve() noexcept;

  // ---- members -------------------------------------------------------------
  // Makes f (not yet submitted, holding a reserved slot) a member; its done
  // hook will remove it and free the slot. `watch` may be null.
  void admit_spawned(Fiber* f, MemberWatch* watch);
  // Undoes admit_spawned() when f could not be submitted.
  void abandon(Fiber* f) noexcept;
  // Makes an already spawned green thread a member (holding a reserved
  // slot), through a link. False, and the slot is given back, if it was a
  // member already.
  bool admit_existing(Fiber* f);
  bool contains(const Fiber* f) const;
  std::size_t size() const;
  std::vector<boost::intrusive_ptr<Fiber>> members() const;

  // ---- waiting ---------------------------------------------------------------
  // Until no member is left; false if the deadline passed first.
  bool join_until(Deadline deadline);
  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t free_count() const;
  // Until a slot is free or the deadline passes; returns free_count().
  std::size_t wait_available(Deadline deadline);

 private:
  struct Member {
    Fiber* fiber = nullptr;  // holds a reference; null: a free entry
    MemberWatch* watch = nullptr;
  };
  static void on_done(Fiber& f, void* core, std::uintptr_t index) noexcept;
  std::uint32_t insert_locked(Fiber* f, MemberWatch* watch);
  // Removes entry `index` and frees its slot; returns its watch.
  MemberWatch* remove_locked(std::uint32_t index) noexcept;
  void free_slot_locked() noexcept;

  std::atomic<std::size_t> refs_{1};
  mutable SpinLock lock_;
  const std::size_t capacity_;
  std::size_t used_ = 0;               // slots reserved (members + spawns under way)
  std::vector<Member> members_;        // indexed by the member's hook tag
  std::vector<std::uint32_t> free_;    // unused entries of members_
  std::size_t count_ = 0;              // live members
  WaitList joiners_;                   // join(): woken when count_ reaches 0
  WaitList slot_waiters_;              // reserve(): handed a slot, FIFO
  WaitList available_waiters_;         // wait_available(): woken on any free slot
};

}  // namespace green::detail
