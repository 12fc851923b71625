// blocking.hpp — the blocking detector (RuntimeOptions::max_blocking_time;
// the user's manual is runtime.hpp, "Blocking detector").
//
// THE TICK (Worker::scheduling_ticks). Worker::runs_ counts the switches
// into a green thread (jump, switch.cpp) and Worker::current_ is the green
// thread running, null in the scheduler context; both exist for stats() and
// dump() and are relaxed atomics written only by their worker. A worker is stalled while two looks
// see the same count and the same, non-null green thread: every switch into
// a green thread moves the count, so the worker has run that one green
// thread all along. A yield that finds nothing else to run does not switch,
// but it is a scheduling point (the pick looked at the queues, the hub and
// the timers: nobody waited), so it counts too: Worker::yield_ticks_, one
// relaxed store on that no-op path only (without it, a green thread waiting
// in a yield loop on an otherwise idle worker was reported). The hand-off
// path pays nothing for the detector, on or off.
//
// THE LOOK (sample(), on the monitor thread, every period()): per worker,
// (count, green thread) and the time this pair was first seen. A pair seen
// for max_blocking_time is reported once; a new pair (or none) starts over,
// so a stall that ends and a second stall are two reports. "Stalled for" is
// counted from the first look that saw the pair: at least that long, at
// most a period less than the truth.
//
// THE REPORT. The green thread is kept alive for it by a reference taken
// under the registry's lock (a green thread leaves the registry before its
// control block can be freed), then the pair is read again: unchanged, the
// worker has not switched since the look, so the green thread referenced is
// the one that stalls. Its stack is taken on the worker by a signal
// (stack_capture.hpp); if the pair moved meanwhile the frames belong to
// whatever ran next, and are dropped ("switched out while its stack was
// taken"). The frames are named and demangled here, off the signal handler.
//
// THE HUB. An idle worker polls a busy peer's hub every millisecond, but it
// decides so when it goes to sleep (park_in_hub): one that fell asleep
// before its peer got stuck sleeps on, unbounded, and the stuck worker's fds
// go unserved. So the first look that sees a stall (one period in) wakes an
// idle worker when the stuck worker has fds registered; that worker finds
// the peer busy when it sleeps again and polls its hub from then on. Go's
// sysmon polls the network itself for the same reason. Without the detector
// the gap remains (DESIGN.md section 17).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "green/detail/fiber.hpp"
#include "green/runtime.hpp"

namespace green::detail {

class RuntimeCore;

// GREEN_MAX_BLOCKING_MS: its value when it is a whole number of ms from 1
// to kMaxEnvBlockingMs; zero when unset or empty; zero and one line on
// stderr (once per process and value) when it is anything else.
std::chrono::milliseconds max_blocking_time_from_environment();
inline constexpr long long kMaxEnvBlockingMs = 3'600'000;

class BlockingDetector {
 public:
  using Callback = std::function<void(const BlockingReport&)>;
  BlockingDetector(RuntimeCore& rt, std::chrono::milliseconds threshold, Callback on_report);

  // How often the monitor looks: a quarter of the threshold, at least 1 ms.
  Clock::duration period() const noexcept { return period_; }
  std::chrono::milliseconds threshold() const noexcept { return threshold_; }
  // One look at every worker; reports the stalls that reached the
  // threshold. Monitor thread only.
  void sample();

  // For tests: looks taken, reports made.
  std::uint64_t samples() const noexcept { return samples_.load(std::memory_order_acquire); }
  std::uint64_t reports() const noexcept { return reports_.load(std::memory_order_acquire); }

  // How long the monitor waits for a stuck worker's signal handler.
  static constexpr std::chrono::milliseconds kCaptureBound{100};
  static constexpr std::size_t kMaxFrames = 64;

 private:
  struct Seen {
    std::uint64_t runs = 0;
    Fiber* fiber = nullptr;  // only compared, never followed, until report()
    Clock::time_point since{};
    bool reported = false;
    bool nudged = false;  // an idle worker was woken for its hub
  };
  void report(unsigned index, const Seen& seen);
  void deliver(const BlockingReport& r) noexcept;

  RuntimeCore& rt_;
  std::chrono::milliseconds threshold_;
  Clock::duration period_;
  Callback on_report_;
  std::vector<Seen> seen_;  // by worker index
  std::atomic<std::uint64_t> samples_{0}, reports_{0};
};

}  // namespace green::detail
