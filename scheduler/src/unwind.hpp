// unwind.hpp — the call stack of a switched-out green thread, walked with
// libunwind from the registers its last switch saved (Boost.Context's
// fcontext), for dump() and the deadlock report.
//
// Safe only while that green thread cannot resume: the walk reads its
// stack, which would change under it. dump.cpp holds the green thread
// still for the walk (STACKS there); the deadlock report's green threads
// are stuck anyway.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace green::detail {

// The return addresses of its frames, innermost first, at most
// `max_frames`. Only reads memory; naming them (describe_code_address,
// exact = false) is slower and can wait until the green thread may run.
std::vector<std::uintptr_t> unwind_switched_out(void* fcontext, std::size_t max_frames);

// One line for one code address of this process (a frame of a walk above
// or of a stack capture, stack_capture.hpp): "function+0xoffset"
// (demangled), or the address alone where there is no symbol. `exact`: `ip` is an interrupted
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
