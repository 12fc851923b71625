// fiber_internal.hpp — fiber life-cycle steps shared by worker.cpp and fiber.cpp.
#pragma once

#include <cstdint>
#include <exception>

#include "green/detail/fiber.hpp"

namespace green::detail {

// Runs the body (unless killed before starting) and completes the fiber:
// stores the result, wakes joiners, runs links, leaves the registry.
// Runs on the fiber's own stack.
void run_fiber(Fiber* self) noexcept;

// Completes a fiber that could not start (no stack): runs on the caller.
void complete_unstarted(Fiber* f, std::exception_ptr error) noexcept;

// One CAS on the park word (see park.hpp); on success records `reason` and
// makes f runnable.
bool try_wake_fiber(Fiber* f, std::uint64_t seq, WakeReason reason) noexcept;

}  // namespace green::detail
