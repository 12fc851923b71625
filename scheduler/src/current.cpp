// current.cpp — green/current.hpp: what a green thread asks about itself,
// and sleep and yield.
#include <thread>

#include "fiber_internal.hpp"
#include "green/current.hpp"
#include "green/detail/park.hpp"
#include "worker.hpp"

namespace green::detail {

Fiber* current_fiber() noexcept {
  Worker* w = current_worker();
  return w ? w->current() : nullptr;
}

}  // namespace green::detail

// ---------------------------------------------------------------------------
// // green/current.hpp

namespace green {

using detail::current_fiber;

void sleep_until(Clock::time_point t) {
  if (!current_fiber()) {
    std::this_thread::sleep_until(t);
    return;
  }
  detail::sleep_until(t, "sleep");
}

void sleep(Clock::duration d) {
  if (d <= Clock::duration::zero()) {
    yield();
    return;
  }
  sleep_until(detail::deadline_after(d));
}

void yield() {
  detail::Worker* w = detail::current_worker();
  detail::Fiber* self = w ? w->current() : nullptr;
  if (!self) {
    std::this_thread::yield();
    return;
  }
  detail::interruption_point(self);
  w->yield_current(self);  // w is stale once this returns: the switch may migrate us
  detail::interruption_point(self);
}

bool in_green_thread() noexcept { return current_fiber() != nullptr; }

std::uint64_t current_id() noexcept {
  auto* f = current_fiber();
  return f ? f->id : 0;
}

std::string current_name() {
  auto* f = current_fiber();
  return f ? f->name : std::string();
}

int this_worker() noexcept {
  auto* w = detail::current_worker();
  return w ? static_cast<int>(w->index()) : -1;
}

}  // namespace green
