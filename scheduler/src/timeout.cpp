// timeout.cpp — green::Timeout scopes (see timeout.hpp; the firing side is in
// park.cpp, where a park merges the scopes' deadlines into its timer).
#include "green/timeout.hpp"

#include <atomic>

#include "green/detail/park.hpp"

namespace green {

namespace {
std::atomic<std::uint64_t> next_scope_id{1};
}

Timeout::Timeout(std::chrono::steady_clock::duration d) : Timeout(d, std::exception_ptr()) {}

Timeout::Timeout(std::chrono::steady_clock::duration d, std::exception_ptr exception) : duration_(d) {
  scope_.exception = std::move(exception);
  scope_.id = next_scope_id.fetch_add(1, std::memory_order_relaxed);
  start();
}

Timeout::Timeout(std::nullopt_t) {
  scope_.id = next_scope_id.fetch_add(1, std::memory_order_relaxed);
  start();
}

void Timeout::start() {
  detail::Fiber* self = detail::current_fiber();
  if (!self) throw Error("green::Timeout needs a green thread");
  if (pending()) throw Error("green::Timeout::start: already pending (cancel() it first)");
  // Only its own green thread touches the list it is in.
  if (linked_ && owner_ != self)
    throw Error("green::Timeout::start: it belongs to another green thread (cancel() it there first)");
  if (owner_ == self && owner_->expired_scope == scope_.id) owner_->expired_scope = 0;
  owner_ = self;
  scope_.fired = false;
  scope_.deadline = duration_ ? detail::deadline_after(*duration_) : detail::kNoDeadline;
  if (!linked_) {
    scope_.outer = owner_->scopes;
    owner_->scopes = &scope_;
    linked_ = true;
  }
}

void Timeout::unlink() noexcept {
  if (!linked_) return;
  detail::TimeoutScope** link = &owner_->scopes;
  while (*link && *link != &scope_) link = &(*link)->outer;
  if (*link) *link = scope_.outer;
  scope_.outer = nullptr;
  linked_ = false;
}

void Timeout::cancel() noexcept {
  if (!owner_) return;
  unlink();
  // Fired but not yet thrown: a cancelled Timeout raises nothing.
  if (owner_->expired_scope == scope_.id) owner_->expired_scope = 0;
}

Timeout::~Timeout() { cancel(); }

}  // namespace green
