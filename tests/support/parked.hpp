// parked.hpp — waiting, without sleeps, until green threads are parked.
//
// Runtime::dump() is the public view of what each green thread is doing
// ("green thread 7 (name): parked: Queue.get"); tests poll it (bounded) to
// know that a waiter really waits before they act.
#pragma once

#include <green/runtime.hpp>

#include <chrono>
#include <cstddef>
#include <string>

#include "test_util.hpp"

namespace green::testing {

// Green threads shown by dump() as parked on `what` right now.
inline std::size_t parked_on(const green::Runtime& rt, const std::string& what) {
  const std::string d = rt.dump();
  const std::string key = "parked: " + what + "\n";
  std::size_t n = 0;
  for (auto pos = d.find(key); pos != std::string::npos; pos = d.find(key, pos + key.size())) ++n;
  return n;
}

// Until at least n green threads are parked on `what`; false after `limit`.
inline bool wait_parked(const green::Runtime& rt, const std::string& what, std::size_t n,
                        std::chrono::steady_clock::duration limit = std::chrono::seconds(5)) {
  return wait_until([&] { return parked_on(rt, what) >= n; }, limit);
}

// Until the green thread called `name` is parked for `reason`.
inline bool wait_parked(const green::Runtime& rt, const std::string& name, const std::string& reason) {
  const std::string needle = "(" + name + "): parked: " + reason;
  return wait_until([&] { return rt.dump().find(needle) != std::string::npos; });
}

}  // namespace green::testing
