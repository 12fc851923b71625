// real_servers.hpp — the real servers that the monkey tests drive unmodified
// libraries against, each started by the test that uses it and always
// stopped (the destructors, which also run after a failed ASSERT):
//
//   PostgresServer   PostgreSQL 15: initdb, then postgres, in a private
//                    temporary directory; trust authentication on 127.0.0.1
//   RedisServer      Redis 7 with a generated config: no persistence
//   SlowHttpServer   a green StreamServer in the test's own runtime that
//                    answers each request after a delay and counts how many
//                    it holds at once
//
// Each child server listens on a free loopback port, picked by the kernel
// just before the start; if another process takes it in between, the start
// fails and is retried on a fresh port. The start-up wait is bounded and
// polls for readiness with a real client (libpq's PQping, a Redis PING),
// paced by a wait on the child's pidfd, so a server that dies is noticed at
// once and its log is in the failure. Nothing is skipped: a server that does
// not come up throws, and the test fails.
//
// PostgreSQL refuses to run as root, and the tests run as root in CI: as
// root, its programs run as the `postgres` user (created by the Debian
// package), through setpriv, in a directory owned by that user. Every child
// is started through setpriv --pdeathsig KILL as well, so that a test process
// that dies (a crash, ctest's timeout) takes its servers with it. The signal
// follows the *thread* that spawned the child: construct the servers on the
// test's main thread, before its green::Runtime.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>

#include <green/event.hpp>
#include <green/io.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

extern char** environ;

namespace green::testing {

namespace servers_detail {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// Start-up waits: far more than a passing start needs (about a second for
// initdb, less for the rest), on a small, busy machine, under a sanitizer.
inline constexpr Clock::duration kStartLimit = 60s;

[[noreturn]] inline void fail(const std::string& what) { throw std::runtime_error(what); }
[[noreturn]] inline void fail_errno(const std::string& what) { fail(what + ": " + std::strerror(errno)); }

// The end of a log file, for failure messages.
inline std::string tail_of(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  const std::string all = s.str();
  return all.size() > 4000 ? "..." + all.substr(all.size() - 4000) : all;
}

// A private directory under /tmp (reachable by the `postgres` user, unlike
// a root-only $TMPDIR), removed with its contents.
class TempDir {
 public:
  explicit TempDir(const std::string& what) {
    std::string templ = "/tmp/green-" + what + "-XXXXXX";
    if (!::mkdtemp(templ.data())) fail_errno("mkdtemp " + templ);
    path_ = templ;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A loopback TCP port nobody listens on right now: the kernel's pick.
inline std::uint16_t free_loopback_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail_errno("socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
  const int err = errno;
  ::close(fd);
  errno = err;
  if (!ok) fail_errno("bind 127.0.0.1:0");
  return ntohs(a.sin_port);
}

// The user a PostgreSQL server runs as when the tests run as root.
struct ServerUser {
  uid_t uid;
  gid_t gid;
};
inline std::optional<ServerUser> postgres_user_if_root() {
  if (::geteuid() != 0) return std::nullopt;
  const passwd* pw = ::getpwnam("postgres");
  if (!pw) fail("running as root, and there is no `postgres` user to run PostgreSQL as (scripts/setup.sh installs it)");
  return ServerUser{pw->pw_uid, pw->pw_gid};
}

// A child process with its stdout and stderr in `log`, its stdin /dev/null,
// in a process group of its own, started through setpriv (see the header
// comment). The destructor kills the group and reaps the child if it is
// still running.
class ChildProcess {
 public:
  ChildProcess(std::vector<std::string> args, const std::string& log, bool as_postgres) : log_(log) {
    std::vector<std::string> argv{GREEN_TEST_SETPRIV, "--pdeathsig", "KILL"};
    if (as_postgres && postgres_user_if_root())
      argv.insert(argv.end(), {"--reuid", "postgres", "--regid", "postgres", "--init-groups"});
    argv.push_back("--");
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> cargv;
    for (auto& a : argv) cargv.push_back(a.data());
    cargv.push_back(nullptr);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    // Its own group (the whole server is killed at once), no signal blocked
    // and default dispositions, whatever the test process has set.
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int sig : {SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGHUP, SIGCHLD, SIGUSR1, SIGUSR2}) sigaddset(&defaults, sig);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    const int r = ::posix_spawn(&pid_, cargv[0], &fa, &attr, cargv.data(), environ);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    if (r != 0) {
      errno = r;
      fail_errno("posix_spawn " + args.front());
    }
    pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess() {
    if (pid_ > 0) {
      ::kill(-pid_, SIGKILL);
      reap(Clock::now() + 10s);
    }
    if (pidfd_ >= 0) ::close(pidfd_);
  }

  // Waits at most `limit` for the child to exit: its wait status, or nullopt
  // while it runs.
  std::optional<int> wait_exit(Clock::duration limit) {
    const auto deadline = Clock::now() + limit;
    for (;;) {
      if (reap_now()) return status_;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
      if (left <= 0) return std::nullopt;
      if (pidfd_ >= 0) {
        pollfd p{pidfd_, POLLIN, 0};
        ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000)));
      } else {
        ::poll(nullptr, 0, 10);  // no pidfd (a kernel before 5.3): look again shortly
      }
    }
  }

  // Asks the server to stop with `sig` (to the whole group), waits up to
  // `grace`, then kills what is left.
  void stop(int sig, Clock::duration grace) {
    if (pid_ <= 0) return;  // already reaped (and kill(-1) would signal everything)
    ::kill(pid_, sig);
    if (!wait_exit(grace) && pid_ > 0) {
      ::kill(-pid_, SIGKILL);
      reap(Clock::now() + 10s);
    }
  }

  std::string log() const { return tail_of(log_); }
  std::string describe_exit() const {
    if (!status_) return "still running";
    if (WIFEXITED(*status_)) return "exited with code " + std::to_string(WEXITSTATUS(*status_));
    return "died of signal " + std::to_string(WTERMSIG(*status_));
  }

 private:
  bool reap_now() {
    if (pid_ <= 0) return status_.has_value();
    int st = 0;
    const pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == pid_) {
      status_ = st;
      pid_ = -1;
      return true;
    }
    return false;
  }
  void reap(Clock::time_point deadline) {
    while (!reap_now() && Clock::now() < deadline) wait_exit(deadline - Clock::now());
  }

  std::string log_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  std::optional<int> status_;
};

// Starts a server (start(port) returns the child) until it answers
// ready(port), on a fresh port each try: a port taken by someone else between
// the pick and the bind makes the child exit, and the next try picks again.
template <class Start, class Ready>
std::pair<std::unique_ptr<ChildProcess>, std::uint16_t> start_on_free_port(const std::string& what, Start start,
                                                                           Ready ready) {
  std::string failures;
  for (int attempt = 0; attempt < 3; ++attempt) {
    const std::uint16_t port = free_loopback_port();
    std::unique_ptr<ChildProcess> child = start(port);
    const auto deadline = Clock::now() + kStartLimit;
    while (Clock::now() < deadline) {
      if (ready(port)) return {std::move(child), port};
      // Paces the probes; returns at once if the server died.
      if (child->wait_exit(20ms)) break;
    }
    failures += "\n--- try " + std::to_string(attempt + 1) + " on port " + std::to_string(port) + ": " +
                child->describe_exit() + "; its log:\n" + child->log();
    if (!child->wait_exit(0s)) break;  // running but never ready: a retry will not help
  }
  fail(what + " did not start" + failures);
}

}  // namespace servers_detail

// PostgreSQL 15 on 127.0.0.1:port(), superuser `green`, trust authentication,
// database `postgres`; 150 connections at most; no fsync (nothing here must
// survive a crash). The destructor asks for a fast shutdown, which also ends
// backends still running a query a test abandoned.
class PostgresServer {
 public:
  PostgresServer() : dir_("pg") {
    using namespace servers_detail;
    if (const auto user = postgres_user_if_root()) {
      if (::chown(dir_.path().c_str(), user->uid, user->gid) != 0) fail_errno("chown " + dir_.path());
    }
    const std::string data = dir_.path() + "/data";
    {
      ChildProcess initdb({GREEN_TEST_INITDB, "-D", data, "-U", "green", "--auth=trust", "-E", "UTF8", "--locale=C",
                           "--no-sync", "--no-instructions"},
                          dir_.path() + "/initdb.log", true);
      const auto st = initdb.wait_exit(kStartLimit);
      if (!st || !WIFEXITED(*st) || WEXITSTATUS(*st) != 0)
        fail("initdb failed (" + initdb.describe_exit() + "):\n" + initdb.log());
    }
    auto [child, port] = start_on_free_port(
        "PostgreSQL",
        [&](std::uint16_t p) {
          return std::make_unique<ChildProcess>(
              std::vector<std::string>{GREEN_TEST_POSTGRES, "-D", data, "-p", std::to_string(p), "-k", dir_.path(),
                                       "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=150", "-c",
                                       "shared_buffers=16MB", "-c", "fsync=off", "-c", "synchronous_commit=off",
                                       "-c", "full_page_writes=off", "-c", "autovacuum=off"},
              dir_.path() + "/postgres.log", true);
        },
        [&](std::uint16_t p) { return PQping(conninfo_for(p).c_str()) == PQPING_OK; });
    server_ = std::move(child);
    port_ = port;
  }
  ~PostgresServer() { server_->stop(SIGINT, std::chrono::seconds(30)); }
  PostgresServer(const PostgresServer&) = delete;
  PostgresServer& operator=(const PostgresServer&) = delete;

  std::uint16_t port() const { return port_; }
  // A libpq connection string: numeric address (no name lookup), no TLS or
  // GSSAPI negotiation (nothing to negotiate on loopback).
  std::string conninfo() const { return conninfo_for(port_); }
  std::string log() const { return server_->log(); }

 private:
  static std::string conninfo_for(std::uint16_t port) {
    return "hostaddr=127.0.0.1 port=" + std::to_string(port) +
           " user=green dbname=postgres sslmode=disable gssencmode=disable connect_timeout=30";
  }

  servers_detail::TempDir dir_;
  std::unique_ptr<servers_detail::ChildProcess> server_;
  std::uint16_t port_ = 0;
};

// Redis on 127.0.0.1:port(), without persistence, its files in a private
// temporary directory.
class RedisServer {
 public:
  RedisServer() : dir_("redis") {
    using namespace servers_detail;
    auto [child, port] = start_on_free_port(
        "Redis",
        [&](std::uint16_t p) {
          const std::string conf = dir_.path() + "/redis.conf";
          std::ofstream out(conf);
          out << "bind 127.0.0.1\nport " << p << "\ndir " << dir_.path()
              << "\nsave \"\"\nappendonly no\ndaemonize no\nlogfile \"\"\nalways-show-logo no\n";
          out.close();
          if (!out) fail("cannot write " + conf);
          return std::make_unique<ChildProcess>(std::vector<std::string>{GREEN_TEST_REDIS_SERVER, conf},
                                                dir_.path() + "/redis.log", false);
        },
        [](std::uint16_t p) { return ping(p); });
    server_ = std::move(child);
    port_ = port;
  }
  ~RedisServer() { server_->stop(SIGTERM, std::chrono::seconds(30)); }
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  std::uint16_t port() const { return port_; }
  std::string log() const { return server_->log(); }

 private:
  static bool ping(std::uint16_t port) {
    redisContext* c = redisConnect("127.0.0.1", port);
    bool pong = false;
    if (c && !c->err) {
      auto* r = static_cast<redisReply*>(redisCommand(c, "PING"));
      pong = r && r->type == REDIS_REPLY_STATUS && std::string(r->str, r->len) == "PONG";
      if (r) freeReplyObject(r);
    }
    if (c) redisFree(c);
    return pong;
  }

  servers_detail::TempDir dir_;
  std::unique_ptr<servers_detail::ChildProcess> server_;
  std::uint16_t port_ = 0;
};

// An HTTP/1.1 server on 127.0.0.1 in the calling green thread's runtime:
// GET /N answers body(N) after `delay`, with Content-Length and
// Connection: close. It counts the requests it holds at once (from the end
// of the request's head until just before its response goes out, so a
// client's slot is freed only after its request was counted out: the peak
// never exceeds the client's bound).
//
// The first requests also wait at a gate until `gate` of them are held at
// once (or 20 s passed: gate_timed_out()), then the gate stays open. A
// client that keeps `gate` requests in flight therefore shows a peak of
// exactly `gate` however slowly its first connections come (a loaded
// machine, a sanitizer); one that manages fewer leaves the gate shut until
// its deadline, and the peak shows the shortfall.
class SlowHttpServer {
 public:
  SlowHttpServer(std::chrono::milliseconds delay, int gate)
      : delay_(delay),
        gate_(gate),
        server_(green::Address::parse("127.0.0.1:0"),
                [this](green::Socket& sock, const green::Address&) { serve(sock); }) {
    server_.start();
  }
  ~SlowHttpServer() { server_.stop(std::chrono::seconds(1)); }

  static std::string body(int n) {
    return std::string(static_cast<std::size_t>(1000 + n), static_cast<char>('a' + n % 26));
  }

  std::string url(int n) const {
    return "http://127.0.0.1:" + std::to_string(server_.address().port()) + "/" + std::to_string(n);
  }
  int peak() const { return peak_.load(); }
  int requests() const { return requests_.load(); }
  bool gate_timed_out() const { return gate_timed_out_.load(); }

 private:
  void serve(green::Socket& sock) {
    green::Stream in(sock);
    const auto request = in.read_line(8192);
    if (!request) return;
    while (auto h = in.read_line(8192)) {
      if (*h == "\r\n" || *h == "\n") break;
    }
    int n = 0;
    std::sscanf(request->c_str(), "GET /%d", &n);
    requests_.fetch_add(1);
    const int now = active_.fetch_add(1) + 1;
    for (int seen = peak_.load(); now > seen && !peak_.compare_exchange_weak(seen, now);) {
    }
    if (now >= gate_) full_.set();
    if (!full_.wait(std::chrono::seconds(20))) {
      gate_timed_out_.store(true);
      full_.set();
    }
    green::sleep(delay_);
    const std::string b = body(n);
    const std::string response = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(b.size()) +
                                 "\r\nConnection: close\r\n\r\n" + b;
    active_.fetch_sub(1);
    sock.send_all(response);
  }

  const std::chrono::milliseconds delay_;
  const int gate_;
  green::Event full_;
  std::atomic<int> active_{0}, peak_{0}, requests_{0};
  std::atomic<bool> gate_timed_out_{false};
  green::StreamServer server_;  // last: stopped (its handlers ended) before the members they use go
};

}  // namespace green::testing
