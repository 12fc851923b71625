// hooks.cpp — libgreen_monkey.so: the C library's blocking calls, defined
// again (see green/monkey.hpp for what each does and why).
//
// HOW THE HOOKS ARE FOUND. This shared library defines read, recv, poll,
// nanosleep, ... with default visibility. The dynamic linker binds every
// reference in the process (the program's, libpq's, libstdc++'s) to the
// first definition in its search order: the program, then its DT_NEEDED
// libraries in link order. Linking green::monkey puts this library before
// libc.so.6 (the compiler driver adds -lc last), so ours are found first.
// Each hook reaches libc's own definition through dlsym(RTLD_NEXT, name),
// resolved once (Real below).
//
// WITH A SANITIZER. TSan's and ASan's runtimes are linked first of all (they
// insist on it), and define the same names: their interceptors record the
// call and then call their REAL(name), which they resolved with
// dlsym(RTLD_NEXT) from the runtime, i.e. the next definition after theirs:
// ours. So a call goes program -> interceptor -> hook -> libc: the sanitizer
// sees every call the program makes, and the hook parks inside the
// interceptor (the interceptor's state lives in the green thread's own TSan
// fiber state, which travels with it). The hooks' own calls to libc go
// through Real and are not intercepted a second time.
//
// RULES FOR THIS FILE. Nothing here may throw (compiled -fno-exceptions;
// the bridge's functions are noexcept and catch everything): a hook runs
// under C frames. On a thread green said is plain (t_plain_thread, asked
// once per thread) the fast path is the libc call and one thread-local
// load; the fd's record is read only when the call would have blocked or
// fell short. Elsewhere (a worker, a thread not asked yet) it is one
// acquire load, the fd's record and, for managed fds, one indirect call to
// ask green where the caller runs. Hooks may run in signal handlers (write()
// to a self-pipe): the fast path takes no lock and allocates nothing but,
// once per 4,096 fds, a chunk of the mode table (mmap).
#include "hooks.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdarg>
#include <cstdint>
#include <cstring>

namespace green::monkey_hooks {

// ---- libc's definitions -------------------------------------------------------

struct Real {
  ssize_t (*read)(int, void*, size_t);
  ssize_t (*write)(int, const void*, size_t);
  ssize_t (*readv)(int, const iovec*, int);
  ssize_t (*writev)(int, const iovec*, int);
  ssize_t (*recv)(int, void*, size_t, int);
  ssize_t (*recvfrom)(int, void*, size_t, int, sockaddr*, socklen_t*);
  ssize_t (*recvmsg)(int, msghdr*, int);
  ssize_t (*send)(int, const void*, size_t, int);
  ssize_t (*sendto)(int, const void*, size_t, int, const sockaddr*, socklen_t);
  ssize_t (*sendmsg)(int, const msghdr*, int);
  int (*accept)(int, sockaddr*, socklen_t*);
  int (*accept4)(int, sockaddr*, socklen_t*, int);
  int (*connect)(int, const sockaddr*, socklen_t);
  int (*poll)(pollfd*, nfds_t, int);
  unsigned (*sleep)(unsigned);
  int (*usleep)(useconds_t);
  int (*nanosleep)(const timespec*, timespec*);
  int (*clock_nanosleep)(clockid_t, int, const timespec*, timespec*);
  int (*close)(int);
  int (*fcntl)(int, int, ...);
  int (*fcntl64)(int, int, ...);
  int (*ioctl)(int, unsigned long, ...);
  int (*socket)(int, int, int);
  int (*socketpair)(int, int, int, int*);
  int (*pipe)(int*);
  int (*pipe2)(int*, int);
  int (*dup)(int);
  int (*dup2)(int, int);
  int (*dup3)(int, int, int);
};

Real resolve_all() {
  Real r{};
  resolve(r.read, "read");
  resolve(r.write, "write");
  resolve(r.readv, "readv");
  resolve(r.writev, "writev");
  resolve(r.recv, "recv");
  resolve(r.recvfrom, "recvfrom");
  resolve(r.recvmsg, "recvmsg");
  resolve(r.send, "send");
  resolve(r.sendto, "sendto");
  resolve(r.sendmsg, "sendmsg");
  resolve(r.accept, "accept");
  resolve(r.accept4, "accept4");
  resolve(r.connect, "connect");
  resolve(r.poll, "poll");
  resolve(r.sleep, "sleep");
  resolve(r.usleep, "usleep");
  resolve(r.nanosleep, "nanosleep");
  resolve(r.clock_nanosleep, "clock_nanosleep");
  resolve(r.close, "close");
  resolve(r.fcntl, "fcntl");
  resolve(r.fcntl64, "fcntl64");
  if (!r.fcntl64) r.fcntl64 = r.fcntl;
  resolve(r.ioctl, "ioctl");
  resolve(r.socket, "socket");
  resolve(r.socketpair, "socketpair");
  resolve(r.pipe, "pipe");
  resolve(r.pipe2, "pipe2");
  resolve(r.dup, "dup");
  resolve(r.dup2, "dup2");
  resolve(r.dup3, "dup3");
  return r;
}

// Resolved on first use (a hook may run before this library's constructors,
// from another library's), once: a function-local static.
[[gnu::always_inline]] inline const Real& real() {
  static const Real r = resolve_all();
  return r;
}

// Resolved when the library loads as well, while the process has one
// thread (see multiplex.cpp's g_mux_resolved_at_load).
[[maybe_unused]] const Real& g_real_resolved_at_load = real();

// ---- green's table (ops.hpp) -----------------------------------------------------

std::atomic<const Ops*> g_ops{nullptr};
std::atomic<bool> g_probe_seen{false};

// ---- the user's view of each fd ----------------------------------------------------
//
// kUnknown: never seen by a hook that needed to know (created before green
//   registered, by a call not hooked, or closed since): the libc call, except
//   that a green thread's blocking call on a socket classifies it first.
// kPass: not a socket or pipe (a regular file, a tty, an eventfd): always
//   the libc call.
// kBlocking: O_NONBLOCK set underneath by us, the user sees a blocking fd.
// kNonblocking: the user set O_NONBLOCK: the libc call, EAGAIN and all.
enum Mode : std::uint8_t { kUnknown = 0, kPass, kBlocking, kNonblocking };

// Besides the mode, each fd's inode as it was recorded: glibc closes fds
// internally without going through close() (fclose, pclose), and so do raw
// system calls and the sanitizers' runtimes, so a number may come back from
// an unhooked call (an eventfd, a file) with a stale mode. Before a call
// waits, the fd's inode is checked against the record (fstat, on the slow
// path only); a stranger is forgotten and gets the libc call's answer.
struct Slot {
  std::atomic<std::uint8_t> mode;
  std::atomic<std::uint32_t> watchers;  // see watch()
  std::atomic<std::uint64_t> ino;
};

constexpr int kChunkBits = 12;
constexpr int kChunkSize = 1 << kChunkBits;
constexpr int kChunks = 1 << 10;  // fds below 4,194,304, as io's fd table
std::atomic<Slot*> g_modes[kChunks];

// A new chunk of records, zeroed (kUnknown), installed unless another
// thread's won. Out of line: the lookups below are on every hooked call.
[[gnu::noinline]] Slot* new_chunk(std::atomic<Slot*>& c) noexcept {
  // mmap, not new: async-signal-safe, and zero pages are kUnknown.
  void* p = mmap(nullptr, kChunkSize * sizeof(Slot), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  auto* fresh = static_cast<Slot*>(p);
  Slot* chunk = nullptr;
  if (c.compare_exchange_strong(chunk, fresh, std::memory_order_acq_rel)) return fresh;
  munmap(p, kChunkSize * sizeof(Slot));  // another thread's chunk won
  return chunk;
}

// Always inlined, as mode_of() and emulated(): together they are what a
// hooked call costs code that green does not concern (a plain thread, a
// file), and each call between them cost a few nanoseconds of that
// (bench/monkey/hook_overhead.cpp).
[[gnu::always_inline]] inline Slot* mode_slot(int fd, bool create) noexcept {
  if (fd < 0 || fd >= kChunks * kChunkSize) return nullptr;
  std::atomic<Slot*>& c = g_modes[fd >> kChunkBits];
  Slot* chunk = c.load(std::memory_order_acquire);
  if (!chunk && create) chunk = new_chunk(c);
  return chunk ? &chunk[fd & (kChunkSize - 1)] : nullptr;
}

[[gnu::always_inline]] inline Mode mode_of(int fd) noexcept {
  Slot* s = mode_slot(fd, false);
  return s ? static_cast<Mode>(s->mode.load(std::memory_order_relaxed)) : kUnknown;
}

// The user's view changes (F_SETFL, FIONBIO) or is forgotten (close).
void set_mode(int fd, Mode m) noexcept {
  if (Slot* s = mode_slot(fd, m != kUnknown)) s->mode.store(m, std::memory_order_relaxed);
}

std::uint64_t inode_of(int fd) noexcept {
  struct stat st;
  return fstat(fd, &st) == 0 ? static_cast<std::uint64_t>(st.st_ino) : 0;
}

// A socket or pipe taken over: its mode and the inode it has now.
void record(int fd, Mode m) noexcept {
  if (Slot* s = mode_slot(fd, true)) {
    s->ino.store(inode_of(fd), std::memory_order_relaxed);
    s->mode.store(m, std::memory_order_relaxed);
  }
}

// The fd shares its open file description with `from` (dup): same O_NONBLOCK.
void copy_mode(int from, int to) noexcept {
  Slot* f = mode_slot(from, false);
  if (!f) return;
  if (Slot* t = mode_slot(to, true)) {
    t->ino.store(f->ino.load(std::memory_order_relaxed), std::memory_order_relaxed);
    t->mode.store(f->mode.load(std::memory_order_relaxed), std::memory_order_relaxed);
  }
}

// Whether fd is still the socket or pipe recorded under its number; if not,
// its record is forgotten. errno is kept.
bool still_ours(int fd) noexcept {
  const int saved = errno;
  Slot* s = mode_slot(fd, false);
  const std::uint64_t ino = s ? s->ino.load(std::memory_order_relaxed) : 0;
  const bool ours = ino != 0 && inode_of(fd) == ino;
  if (!ours) set_mode(fd, kUnknown);
  errno = saved;
  return ours;
}

void watch(int fd, int delta) noexcept {
  if (Slot* s = mode_slot(fd, true)) s->watchers.fetch_add(static_cast<std::uint32_t>(delta));
}

// seq_cst, as watch(): close(2) came first, so either this load sees a
// watcher that enlisted before, or that watcher's epoll_ctl comes after the
// close and fails with EBADF (multiplex.cpp).
bool watched(int fd) noexcept {
  Slot* s = mode_slot(fd, false);
  return s && s->watchers.load() != 0;
}

void for_each_blocking_view(void (*fn)(int fd)) noexcept {
  for (int c = 0; c < kChunks; ++c) {
    Slot* chunk = g_modes[c].load(std::memory_order_acquire);
    if (!chunk) continue;
    for (int i = 0; i < kChunkSize; ++i) {
      const Slot& s = chunk[i];
      if (s.mode.load(std::memory_order_relaxed) != kBlocking) continue;
      const int fd = (c << kChunkBits) | i;
      const std::uint64_t ino = s.ino.load(std::memory_order_relaxed);
      if (ino != 0 && inode_of(fd) == ino) fn(fd);
    }
  }
}

// A green thread is about to block on an fd nobody classified. Sockets are
// taken over (made non-blocking underneath, unless the user already made
// them so). Pipes and FIFOs met this way are left alone, and so are 0-2:
// their open file description is typically shared with other processes (a
// shell, ctest), which would see O_NONBLOCK too.
Mode classify(int fd) noexcept {
  struct stat st;
  if (fd <= 2 || fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
    set_mode(fd, kPass);
    return kPass;
  }
  const int flags = real().fcntl(fd, F_GETFL);
  if (flags < 0) return kUnknown;
  if (flags & O_NONBLOCK) {
    record(fd, kNonblocking);
    return kNonblocking;
  }
  if (real().fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) return kUnknown;
  record(fd, kBlocking);
  return kBlocking;
}

// Whether a call on fd needs the blocking emulation, classifying it on a
// green thread's first blocking use. `green` says where the caller runs.
[[gnu::always_inline]] inline bool emulated(const Ops* o, int fd, bool& green) noexcept {
  Mode m = mode_of(fd);
  if (m == kPass || m == kNonblocking) return false;
  green = caller_is_green(o);
  if (m == kUnknown) {
    if (!green) return false;  // not ours: the fd is what the user made it
    m = classify(fd);
  }
  return m == kBlocking;
}

// ---- waiting -------------------------------------------------------------------------

std::int64_t now_ns() noexcept {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

std::int64_t after_ns(std::int64_t from, std::int64_t ns) noexcept {
  return ns >= kNoDeadline - from ? kNoDeadline : from + ns;
}

// SO_RCVTIMEO / SO_SNDTIMEO as a deadline from now (none if unset or not a
// socket). Read at the first EAGAIN only: most calls never wait.
std::int64_t socket_deadline(int fd, bool reading) noexcept {
  timeval tv{};
  socklen_t len = sizeof tv;
  if (getsockopt(fd, SOL_SOCKET, reading ? SO_RCVTIMEO : SO_SNDTIMEO, &tv, &len) != 0) return kNoDeadline;
  if (tv.tv_sec == 0 && tv.tv_usec == 0) return kNoDeadline;
  return after_ns(now_ns(), std::int64_t{tv.tv_sec} * 1'000'000'000 + std::int64_t{tv.tv_usec} * 1000);
}

int poll_timeout_ms(std::int64_t deadline) noexcept {
  if (deadline == kNoDeadline) return -1;
  const std::int64_t left = deadline - now_ns();
  if (left <= 0) return 0;
  const std::int64_t ms = (left + 999'999) / 1'000'000;
  return ms > INT32_MAX ? INT32_MAX : static_cast<int>(ms);
}

int close_forget(int fd, void*) {
  set_mode(fd, kUnknown);
  return real().close(fd);
}

std::int64_t ms_deadline(int timeout_ms) noexcept {
  return timeout_ms < 0 ? kNoDeadline : after_ns(now_ns(), std::int64_t{timeout_ms} * 1'000'000);
}

int wait_errno(const Ops* o, int result, int error) noexcept {
  switch (result) {
    case green::monkey_detail::kReady:
      return 0;
    case green::monkey_detail::kTimedOut:
      return EAGAIN;
    case green::monkey_detail::kInterrupted:
      return o->interrupt_errno();
    case green::monkey_detail::kFailed:
      return error;
    default:
      return EBADF;  // kClosed
  }
}

int wait_ready(const Ops* o, bool green, int fd, bool reading, std::int64_t deadline) noexcept {
  if (!green) {
    pollfd p{fd, static_cast<short>(reading ? POLLIN : POLLOUT), 0};
    for (;;) {
      const int n = real().poll(&p, 1, poll_timeout_ms(deadline));
      if (n > 0) return (p.revents & POLLNVAL) ? EBADF : 0;
      if (n == 0) {
        if (deadline != kNoDeadline && now_ns() >= deadline) return EAGAIN;
        continue;
      }
      // A signal: retried, as SA_RESTART would restart the blocking call.
      if (errno != EINTR) return errno;
    }
  }
  int error = 0;
  const int r = o->wait_fd(fd, reading, deadline, &error);
  if (r == green::monkey_detail::kBusy) {
    // io's table holds one waiter per direction: the second waits on a
    // private epoll instance, where close() still finds it.
    pollfd p{fd, static_cast<short>(reading ? POLLIN : POLLOUT), 0};
    return wait_any(o, &p, 1, deadline);
  }
  return wait_errno(o, r, error);
}

// The blocking emulation, from the first try's result `r` (the fd is
// non-blocking underneath): on EAGAIN wait for readiness and try again.
// `call` returns the libc call's result.
template <class Call, class R>
R blocking_call_after(const Ops* o, bool green, int fd, bool reading, Call& call, R r) noexcept {
  std::int64_t deadline = 0;  // 0: not read yet
  for (;;) {
    if (r >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) return r;
    if (deadline == 0) {
      if (!still_ours(fd)) return r;  // a stranger's fd, non-blocking: its EAGAIN
      deadline = socket_deadline(fd, reading);
    }
    if (const int e = wait_ready(o, green, fd, reading, deadline)) {
      errno = e;
      return -1;
    }
    r = call();
  }
}

// Whether a plain thread's failed call needs the emulation: it would have
// blocked, on an fd the user sees as blocking.
[[gnu::always_inline]] inline bool plain_would_block(int fd) noexcept {
  return (errno == EAGAIN || errno == EWOULDBLOCK) && mode_of(fd) == kBlocking;
}

// A read-like call: one successful call is the answer (short reads included).
//
// A plain thread's call is made first and looked at after: most succeed,
// and then the hook cost one thread-local load. Trying before looking up
// the fd changes nothing for a plain thread: its calls are never
// classified (emulated() below), so the fd is as it was.
// (`call` by value, here and in all_bytes_green: by reference, the compiler
// builds the closure before the plain thread's branch and the fast path
// pays for it.)
template <class Call>
[[gnu::noinline]] auto read_like_green(int fd, Call call) noexcept -> decltype(call()) {
  const Ops* o = ops();
  bool green = false;
  if (!o || !emulated(o, fd, green)) return call();
  return blocking_call_after(o, green, fd, true, call, call());
}

template <class Call, class R>
[[gnu::noinline]] R read_like_plain_wait(int fd, Call call, R r) noexcept {
  return blocking_call_after(ops(), false, fd, true, call, r);
}

struct NothingToNote {
  void operator()() const noexcept {}
};

// `note()` runs on every path but a plain thread's success (read's probe).
template <class Call, class Note = NothingToNote>
[[gnu::always_inline]] inline auto read_like(int fd, Call&& call, Note note = {}) noexcept -> decltype(call()) {
  if (t_plain_thread) [[likely]] {
    const auto r = call();
    if (r >= 0) [[likely]] return r;
    note();
    if (!plain_would_block(fd)) return r;
    return read_like_plain_wait(fd, call, r);
  }
  note();
  return read_like_green(fd, call);
}

// A call on a blocking fd that moves all `total` bytes, from the first
// try's result `r`: after a short transfer it waits and moves the rest; an
// error, an interrupt or EOF after some bytes moved reports the count moved.
// `call(done)` continues from byte `done`.
template <class Call>
ssize_t all_bytes_after(const Ops* o, bool green, int fd, bool reading, size_t total, Call& call,
                        ssize_t r) noexcept {
  size_t done = 0;
  auto rest = [&] { return call(done); };
  for (;;) {
    r = blocking_call_after(o, green, fd, reading, rest, r);
    if (r < 0) return done > 0 ? static_cast<ssize_t>(done) : -1;
    done += static_cast<size_t>(r);
    if (done >= total || r == 0) return static_cast<ssize_t>(done);
    r = rest();
  }
}

template <class Call>
[[gnu::noinline]] ssize_t all_bytes_green(int fd, bool reading, size_t total, Call call) noexcept {
  const Ops* o = ops();
  bool green = false;
  if (!o || !emulated(o, fd, green)) return call(size_t{0});  // libc's one call
  return all_bytes_after(o, green, fd, reading, total, call, call(size_t{0}));
}

template <class Call>
[[gnu::noinline]] ssize_t all_bytes_plain_wait(int fd, bool reading, size_t total, Call call, ssize_t r) noexcept {
  return all_bytes_after(ops(), false, fd, reading, total, call, r);
}

// As read_like: a plain thread tries first, and looks up the fd only when
// the call fell short (a blocking fd's write moves everything).
template <class Call>
[[gnu::always_inline]] inline ssize_t all_bytes(int fd, bool reading, size_t total, Call&& call) noexcept {
  if (t_plain_thread) [[likely]] {
    const ssize_t r = call(size_t{0});
    if (r >= 0 && static_cast<size_t>(r) == total) [[likely]] return r;
    if (r >= 0 ? mode_of(fd) != kBlocking : !plain_would_block(fd)) return r;
    return all_bytes_plain_wait(fd, reading, total, call, r);
  }
  return all_bytes_green(fd, reading, total, call);
}

// A write-like call on a blocking fd writes everything, as a blocking
// stream socket or pipe does.
template <class Call>
ssize_t write_like(int fd, size_t total, Call&& call) noexcept {
  return all_bytes(fd, false, total, call);
}

// recv and recvfrom with MSG_WAITALL on a stream socket: the emulation
// waits for the whole length, as the kernel would on a blocking socket (a
// non-blocking one returns what is there). Other socket types, and
// MSG_PEEK, get one call: the kernel's own MSG_WAITALL rules are per
// datagram and per peek.
bool wants_all(int fd, int flags) noexcept {
  if (!(flags & MSG_WAITALL) || (flags & MSG_PEEK)) return false;
  const int saved = errno;
  int type = 0;
  socklen_t len = sizeof type;
  const bool stream = getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == 0 && type == SOCK_STREAM;
  errno = saved;
  return stream;
}

// iovecs past the first `skip` bytes of `iov` (a copy; after a short writev).
int iov_after(const iovec* iov, int n, size_t skip, iovec* out) noexcept {
  int k = 0;
  for (int i = 0; i < n; ++i) {
    if (skip >= iov[i].iov_len) {
      skip -= iov[i].iov_len;
      continue;
    }
    out[k].iov_base = static_cast<char*>(iov[i].iov_base) + skip;
    out[k].iov_len = iov[i].iov_len - skip;
    skip = 0;
    ++k;
  }
  return k;
}

size_t iov_total(const iovec* iov, int n) noexcept {
  size_t t = 0;
  for (int i = 0; i < n; ++i) t += iov[i].iov_len;
  return t;
}

// The vectored writes: after a short write the rest goes out from a copy of
// the iovec array (IOV_MAX entries at most: 16 KiB on the caller's stack).
ssize_t writev_like(int fd, const iovec* iov, int n,
                    ssize_t (*one)(int fd, const iovec* iov, int n, void* ctx), void* ctx) noexcept {
  if (n < 0 || n > IOV_MAX) return one(fd, iov, n, ctx);
  return write_like(fd, iov_total(iov, n), [&](size_t done) -> ssize_t {
    if (done == 0) return one(fd, iov, n, ctx);
    iovec rest[IOV_MAX];
    const int k = iov_after(iov, n, done, rest);
    return one(fd, rest, k, ctx);
  });
}

// Hooked sockets, pipes and accepted connections: non-blocking underneath,
// with the user's view recorded.
void record_new(int fd, bool user_nonblocking) noexcept {
  if (fd >= 0) record(fd, user_nonblocking ? kNonblocking : kBlocking);
}

// ---- sleeping ----------------------------------------------------------------------

// A green thread sleeps until `deadline`: 0, or EINTR with *left_ns set.
int green_sleep(const Ops* o, std::int64_t deadline, std::int64_t* left_ns) noexcept {
  const int e = o->sleep_until(deadline);
  if (e == EINTR) {
    const std::int64_t left = deadline == kNoDeadline ? kNoDeadline : deadline - now_ns();
    *left_ns = left > 0 ? left : 0;
    return EINTR;
  }
  // 0, or a retry after an EINTR already reported for this interrupt: the
  // sleep is over (so that a loop "sleep the remainder on EINTR" ends).
  return 0;
}

bool valid(const timespec* ts) noexcept {
  return ts && ts->tv_sec >= 0 && ts->tv_nsec >= 0 && ts->tv_nsec < 1'000'000'000;
}

std::int64_t to_ns(const timespec& ts) noexcept {
  if (ts.tv_sec >= kNoDeadline / 1'000'000'000 - 1) return kNoDeadline;
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

timespec from_ns(std::int64_t ns) noexcept {
  return timespec{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}

thread_local bool t_plain_thread [[gnu::tls_model("initial-exec")]] = false;

bool ask_caller_is_green(const Ops* o) noexcept {
  switch (o->caller()) {
    case monkey_detail::kPlainThread:
      t_plain_thread = true;
      return false;
    case monkey_detail::kScheduler:
      return false;
    default:
      return true;
  }
}

int fcntl_common(int (*call)(int, int, ...), int fd, int cmd, void* arg) noexcept {
  const Ops* o = ops();
  if (!o) return call(fd, cmd, arg);
  switch (cmd) {
    case F_GETFL: {
      const int r = call(fd, F_GETFL);
      return (r >= 0 && mode_of(fd) == kBlocking && still_ours(fd)) ? (r & ~O_NONBLOCK) : r;
    }
    case F_SETFL: {
      const Mode m = mode_of(fd);
      const int flags = static_cast<int>(reinterpret_cast<std::intptr_t>(arg));
      if (m != kBlocking && m != kNonblocking) return call(fd, F_SETFL, flags);
      const int r = call(fd, F_SETFL, flags | O_NONBLOCK);
      if (r == 0) set_mode(fd, (flags & O_NONBLOCK) ? kNonblocking : kBlocking);
      return r;
    }
    case F_DUPFD:
    case F_DUPFD_CLOEXEC: {
      const int r = call(fd, cmd, arg);
      if (r >= 0) copy_mode(fd, r);
      return r;
    }
    default:
      return call(fd, cmd, arg);
  }
}

struct Dup2Args {
  int oldfd;
  int flags;
  bool three;
};

int dup_over(int newfd, void* ctx) {
  const auto* a = static_cast<const Dup2Args*>(ctx);
  set_mode(newfd, kUnknown);
  return a->three ? real().dup3(a->oldfd, newfd, a->flags) : real().dup2(a->oldfd, newfd);
}

int dup_onto(int oldfd, int newfd, int flags, bool three) noexcept {
  const Ops* o = ops();
  Dup2Args a{oldfd, flags, three};
  // dup2(fd, fd) closes nothing; anything else closes newfd first, so its
  // waiters learn it as they would from close().
  const int r = (o && oldfd != newfd) ? o->close_fd_with(newfd, &dup_over, &a)
                                      : (three ? real().dup3(oldfd, newfd, flags) : real().dup2(oldfd, newfd));
  if (r >= 0 && o) {
    copy_mode(oldfd, r);
    if (oldfd != newfd && watched(newfd)) wake_watchers(o, newfd);
  }
  return r;
}

}  // namespace green::monkey_hooks

using namespace green::monkey_hooks;

// ---- registration ---------------------------------------------------------------------

#if defined(__SANITIZE_THREAD__)
namespace {
// Under ThreadSanitizer, green's own closes (io's close_fd, already under
// the fd's lock) must still pass TSan's close interceptor: TSan forgets an
// fd only there, and otherwise takes the next socket or pipe that reuses the
// number for the old one and reports a race between, say, an accept4 on one
// thread and an fstat of the new fd on another. The interceptor is the
// first `close` in the search order; it calls the next one, ours, which
// this flag sends straight to libc (close_fd_with is already under way).
thread_local bool t_closing_through_sanitizer = false;

int close_through_sanitizer(int fd) {
  static auto* const first = reinterpret_cast<int (*)(int)>(dlsym(RTLD_DEFAULT, "close"));
  t_closing_through_sanitizer = true;
  const int r = first(fd);
  t_closing_through_sanitizer = false;
  return r;
}
}  // namespace
#endif

extern "C" __attribute__((visibility("default"))) int (*green_monkey_register_v2(const Ops* table))(int) {
  g_ops.store(table, std::memory_order_release);
#if defined(__SANITIZE_THREAD__)
  return &close_through_sanitizer;
#else
  return [](int fd) { return close_forget(fd, nullptr); };
#endif
}

extern "C" __attribute__((visibility("default"))) bool green_monkey_probe_seen() noexcept {
  return g_probe_seen.load(std::memory_order_acquire);
}

// ---- the hooks ---------------------------------------------------------------------
//
// Their closures capture by value: capturing the arguments by reference
// makes the compiler store them to memory before the plain thread's fast
// path, which then costs twice as much.

GREEN_HOOK ssize_t read(int fd, void* buf, size_t n) {
  // green::monkey::active()'s probe fails (fd -1): looked for off the fast path.
  return read_like(fd, [=] { return real().read(fd, buf, n); },
                   [=] {
                     if (fd == -1 && n == 0 && reinterpret_cast<std::uintptr_t>(buf) == 0x6772'6565'6e00)
                       g_probe_seen.store(true, std::memory_order_release);
                   });
}

GREEN_HOOK ssize_t readv(int fd, const iovec* iov, int n) {
  return read_like(fd, [=] { return real().readv(fd, iov, n); });
}

GREEN_HOOK ssize_t recv(int fd, void* buf, size_t n, int flags) {
  if (flags & MSG_DONTWAIT) return real().recv(fd, buf, n, flags);
  if (wants_all(fd, flags) && ops()) {
    return all_bytes(fd, true, n, [=](size_t done) {
      return real().recv(fd, static_cast<char*>(buf) + done, n - done, flags);
    });
  }
  return read_like(fd, [=] { return real().recv(fd, buf, n, flags); });
}

GREEN_HOOK ssize_t recvfrom(int fd, void* buf, size_t n, int flags, sockaddr* from, socklen_t* len) {
  if (flags & MSG_DONTWAIT) return real().recvfrom(fd, buf, n, flags, from, len);
  if (wants_all(fd, flags) && ops()) {
    return all_bytes(fd, true, n, [=](size_t done) {
      return real().recvfrom(fd, static_cast<char*>(buf) + done, n - done, flags, from, len);
    });
  }
  return read_like(fd, [=] { return real().recvfrom(fd, buf, n, flags, from, len); });
}

// recvmsg with MSG_WAITALL, as recv: the first read fills msg (its name,
// control data and flags, as the kernel would from the first segment); the
// rest goes into the iovecs past what came, with no room for more control
// data, and its flags (MSG_TRUNC, MSG_CTRUNC...) are added to msg's.
GREEN_HOOK ssize_t recvmsg(int fd, msghdr* msg, int flags) {
  if (flags & MSG_DONTWAIT) return real().recvmsg(fd, msg, flags);
  if (msg && msg->msg_iovlen <= IOV_MAX && wants_all(fd, flags) && ops()) {
    const int n = static_cast<int>(msg->msg_iovlen);
    return all_bytes(fd, true, iov_total(msg->msg_iov, n), [=](size_t done) -> ssize_t {
      if (done == 0) return real().recvmsg(fd, msg, flags);
      iovec rest[IOV_MAX];
      msghdr more{};
      more.msg_iov = rest;
      more.msg_iovlen = static_cast<size_t>(iov_after(msg->msg_iov, n, done, rest));
      const ssize_t r = real().recvmsg(fd, &more, flags);
      if (r >= 0) msg->msg_flags |= more.msg_flags;
      return r;
    });
  }
  return read_like(fd, [=] { return real().recvmsg(fd, msg, flags); });
}

GREEN_HOOK ssize_t write(int fd, const void* buf, size_t n) {
  return write_like(fd, n, [=](size_t done) {
    return real().write(fd, static_cast<const char*>(buf) + done, n - done);
  });
}

GREEN_HOOK ssize_t writev(int fd, const iovec* iov, int n) {
  return writev_like(fd, iov, n, [](int f, const iovec* v, int k, void*) { return real().writev(f, v, k); },
                     nullptr);
}

GREEN_HOOK ssize_t send(int fd, const void* buf, size_t n, int flags) {
  if (flags & MSG_DONTWAIT) return real().send(fd, buf, n, flags);
  return write_like(fd, n, [=](size_t done) {
    return real().send(fd, static_cast<const char*>(buf) + done, n - done, flags);
  });
}

GREEN_HOOK ssize_t sendto(int fd, const void* buf, size_t n, int flags, const sockaddr* to, socklen_t len) {
  if (flags & MSG_DONTWAIT) return real().sendto(fd, buf, n, flags, to, len);
  return write_like(fd, n, [=](size_t done) {
    return real().sendto(fd, static_cast<const char*>(buf) + done, n - done, flags, to, len);
  });
}

GREEN_HOOK ssize_t sendmsg(int fd, const msghdr* msg, int flags) {
  if (flags & MSG_DONTWAIT || !msg) return real().sendmsg(fd, msg, flags);
  struct Ctx {
    const msghdr* msg;
    int flags;
  } ctx{msg, flags};
  const int n = static_cast<int>(msg->msg_iovlen);
  return writev_like(
      fd, msg->msg_iov, n,
      [](int f, const iovec* v, int k, void* c) {
        const auto* x = static_cast<const Ctx*>(c);
        msghdr m = *x->msg;
        if (v != x->msg->msg_iov) {  // the rest of a short write: no second ancillary message
          m.msg_control = nullptr;
          m.msg_controllen = 0;
        }
        m.msg_iov = const_cast<iovec*>(v);
        m.msg_iovlen = static_cast<size_t>(k);
        return real().sendmsg(f, &m, x->flags);
      },
      &ctx);
}

// accept and accept4 share this (not one calling the other by name: under a
// sanitizer that would go through its interceptor a second time).
static int accept_common(int fd, sockaddr* addr, socklen_t* len, int flags) noexcept {
  const int r = read_like(fd, [=] { return real().accept4(fd, addr, len, flags | SOCK_NONBLOCK); });
  record_new(r, flags & SOCK_NONBLOCK);
  return r;
}

GREEN_HOOK int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  if (!ops()) return real().accept4(fd, addr, len, flags);
  return accept_common(fd, addr, len, flags);
}

GREEN_HOOK int accept(int fd, sockaddr* addr, socklen_t* len) {
  if (!ops()) return real().accept(fd, addr, len);
  return accept_common(fd, addr, len, 0);
}

GREEN_HOOK int connect(int fd, const sockaddr* addr, socklen_t len) {
  const Ops* o = ops();
  bool green = false;
  if (!o || !emulated(o, fd, green)) return real().connect(fd, addr, len);
  std::int64_t deadline = 0;
  for (;;) {
    const int r = real().connect(fd, addr, len);
    if (r == 0) return 0;
    const int e = errno;
    // EAGAIN: a Unix socket's listener has a full backlog; a blocking
    // connect waits for room and tries again.
    if (e != EINPROGRESS && e != EAGAIN) return r;
    if (deadline == 0) {
      if (!still_ours(fd)) return r;
      deadline = socket_deadline(fd, false);
    }
    for (;;) {
      if (const int w = wait_ready(o, green, fd, false, deadline)) {
        // A deadline leaves the connection in progress, as Linux reports it.
        errno = (w == EAGAIN && e == EINPROGRESS) ? EINPROGRESS : w;
        return -1;
      }
      // A remembered edge may predate this connect: writable means done.
      pollfd p{fd, POLLOUT, 0};
      if (real().poll(&p, 1, 0) > 0) break;
    }
    if (e == EAGAIN) continue;
    int err = 0;
    socklen_t l = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) != 0) return -1;
    if (err != 0) {
      errno = err;
      return -1;
    }
    return 0;
  }
}

GREEN_HOOK int nanosleep(const timespec* req, timespec* rem) {
  const Ops* o = nullptr;
  if (!green_here(o) || !valid(req)) return real().nanosleep(req, rem);
  std::int64_t left = 0;
  if (green_sleep(o, after_ns(now_ns(), to_ns(*req)), &left) != 0) {
    if (rem) *rem = from_ns(left);
    errno = EINTR;
    return -1;
  }
  return 0;
}

GREEN_HOOK int clock_nanosleep(clockid_t clock, int flags, const timespec* req, timespec* rem) {
  const Ops* o = nullptr;
  if ((clock != CLOCK_MONOTONIC && clock != CLOCK_REALTIME) || !green_here(o) || !valid(req))
    return real().clock_nanosleep(clock, flags, req, rem);
  const std::int64_t now = now_ns();
  std::int64_t deadline;
  if (flags & TIMER_ABSTIME) {
    timespec c;
    clock_gettime(clock, &c);
    const std::int64_t delta = to_ns(*req) - to_ns(c);
    deadline = delta <= 0 ? now : after_ns(now, delta);
  } else {
    deadline = after_ns(now, to_ns(*req));
  }
  std::int64_t left = 0;
  if (green_sleep(o, deadline, &left) != 0) {
    if (rem && !(flags & TIMER_ABSTIME)) *rem = from_ns(left);
    return EINTR;  // clock_nanosleep returns the error, errno untouched
  }
  return 0;
}

GREEN_HOOK int usleep(useconds_t us) {
  const Ops* o = nullptr;
  if (!green_here(o)) return real().usleep(us);
  std::int64_t left = 0;
  if (green_sleep(o, after_ns(now_ns(), std::int64_t{us} * 1000), &left) != 0) {
    errno = EINTR;
    return -1;
  }
  return 0;
}

GREEN_HOOK unsigned sleep(unsigned seconds) {
  const Ops* o = nullptr;
  if (!green_here(o)) return real().sleep(seconds);
  std::int64_t left = 0;
  if (green_sleep(o, after_ns(now_ns(), std::int64_t{seconds} * 1'000'000'000), &left) != 0)
    return static_cast<unsigned>((left + 999'999'999) / 1'000'000'000);  // unslept seconds, rounded up
  return 0;
}

GREEN_HOOK int close(int fd) {
#if defined(__SANITIZE_THREAD__)
  if (t_closing_through_sanitizer) return close_forget(fd, nullptr);  // see close_through_sanitizer
#endif
  const Ops* o = ops();
  if (!o) return close_forget(fd, nullptr);
  // Under green's fd lock: waiters on fd are woken with EBADF, the fd's
  // generation moves on, then the mode is forgotten and libc closes it.
  // Then green threads that watch fd among others (poll, select, a second
  // reader) are woken: they poll again and find it closed.
  const int r = o->close_fd_with(fd, &close_forget, nullptr);
  if (watched(fd)) wake_watchers(o, fd);
  return r;
}

GREEN_HOOK int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);  // int or pointer: one register either way (x86-64, aarch64)
  va_end(ap);
  return fcntl_common(real().fcntl, fd, cmd, arg);
}

GREEN_HOOK int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  return fcntl_common(real().fcntl64, fd, cmd, arg);
}

GREEN_HOOK int ioctl(int fd, unsigned long request, ...) {
  va_list ap;
  va_start(ap, request);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  if (request == FIONBIO && arg && ops()) {
    const Mode m = mode_of(fd);
    if (m == kBlocking || m == kNonblocking) {
      // The user's view changes; underneath the fd stays non-blocking.
      set_mode(fd, *static_cast<const int*>(arg) ? kNonblocking : kBlocking);
      return 0;
    }
  }
  return real().ioctl(fd, request, arg);
}

GREEN_HOOK int socket(int domain, int type, int protocol) {
  if (!ops()) return real().socket(domain, type, protocol);
  const int fd = real().socket(domain, type | SOCK_NONBLOCK, protocol);
  record_new(fd, type & SOCK_NONBLOCK);
  return fd;
}

GREEN_HOOK int socketpair(int domain, int type, int protocol, int sv[2]) {
  if (!ops()) return real().socketpair(domain, type, protocol, sv);
  const int r = real().socketpair(domain, type | SOCK_NONBLOCK, protocol, sv);
  if (r == 0) {
    record_new(sv[0], type & SOCK_NONBLOCK);
    record_new(sv[1], type & SOCK_NONBLOCK);
  }
  return r;
}

static int pipe_common(int fds[2], int flags) noexcept {
  const int r = real().pipe2(fds, flags | O_NONBLOCK);
  if (r == 0) {
    record_new(fds[0], flags & O_NONBLOCK);
    record_new(fds[1], flags & O_NONBLOCK);
  }
  return r;
}

GREEN_HOOK int pipe2(int fds[2], int flags) {
  if (!ops()) return real().pipe2(fds, flags);
  return pipe_common(fds, flags);
}

GREEN_HOOK int pipe(int fds[2]) {
  if (!ops()) return real().pipe(fds);
  return pipe_common(fds, 0);
}

GREEN_HOOK int dup(int fd) {
  const int r = real().dup(fd);
  if (r >= 0 && ops()) copy_mode(fd, r);
  return r;
}

GREEN_HOOK int dup2(int oldfd, int newfd) { return dup_onto(oldfd, newfd, 0, false); }

GREEN_HOOK int dup3(int oldfd, int newfd, int flags) { return dup_onto(oldfd, newfd, flags, true); }
