// timeout.cpp — green::Timeout scopes (see timeout.hpp; the firing side is in
// park.cpp, where a park merges the scopes' deadlines into its timer).
#include "green/timeout.hpp"

#include <atomic>

#include "green/detail/park.hpp"

namespace green {

namespace {
std::atomic<std::uint64_t> next_scope_id{1};
}

Timeout::Timeout(std::chrono::steady_clock::duration d) {
  scope_.deadline = detail::deadline_after(d);
  arm();
}

Timeout::Timeout(std::nullopt_t) {
  scope_.deadline = detail::kNoDeadline;
  arm();
}

void Timeout::arm() {
  owner_ = detail::current_fiber();
  if (!owner_) throw Error("green::Timeout needs a green thread");
  scope_.id = next_scope_id.fetch_add(1, std::memory_order_relaxed);
  scope_.outer = owner_->scopes;
  owner_->scopes = &scope_;
}

Timeout::~Timeout() {
  // RAII keeps scopes LIFO; unlink defensively if a scope is destroyed out of
  // order (e.g. held in a container), so the list never dangles.
  detail::TimeoutScope** link = &owner_->scopes;
  while (*link && *link != &scope_) link = &(*link)->outer;
  if (*link) *link = scope_.outer;
  // A scope that fired but whose error was never thrown must not leak out.
  if (owner_->expired_scope == scope_.id) owner_->expired_scope = 0;
}

}  // namespace green
