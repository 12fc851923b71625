// monitor_probe.hpp — what the runtime's deadlock check (LoopExit) has done,
// so that a test can act once the check has really looked at a state
// instead of sleeping and hoping it did.
#pragma once

#include <green/runtime.hpp>

#include <chrono>
#include <cstdint>

#include "../../scheduler/src/runtime_core.hpp"
#include "../../scheduler/src/worker.hpp"
#include "test_util.hpp"

namespace green::testing {

// Checks the monitor has run so far.
inline std::uint64_t deadlock_checks(const green::Runtime& rt) { return rt.core()->monitor().checks(); }

// Checks that found every green thread stuck, but held off because something
// outside the runtime (a KeepAlive, a job, an attached plain thread,
// another runtime) might still wake one.
inline std::uint64_t deadlock_checks_held_off(const green::Runtime& rt) {
  return rt.core()->monitor().held_off();
}

// Until every worker sleeps in its hub: a deadlock check run from then on
// looks at a settled runtime instead of finding a worker still searching.
inline bool wait_workers_asleep(const green::Runtime& rt,
                                std::chrono::steady_clock::duration limit = std::chrono::seconds(10)) {
  auto* core = rt.core();
  return wait_until(
      [&] {
        for (unsigned i = 0; i < core->worker_count(); ++i)
          if (!core->worker(i).asleep()) return false;
        return true;
      },
      limit);
}

// Until the monitor has held off a report more than `before` times.
inline bool wait_held_off(const green::Runtime& rt, std::uint64_t before,
                          std::chrono::steady_clock::duration limit = std::chrono::seconds(10)) {
  return wait_until([&] { return deadlock_checks_held_off(rt) > before; }, limit);
}

// Until the monitor has run more than `before` checks.
inline bool wait_checked(const green::Runtime& rt, std::uint64_t before,
                         std::chrono::steady_clock::duration limit = std::chrono::seconds(10)) {
  return wait_until([&] { return deadlock_checks(rt) > before; }, limit);
}

}  // namespace green::testing
