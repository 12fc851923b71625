// test_env.hpp — what the module tests need to know about the build and the
// machine they run on, in one place instead of a copy per test file.
//
// tests/CMakeLists.txt defines GREEN_TEST_SANITIZED=1 in every sanitized
// build of the module tests, and GREEN_TEST_TSAN=1 as well under
// ThreadSanitizer. Sanitizers multiply the cost of every green thread,
// switch and atomic (ThreadSanitizer most), so the largest counts are scaled
// down there through per_build().
#pragma once

#include <green/greenlet.hpp>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>

namespace green::testing {

#if defined(GREEN_TEST_SANITIZED)
inline constexpr bool kSanitized = true;  // any sanitizer, ThreadSanitizer included
#else
inline constexpr bool kSanitized = false;
#endif
#if defined(GREEN_TEST_TSAN)
inline constexpr bool kTsan = true;
#else
inline constexpr bool kTsan = false;
#endif

// The value for the build the tests run in: `tsan` under ThreadSanitizer,
// `sanitized` under another sanitizer (AddressSanitizer), `release` otherwise.
// A count (per_build(1'000'000, 20'000, 2'000)) or a divisor
// (kScaleDown = per_build(1, 4, 20)).
template <class T>
constexpr T per_build(T release, T sanitized, T tsan) {
  return kTsan ? tsan : kSanitized ? sanitized : release;
}

// A worker per core, and at least two so that work can move between them.
inline unsigned all_workers() { return std::max(2u, std::thread::hardware_concurrency()); }

// Spawn options that start a green thread on worker `w` and keep it there.
inline green::SpawnOptions on_worker(unsigned w) {
  return green::SpawnOptions{.worker = static_cast<int>(w), .pinned = true};
}

// A timed wait took about `t`: not early (beyond clock granularity), not
// grossly late (a loaded machine gets half a second).
inline void expect_about(std::chrono::steady_clock::duration took, std::chrono::steady_clock::duration t) {
  using namespace std::chrono_literals;
  EXPECT_GE(took, t - 5ms);
  EXPECT_LT(took, t + 500ms);
}

// How long a timed stretch took, in whole milliseconds, for a failure's
// message; also recorded as the test's "took_ms" property (gtest's XML
// output), so that each build's margins can be read off a run.
inline long long record_took(std::chrono::steady_clock::duration took) {
  const long long ms = std::chrono::duration_cast<std::chrono::milliseconds>(took).count();
  ::testing::Test::RecordProperty("took_ms", std::to_string(ms));
  return ms;
}

// A timed stretch took at least `low` and less than `high` (recorded as
// above; the message gives the time).
inline void expect_took(std::chrono::steady_clock::duration took, std::chrono::steady_clock::duration low,
                        std::chrono::steady_clock::duration high) {
  const long long ms = record_took(took);
  EXPECT_GE(took, low) << "took " << ms << " ms";
  EXPECT_LT(took, high) << "took " << ms << " ms";
}

}  // namespace green::testing
