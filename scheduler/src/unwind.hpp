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

#include <string>
#include <vector>

namespace green::detail {

// One line per frame, innermost first: "function+0xoffset" (demangled), or
// the address alone where there is no symbol. At most `max_frames`.
std::vector<std::string> unwind_switched_out(void* fcontext, std::size_t max_frames);

// The function that holds code address `pc`, as "function+0xoffset"
// (demangled), or the address alone. Remembered per address for the life of
// the process: a dump names the same few spawn sites over and over, and
// each fresh lookup reads the binary's symbol table. Safe at any time (it
// reads no stack).
std::string describe_code_address(const void* pc);

}  // namespace green::detail
