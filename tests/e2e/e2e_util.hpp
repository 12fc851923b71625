// End-to-end test support: run an example as its own process and talk to it
// over loopback TCP with plain POSIX calls (independent of the library under
// test).
//
// Nothing here sleeps to synchronise: every wait is for an event (a line on
// the child's stdout, a line from a socket, the child's exit) with a
// deadline, and a missed deadline throws, which fails the test. A Child is
// SIGKILLed and reaped by its destructor on every path out of a test.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

extern char** environ;

namespace e2e {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// The examples run sanitized in the sanitizer builds, on a small and busy
// machine: every wait allows far more than a passing run needs.
#ifdef GREEN_TEST_SANITIZED
inline constexpr bool kSanitized = true;
#else
inline constexpr bool kSanitized = false;
#endif
inline constexpr auto kWait = 30s;

inline Clock::time_point deadline_in(Clock::duration d = kWait) { return Clock::now() + d; }

[[noreturn]] inline void fail(const std::string& what) { throw std::runtime_error(what); }
[[noreturn]] inline void fail_errno(const std::string& what) { fail(what + ": " + std::strerror(errno)); }

// poll() on one fd until `events` or the deadline; false on timeout.
inline bool wait_fd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left < 0) return false;
    pollfd p{fd, events, 0};
    const int r = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)) + 1);
    if (r > 0) return true;
    if (r < 0 && errno != EINTR) fail_errno("poll");
  }
}

inline void set_nonblocking(int fd) {
  if (::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) fail_errno("fcntl");
}

// Splits complete lines (with their '\n') off the front of `buf`.
inline std::optional<std::string> take_line(std::string& buf) {
  const auto nl = buf.find('\n');
  if (nl == std::string::npos) return std::nullopt;
  std::string line = buf.substr(0, nl + 1);
  buf.erase(0, nl + 1);
  return line;
}

// ---------------------------------------------------------------- processes

// The resident set of a running process, in KiB (fails once it is gone).
inline long vm_rss_kb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  fail("no VmRSS for process " + std::to_string(pid));
}

class Child {
 public:
  // Starts `path` with `args`; its stdout is a pipe we read, its stderr is
  // ours (sanitizer reports show up in the test's output), or with
  // capture_stderr a second pipe that read_all_and_stderr reads.
  Child(const std::string& path, const std::vector<std::string>& args, bool capture_stderr = false) {
    int out[2];
    int err[2] = {-1, -1};
    if (::pipe2(out, O_CLOEXEC) != 0) fail_errno("pipe2");
    if (capture_stderr && ::pipe2(err, O_CLOEXEC) != 0) {
      ::close(out[0]);
      ::close(out[1]);
      fail_errno("pipe2");
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
    if (capture_stderr) posix_spawn_file_actions_adddup2(&fa, err[1], STDERR_FILENO);
    std::vector<std::string> argv_s{path};
    argv_s.insert(argv_s.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_s) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int r = ::posix_spawn(&pid_, path.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    ::close(out[1]);
    if (capture_stderr) ::close(err[1]);
    if (r != 0) {
      ::close(out[0]);
      if (capture_stderr) ::close(err[0]);
      errno = r;
      fail_errno("posix_spawn " + path);
    }
    out_ = out[0];
    set_nonblocking(out_);
    if (capture_stderr) {
      err_ = err[0];
      set_nonblocking(err_);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int st;
      while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
      }
    }
    if (out_ >= 0) ::close(out_);
    if (err_ >= 0) ::close(err_);
  }

  pid_t pid() const { return pid_; }
  void signal(int sig) const {
    if (pid_ > 0) ::kill(pid_, sig);
  }

  // SIGTERM as a user sends it: to the process. Under ThreadSanitizer, only
  // once every worker is idle: TSan runs a handler at once only in a thread
  // blocked in a call it intercepts (an idle worker's epoll_wait) and
  // otherwise defers it to that thread's next intercepted call, which for a
  // green thread that was running when the signal came may be as late as
  // its next wake. (The thread parked in Runtime::run blocks asynchronous
  // signals under TSan, so the kernel picks a worker.)
  void terminate() const {
    if (pid_ <= 0) return;
#ifdef GREEN_TEST_TSAN
    const auto give_up = Clock::now() + 10s;
    // The server has work in hand: look again shortly (bounded by give_up).
    while (!workers_idle(SIGTERM) && Clock::now() < give_up) ::poll(nullptr, 0, 1);
#endif
    ::kill(pid_, SIGTERM);
  }

  // The next line of its stdout (with '\n'; the last one may lack it);
  // nullopt at end of output. Throws at the deadline.
  std::optional<std::string> read_line(Clock::time_point deadline = deadline_in()) {
    for (;;) {
      if (auto line = take_line(buf_)) return line;
      if (eof_) {
        if (buf_.empty()) return std::nullopt;
        return std::exchange(buf_, {});
      }
      fill(deadline);
    }
  }

  // All of its stdout until it closes it (normally: until it exits).
  std::string read_all(Clock::time_point deadline = deadline_in()) {
    while (!eof_) fill(deadline);
    return std::exchange(buf_, {});
  }

  // With capture_stderr: all of its stdout and stderr until it closes both,
  // read side by side (a child that fills one pipe while we wait on the
  // other cannot stall).
  std::pair<std::string, std::string> read_all_and_stderr(Clock::time_point deadline = deadline_in()) {
    if (err_ < 0) fail("read_all_and_stderr: stderr was not captured");
    std::string err;
    bool err_eof = false;
    while (!eof_ || !err_eof) {
      pollfd p[2] = {{eof_ ? -1 : out_, POLLIN, 0}, {err_eof ? -1 : err_, POLLIN, 0}};
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left < 0) fail("timed out waiting for the process's output");
      const int r = ::poll(p, 2, static_cast<int>(std::min<long long>(left, 1000)) + 1);
      if (r < 0 && errno != EINTR) fail_errno("poll");
      if (r <= 0) continue;
      if (p[0].revents) fill(deadline);
      if (p[1].revents) {
        char chunk[4096];
        const ssize_t n = ::read(err_, chunk, sizeof chunk);
        if (n > 0) {
          err.append(chunk, static_cast<std::size_t>(n));
        } else if (n == 0) {
          err_eof = true;
        } else if (errno != EAGAIN && errno != EINTR) {
          fail_errno("read the process's stderr");
        }
      }
    }
    return {std::exchange(buf_, {}), std::move(err)};
  }

  // Waits for it to exit; its wait status, or nullopt at the deadline.
  std::optional<int> wait_exit(Clock::time_point deadline) {
    if (pid_ <= 0) return status_;
    const int pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
    for (;;) {
      int st;
      const pid_t r = ::waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        if (pidfd >= 0) ::close(pidfd);
        pid_ = -1;
        status_ = st;
        return st;
      }
      if (r < 0 && errno != EINTR) fail_errno("waitpid");
      if (Clock::now() >= deadline) break;
      if (pidfd >= 0) {
        wait_fd(pidfd, POLLIN, std::min(deadline, Clock::now() + 1s));
      } else {
        ::poll(nullptr, 0, 10);  // no pidfd (a kernel before 5.3): look again shortly
      }
    }
    if (pidfd >= 0) ::close(pidfd);
    return std::nullopt;
  }

  // Waits for the exit and returns its code; fails if it was killed by a
  // signal or did not exit in time.
  int exit_code(Clock::time_point deadline = deadline_in()) {
    const auto st = wait_exit(deadline);
    if (!st) fail("the process did not exit in time");
    if (!WIFEXITED(*st)) fail("the process died of signal " + std::to_string(WTERMSIG(*st)));
    return WEXITSTATUS(*st);
  }

 private:
  void fill(Clock::time_point deadline) {
    if (!wait_fd(out_, POLLIN, deadline)) fail("timed out waiting for the process's output");
    char chunk[4096];
    const ssize_t n = ::read(out_, chunk, sizeof chunk);
    if (n > 0) {
      buf_.append(chunk, static_cast<std::size_t>(n));
    } else if (n == 0) {
      eof_ = true;
    } else if (errno != EAGAIN && errno != EINTR) {
      fail_errno("read from the process");
    }
  }

#ifdef GREEN_TEST_TSAN
  // Whether every thread of the child that takes `sig` (TSan's background
  // thread blocks every signal; so does a thread parked in Runtime::run) is
  // blocked in epoll_wait, and there is at least one.
  bool workers_idle(int sig) const {
    const std::string dir = "/proc/" + std::to_string(pid_) + "/task";
    DIR* d = ::opendir(dir.c_str());
    if (!d) return false;
    bool any = false, all_idle = true;
    auto read_file = [](const std::string& path) {
      std::string text;
      if (std::FILE* f = std::fopen(path.c_str(), "r")) {
        char buf[4096];
        text.assign(buf, std::fread(buf, 1, sizeof buf, f));
        std::fclose(f);
      }
      return text;
    };
    while (dirent* e = ::readdir(d)) {
      if (std::atoi(e->d_name) <= 0) continue;
      const std::string status = read_file(dir + "/" + e->d_name + "/status");
      const auto at = status.find("SigBlk:");
      if (at == std::string::npos) continue;
      const unsigned long long blocked = std::strtoull(status.c_str() + at + 7, nullptr, 16);
      if (blocked & (1ull << (sig - 1))) continue;
      any = true;
      if (read_file(dir + "/" + e->d_name + "/wchan") != "do_epoll_wait") all_idle = false;
    }
    ::closedir(d);
    return any && all_idle;
  }
#endif

  pid_t pid_ = -1;
  int out_ = -1;
  int err_ = -1;  // -1 unless capture_stderr
  std::string buf_;
  bool eof_ = false;
  std::optional<int> status_;
};

// Runs a program to completion: its exit code and stdout.
struct Finished {
  int code;
  std::string out;
};
inline Finished run_to_end(const std::string& path, const std::vector<std::string>& args,
                           Clock::duration limit = 2 * kWait) {
  Child c(path, args);
  const auto deadline = deadline_in(limit);
  std::string out = c.read_all(deadline);
  const int code = c.exit_code(deadline);
  return {code, std::move(out)};
}

// The same with its stderr captured too (run_to_end leaves it on ours).
struct FinishedWithStderr {
  int code;
  std::string out;
  std::string err;
};
inline FinishedWithStderr run_to_end_with_stderr(const std::string& path, const std::vector<std::string>& args,
                                                  Clock::duration limit = 2 * kWait) {
  Child c(path, args, /*capture_stderr=*/true);
  const auto deadline = deadline_in(limit);
  auto [out, err] = c.read_all_and_stderr(deadline);
  const int code = c.exit_code(deadline);
  return {code, std::move(out), std::move(err)};
}

// A server example started with --port 0: the port it prints on its first
// line ("...: listening on ADDR:PORT ...").
class Server {
 public:
  // With capture_stderr, read its stderr with child().read_all_and_stderr()
  // (after it exits: a child that fills the pipe meanwhile blocks).
  Server(const std::string& path, std::vector<std::string> args, bool capture_stderr = false)
      : child_(path, with_port0(std::move(args)), capture_stderr) {
    auto line = child_.read_line();
    if (!line) fail(path + " exited before printing its port");
    const auto at = line->find("listening on ");
    const auto colon = line->find(':', at == std::string::npos ? 0 : at + 13);
    if (at == std::string::npos || colon == std::string::npos) fail("no port in: " + *line);
    const auto end = line->find_first_not_of("0123456789", colon + 1);
    port_ = static_cast<std::uint16_t>(std::stoi(line->substr(colon + 1, end - colon - 1)));
    if (port_ == 0) fail("port 0 in: " + *line);
  }

  std::uint16_t port() const { return port_; }
  Child& child() { return child_; }

  // SIGTERM, then its wait status within `limit` (nullopt if it took longer).
  std::optional<int> terminate(Clock::duration limit) {
    child_.terminate();
    return child_.wait_exit(Clock::now() + limit);
  }

 private:
  static std::vector<std::string> with_port0(std::vector<std::string> args) {
    args.insert(args.begin(), {"--host", "127.0.0.1", "--port", "0"});
    return args;
  }

  Child child_;
  std::uint16_t port_ = 0;
};

// ---------------------------------------------------------------- sockets

// A TCP client: non-blocking underneath, every wait bounded.
class Client {
 public:
  explicit Client(std::uint16_t port, int rcvbuf = 0) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) fail_errno("socket");
    if (rcvbuf > 0 && ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) != 0) fail_errno("SO_RCVBUF");
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    set_nonblocking(fd_);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      if (errno != EINPROGRESS) fail_errno("connect");
      if (!wait_fd(fd_, POLLOUT, deadline_in())) fail("connect timed out");
      int err = 0;
      socklen_t len = sizeof err;
      ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err != 0) {
        errno = err;
        fail_errno("connect");
      }
    }
  }
  Client(Client&& o) noexcept
      : fd_(std::exchange(o.fd_, -1)),
        buf_(std::move(o.buf_)),
        eof_(o.eof_),
        reset_(o.reset_),
        label_(std::move(o.label_)) {}
  Client& operator=(Client&&) = delete;
  ~Client() { close(); }

  int fd() const { return fd_; }
  // Names the client in the messages of its failures.
  void set_label(std::string label) { label_ = std::move(label); }
  void close() {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }
  // Closes with a reset (SO_LINGER 0) instead of a FIN.
  void reset() {
    linger l{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close();
  }
  void shutdown_write() { ::shutdown(fd_, SHUT_WR); }

  void send(std::string_view data, Clock::time_point deadline = deadline_in()) {
    while (!data.empty()) {
      const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n > 0) {
        data.remove_prefix(static_cast<std::size_t>(n));
      } else if (errno == EAGAIN) {
        if (!wait_fd(fd_, POLLOUT, deadline)) fail(label_ + ": send timed out");
      } else if (errno != EINTR) {
        fail_errno(label_ + ": send");
      }
    }
  }

  // Whatever has arrived, without waiting; false once the stream has ended
  // (EOF or reset) and nothing more will come.
  bool pump() {
    char chunk[64 * 1024];
    while (!eof_) {
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n > 0) {
        buf_.append(chunk, static_cast<std::size_t>(n));
      } else if (n == 0 || (n < 0 && (errno == ECONNRESET || errno == EPIPE))) {
        eof_ = true;
        reset_ = n < 0;
      } else if (errno == EAGAIN) {
        return true;
      } else if (errno != EINTR) {
        fail_errno(label_ + ": recv");
      }
    }
    return false;
  }

  // Every byte received and not yet taken, without waiting.
  std::string take_buffered() { return std::exchange(buf_, {}); }

  // The next complete line from the buffer, without waiting.
  std::optional<std::string> buffered_line() { return take_line(buf_); }

  // The next line (with '\n'); nullopt at the end of the stream (a partial
  // last line is returned first). Throws at the deadline.
  std::optional<std::string> read_line(Clock::time_point deadline = deadline_in()) {
    for (;;) {
      if (auto line = take_line(buf_)) return line;
      if (eof_) {
        if (buf_.empty()) return std::nullopt;
        return std::exchange(buf_, {});
      }
      if (!pump() || buf_.find('\n') != std::string::npos) continue;
      if (!wait_fd(fd_, POLLIN, deadline)) fail(label_ + ": timed out waiting for a line; have \"" + buf_.substr(0, 200) + "\"");
    }
  }

  // The next line, which must exist.
  std::string line(Clock::time_point deadline = deadline_in()) {
    auto l = read_line(deadline);
    if (!l) fail(label_ + ": the connection ended while a line was expected");
    return *l;
  }

  // Exactly n bytes (or fewer if the stream ends).
  std::string read_bytes(std::size_t n, Clock::time_point deadline = deadline_in()) {
    while (buf_.size() < n) {
      if (!pump()) break;
      if (buf_.size() >= n) break;
      if (!wait_fd(fd_, POLLIN, deadline)) fail(label_ + ": timed out waiting for bytes");
    }
    std::string out = buf_.substr(0, n);
    buf_.erase(0, out.size());
    return out;
  }

  // Everything until the peer ends the stream.
  std::string read_to_end(Clock::time_point deadline = deadline_in()) {
    while (pump()) {
      if (!wait_fd(fd_, POLLIN, deadline)) fail(label_ + ": timed out waiting for the end of the stream");
    }
    return std::exchange(buf_, {});
  }

  bool ended() const { return eof_; }
  bool was_reset() const { return reset_; }

 private:
  int fd_ = -1;
  std::string buf_;
  bool eof_ = false;
  bool reset_ = false;
  std::string label_ = "client";
};

}  // namespace e2e
