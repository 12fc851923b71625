// pool_map.cpp — the part of Group::map that does not depend on the types
// of the function, the inputs or the results.
#include "green/detail/pool_map.hpp"

#include <algorithm>
#include <string>

namespace green::detail {

std::size_t map_window(const GroupCore& core, std::size_t window) noexcept {
  if (window) return window;
  const std::size_t cap = core.capacity();
  return cap == GroupCore::kUnbounded ? 64 : std::max<std::size_t>(cap, 1);
}

void MapRun::stop_all() {
  core_.kill_watched(&watch_);
  watch_.wait_all(false);
}

void MapRun::finish(std::size_t first_empty, std::size_t taken) {
  if (watch_.failed()) {
    stop_all();
    std::rethrow_exception(watch_.first_failure());
  }
  // A call killed from outside (Group::kill) left its slot empty, or inputs
  // that no call took. That is an error for map's caller, not a kill of it.
  if (first_empty < taken)
    throw Error("green::Group::map: the call for input #" + std::to_string(first_empty) + " was killed");
  if (!inputs_done_.load(std::memory_order_relaxed))
    throw Error("green::Group::map: killed before input #" + std::to_string(taken) + " was taken");
}

}  // namespace green::detail
