// offload.cpp — the CPU arena and the elastic blocking pool behind
// green::offload() and green::blocking().
//
// Both are process-wide and created on first use. They are deliberately
// never destroyed: their threads may still be finishing jobs whose callers
// have gone (killed or timed out) when static destructors run, and a job
// owns its shared Completion, so nothing it touches is freed under it.
#include "green/offload.hpp"

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>

#include <oneapi/tbb/task_arena.h>

#include "fiber_internal.hpp"
#include "monitor.hpp"

namespace green::detail {

void Completion::finish() noexcept {
  // Wake under the lock: the waiter unlinks itself under it (see park.hpp).
  std::lock_guard g(lock_);
  done_ = true;
  waiter_.wake_all();
}

void Completion::wait(const char* what) {
  {
    std::lock_guard g(lock_);
    if (done_) return;
  }
  Waiter w;
  w.external = true;  // a pool thread ends this wait (monitor.hpp)
  park_unlocked(
      lock_, w, kNoDeadline, what,
      [this](Waiter& me) {
        if (done_) return false;
        waiter_.push_back(me);
        return true;
      },
      [this](Waiter& me) { waiter_.remove(me); });
}

void run_on_arena(std::function<void()> job) {
#if defined(__SANITIZE_THREAD__)
  // Debian's libtbb is not built with ThreadSanitizer, which therefore cannot
  // see the hand-off through TBB's queues and reports the job's captured
  // state as racy. Under TSan, CPU jobs go to the blocking pool instead
  // (whose hand-off it can see); everything else about offload() is the same.
  run_on_blocking_pool(std::move(job));
#else
  static auto* arena = new tbb::task_arena();  // never destroyed: see above
  offload_job_started();
  arena->enqueue([job = std::move(job)] {
    job();
    detach_plain_thread();
    offload_job_finished();
  });
#endif
}

namespace {

class BlockingPool {
 public:
  BlockingPool() {
    if (const char* env = std::getenv("GREEN_BLOCKING_THREADS")) {
      const long n = std::strtol(env, nullptr, 10);
      if (n > 0) max_threads_ = static_cast<unsigned>(n);
    }
  }

  void submit(std::function<void()> job) {
    std::lock_guard g(mutex_);
    jobs_.push_back(std::move(job));
    if (idle_ > jobs_.size() - 1) {
      ready_.notify_one();
    } else if (threads_ < max_threads_) {
      ++threads_;
      std::thread([this] { loop(); }).detach();  // the pool outlives it: see above
    }
    // Otherwise the job waits for a thread to come free.
  }

 private:
  void loop() {
    std::unique_lock lk(mutex_);
    for (;;) {
      if (jobs_.empty()) {
        ++idle_;
        const bool got = ready_.wait_for(lk, kIdleExit, [this] { return !jobs_.empty(); });
        --idle_;
        if (!got) {
          --threads_;
          return;
        }
      }
      std::function<void()> job = std::move(jobs_.front());
      jobs_.pop_front();
      lk.unlock();
      job();  // never throws: the Completion catches
      job = nullptr;
      // Counted while it ran; the thread is no waker once it is done.
      detach_plain_thread();
      offload_job_finished();
      lk.lock();
    }
  }

  static constexpr std::chrono::seconds kIdleExit{10};
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  unsigned threads_ = 0;
  unsigned idle_ = 0;
  unsigned max_threads_ = 64;
};

}  // namespace

void run_on_blocking_pool(std::function<void()> job) {
  static auto* pool = new BlockingPool();  // never destroyed: see above
  offload_job_started();
  pool->submit(std::move(job));
}

}  // namespace green::detail
