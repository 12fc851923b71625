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
//   recv recvfrom recvmsg with MSG_WAITALL on a stream  wait until the whole
//       socket  length came (several reads, waiting between them), or EOF,
//       an error or an interrupt: then the count so far if any came, else
//       -1/errno. With MSG_PEEK, or on a datagram socket, one read as
//       without it. recvmsg's name and control data are those of the first
//       read (later reads have no room for control data; their flags, such
//       as MSG_CTRUNC, are added to msg_flags)
//   write writev send sendto sendmsg                   wait until writable;
//       a blocking write writes everything (after a short write it waits and
//       writes the rest), as a blocking socket or pipe does; an error or an
//       interrupt after some bytes went out returns the count written
//   connect      EINPROGRESS -> wait until writable -> SO_ERROR (0 or -1/errno)
//   poll ppoll   nothing ready now -> the green thread waits for any of the
//                fds (a private epoll instance the hub watches) or the timeout;
//                then the answer of poll(2) with a zero timeout. ppoll's
//                timeout is a timespec, left unchanged (as glibc leaves it).
//   select pselect   the same wait, for the fds of the sets (read: POLLIN,
//                write: POLLOUT, except: POLLPRI); the sets come back holding
//                the ready fds, the return value counts them, 0 and empty
//                sets at the timeout. select leaves the time not slept in
//                *timeout, as Linux's does; pselect leaves it unchanged.
//                Errors: EBADF (an fd of a set is not open; the sets are left
//                as they were), EINVAL (nfds < 0, nfds > FD_SETSIZE -- the
//                kernel would read past glibc's fd_set, and a hand-made
//                larger set is refused on a green thread --, a negative
//                timeout). select(0, 0, 0, 0, &tv) is a green sleep.
//   epoll_wait epoll_pwait epoll_pwait2   on the user's own epoll fd: the
//                green thread waits until that fd is readable (events are
//                pending; green's hub watches it), then takes them with a
//                zero timeout. Bad arguments fail as libc's (EINVAL for
//                maxevents <= 0 or an fd that is not an epoll instance,
//                EBADF). Several green threads may wait on one epoll fd.
//   A signal mask (ppoll, pselect, epoll_pwait, epoll_pwait2): the kernel
//                installs it for the wait atomically, which a parked green
//                thread cannot (the mask belongs to the worker, shared by all
//                the green threads it runs). A null mask, or one equal to the
//                calling thread's own, changes nothing, and the green thread
//                waits as above. Any other mask is libc's call: it holds the
//                worker for the whole wait, and the signals it unblocks
//                interrupt it as they would on a plain thread. To wait for
//                signals on a green thread, use a signalfd (or green's signal
//                handling) among the fds instead.
//   Timeouts of 0 are libc's call (they cannot block).
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
//   close        every green thread waiting on the fd wakes (and so does
//                one waiting on dup2's target): a read, write, accept or
//                connect fails with EBADF; poll and ppoll return with
//                revents POLLNVAL for it (poll(2)'s answer for an fd not
//                open: Linux's own poll would sleep on); select and pselect
//                fail with EBADF; epoll_wait whose epoll fd was closed fails
//                with EBADF (an fd closed inside a user's epoll set leaves
//                the set silently, as in Linux). A reused fd number is never
//                confused with the closed one (io's generation). A plain
//                thread blocked in a hooked call is not woken (it is in
//                poll(2), which a close does not end).
//   getaddrinfo getnameinfo gethostbyname gethostbyname_r   on a green
//                thread, the whole lookup runs on green's blocking pool (the
//                threads of green::blocking()) and the green thread waits
//                parked; its worker runs others meanwhile. Results are what
//                libc gives. gethostbyname's result lives, as libc's static
//                one, until the next gethostbyname call -- on the calling OS
//                thread (the worker): it is copied there from the pool
//                thread's own buffer, so a lookup on another thread never
//                overwrites it; read it before your green thread's next
//                blocking call if other green threads on its worker may
//                look names up. gethostbyname_r fills the caller's buffer
//                (ERANGE if too small). A lookup cannot be interrupted: a
//                kill or Timeout ends the wait at once -- getaddrinfo and
//                getnameinfo return EAI_SYSTEM with errno EINTR (then
//                ETIMEDOUT/ECANCELED, see below), gethostbyname returns
//                null with h_errno NETDB_INTERNAL and errno EINTR,
//                gethostbyname_r returns EINTR -- and the lookup runs on in
//                the pool, which frees its results when it ends. On a plain
//                thread all four are libc's calls.
//   exec (execve execv execvp execvpe execl execlp execle fexecve)
//                see FORK AND EXEC below
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
// sleep returns the time left; a write, or a MSG_WAITALL recv, that already
// moved some bytes returns their count; the name lookups report it as said
// above); nothing is thrown there. The same holds for poll, ppoll, select,
// pselect and epoll_wait (-1/EINTR). The interrupt stays pending, and
// green's next blocking call on that green thread (green::sleep, yield(), a
// Queue, a green Socket, join, ...) throws it:
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
// ASan+UBSan), and tests/monkey/test_sanitizers.cpp shows each sanitizer
// still checking a hooked call that waited: ASan reports a read that
// overflows its buffer, TSan a race on a buffer that only its read
// interceptor saw written.
//
// The sanitizers' runtimes call close() themselves (TSan's symbolizer, while
// it writes a report) and reach the hook too. For an fd green never
// registered with a hub (every file those runtimes open, unless its number
// was a green socket's before) the hook does nothing but the libc call: a
// close that ran green's instrumented code inside TSan's report would be
// reported again there and deadlock.
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
//   - pread pwrite preadv pwritev: libc's calls, on purpose. The kernel
//     takes them only on seekable fds (files, block devices), which are
//     never "not ready"; on a pipe or socket, hooked or not, they fail with
//     ESPIPE, as libc's do (never EAGAIN).
//   - gethostbyname2, gethostbyaddr, getservbyname and the other netdb
//     calls: libc's (run them in green::blocking()).
//   - posix_spawn, system(), popen(): glibc execs inside itself, out of the
//     hooks' reach (see FORK AND EXEC).
//
// FORK AND EXEC. fork() is libc's: the child shares the parent's open file
// descriptions, O_NONBLOCK included, and the hooks' records. A program
// exec'd with a hooked fd (a hooked pipe dup2'ed onto its stdin) must not
// see the O_NONBLOCK the hooks set underneath: it would get EAGAIN from its
// first read. So the exec hooks, before calling libc's, make blocking every
// fd that the new program inherits (no FD_CLOEXEC) and whose user view is
// blocking, in the process that execs (the child):
//   - a pipe or FIFO is reopened through /proc/self/fd/N: the child gets a
//     new open file description of the same pipe, blocking, in place of the
//     shared one, and the parent's description stays non-blocking. The
//     parent sees no change.
//   - a socket (or a pipe when /proc is not mounted) cannot be reopened: its
//     shared description loses O_NONBLOCK. A parent still holding that
//     socket then has it blocking underneath, unknown to its hooks: a green
//     thread's blocking call on it there holds its worker until it
//     completes. Close the parent's copy of a socket handed to a child (the
//     usual pattern), or create it with SOCK_CLOEXEC if the child should
//     not get it.
// If the exec fails, those fds are made non-blocking again (the reopened
// pipes' new descriptions included): the process goes on as before. The
// fds a user made non-blocking stay so, as the user asked. Limits:
// posix_spawn and posix_spawnp (and system(), popen(), which use them) run
// the exec inside glibc, where no hook sees it: a child started that way
// inherits the O_NONBLOCK of hooked pipes and sockets; use fork() and an
// exec call for children that read or write hooked fds. A vfork()ed child may
// call the exec hooks (they write no memory the parent shares).
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
