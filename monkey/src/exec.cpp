// exec.cpp — the exec family: an exec'd program gets the fds it inherits
// in the mode their user view says (green/monkey.hpp, FORK AND EXEC).
//
// The hooks make sockets and pipes non-blocking underneath; a program exec'd
// with such an fd (a hooked pipe dup2'ed onto its stdin) knows nothing of
// the hooks and would get EAGAIN from its first read. So before the exec,
// every fd that survives it (no FD_CLOEXEC) and whose user view is blocking
// is made blocking:
//   - a pipe or FIFO is reopened through /proc/self/fd: a new open file
//     description of the same pipe, made blocking and dup3'ed over the fd,
//     so that whoever else holds the old description (the parent of a
//     fork()ed child) keeps its non-blocking one;
//   - anything else (a socket; a pipe when /proc is missing or the reopen
//     fails) gets O_NONBLOCK cleared on its description, which every holder
//     shares: a parent that still holds that socket sees it blocking from
//     then on, and its hooks do not know (see the manual's advice).
// If the exec fails, the fds are made non-blocking again, as the records say.
//
// Everything here runs in a child between fork() (or vfork()) and exec:
// system calls only, through pointers resolved at load time; no lock, no
// allocation, no write to memory the parent may share.
#include "hooks.hpp"

#include <alloca.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>

namespace green::monkey_hooks {

namespace {

struct ExecReal {
  int (*execve)(const char*, char* const[], char* const[]);
  int (*execv)(const char*, char* const[]);
  int (*execvp)(const char*, char* const[]);
  int (*execvpe)(const char*, char* const[], char* const[]);
  int (*fexecve)(int, char* const[], char* const[]);
  int (*fcntl)(int, int, ...);
  int (*dup3)(int, int, int);
  int (*close)(int);
};

const ExecReal& xreal() {
  static const ExecReal r = [] {
    ExecReal x{};
    resolve(x.execve, "execve");
    resolve(x.execv, "execv");
    resolve(x.execvp, "execvp");
    resolve(x.execvpe, "execvpe");
    resolve(x.fexecve, "fexecve");
    resolve(x.fcntl, "fcntl");
    resolve(x.dup3, "dup3");
    resolve(x.close, "close");
    return x;
  }();
  return r;
}

// Resolved when the library loads: dlsym after a fork() of a threaded
// process could wait forever on a lock held by a thread that is gone.
[[maybe_unused]] const ExecReal& g_resolved_at_load = xreal();

// The flags of fd's description if the exec'd program inherits fd, else -1.
int inherited_flags(int fd) noexcept {
  const int fd_flags = xreal().fcntl(fd, F_GETFD);
  if (fd_flags < 0 || (fd_flags & FD_CLOEXEC)) return -1;
  return xreal().fcntl(fd, F_GETFL);
}

// "/proc/self/fd/<fd>" into buf (32 bytes), without the locale-aware,
// maybe-allocating printf family.
const char* proc_path(int fd, char* buf) noexcept {
  static constexpr char kPrefix[] = "/proc/self/fd/";
  char digits[12];
  int n = 0;
  do {
    digits[n++] = static_cast<char>('0' + fd % 10);
    fd /= 10;
  } while (fd > 0);
  char* at = buf;
  for (const char* p = kPrefix; *p; ++p) *at++ = *p;
  while (n > 0) *at++ = digits[--n];
  *at = '\0';
  return buf;
}

// A new, blocking description of the pipe `fd` in place of fd's; false if
// it could not be had (no /proc, or a write end nobody reads).
bool reopen_pipe_blocking(int fd, int flags) noexcept {
  char path[32];
  // O_NONBLOCK for the open itself: a FIFO's open waits for the other side.
  const int fresh = open(proc_path(fd, path), (flags & O_ACCMODE) | O_NONBLOCK | O_CLOEXEC);
  if (fresh < 0) return false;
  const bool ok = xreal().fcntl(fresh, F_SETFL, flags & ~O_NONBLOCK) == 0 && xreal().dup3(fresh, fd, 0) == fd;
  xreal().close(fresh);
  return ok;
}

void hand_over_blocking(int fd) {
  const int flags = inherited_flags(fd);
  if (flags < 0 || !(flags & O_NONBLOCK)) return;
  struct stat st;
  if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode) && reopen_pipe_blocking(fd, flags)) return;
  xreal().fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
}

// After a failed exec: the fds are non-blocking underneath again.
void take_back(int fd) {
  const int flags = inherited_flags(fd);
  if (flags >= 0 && !(flags & O_NONBLOCK)) xreal().fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

template <class Exec>
int exec_handing_over(Exec&& exec) noexcept {
  if (!ops()) return exec();  // green never registered: no fd was changed
  for_each_blocking_view(&hand_over_blocking);
  const int r = exec();
  const int e = errno;
  for_each_blocking_view(&take_back);
  errno = e;
  return r;
}

// The list forms (execl, execlp, execle): their arguments after `first`,
// up to a null, become an argv on this frame (alloca: nothing is allocated
// between fork and exec), which lives while exec(argv, envp) runs; envp is
// the pointer after the null when `with_env` (execle), else null.
template <class Exec>
int exec_list(const char* first, va_list& ap, bool with_env, Exec&& exec) noexcept {
  int n = 0;
  if (first) {
    va_list c;
    va_copy(c, ap);
    for (n = 1; va_arg(c, const char*); ++n) {
    }
    va_end(c);
  }
  auto** argv = static_cast<char**>(alloca((static_cast<std::size_t>(n) + 1) * sizeof(char*)));
  if (n > 0) argv[0] = const_cast<char*>(first);
  for (int i = 1; i < n; ++i) argv[i] = va_arg(ap, char*);
  if (n > 0) (void)va_arg(ap, char*);  // the null
  argv[n] = nullptr;
  char* const* envp = with_env ? va_arg(ap, char* const*) : nullptr;
  return exec_handing_over([&] { return exec(argv, envp); });
}

}  // namespace

}  // namespace green::monkey_hooks

using namespace green::monkey_hooks;

GREEN_HOOK int execve(const char* path, char* const argv[], char* const envp[]) {
  return exec_handing_over([&] { return xreal().execve(path, argv, envp); });
}

GREEN_HOOK int execv(const char* path, char* const argv[]) {
  return exec_handing_over([&] { return xreal().execv(path, argv); });
}

GREEN_HOOK int execvp(const char* file, char* const argv[]) {
  return exec_handing_over([&] { return xreal().execvp(file, argv); });
}

GREEN_HOOK int execvpe(const char* file, char* const argv[], char* const envp[]) {
  return exec_handing_over([&] { return xreal().execvpe(file, argv, envp); });
}

GREEN_HOOK int fexecve(int fd, char* const argv[], char* const envp[]) {
  return exec_handing_over([&] { return xreal().fexecve(fd, argv, envp); });
}

GREEN_HOOK int execl(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  const int r = exec_list(arg, ap, false, [&](char** argv, char* const*) { return xreal().execv(path, argv); });
  va_end(ap);
  return r;
}

GREEN_HOOK int execlp(const char* file, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  const int r = exec_list(arg, ap, false, [&](char** argv, char* const*) { return xreal().execvp(file, argv); });
  va_end(ap);
  return r;
}

GREEN_HOOK int execle(const char* path, const char* arg, ...) {
  va_list ap;
  va_start(ap, arg);
  const int r = exec_list(arg, ap, true, [&](char** argv, char* const* envp) { return xreal().execve(path, argv, envp); });
  va_end(ap);
  return r;
}
