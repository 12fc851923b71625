// baton.hpp — a one-waiter wake-up signal for scheduler tests and benchmarks.
//
// post() hands the baton over: the waiter in wait(), or the next wait(), takes
// it. It is the "park / unpark" pair of Go's runtime, built on green's wait
// protocol (green/detail/park.hpp) exactly as the sync/ primitives are, so the
// scheduler can be exercised before sync/ exists.
#pragma once

#include <mutex>

#include <green/detail/park.hpp>

namespace green::testing {

class Baton {
 public:
  void post() {
    std::lock_guard g(lock_);
    // A waiter takes the baton directly; otherwise it waits for the next wait().
    if (!waiters_.wake_one()) posted_ = true;  // wake under the lock: see park.hpp
  }

  // Returns false when the deadline passed first.
  bool wait(detail::Deadline deadline = detail::kNoDeadline) {
    {
      std::lock_guard g(lock_);
      if (posted_) {
        posted_ = false;
        return true;
      }
    }
    return detail::wait_until(lock_, waiters_, deadline, "Baton.wait", [this] {
      if (!posted_) return false;
      posted_ = false;  // taken: wake-ups are not counted twice
      return true;
    });
  }

 private:
  detail::SpinLock lock_;
  bool posted_ = false;
  detail::WaitList waiters_;
};

}  // namespace green::testing
