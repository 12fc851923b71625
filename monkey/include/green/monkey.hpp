// green/monkey.hpp — existing blocking code, unmodified, suspends only its
// green thread: the C++ form of gevent.monkey.patch_all().
//
//   target_link_libraries(app PRIVATE green::green green::monkey)
//
// Linking green::monkey is the whole opt-in. It is a shared library,
// libgreen_monkey.so, that defines the C library's blocking calls again;
// the dynamic linker binds every call in the process (yours, libpq's,
// libstdc++'s) to them instead of libc's, and each reaches libc's own
// through dlsym(RTLD_NEXT), resolved once. Beside it, the program gets a
// small piece of green (the bridge, linked whole-archive) that hands the
// hooks green's waits at start-up: green's libraries stay in the program,
// one copy, and the hook library holds none of them.
//
// WHAT A HOOKED CALL DOES
//
// On a green thread, a call on a socket or pipe whose user view is blocking
// (see below) tries the real call, which is non-blocking underneath; on
// EAGAIN it parks the green thread until the fd is ready (io's fd waits:
// the hub's epoll, the per-fd generation), then tries again. The worker runs
// other green threads meanwhile. The hooked calls:
//
//   read readv recv recvfrom recvmsg accept accept4    wait until readable
//   write writev send sendto sendmsg                   wait until writable;
//       a blocking write writes everything (after a short write it waits and
//       writes the rest), as a blocking socket or pipe does; an error or an
//       interrupt after some bytes went out returns the count written
//   connect      EINPROGRESS -> wait until writable -> SO_ERROR (0 or -1/errno)
//   poll         nothing ready now -> the green thread waits for any of the
//                fds (a private epoll instance the hub watches) or the timeout
//   sleep usleep nanosleep clock_nanosleep (CLOCK_MONOTONIC, CLOCK_REALTIME)
//                green::sleep: std::this_thread::sleep_for suspends only the
//                green thread; on EINTR the remaining time as POSIX gives it
//   socket socketpair pipe pipe2 accept accept4        the new fds are made
//                non-blocking underneath; the user's view is what was asked
//   fcntl(F_GETFL)  reports the user's view of O_NONBLOCK
//   fcntl(F_SETFL), ioctl(FIONBIO)  set the user's view (underneath the fd
//                stays non-blocking)
//   dup dup2 dup3 fcntl(F_DUPFD)  the copy shares the view (it shares the
//                open file description)
//   close        a green thread waiting on the fd wakes with EBADF (and so
//                does one waiting on dup2's target); a reused fd number is
//                never confused with the closed one (io's generation)
//
// Errors are the ones POSIX gives: SO_RCVTIMEO / SO_SNDTIMEO are honoured as
// timeouts (the call fails with EAGAIN, connect with EINPROGRESS);
// MSG_DONTWAIT is the libc call; a user who set O_NONBLOCK gets EAGAIN.
//
// Everywhere else a hooked call is the libc call, at the cost of a load or
// two: on a plain thread, on regular files (disk reads still block their
// worker: run them in green::blocking()), on fds the user made
// non-blocking, and in green's runtime itself (see below). The one
// exception: a socket or pipe that the hooks made non-blocking underneath
// still blocks a plain thread that uses it with a blocking view (the hook
// waits in poll(2) and tries again; a signal restarts the wait, as
// SA_RESTART would).
//
// Which fds are emulated: those created through the hooks while green is
// present, and sockets (not pipes) that a green thread first blocks on,
// except 0, 1 and 2: a pipe or terminal there is usually shared with other
// processes (a shell, a test runner), which would see O_NONBLOCK too. An fd
// closed without the close() symbol (glibc's own fclose and pclose, a raw
// syscall) is noticed when its number comes back: each record keeps the
// fd's inode, checked before a call waits.
//
// KILL AND TIMEOUT. No exception ever passes through a C library's frames.
// A kill, or a green::Timeout that expires, while a hooked call waits makes
// that call fail with -1 and errno EINTR (clock_nanosleep returns EINTR; a
// sleep returns the time left); nothing is thrown there. The interrupt
// stays pending, and green's next blocking call on that green thread
// (green::sleep, yield(), a Queue, a green Socket, join, ...) throws it:
// GreenletExit (or the kill's exception), or TimeoutError. A Timeout whose
// scope ends before any such call throws nothing (t.expired() is true).
// A library that retries after EINTR (libpq does) is told again with a
// different errno, so that it gives up instead of spinning: ETIMEDOUT for a
// Timeout, ECANCELED for a kill; a sleep retried so returns at once. A call
// made while an interrupt is pending does not wait: it fails the same way.
// With several interrupts the first reported is EINTR for each.
//
// ERRNO AND THREAD-LOCALS. A green thread waiting in a hook resumes on the
// worker (OS thread) it parked on: C code may keep the address of its
// thread's errno, or of its own thread-locals, across the call. It may move
// to another worker at green's own blocking calls, as always; so a library
// callback that blocks in green's API (a Queue, a green Socket) may resume
// under the library's frames on another thread: keep such callbacks to
// non-blocking work, or have the library run in green::blocking().
//
// GREEN'S OWN CALLS. green's runtime makes its sockets, eventfds and
// self-pipes non-blocking when it creates them, so the hooks pass its calls
// straight to libc (its sleeps and waits do not go through libc at all).
// Its one call the hooks would change is close(2), which green makes under
// an fd's lock; green's close_fd calls libc's close directly (the bridge
// points io_detail::set_raw_close at it).
//
// WITH SANITIZERS. ThreadSanitizer and AddressSanitizer intercept the same
// names. Their runtime is always first in the search order, and an
// interceptor calls "the next definition" (dlsym(RTLD_NEXT) from the
// runtime): ours. So a call goes program -> interceptor -> hook -> libc; the
// sanitizer sees every call the program makes, and the hook parks inside the
// interceptor. ASan's interceptors only check the buffers. TSan runs a
// blocking call's interceptor (read, recv, accept, poll, the sleeps) with
// the calling fiber's interceptors and atomics ignored, expecting only a
// system call inside; green's park protocol is atomics, so the hook waits on
// a TSan fiber of its own, made for the wait and switched to and from like a
// green thread's (run_wait_under_c_frames in green/detail/park.hpp).
// The hooks' own calls to libc go through their RTLD_NEXT pointers and are
// not seen a second time. The tests run in all three builds (release, TSan,
// ASan+UBSan).
//
// NOT HOOKED (they still block the worker, or bypass green):
//   - pthread mutexes and condition variables: a library that waits on its
//     own pthread primitive holds the worker until it is signalled. Short
//     critical sections are harmless; a library that waits for another of
//     its own threads (a connection pool's condvar) should run in
//     green::blocking().
//   - io_uring, raw syscall(2), and the vDSO (clock_gettime): they never
//     reach libc's symbols.
//   - disk I/O, open(), stat(): regular files are never "not ready".
//   - in this first cut: select, pselect, ppoll, epoll_wait, pread, pwrite,
//     getaddrinfo and gethostbyname (run name lookups in green::blocking()),
//     recv's MSG_WAITALL (one read is returned), and fork(): fds made
//     non-blocking underneath stay so in a child, whose programs see
//     O_NONBLOCK on such inherited pipes and sockets.
//
// FULLY STATIC PROGRAMS. Interposition is the dynamic linker's work: a
// program linked with -static has none, binds every call to libc.a's
// definitions at link time, and has no "next definition" for dlsym to
// find. green::monkey is therefore shared-only; such a program cannot link
// it, and code that asks active() in a build without working interposition
// (the hooks' library loaded after libc, e.g. dlopen()ed) gets false.
#pragma once

namespace green::monkey {

// True when the process's C library calls reach the hooks: one harmless
// read(-1, ...) through the process's own `read` symbol is made the first
// time, and the hook notes it. False when the hook library is not first in
// the search order (loaded with dlopen(), or after libc).
bool active() noexcept;

}  // namespace green::monkey
