// baton.hpp — a one-waiter wake-up signal for scheduler tests and benchmarks.
//
// post() hands the baton over: the waiter in wait(), or the next wait(), takes
// it. It is the "park / unpark" pair of Go's runtime, built on green's park
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
    detail::Waiter w;
    auto publish = [this](detail::Waiter& me) {
      std::lock_guard g(lock_);
      if (posted_) {
        posted_ = false;
        detail::wake(me);
      } else {
        waiters_.push_back(me);
      }
    };
    const auto r = detail::park(w, deadline, detail::PublishFn(publish), "Baton.wait");
    if (r == detail::WakeReason::notified) return true;  // handed over by post()
    {
      std::lock_guard g(lock_);
      waiters_.remove(w);
    }
    if (r == detail::WakeReason::interrupted) detail::throw_if_interrupted();
    return false;
  }

 private:
  detail::SpinLock lock_;
  bool posted_ = false;
  detail::WaitList waiters_;
};

}  // namespace green::testing
