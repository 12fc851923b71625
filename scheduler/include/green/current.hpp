// green/current.hpp — the calling green thread: sleep, yield, identity.
//
// sleep(), sleep_until() and yield() are blocking calls: they honour kill and
// green::Timeout (they throw GreenletExit / TimeoutError when interrupted).
// Called from a plain OS thread they fall back to std::this_thread's.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace green {

using Clock = std::chrono::steady_clock;

// Suspends the calling green thread for at least `d` (d <= 0: yield()).
void sleep(Clock::duration d);
// Suspends the calling green thread until `t`.
void sleep_until(Clock::time_point t);
// Lets every other runnable green thread on this worker run once, then
// continues (gevent's sleep(0)).
void yield();

// True on a green thread (false on plain threads and in a worker's scheduler).
bool in_green_thread() noexcept;
// The calling green thread's id (unique within the process), 0 on a plain thread.
std::uint64_t current_id() noexcept;
// The calling green thread's name ("" if unnamed or on a plain thread).
std::string current_name();
// Index of the worker running the caller, or -1 on a plain thread. A green
// thread may run on another worker after any blocking call unless pinned.
int this_worker() noexcept;

}  // namespace green
