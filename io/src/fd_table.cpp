// fd_table.cpp — readiness state per fd, the hub's ready handler, and the
// waits built on them (see fd_table.hpp and green/fd.hpp).
#include "fd_table.hpp"

#include "green/detail/fd_wait.hpp"

#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>
#include <string>

#include "green/detail/hub.hpp"
#include "green/errors.hpp"
#include "green/fd.hpp"

namespace green::io_detail {

namespace {

constexpr int kChunkBits = 12;
constexpr int kChunkSize = 1 << kChunkBits;
constexpr int kChunks = 1 << 10;  // fds below 4,194,304
std::atomic<FdState*> chunks[kChunks];
std::mutex chunk_alloc;

constexpr std::uint64_t token_of(int fd, std::uint32_t generation) {
  return (std::uint64_t{generation} << 32) | static_cast<std::uint32_t>(fd);
}

// Wakes a parked waiter; if it already left (timed out), the edge is kept
// for the next wait instead of being lost.
void wake_or_remember(detail::Waiter*& slot, bool& ready_flag) noexcept {
  detail::Waiter* w = slot;
  slot = nullptr;
  if (!w || !detail::wake(*w)) ready_flag = true;
}

void on_ready(std::uint64_t token, std::uint32_t events) noexcept {
  const int fd = static_cast<int>(token & 0xffffffffu);
  const auto generation = static_cast<std::uint32_t>(token >> 32);
  FdState& st = fd_state(fd);
  std::lock_guard g(st.lock);
  if (st.generation != generation || !st.registered) return;  // a closed fd's event
  if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) st.read_closed = true;
  if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) wake_or_remember(st.reader, st.readable);
  if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) wake_or_remember(st.writer, st.writable);
}

// Under st.lock: whether a wait for `reading` may return at once, taking
// the remembered edge if that is why. A hang-up is never taken: it lasts.
bool take_readiness(FdState& st, bool reading) noexcept {
  bool& ready = reading ? st.readable : st.writable;
  if (!ready && !(reading && st.read_closed)) return false;
  ready = false;
  return true;
}

// Waiter::tag says why a waiter was woken other than by readiness.
constexpr std::uintptr_t kWokenClosed = 1;
constexpr std::uintptr_t kWokenBusy = 2;

Error busy_error(int fd, bool reading) {
  return Error("green: fd " + std::to_string(fd) + " is already waited on for " +
               (reading ? "reading" : "writing") + " by another green thread");
}

bool poll_plain_thread(int fd, Direction dir, detail::Deadline deadline, const char* op) {
  pollfd p{fd, static_cast<short>(dir == Direction::read ? POLLIN : POLLOUT), 0};
  for (;;) {
    int timeout_ms = -1;
    if (deadline != detail::kNoDeadline) {
      const auto left = deadline - detail::Clock::now();
      if (left <= detail::Clock::duration::zero()) return false;
      timeout_ms = static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count());
    }
    const int n = ::poll(&p, 1, timeout_ms);
    if (n > 0) {
      if (p.revents & POLLNVAL) throw SystemError(EBADF, op);
      return true;
    }
    if (n < 0 && errno != EINTR) throw SystemError(errno, std::string(op) + " (poll)");
  }
}

}  // namespace

FdState& fd_state(int fd) {
  if (fd < 0 || fd >= kChunks * kChunkSize)
    throw Error("green: fd " + std::to_string(fd) + " out of the supported range");
  const int c = fd >> kChunkBits;
  // acquire: the chunk's states are constructed before the pointer is seen.
  FdState* chunk = chunks[c].load(std::memory_order_acquire);
  if (!chunk) {
    std::lock_guard g(chunk_alloc);
    chunk = chunks[c].load(std::memory_order_relaxed);
    if (!chunk) {
      chunk = new FdState[kChunkSize];  // never freed: events may still look it up
      chunks[c].store(chunk, std::memory_order_release);
    }
  }
  return chunk[fd & (kChunkSize - 1)];
}

FdState* find_fd_state(int fd) noexcept {
  if (fd < 0 || fd >= kChunks * kChunkSize) return nullptr;
  FdState* chunk = chunks[fd >> kChunkBits].load(std::memory_order_acquire);
  return chunk ? &chunk[fd & (kChunkSize - 1)] : nullptr;
}

namespace {

// The wait itself. Reports how it ended rather than throwing, so that both
// the throwing wait_fd() and monkey's wait_fd_status() are built on it;
// throws only what fails outright (the fd's range, registering it, poll(2)).
FdWaitResult wait_fd_core(int fd, Direction dir, detail::Deadline deadline, const char* op) {
  static const bool installed = (detail::set_ready_handler(&on_ready), true);
  (void)installed;
  FdState& st = fd_state(fd);
  const bool reading = dir == Direction::read;
  std::uint32_t generation = 0;
  bool plain_thread = false;
  {
    std::lock_guard g(st.lock);
    if (take_readiness(st, reading)) return FdWaitResult::ready;  // the caller retries its call
    if (!st.registered) {
      detail::Hub* hub = detail::current_hub();
      if (hub) {
        detail::hub_add(hub, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP, token_of(fd, st.generation));
        st.registered = true;
        st.ever_registered.store(true, std::memory_order_release);
      } else {
        plain_thread = true;  // nobody watches it: poll(2) below
      }
    }
    if (!plain_thread && (reading ? st.reader : st.writer)) return FdWaitResult::busy;
    generation = st.generation;
  }
  if (plain_thread)
    return poll_plain_thread(fd, dir, deadline, op) ? FdWaitResult::ready : FdWaitResult::timed_out;
  // The lock is not held across the switch: the worker polls hubs while it
  // looks for the next green thread, and the ready handler takes this lock.
  // So the publish step takes it again and re-checks what may have changed.
  detail::Waiter w;
  w.external = true;  // the kernel ends it: never a deadlock (LoopExit)
  w.object = detail::WaitObject::fd(fd);
  auto slot_of = [&]() -> detail::Waiter*& { return reading ? st.reader : st.writer; };
  const detail::WakeReason r = detail::park_unlocked_status(
      st.lock, w, deadline, op,
      [&](detail::Waiter& me) {
        if (st.generation != generation) {  // closed since we looked
          me.tag = kWokenClosed;
          return false;
        }
        if (take_readiness(st, reading)) return false;
        if (slot_of()) {
          me.tag = kWokenBusy;  // another waiter got in meanwhile
          return false;
        }
        slot_of() = &me;
        return true;
      },
      [&](detail::Waiter& me) {
        if (slot_of() == &me) slot_of() = nullptr;
      });
  if (r == detail::WakeReason::interrupted) return FdWaitResult::interrupted;
  if (w.tag == kWokenClosed) return FdWaitResult::closed;
  if (w.tag == kWokenBusy) return FdWaitResult::busy;
  return r == detail::WakeReason::notified ? FdWaitResult::ready : FdWaitResult::timed_out;
}

}  // namespace

// ---- green::wait() on an FdWatch (WaitSourceFor<FdWatch> in fd.hpp) ---------

namespace {
const FdWatch& watch_of(const void* p) { return *static_cast<const FdWatch*>(p); }
detail::Waiter*& slot_of(FdState& st, const FdWatch& w) {
  return w.direction == FdWatch::read ? st.reader : st.writer;
}
}  // namespace

bool watch_ready(const void* p) {
  const FdWatch& w = watch_of(p);
  pollfd one{w.fd, static_cast<short>(w.direction == FdWatch::read ? POLLIN : POLLOUT), 0};
  return ::poll(&one, 1, 0) > 0;  // POLLNVAL included: a closed fd is "ready" to fail
}

void watch_prepare(void* p) {
  static const bool installed = (detail::set_ready_handler(&on_ready), true);
  (void)installed;
  const FdWatch& w = watch_of(p);
  FdState& st = fd_state(w.fd);
  std::lock_guard g(st.lock);
  if (!st.registered) {
    detail::Hub* hub = detail::current_hub();
    if (!hub) throw Error("green::wait on fd " + std::to_string(w.fd) + ": an fd no green thread registered needs one");
    detail::hub_add(hub, w.fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP, token_of(w.fd, st.generation));
    st.registered = true;
    st.ever_registered.store(true, std::memory_order_release);
  }
  if (slot_of(st, w)) throw busy_error(w.fd, w.direction == FdWatch::read);
}

bool watch_enlist(void* p, detail::Waiter& me) {
  const FdWatch& w = watch_of(p);
  FdState* st = find_fd_state(w.fd);
  if (!st) return false;
  std::lock_guard g(st->lock);
  // Closed since prepare (poll then says POLLNVAL), a remembered edge, or
  // a slot taken meanwhile (the next prepare throws): look again at once.
  if (!st->registered || take_readiness(*st, w.direction == FdWatch::read) || slot_of(*st, w)) return false;
  slot_of(*st, w) = &me;
  return true;
}

void watch_unlist(void* p, detail::Waiter& me) noexcept {
  const FdWatch& w = watch_of(p);
  FdState* st = find_fd_state(w.fd);
  if (!st) return;
  std::lock_guard g(st->lock);
  if (slot_of(*st, w) == &me) slot_of(*st, w) = nullptr;
}

bool wait_fd(int fd, Direction dir, detail::Deadline deadline, const char* op) {
  switch (wait_fd_core(fd, dir, deadline, op)) {
    case FdWaitResult::ready:
      return true;
    case FdWaitResult::timed_out:
      return false;
    case FdWaitResult::interrupted:
      detail::throw_if_interrupted();
      return false;  // not reached: the interrupt is pending
    case FdWaitResult::closed:
      throw SystemError(EBADF, op);
    case FdWaitResult::busy:
      throw busy_error(fd, dir == Direction::read);
    case FdWaitResult::failed:
      break;
  }
  return false;  // not reached: wait_fd_core throws its failures
}

FdWaitResult wait_fd_status(int fd, bool reading, detail::Deadline deadline, const char* op,
                            int& error) noexcept {
  try {
    return wait_fd_core(fd, reading ? Direction::read : Direction::write, deadline, op);
  } catch (const SystemError& e) {
    error = e.code();
  } catch (...) {
    error = EBADF;  // past the fd table's range
  }
  return FdWaitResult::failed;
}

}  // namespace green::io_detail

namespace green {

using io_detail::Direction;

namespace {
// The public waits promise "until the fd is ready", and an fd may be ready
// with its edge long consumed (data left unread by an earlier call): look
// first. Socket's own waits come right after EAGAIN and skip this.
bool ready_now(int fd, Direction dir) {
  pollfd p{fd, static_cast<short>(dir == Direction::read ? POLLIN : POLLOUT), 0};
  const int n = ::poll(&p, 1, 0);
  if (n > 0 && (p.revents & POLLNVAL)) throw SystemError(EBADF, "wait");
  return n > 0;
}
bool wait_public(int fd, Direction dir, detail::Deadline deadline, const char* op) {
  if (ready_now(fd, dir)) return true;
  return io_detail::wait_fd(fd, dir, deadline, op);
}
}  // namespace

void wait_readable(int fd) { wait_public(fd, Direction::read, detail::kNoDeadline, "wait_readable"); }
bool wait_readable(int fd, std::chrono::steady_clock::duration timeout) {
  return wait_public(fd, Direction::read, detail::deadline_after(timeout), "wait_readable");
}
void wait_writable(int fd) { wait_public(fd, Direction::write, detail::kNoDeadline, "wait_writable"); }
bool wait_writable(int fd, std::chrono::steady_clock::duration timeout) {
  return wait_public(fd, Direction::write, detail::deadline_after(timeout), "wait_writable");
}

namespace {
int (*raw_close)(int) = &::close;
int call_raw_close(int fd, void*) { return raw_close(fd); }
}  // namespace

void close_fd(int fd) noexcept { io_detail::close_fd_with(fd, &call_raw_close, nullptr); }

namespace io_detail {

void set_raw_close(int (*close_call)(int)) noexcept { raw_close = close_call; }

bool fd_ever_registered(int fd) noexcept {
  const io_detail::FdState* st = io_detail::find_fd_state(fd);
  return st && st->ever_registered.load(std::memory_order_acquire);
}

int close_fd_with(int fd, int (*op)(int fd, void* ctx), void* ctx) noexcept {
  // acquire: pairs with the registration's store, so a close that comes
  // after a wait on fd began sees it and wakes that wait.
  io_detail::FdState* st = io_detail::find_fd_state(fd);
  if (!st || !st->ever_registered.load(std::memory_order_acquire)) return op(fd, ctx);
  // close(2) runs under the fd's lock. The moment it returns, another thread
  // may get the same number from accept() or socket(), and its first wait
  // must find a clean state, not this close still in progress (it used to
  // fail with EBADF). A wait on the old fd that comes meanwhile waits for the
  // lock, then finds the fd unregistered: it is the caller's race (using an
  // fd while closing it), and epoll_ctl (EBADF) or the new fd's owner sorts
  // it out. close(2) also drops the fd from its epoll set.
  std::lock_guard g(st->lock);
  ++st->generation;
  if (st->generation == 0 || st->generation >= (1u << 31)) st->generation = 1;
  st->registered = false;
  st->readable = st->writable = st->read_closed = false;
  for (detail::Waiter** slot : {&st->reader, &st->writer}) {
    if (detail::Waiter* w = *slot) {
      *slot = nullptr;
      w->tag = io_detail::kWokenClosed;
      if (!detail::wake(*w)) w->tag = 0;
    }
  }
  return op(fd, ctx);
}

void notify_readable(int fd) noexcept {
  // Nobody can wait on an fd that was never registered.
  io_detail::FdState* st = io_detail::find_fd_state(fd);
  if (!st || !st->ever_registered.load(std::memory_order_acquire)) return;
  std::lock_guard g(st->lock);
  io_detail::wake_or_remember(st->reader, st->readable);
}

}  // namespace io_detail

}  // namespace green
