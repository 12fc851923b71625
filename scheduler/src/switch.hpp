// switch.hpp — what every context switch must carry besides registers.
//
//   * ASan: __sanitizer_start_switch_fiber / __sanitizer_finish_switch_fiber
//     around each switch, so it knows which stack is live (and frees the fake
//     stack of a green thread that will never run again).
//   * TSan: one TSan fiber per stack, switched to before each jump. The
//     switch synchronises (flag 0): green threads hand data to each other
//     through the runtime's queues, and the runtime's own atomics carry the
//     real happens-before edges between workers.
//   * The C++ runtime's per-thread exception state (__cxa_get_globals: the
//     caught-exceptions stack and uncaught count). A green thread that blocks
//     inside a catch block and resumes on another worker must still be able to
//     `throw;`, so the state travels with the green thread.
#pragma once

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#define GREEN_ASAN 1
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(__SANITIZE_THREAD__)
#define GREEN_TSAN 1
#include <sanitizer/tsan_interface.h>
#endif

namespace green::detail {

// libstdc++'s __cxa_eh_globals (unwind-cxx.h); stable ABI since GCC 3.
struct EhGlobals {
  void* caught_exceptions;
  unsigned int uncaught_exceptions;
};

// Not inlined: __cxa_get_globals is declared __attribute__((const)), so the
// compiler may reuse its result across a switch, on another thread.
EhGlobals* eh_globals() noexcept;

}  // namespace green::detail
