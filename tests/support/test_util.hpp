// test_util.hpp — small helpers shared by the test suites.
#pragma once

#include <green/current.hpp>

#include <chrono>
#include <stdexcept>
#include <thread>

namespace green::testing {

// An exception type of the tests' own, with a payload to check.
struct MyError : std::runtime_error {
  explicit MyError(int c) : std::runtime_error("my error"), code(c) {}
  int code;
};

// Polls `pred` until it holds, yielding (green thread) or yielding the OS
// thread (plain thread) in between. False if `limit` passed first: every
// wait in the tests is bounded.
template <class Pred>
bool wait_until(Pred pred, std::chrono::steady_clock::duration limit = std::chrono::seconds(5)) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    if (green::in_green_thread()) {
      green::yield();
    } else {
      std::this_thread::yield();
    }
  }
  return true;
}

// Burns CPU without blocking: stands for computation in a green thread.
inline void spin_for(std::chrono::steady_clock::duration d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
  }
}

}  // namespace green::testing
