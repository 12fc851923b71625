// unwind.cpp — see unwind.hpp.
//
// Linked against libunwind-x86_64 (the generic API), not libunwind: the
// latter also defines the _Unwind_* functions that C++ exceptions use, and
// linked into the program it took them over from libgcc_s (every throw went
// through it, and its memory check left a pipe open: a kill "leaked" two
// fds). libunwind-x86_64 needs libunwind itself, which the dynamic linker
// loads after the program's own libraries, libgcc_s among them, so those
// keep the exceptions. The generic API unwinds this process as well
// (unw_local_addr_space); unw_getcontext is not in it, getcontext(3) is
// the same on x86-64 (unw_context_t is a ucontext_t).
#include "unwind.hpp"

#include <cxxabi.h>
#include <libunwind.h>
#include <ucontext.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace green::detail {

namespace {

// Where Boost.Context 1.81's jump_fcontext (x86-64 System V) leaves the
// callee-saved registers, relative to the context pointer it returns; the
// return address follows them, and the caller's stack pointer is just past.
constexpr std::size_t kR12 = 0x10, kR13 = 0x18, kR14 = 0x20, kR15 = 0x28, kRbx = 0x30, kRbp = 0x38,
                      kRip = 0x40, kCallerRsp = 0x48;

std::uint64_t word_at(void* ctx, std::size_t offset) {
  std::uint64_t v;
  std::memcpy(&v, static_cast<char*>(ctx) + offset, sizeof v);
  return v;
}

std::string describe_frame(unw_cursor_t& cursor, unw_word_t ip) {
  char name[512];
  unw_word_t offset = 0;
  char line[640];
  if (unw_get_proc_name(&cursor, name, sizeof name, &offset) == 0) {
    int status = -1;
    char* demangled = abi::__cxa_demangle(name, nullptr, nullptr, &status);
    std::snprintf(line, sizeof line, "%s+0x%llx", status == 0 && demangled ? demangled : name,
                  static_cast<unsigned long long>(offset));
    std::free(demangled);
  } else {
    std::snprintf(line, sizeof line, "0x%llx", static_cast<unsigned long long>(ip));
  }
  return line;
}

}  // namespace

std::string describe_code_address(std::uintptr_t ip, bool exact) {
#if defined(__x86_64__)
  // A cursor at `ip` (the other registers are ours: nothing is stepped),
  // only to look the address up. unw_init_local looks up ip - 1 for the
  // name, as for a return address; UNW_INIT_SIGNAL_FRAME, ip itself.
  unw_context_t uc;
  if (getcontext(reinterpret_cast<ucontext_t*>(&uc)) == 0) {
    reinterpret_cast<ucontext_t*>(&uc)->uc_mcontext.gregs[REG_RIP] = static_cast<greg_t>(ip);
    unw_cursor_t cursor;
    if (unw_init_local2(&cursor, &uc, exact ? UNW_INIT_SIGNAL_FRAME : 0) == 0) return describe_frame(cursor, ip);
  }
#else
  (void)exact;
#endif
  char line[32];
  std::snprintf(line, sizeof line, "0x%llx", static_cast<unsigned long long>(ip));
  return line;
}

void prepare_unwinder() noexcept {
#if defined(__x86_64__)
  static std::once_flag once;
  std::call_once(once, [] {
    unw_context_t uc;
    unw_cursor_t cursor;
    if (getcontext(reinterpret_cast<ucontext_t*>(&uc)) == 0) (void)unw_init_local(&cursor, &uc);
  });
#endif
}

std::vector<std::uintptr_t> unwind_switched_out(void* fcontext, std::size_t max_frames) {
  std::vector<std::uintptr_t> frames;
#if defined(__x86_64__)
  if (!fcontext) return frames;
  unw_context_t uc;
  if (getcontext(reinterpret_cast<ucontext_t*>(&uc)) != 0) return frames;
  // unw_context_t is a ucontext_t on x86-64: start from our own registers,
  // then put the switched-out green thread's in.
  auto& regs = reinterpret_cast<ucontext_t*>(&uc)->uc_mcontext.gregs;
  regs[REG_R12] = static_cast<greg_t>(word_at(fcontext, kR12));
  regs[REG_R13] = static_cast<greg_t>(word_at(fcontext, kR13));
  regs[REG_R14] = static_cast<greg_t>(word_at(fcontext, kR14));
  regs[REG_R15] = static_cast<greg_t>(word_at(fcontext, kR15));
  regs[REG_RBX] = static_cast<greg_t>(word_at(fcontext, kRbx));
  regs[REG_RBP] = static_cast<greg_t>(word_at(fcontext, kRbp));
  regs[REG_RIP] = static_cast<greg_t>(word_at(fcontext, kRip));
  regs[REG_RSP] = static_cast<greg_t>(reinterpret_cast<std::uintptr_t>(fcontext) + kCallerRsp);
  unw_cursor_t cursor;
  if (unw_init_local(&cursor, &uc) != 0) return frames;
  do {
    unw_word_t ip = 0;
    if (unw_get_reg(&cursor, UNW_REG_IP, &ip) != 0 || ip == 0) break;
    frames.push_back(ip);
  } while (frames.size() < max_frames && unw_step(&cursor) > 0);
#else
  (void)fcontext;
  (void)max_frames;
#endif
  return frames;
}

}  // namespace green::detail
