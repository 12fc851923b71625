// group_core.cpp — the books of a Group or Pool (see detail/group_core.hpp).
//
// Slots follow Semaphore's rule: while anybody waits for a slot, used_ ==
// capacity_, and a freed slot goes straight to the longest waiter (its
// wake() succeeds) or back to the count. Members live in a deque of entries,
// each its member's completion listener; freed entries are reused.
#include "green/detail/group_core.hpp"

#include <algorithm>

namespace green::detail {

// ---------------------------------------------------------------------------
// MemberWatch

MemberWatch::~MemberWatch() {
  for (Fiber* f : finished_) f->release();
}

void MemberWatch::finished_locked(Fiber& f) noexcept {
  // The waiter may return (and destroy this watch) as soon as it sees
  // running_ fall, under the core's lock, so everything happens under it.
  --running_;
  const bool failure = f.error != nullptr;
  if (failure) failed_ = true;
  if (queue_finished_) {
    f.add_ref();
    finished_.push_back(&f);
  }
  if (running_ <= wake_at_ || failure || queue_finished_) waiter_.wake_all();
}

void MemberWatch::wait_running_at_most(std::size_t running, bool stop_on_failure) {
  std::unique_lock lk(core_.lock_);
  while (running_ > running && !(stop_on_failure && failed_)) {
    wake_at_ = running;
    Waiter w;
    park_on(lk, waiter_, w, kNoDeadline, "Pool.map");
    lk.lock();
  }
}

Fiber* MemberWatch::next_finished() {
  std::unique_lock lk(core_.lock_);
  while (finished_.empty()) {
    if (running_ == 0) return nullptr;
    Waiter w;
    park_on(lk, waiter_, w, kNoDeadline, "Pool.imap_unordered");
    lk.lock();
  }
  Fiber* f = finished_.front();
  finished_.pop_front();
  return f;
}

bool MemberWatch::failed() const {
  std::lock_guard g(core_.lock_);
  return failed_;
}

std::size_t MemberWatch::running() const {
  std::lock_guard g(core_.lock_);
  return running_;
}

void MemberWatch::record_failure(std::size_t index, std::exception_ptr e) noexcept {
  std::lock_guard g(core_.lock_);
  if (!failure_ || index < failed_index_) {
    failure_ = std::move(e);
    failed_index_ = index;
  }
  failed_ = true;
  waiter_.wake_all();
}

std::exception_ptr MemberWatch::first_failure() const {
  std::lock_guard g(core_.lock_);
  return failure_;
}

// ---------------------------------------------------------------------------
// Slots

bool GroupCore::take_slot(std::unique_lock<SpinLock>& lk, Deadline deadline, bool block) {
  if (used_ < capacity_) {
    ++used_;
    return true;
  }
  if (!block) return false;
  Waiter w;
  // Woken means handed a slot (used_ unchanged by the hand-over).
  if (!park_on(lk, slot_waiters_, w, deadline, "Pool.spawn (full)")) return false;
  lk.lock();
  return true;
}

void GroupCore::free_slot_locked() noexcept {
  if (slot_waiters_.wake_one()) return;  // the slot went to a waiter
  --used_;
  available_waiters_.wake_all();
}

// ---------------------------------------------------------------------------
// Members

GroupCore::Member& GroupCore::insert_locked(Fiber* f, MemberWatch* watch) {
  std::uint32_t index;
  if (!free_.empty()) {
    index = free_.back();
    free_.pop_back();
  } else {
    index = static_cast<std::uint32_t>(members_.size());
    members_.emplace_back();
    free_.reserve(members_.size());  // so remove_locked() never allocates
  }
  f->add_ref();
  Member& m = members_[index];
  m.core = this;
  m.index = index;
  m.fiber = f;
  m.watch = watch;
  m.killed = false;
  m.discarded = false;
  ++count_;
  if (watch) ++watch->running_;
  return m;
}

void GroupCore::remove_locked(std::uint32_t index) noexcept {
  Member& m = members_[index];
  Fiber* f = m.fiber;
  MemberWatch* watch = m.watch;
  const bool discarded = m.discarded;
  m.fiber = nullptr;
  m.watch = nullptr;
  m.killed = false;
  m.discarded = false;
  free_.push_back(index);
  if (discarded) return;  // its count and slot went at discard()
  if (--count_ == 0) joiners_.wake_all();
  free_slot_locked();
  if (watch) watch->finished_locked(*f);
}

GroupCore::Member* GroupCore::admit_locked(std::unique_lock<SpinLock>& lk, Fiber* f, MemberWatch* watch,
                                           Deadline deadline, bool block) {
  if (!take_slot(lk, deadline, block)) return nullptr;
  Member* m;
  try {
    m = &insert_locked(f, watch);
  } catch (...) {
    free_slot_locked();
    throw;
  }
  add_ref();  // the member's: released when it finishes
  return m;
}

bool GroupCore::admit_spawned(Fiber* f, MemberWatch* watch, Deadline deadline, bool block) {
  Member* m;
  {
    std::unique_lock lk(lock_);
    m = admit_locked(lk, f, watch, deadline, block);
  }
  if (!m) return false;
  // Outside lock_ (the lock order). f is not submitted yet, so it cannot be
  // done, and the entry cannot be freed before it finishes.
  f->listen(*m);
  return true;
}

void GroupCore::abandon(Fiber* f) noexcept {
  Member* entry = nullptr;
  {
    std::lock_guard g(lock_);
    for (Member& m : members_)
      if (m.fiber == f) entry = &m;
  }
  if (!entry) return;
  f->unlisten(*entry);  // never submitted: it cannot have fired
  entry->finished(*f);
}

void GroupCore::Member::finished(Fiber& f) noexcept {
  GroupCore* owner = core;  // this entry may be reused once removed
  {
    std::lock_guard g(owner->lock_);
    owner->remove_locked(index);
  }
  f.release();  // the group's reference; the runtime still holds one
  owner->release();
}

bool GroupCore::admit_existing(Fiber* f, Deadline deadline, bool block) {
  Member* m;
  {
    std::unique_lock lk(lock_);
    for (const Member& e : members_)
      if (e.fiber == f && !e.discarded) return true;
    m = admit_locked(lk, f, nullptr, deadline, block);
  }
  if (!m) return false;
  if (!f->listen(*m)) m->finished(*f);  // it has finished already
  return true;
}

bool GroupCore::contains(const Fiber* f) const {
  if (!f) return false;
  std::lock_guard g(lock_);
  return std::any_of(members_.begin(), members_.end(),
                     [f](const Member& m) { return m.fiber == f && !m.discarded; });
}

std::size_t GroupCore::size() const {
  std::lock_guard g(lock_);
  return count_;
}

std::vector<boost::intrusive_ptr<Fiber>> GroupCore::members() const {
  std::vector<boost::intrusive_ptr<Fiber>> out;
  std::lock_guard g(lock_);
  out.reserve(count_);
  for (const Member& m : members_)
    if (m.fiber && !m.discarded) out.emplace_back(m.fiber);  // add_ref: safe under lock_, the member holds one
  return out;
}

std::vector<boost::intrusive_ptr<Fiber>> GroupCore::take_unkilled() {
  std::vector<boost::intrusive_ptr<Fiber>> out;
  std::lock_guard g(lock_);
  for (Member& m : members_) {
    if (m.fiber && !m.killed && !m.discarded) {
      m.killed = true;
      out.emplace_back(m.fiber);
    }
  }
  return out;
}

bool GroupCore::take_unkilled(const Fiber* f) {
  if (!f) return false;
  std::lock_guard g(lock_);
  for (Member& m : members_) {
    if (m.fiber == f && !m.discarded && !m.killed) {
      m.killed = true;
      return true;
    }
  }
  return false;
}

bool GroupCore::discard(const Fiber* f) {
  if (!f) return false;
  std::lock_guard g(lock_);
  for (Member& m : members_) {
    if (m.fiber != f || m.discarded || m.watch) continue;
    m.discarded = true;
    if (--count_ == 0) joiners_.wake_all();
    free_slot_locked();
    return true;
  }
  return false;
}

void GroupCore::kill_watched(const MemberWatch* watch) const {
  std::vector<boost::intrusive_ptr<Fiber>> victims;
  {
    std::lock_guard g(lock_);
    for (const Member& m : members_)
      if (m.fiber && m.watch == watch) victims.emplace_back(m.fiber);
  }
  // Outside lock_: kill() takes each fiber's lock (see the lock order).
  for (auto& f : victims) f->kill(nullptr, false, kNoDeadline);
}

// ---------------------------------------------------------------------------
// Waiting

bool GroupCore::join_until(Deadline deadline) {
  std::unique_lock lk(lock_);
  if (count_ == 0) return true;
  Waiter w;
  if (park_on(lk, joiners_, w, deadline, "Group.join")) return true;
  return size() == 0;
}

std::size_t GroupCore::free_count() const {
  std::lock_guard g(lock_);
  return capacity_ - used_;
}

std::size_t GroupCore::wait_available(Deadline deadline) {
  std::unique_lock lk(lock_);
  while (used_ >= capacity_) {
    Waiter w;
    if (!park_on(lk, available_waiters_, w, deadline, "Pool.wait_available")) return free_count();
    lk.lock();
  }
  return capacity_ - used_;
}

}  // namespace green::detail
