// green/detail/group_core.hpp — the books of a Group or Pool.
//
// Not part of the user's API (see green/pool.hpp). A GroupCore counts the
// slots a Pool has handed out and knows its live members. It is shared, by
// reference count, between the Group object and its members: a member that
// finishes after its Group was destroyed still finds the books it updates.
//
// Each member's entry is a CompletionListener registered on its green
// thread (see green/detail/fiber.hpp), so joining the group costs no
// allocation per member. It fires as the member becomes done and before its
// joiners wake: once g.join() returns, the group no longer counts g and its
// slot is free. Members add()ed from outside are followed the same way.
//
// One lock, lock_, guards the books and every MemberWatch of the group, so
// that a spawn costs one lock round and a finishing member another.
// Lock order: a member's Fiber::lock (held while its listener runs) before
// lock_. Nothing here takes a fiber's lock while holding lock_ (kill()
// works on a snapshot).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <limits>
#include <vector>

#include <boost/intrusive_ptr.hpp>

#include "green/detail/fiber.hpp"
#include "green/detail/park_on.hpp"

namespace green::detail {

class GroupCore;

// Follows some of a group's members for one map()/imap_unordered() call:
// counts those still running, keeps the failure of the earliest input, and
// (imap_unordered) queues the finished ones in the order they finished. One
// party waits on it. Guarded by its GroupCore's lock.
class MemberWatch {
 public:
  MemberWatch(GroupCore& core, bool queue_finished) : core_(core), queue_finished_(queue_finished) {}
  MemberWatch(const MemberWatch&) = delete;
  MemberWatch& operator=(const MemberWatch&) = delete;
  ~MemberWatch();

  // Waits until at most `running` are still running, or (stop_on_failure)
  // one has failed. Finishing members wake the waiter only at that point,
  // so map() pays one wake per batch of calls, not one per call.
  void wait_running_at_most(std::size_t running, bool stop_on_failure);
  // Waits until none is running, or (stop_on_failure) one has failed.
  void wait_all(bool stop_on_failure) { wait_running_at_most(0, stop_on_failure); }
  // Waits for the next finished member (imap_unordered); null when none is
  // running and none is queued. The caller owns one reference to it.
  Fiber* next_finished();
  bool failed() const;
  std::size_t running() const;
  // A call of map() failed at input `index`: remembers the failure of the
  // earliest input (not the first in time) and wakes the waiter.
  void record_failure(std::size_t index, std::exception_ptr e) noexcept;
  // The failure recorded for the earliest input, or null.
  std::exception_ptr first_failure() const;

 private:
  friend class GroupCore;
  void finished_locked(Fiber& f) noexcept;

  GroupCore& core_;
  std::size_t running_ = 0;
  std::size_t wake_at_ = 0;  // the waiter wants running_ <= wake_at_
  bool failed_ = false;
  std::size_t failed_index_ = 0;
  std::exception_ptr failure_;
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

  // ---- members -------------------------------------------------------------
  // Takes a slot for f (not yet submitted), waiting for one until `deadline`
  // when `block` (first come, first served), and makes f a member whose
  // listener frees the slot; `watch` (may be null) follows it. False when
  // no slot came in time.
  bool admit_spawned(Fiber* f, MemberWatch* watch, Deadline deadline, bool block);
  // Undoes admit_spawned() when f could not be submitted.
  void abandon(Fiber* f) noexcept;
  // Makes an already spawned green thread a member, taking a slot as
  // admit_spawned() does. True if it was a member
  // already (nothing changes then); false when no slot came in time.
  bool admit_existing(Fiber* f, Deadline deadline, bool block);
  bool contains(const Fiber* f) const;
  std::size_t size() const;
  std::vector<boost::intrusive_ptr<Fiber>> members() const;
  // Kills (without waiting) the members followed by `watch`.
  void kill_watched(const MemberWatch* watch) const;
  // Members not killed through the group yet, marked as killed now: a
  // second Group::kill() does not shoot a member that caught the first.
  std::vector<boost::intrusive_ptr<Fiber>> take_unkilled();
  // take_unkilled() for the one member f: true if f is a member not killed
  // through the group yet (it is marked killed now).
  bool take_unkilled(const Fiber* f);
  // Stops tracking member f without killing it: it leaves size() and
  // contains() and its slot is free at once. False when f is no member, or
  // one that a map() follows (map's books need it). The entry itself stays
  // reserved until f ends (its listener is not withdrawn, so no lock order
  // is crossed), and is then reused.
  bool discard(const Fiber* f);

  // ---- waiting ---------------------------------------------------------------
  // Until no member is left; false if the deadline passed first.
  bool join_until(Deadline deadline);
  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t free_count() const;
  // Until a slot is free or the deadline passes; returns free_count().
  std::size_t wait_available(Deadline deadline);

 private:
  friend class MemberWatch;
  // One member's entry; its address is stable (members_ is a deque), so
  // its green thread can hold it in its listener list.
  struct Member final : CompletionListener {
    GroupCore* core = nullptr;
    std::uint32_t index = 0;
    Fiber* fiber = nullptr;  // holds a reference; null: a free entry
    MemberWatch* watch = nullptr;
    bool killed = false;     // by Group::kill()
    bool discarded = false;  // by Group::discard(): counts for nothing
    void finished(Fiber& f) noexcept override;
  };
  // Takes a slot and an entry for f under `lk`; null when no slot came.
  Member* admit_locked(std::unique_lock<SpinLock>& lk, Fiber* f, MemberWatch* watch, Deadline deadline,
                       bool block);
  // Takes a slot under `lk`, waiting as admit_spawned() says.
  bool take_slot(std::unique_lock<SpinLock>& lk, Deadline deadline, bool block);
  Member& insert_locked(Fiber* f, MemberWatch* watch);
  // Removes entry `index`, frees its slot, tells its watch.
  void remove_locked(std::uint32_t index) noexcept;
  void free_slot_locked() noexcept;

  std::atomic<std::size_t> refs_{1};
  mutable SpinLock lock_;
  const std::size_t capacity_;
  std::size_t used_ = 0;               // slots taken (= members, plus spawns under way)
  std::deque<Member> members_;         // entry i has index i
  std::vector<std::uint32_t> free_;    // unused entries of members_
  std::size_t count_ = 0;              // live members
  WaitList joiners_;                   // join(): woken when count_ reaches 0
  WaitList slot_waiters_;              // handed a slot, FIFO
  WaitList available_waiters_;         // wait_available(): woken on any free slot
};

inline void intrusive_ptr_add_ref(GroupCore* c) noexcept { c->add_ref(); }
inline void intrusive_ptr_release(GroupCore* c) noexcept { c->release(); }

}  // namespace green::detail
