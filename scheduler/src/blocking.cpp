// blocking.cpp — see blocking.hpp.
#include "blocking.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string>

#include "runtime_core.hpp"
#include "stack_capture.hpp"
#include "unwind.hpp"
#include "worker.hpp"

namespace green {

std::string BlockingReport::to_string() const {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(stalled_for).count();
  std::string s = "green: worker " + std::to_string(worker) + " has run green thread " +
                  std::to_string(green_thread_id) + " (" + (name.empty() ? "unnamed" : name) + ") for " +
                  std::to_string(ms) + " ms without a switch (max_blocking_time " +
                  std::to_string(threshold.count()) + " ms)";
  if (frames.empty()) {
    s += "; no stack: " + (stack_missing.empty() ? std::string("none was taken") : stack_missing) + "\n";
    return s;
  }
  s += "; its stack:\n";
  for (std::size_t i = 0; i < frames.size(); ++i) s += "    #" + std::to_string(i) + " " + frames[i] + "\n";
  return s;
}

}  // namespace green

namespace green::detail {

namespace {

constexpr const char* kEnvName = "GREEN_MAX_BLOCKING_MS";

void warn_once(const std::string& value) {
  static std::mutex mu;
  static std::set<std::string>* warned = new std::set<std::string>();  // leaked: any runtime, any time
  std::lock_guard g(mu);
  if (!warned->insert(value).second) return;
  const std::string line = std::string("green: ignoring ") + kEnvName + "=\"" + value +
                           "\": not a whole number of milliseconds from 1 to " +
                           std::to_string(kMaxEnvBlockingMs) + "; the blocking detector stays off\n";
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace

std::chrono::milliseconds max_blocking_time_from_environment() {
  const char* env = std::getenv(kEnvName);
  if (!env || !*env) return std::chrono::milliseconds::zero();
  const std::string value = env;
  long long ms = 0;
  bool ok = value.size() <= 7;  // "3600000": no overflow below
  for (char c : value) {
    if (!ok) break;
    if (c < '0' || c > '9') ok = false;
    else ms = ms * 10 + (c - '0');
  }
  if (!ok || ms < 1 || ms > kMaxEnvBlockingMs) {
    warn_once(value);
    return std::chrono::milliseconds::zero();
  }
  return std::chrono::milliseconds(ms);
}

BlockingDetector::BlockingDetector(RuntimeCore& rt, std::chrono::milliseconds threshold, Callback on_report)
    : rt_(rt),
      threshold_(threshold),
      period_(std::max<Clock::duration>(threshold / 4, std::chrono::milliseconds(1))),
      on_report_(std::move(on_report)),
      seen_(rt.worker_count()) {}

void BlockingDetector::sample() {
  const Clock::time_point now = Clock::now();
  for (unsigned i = 0; i < rt_.worker_count() && i < seen_.size(); ++i) {
    const Worker& w = rt_.worker(i);
    Fiber* const running = w.current();
    const std::uint64_t runs = w.scheduling_ticks();
    Seen& s = seen_[i];
    if (!running || running != s.fiber || runs != s.runs) {
      s = Seen{runs, running, now, false, false};
      continue;
    }
    if (!s.nudged) {
      // Stuck for a look already: make sure an idle worker polls its hub
      // (see blocking.hpp, "THE HUB").
      s.nudged = true;
      if (rt_.worker(i).hub().has_watchers()) rt_.wake_one_idle();
    }
    if (s.reported || now - s.since < threshold_) continue;
    s.reported = true;  // once per stall, whatever report() finds
    report(i, s);
  }
  samples_.fetch_add(1, std::memory_order_release);
}

void BlockingDetector::report(unsigned index, const Seen& seen) {
  Worker& w = rt_.worker(index);
  Fiber* f = nullptr;
  rt_.for_each_live([&](Fiber* live) {
    if (live == seen.fiber) {
      live->add_ref();
      f = live;
    }
  });
  if (!f) return;  // it ended meanwhile: so did the stall
  struct Release {
    Fiber* f;
    ~Release() { f->release(); }
  } release{f};
  const auto unchanged = [&] { return w.current() == f && w.scheduling_ticks() == seen.runs; };
  if (!unchanged()) return;  // switched since the look: the stall is over

  BlockingReport r;
  r.worker = index;
  r.green_thread_id = f->id;
  r.name = f->name;  // set at spawn, never changed
  r.threshold = threshold_;
  CapturedStack stack = capture_stack(w.native_thread(), kCaptureBound);
  r.stalled_for = Clock::now() - seen.since;
  if (!unchanged()) {
    stack.ips.clear();
    if (stack.failure.empty()) stack.failure = "it switched out while its stack was being taken";
  }
  std::vector<std::string> names;
  names.reserve(stack.ips.size());
  for (std::size_t i = 0; i < stack.ips.size(); ++i)
    names.push_back(describe_code_address(stack.ips[i], i == 0 && stack.first_exact));
  if (!stack.past_signal_frame) {
    // Delivered without a kernel signal frame (ThreadSanitizer, from an
    // interceptor): drop the handler's own frames, and the sanitizer's
    // runtime between the handler and the interceptor.
    std::size_t skip = 0;
    for (std::size_t i = 0; i < names.size(); ++i)
      if (names[i].rfind(kStackCaptureHandlerName, 0) == 0) skip = i + 1;
    while (skip < names.size() && names[skip].rfind("__tsan::", 0) == 0) ++skip;
    names.erase(names.begin(), names.begin() + static_cast<std::ptrdiff_t>(skip));
  }
  if (names.size() > kMaxFrames) names.resize(kMaxFrames);
  r.frames = std::move(names);
  if (r.frames.empty()) r.stack_missing = stack.failure.empty() ? "the walk found no frames" : stack.failure;
  deliver(r);
}

void BlockingDetector::deliver(const BlockingReport& r) noexcept {
  reports_.fetch_add(1, std::memory_order_release);
  if (on_report_) {
    try {
      on_report_(r);
    } catch (...) {
      std::fputs("green: the on_blocking callback threw; the exception was dropped\n", stderr);
    }
    return;
  }
  try {
    const std::string text = r.to_string();
    std::fwrite(text.data(), 1, text.size(), stderr);
    std::fflush(stderr);
  } catch (...) {
    std::fputs("green: a blocking report could not be formatted (out of memory)\n", stderr);
  }
}

}  // namespace green::detail
