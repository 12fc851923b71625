// green/detail/park_on.hpp — what sync/ primitives add to the wait protocol.
//
// park_on() itself, and the rules every primitive follows (one lock guards
// the state and the wait lists; wake under it; unlink under it), are part of
// the protocol in green/detail/park.hpp. This header adds the owner identity
// that RLock needs.
#pragma once

#include <cstdint>

#include "green/detail/park.hpp"
#include "green/detail/spin_lock.hpp"

namespace green::detail {

// Identifies the caller as an owner (RLock): green threads by their id,
// plain OS threads by a number of their own (high bit set, so the two never
// collide). Never 0.
std::uint64_t current_owner_id() noexcept;

}  // namespace green::detail
