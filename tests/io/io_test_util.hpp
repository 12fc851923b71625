// io_test_util.hpp — helpers shared by the io/ test files: loopback
// socket pairs, IPv6 detection, fd counting, and "is this green thread
// parked in that call yet" (read from Runtime::dump()).
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <green/green.hpp>
#include <green/io.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <fstream>
#include <string>
#include <utility>

#include "test_env.hpp"
#include "test_util.hpp"

namespace green::io_testing {

using Clock = std::chrono::steady_clock;

// Connection counts for the large tests, scaled down under sanitizers
// (which multiply the cost of every green thread and syscall).
// AddressSanitizer: 1/5 of the full counts; ThreadSanitizer: 1/10.
using green::testing::kSanitized;
inline constexpr int kScale = green::testing::per_build(1, 5, 10);

// True when a socket can be bound to [::1] on this machine.
inline bool ipv6_loopback_available() {
  try {
    green::Socket s(AF_INET6, SOCK_STREAM);
    s.bind(green::Address::parse("[::1]:0"));
    return true;
  } catch (const green::Error&) {
    return false;
  }
}

#define GREEN_REQUIRE_IPV6()                                                                 \
  do {                                                                                       \
    if (!::green::io_testing::ipv6_loopback_available())                                     \
      GTEST_SKIP() << "IPv6 loopback (::1) is not available on this machine: cannot bind it"; \
  } while (0)

// A listening socket on `addr` (port 0: any free port).
inline green::Socket listener(const green::Address& addr, int backlog = 128) {
  green::Socket s(addr.family(), SOCK_STREAM);
  s.bind(addr);
  s.listen(backlog);
  return s;
}

inline green::Socket listener(const char* text = "127.0.0.1:0", int backlog = 128) {
  return listener(green::Address::parse(text), backlog);
}

// A connected TCP pair over loopback: {client side, server side}. Works on
// one green thread: the kernel completes the handshake without accept().
inline std::pair<green::Socket, green::Socket> tcp_pair(const char* listen_on = "127.0.0.1:0") {
  auto l = listener(listen_on, 4);
  green::Socket c(l.local_address().family(), SOCK_STREAM);
  c.connect(l.local_address(), std::chrono::seconds(5));
  auto [s, peer] = l.accept(std::chrono::seconds(5));
  EXPECT_EQ(peer, c.local_address());
  return {std::move(c), std::move(s)};
}

// Open file descriptors of this process (entries of /proc/self/fd, less
// the one opendir() itself uses).
inline int open_fd_count() {
  DIR* d = ::opendir("/proc/self/fd");
  if (!d) return -1;
  int n = 0;
  while (dirent* e = ::readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  ::closedir(d);
  return n - 1;
}

// Raises RLIMIT_NOFILE's soft limit to the hard limit; returns the soft
// limit now in force.
inline rlim_t raise_fd_limit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &rl);
    ::getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

// Resident set size of this process in bytes (0 if unknown).
inline std::size_t resident_bytes() {
  std::ifstream f("/proc/self/statm");
  std::size_t pages = 0, resident = 0;
  if (!(f >> pages >> resident)) return 0;
  return resident * static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

// True once green thread `id` is parked in a wait named `reason` (the
// park's "what": "recv", "accept", "send", "wait_readable", ...), as
// Runtime::dump() shows it.
inline bool parked_in(const green::Runtime& rt, std::uint64_t id, const std::string& reason) {
  const std::string dump = rt.dump();
  const std::string head = "green thread " + std::to_string(id) + " (";
  for (std::size_t pos = dump.find(head); pos != std::string::npos; pos = dump.find(head, pos + 1)) {
    if (pos != 0 && dump[pos - 1] != '\n') continue;
    const std::size_t eol = dump.find('\n', pos);
    const std::string line = dump.substr(pos, eol == std::string::npos ? std::string::npos : eol - pos);
    return line.ends_with("parked: " + reason);
  }
  return false;
}

// Waits (bounded) until green thread `g` is parked in `reason`.
template <class G>
bool wait_parked(const green::Runtime& rt, const G& g, const std::string& reason,
                 Clock::duration limit = std::chrono::seconds(5)) {
  const std::uint64_t id = g.id();
  return green::testing::wait_until([&] { return parked_in(rt, id, reason); }, limit);
}

// A non-blocking pipe whose ends are closed with green::close_fd (they may
// be registered with a hub).
struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) throw green::SystemError(errno, "pipe2");
    r = fds[0];
    w = fds[1];
  }
  ~Pipe() {
    green::close_fd(r);
    green::close_fd(w);
  }
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;

  void put(const std::string& s) const { ASSERT_EQ(::write(w, s.data(), s.size()), static_cast<ssize_t>(s.size())); }
  std::string take() const {
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(r, buf, sizeof buf)) > 0) out.append(buf, static_cast<std::size_t>(n));
    return out;
  }
  // Writes until the pipe is full; returns the bytes written.
  std::size_t fill() const {
    std::size_t total = 0;
    const std::string chunk(4096, 'f');
    for (;;) {
      const ssize_t n = ::write(w, chunk.data(), chunk.size());
      if (n <= 0) break;
      total += static_cast<std::size_t>(n);
    }
    return total;
  }
};

// Milliseconds since t0, for messages.
inline long long ms_since(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
}

// Receives until `n` bytes came or the stream ended.
inline std::string recv_n(green::Socket& s, std::size_t n,
                          green::MaybeTimeout timeout = std::chrono::seconds(5)) {
  std::string out;
  char buf[4096];
  while (out.size() < n) {
    const std::size_t got = s.recv(buf, std::min(sizeof buf, n - out.size()), timeout);
    if (got == 0) break;
    out.append(buf, got);
  }
  return out;
}

// Receives until the peer closes.
inline std::string recv_all(green::Socket& s, green::MaybeTimeout timeout = std::chrono::seconds(5)) {
  std::string out;
  char buf[16384];
  for (;;) {
    const std::size_t got = s.recv(buf, sizeof buf, timeout);
    if (got == 0) return out;
    out.append(buf, got);
  }
}

}  // namespace green::io_testing
