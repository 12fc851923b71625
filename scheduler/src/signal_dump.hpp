// signal_dump.hpp — RuntimeOptions::dump_on_signal: Runtime::dump() on
// stderr when a signal arrives, printed by a plain thread of its own.
//
// The signal's handler only writes the signal's number to a pipe (async-
// signal-safe); a reader thread, created with the first registration and
// kept for the life of the process, blocks in read(2) and prints the dump
// of every runtime registered for that signal. So a dump comes even while
// every worker is stuck in a green thread that never yields, which is when
// it is needed, and nothing green runs to produce it.
#pragma once

namespace green::detail {

class RuntimeCore;

// Installs the handler for `signo` (once per signal, replacing any other)
// and adds `rt` to the runtimes it dumps. Throws Error on a bad signal.
void dump_on_signal(RuntimeCore* rt, int signo);
// Removes `rt`; waits for a dump of it in progress. Idempotent.
void stop_dump_on_signal(RuntimeCore* rt) noexcept;

}  // namespace green::detail
