// nursery.cpp — green::Nursery: members are listed intrusively (no
// allocation per spawn) and the owner, closing, waits for the list to empty.
//
// Why waiting for "empty" and not joining each member: a member leaves the
// list as the very last thing its completion does (after its links, which
// may spawn), so when the owner sees the list empty nobody will touch this
// Nursery again and its memory (on the owner's stack) may go. A join would
// wake the owner before the member's completion is over.
#include "green/nursery.hpp"

#include <chrono>
#include <exception>
#include <mutex>
#include <vector>

#include <boost/intrusive_ptr.hpp>

#include "fiber_internal.hpp"
#include "green/detail/park.hpp"
#include "green/errors.hpp"

namespace green {

using namespace std::chrono_literals;

Nursery::Nursery() : owner_(detail::current_fiber()) {
  if (!owner_) throw Error("green::Nursery: create it in a green thread");
  outer_ = owner_->scope;
  owner_->scope = this;
}

Nursery::~Nursery() {
  owner_->scope = outer_;  // the owner's own spawns from here on are not ours
  close();
}

std::size_t Nursery::size() const noexcept {
  std::lock_guard g(lock_);
  return size_;
}

void Nursery::adopt(detail::Fiber& child) noexcept {
  // The list holds no reference: a member is in it only while it is alive,
  // and the runtime holds one for that long.
  std::lock_guard g(lock_);
  child.scope_prev = nullptr;
  child.scope_next = members_;
  if (members_) members_->scope_prev = &child;
  members_ = &child;
  ++size_;
}

void Nursery::release(detail::Fiber& child) noexcept {
  std::lock_guard g(lock_);
  if (child.scope_prev) child.scope_prev->scope_next = child.scope_next; else members_ = child.scope_next;
  if (child.scope_next) child.scope_next->scope_prev = child.scope_prev;
  child.scope_prev = child.scope_next = nullptr;
  // Woken under the lock: the owner re-checks size_ under it, so it cannot
  // see zero (and free us) before this unlock.
  if (--size_ == 0) closer_.wake_all();
}

void Nursery::close() noexcept {
  std::exception_ptr deferred;  // the owner's own interrupt, raised later
  for (;;) {
    // Kill whoever is a member now. References keep each alive across the
    // kill, which runs outside our lock (it takes the member's lock).
    std::vector<boost::intrusive_ptr<detail::Fiber>> running;
    {
      std::lock_guard g(lock_);
      if (size_ == 0) break;
      running.reserve(size_);
      for (detail::Fiber* f = members_; f; f = f->scope_next) running.emplace_back(f);
    }
    for (auto& f : running) {
      try {
        f->kill(nullptr, false, detail::kNoDeadline);
      } catch (...) {  // only allocation can fail here; the next round retries
      }
    }
    running.clear();
    // Wait for the list to empty, at most 100 ms a round: a member that
    // swallowed its GreenletExit is killed again.
    try {
      detail::wait_until(lock_, closer_, detail::deadline_after(100ms), "Nursery.close",
                         [this] { return size_ == 0; });
    } catch (...) {  // the owner's own kill or Timeout: keep it for later
      if (!deferred) deferred = std::current_exception();
    }
  }
  // Pending again: thrown by the owner's next blocking call.
  if (deferred) detail::hold_interrupt(*owner_, std::move(deferred));
}

}  // namespace green
