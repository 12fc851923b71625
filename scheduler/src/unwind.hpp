// unwind.hpp — the call stack of a switched-out green thread, walked with
// libunwind from the registers its last switch saved (Boost.Context's
// fcontext), for the deadlock report.
//
// Safe only while that green thread cannot resume: the walk reads its
// stack, which would change under it. The deadlock report walks stacks
// after the monitor has found every green thread stuck with no waker left
// (monitor.hpp); Runtime::dump() never does, since the green threads it
// shows keep running.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace green::detail {

// One line per frame, innermost first: "function+0xoffset" (demangled), or
// the address alone where there is no symbol. At most `max_frames`.
std::vector<std::string> unwind_switched_out(void* fcontext, std::size_t max_frames);

// The same line for one code address of this process (a frame a stack
// capture recorded, stack_capture.hpp). `exact`: `ip` is an interrupted
// instruction itself; otherwise a return address, whose call is the
// instruction before it (what the name and offset are looked up for).
std::string describe_code_address(std::uintptr_t ip, bool exact);

// libunwind (1.6) opens a pipe on its first use in a process and keeps it
// (it checks addresses by writing them to it). Every runtime calls this at
// construction, so that this happens then, once, and not in the middle of
// a program's run at its first dump() (which names spawn sites) or blocking
// report: the fds a program counts do not change under it.
void prepare_unwinder() noexcept;

}  // namespace green::detail
