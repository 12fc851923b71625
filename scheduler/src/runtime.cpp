// runtime.cpp — green::Runtime, the public face of RuntimeCore.
#include "green/runtime.hpp"

#include <csignal>
#include <thread>
#include <utility>

#include "blocking.hpp"
#include "fiber_internal.hpp"
#include "runtime_core.hpp"

namespace green {

Runtime::Runtime() : Runtime(RuntimeOptions{}) {}

Runtime::Runtime(const RuntimeOptions& options) {
  detail::RuntimeConfig cfg;
  cfg.workers = options.workers ? options.workers : std::max(1u, std::thread::hardware_concurrency());
  if (cfg.workers > 1024) throw Error("green::Runtime: at most 1024 workers");
  if (options.stack_size < 16 * 1024) throw Error("green::Runtime: stack_size below 16 KiB");
  if (options.stack_size > (std::size_t{1} << 30)) throw Error("green::Runtime: stack_size above 1 GiB");
  cfg.stack_size = options.stack_size;
  if (options.trim_interval < std::chrono::milliseconds::zero())
    throw Error("green::Runtime: negative trim_interval");
  cfg.trim_interval = options.trim_interval;
  if (options.dump_on_signal < 0 || options.dump_on_signal >= NSIG || options.dump_on_signal == SIGKILL ||
      options.dump_on_signal == SIGSTOP)
    throw Error("green::Runtime: dump_on_signal is not a signal that can be caught");
  cfg.dump_on_signal = options.dump_on_signal;
  cfg.green_thread_stats = options.green_thread_stats;
  if (options.max_blocking_time < std::chrono::milliseconds::zero())
    throw Error("green::Runtime: negative max_blocking_time");
  // The option wins; GREEN_MAX_BLOCKING_MS only turns on what it leaves off.
  cfg.max_blocking_time = options.max_blocking_time > std::chrono::milliseconds::zero()
                              ? options.max_blocking_time
                              : detail::max_blocking_time_from_environment();
  cfg.on_blocking = options.on_blocking;
  core_ = std::make_unique<detail::RuntimeCore>(cfg);
}

Runtime::~Runtime() = default;  // ~RuntimeCore shuts down

void Runtime::shutdown() { core_->shutdown(); }

unsigned Runtime::workers() const noexcept { return core_->configured_workers(); }

std::size_t Runtime::live_green_threads() const noexcept { return core_->live(); }

std::uint64_t Runtime::switches_on(unsigned worker) const {
  if (worker >= core_->worker_count()) throw Error("green::Runtime::switches_on: no such worker");
  return core_->worker(worker).green_threads_run();
}

std::size_t Runtime::stacks_in_use() const noexcept { return core_->stacks().in_use(); }

std::size_t Runtime::stacks_cached() const noexcept { return core_->stacks().cached(); }

std::size_t Runtime::green_threads_with_stack() const noexcept {
  std::int64_t n = 0;
  for (unsigned i = 0; i < core_->worker_count(); ++i) n += core_->worker(i).stacks_bound_delta();
  return n > 0 ? static_cast<std::size_t>(n) : 0;
}

std::string Runtime::dump() const { return core_->dump(); }

RuntimeStats Runtime::stats() const { return core_->stats(); }

std::chrono::milliseconds Runtime::max_blocking_time() const noexcept { return core_->max_blocking_time(); }

Runtime::KeepAlive Runtime::keep_alive() const { return KeepAlive(core_.get()); }

Runtime::KeepAlive::KeepAlive(detail::RuntimeCore* core) noexcept : core_(core) { core_->monitor().hold(); }

Runtime::KeepAlive::~KeepAlive() { reset(); }

void Runtime::KeepAlive::reset() noexcept {
  if (core_) std::exchange(core_, nullptr)->monitor().unhold();
}

Runtime::KeepAlive& Runtime::KeepAlive::operator=(KeepAlive&& other) noexcept {
  if (this != &other) {
    reset();
    core_ = std::exchange(other.core_, nullptr);
  }
  return *this;
}

detail::RuntimeCore* Runtime::core() const {
  if (core_->stopping()) throw Error("green::Runtime: spawn after shutdown");
  return core_.get();
}

}  // namespace green
