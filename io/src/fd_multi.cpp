// fd_multi.cpp — waiting on several fds at once, green-native: poll(),
// select() and wait_readwrite() (green/fd.hpp), built on green::wait() over
// FdWatches (one park; each fd's slot wakes it). Every call to the C
// library's poll here is qualified (::poll) and, on a green thread, has a
// zero timeout: green::monkey's hook passes those straight to libc, and
// inside namespace green an unqualified poll would name green::poll.
#include <cerrno>
#include <string>
#include <utility>
#include <vector>

#include "green/current.hpp"
#include "green/detail/park.hpp"
#include "green/errors.hpp"
#include "green/fd.hpp"
#include "green/wait.hpp"

namespace green {

namespace {

using Duration = std::chrono::steady_clock::duration;

int poll_now(std::span<pollfd> fds, int timeout_ms) {
  for (;;) {
    const int n = ::poll(fds.data(), fds.size(), timeout_ms);
    if (n >= 0) return n;
    if (errno != EINTR) throw SystemError(errno, "green::poll");
    if (timeout_ms != 0) return 0;  // a plain thread's signal: treated as the end of this wait
  }
}

// A plain thread has no hub to wait in: poll(2) itself, to the deadline.
int poll_plain_thread(std::span<pollfd> fds, detail::Deadline deadline) {
  int timeout_ms = -1;
  if (deadline != detail::kNoDeadline) {
    const auto left = deadline - detail::Clock::now();
    timeout_ms = left <= Duration::zero()
                     ? 0
                     : static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count());
  }
  return poll_now(fds, timeout_ms);
}

int poll_until(std::span<pollfd> fds, detail::Deadline deadline) {
  if (!in_green_thread()) return poll_plain_thread(fds, deadline);
  std::vector<FdWatch> watches;
  for (const pollfd& p : fds) {
    if (p.fd < 0) continue;
    // One watch per fd and direction: a duplicate would find its own slot taken.
    auto add = [&](FdWatch::Direction d) {
      for (const FdWatch& w : watches)
        if (w.fd == p.fd && w.direction == d) return;
      watches.push_back({p.fd, d});
    };
    // Errors and hang-ups wake both directions' waiters. An entry that
    // asks for neither direction is only looked at (see fd.hpp).
    if (p.events & POLLIN) add(FdWatch::read);
    if (p.events & POLLOUT) add(FdWatch::write);
  }
  const std::vector<Waitable> objects(watches.begin(), watches.end());
  for (;;) {
    if (const int n = poll_now(fds, 0)) return n;
    if (objects.empty()) {
      detail::sleep_until(deadline, "poll");
      return 0;
    }
    std::vector<bool> taken(objects.size());
    if (detail::wait_for(objects, taken, deadline, 1).empty()) return poll_now(fds, 0);
  }
}

detail::Deadline deadline_of(std::optional<Duration> timeout) {
  return timeout ? detail::deadline_after(*timeout) : detail::kNoDeadline;
}

}  // namespace

int poll(std::span<pollfd> fds, std::optional<Duration> timeout) { return poll_until(fds, deadline_of(timeout)); }

SelectResult select(std::span<const int> readable, std::span<const int> writable, std::optional<Duration> timeout) {
  std::vector<pollfd> fds;
  fds.reserve(readable.size() + writable.size());
  for (int fd : readable) fds.push_back({fd, POLLIN, 0});
  for (int fd : writable) fds.push_back({fd, POLLOUT, 0});
  for (const pollfd& p : fds)
    if (p.fd < 0) throw SystemError(EBADF, "green::select");
  poll_until(fds, deadline_of(timeout));
  SelectResult out;
  for (std::size_t i = 0; i < fds.size(); ++i) {
    const short got = fds[i].revents;
    if (got & POLLNVAL) throw SystemError(EBADF, "green::select fd " + std::to_string(fds[i].fd));
    if (!got) continue;
    // As select(2): errors and hang-ups make an fd readable or writable.
    (i < readable.size() ? out.readable : out.writable).push_back(fds[i].fd);
  }
  return out;
}

namespace {
bool wait_readwrite_until(int fd, detail::Deadline deadline) {
  pollfd one{fd, POLLIN | POLLOUT, 0};
  const int n = poll_until(std::span<pollfd>(&one, 1), deadline);
  if (n > 0 && (one.revents & POLLNVAL)) throw SystemError(EBADF, "wait_readwrite");
  return n > 0;
}
}  // namespace

void wait_readwrite(int fd) { wait_readwrite_until(fd, detail::kNoDeadline); }
bool wait_readwrite(int fd, Duration timeout) { return wait_readwrite_until(fd, detail::deadline_after(timeout)); }

}  // namespace green
