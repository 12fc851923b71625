// io_budget.hpp — when a green thread whose I/O never has to wait yields.
//
// A socket call that finds its data ready does not switch, so a green thread
// whose peer keeps up would keep its worker for as long as it likes, and a
// timer, a kill or any green thread queued behind it would wait. Each call
// that did not wait spends from a budget: one unit for the call and one for
// every 4 KiB it moved. At 64 units the green thread yields; a wait resets
// the budget (it switched anyway).
//
// So a run of small calls yields every 64 calls, and a bulk writer every
// four 64 KiB sends (256 KiB, some tens of microseconds). Counting calls
// alone let such a writer move 4 MiB a turn: with a hundred of them flushing
// at once, a shutdown's grace timer fired a third of a second late.
#pragma once

#include <atomic>
#include <cstddef>

#include "green/current.hpp"

namespace green::io_detail {

inline constexpr unsigned kIoBudget = 64;
inline constexpr std::size_t kBytesPerUnit = 4096;

// Shared by a reader and a writer green thread of one socket; only a
// heuristic, so relaxed operations suffice.
inline void spend_io_budget(std::atomic<unsigned>& spent, std::size_t bytes) {
  const auto units = static_cast<unsigned>(1 + bytes / kBytesPerUnit);
  if (spent.fetch_add(units, std::memory_order_relaxed) + units < kIoBudget) return;
  spent.store(0, std::memory_order_relaxed);
  if (in_green_thread()) green::yield();
}

inline void reset_io_budget(std::atomic<unsigned>& spent) { spent.store(0, std::memory_order_relaxed); }

}  // namespace green::io_detail
