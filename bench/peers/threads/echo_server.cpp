// threads_echo_server — the plain-threads baseline of the echo benchmark
// (bench/echo_bench.sh): one OS thread per connection, blocking calls only.
//
// The main thread accepts; each connection gets its own std::thread that
// loops on a blocking recv() and sends back what it got (TCP_NODELAY, like
// the other servers in the benchmark), until the client closes or the
// connection fails. No green threads, no epoll on the data path: what a
// server costs when every connection holds a kernel thread.
//
// SIGINT or SIGTERM stops it cleanly: the signals are blocked in every
// thread and read from a signalfd that the accept loop polls beside the
// listening socket; on a signal it stops accepting, shuts down every open
// connection (which ends that thread's blocking recv) and waits for the
// connection threads before it exits 0.
//
//   threads_echo_server [--host ADDR] [--port N]
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <set>
#include <string>
#include <system_error>
#include <thread>

#include "cli.hpp"  // examples/cli.hpp: CLI11 and the flags green's programs share

namespace {

// The open connections, so that a stop can shut them down; the count of
// connection threads still running, so that a stop can wait for them.
class Connections {
 public:
  // False once stopping: the caller closes fd itself.
  bool add(int fd) {
    std::lock_guard lk(mtx_);
    if (stopping_) return false;
    fds_.insert(fd);
    ++threads_;
    return true;
  }
  // A connection thread that could not be started, or one that is done.
  void remove(int fd) {
    std::lock_guard lk(mtx_);
    fds_.erase(fd);  // before the close, so that stop() never touches a reused number
    ::close(fd);
    if (--threads_ == 0) cv_.notify_all();
  }
  void stop_and_wait() {
    std::unique_lock lk(mtx_);
    stopping_ = true;
    for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);  // ends each thread's blocking recv
    cv_.wait(lk, [this] { return threads_ == 0; });
  }

 private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::set<int> fds_;     // guarded by mtx_
  long threads_ = 0;      // guarded by mtx_
  bool stopping_ = false; // guarded by mtx_
};

void serve(int fd, Connections* conns) {
  char buf[16 * 1024];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // closed by the peer, reset, or shut down by a stop
    ssize_t sent = 0;
    while (sent < n) {
      const ssize_t k = ::send(fd, buf + sent, static_cast<std::size_t>(n - sent), MSG_NOSIGNAL);
      if (k < 0 && errno == EINTR) continue;
      if (k < 0) goto done;
      sent += k;
    }
  }
done:
  conns->remove(fd);
}

std::string to_string(const sockaddr_storage& ss) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (ss.ss_family == AF_INET6) {
    const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
    inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
    std::string out = "[";
    out += buf;
    out += "]:";
    out += std::to_string(ntohs(a->sin6_port));
    return out;
  }
  const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
  inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
  return std::string(buf) + ":" + std::to_string(ntohs(a->sin_port));
}

// A listening socket on host:port (non-blocking: accepted only after poll
// says so), or -1 after saying why.
int listen_on(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* res = nullptr;
  const int rc = getaddrinfo(host.empty() ? nullptr : host.c_str(), std::to_string(port).c_str(), &hints, &res);
  if (rc != 0) {
    std::fprintf(stderr, "threads_echo_server: %s: %s\n", host.c_str(), gai_strerror(rc));
    return -1;
  }
  int fd = -1, err = 0;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      err = errno;
      continue;
    }
    const int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 && ::listen(fd, SOMAXCONN) == 0) break;
    err = errno;
    ::close(fd);
    fd = -1;
  }
  freeaddrinfo(res);
  if (fd < 0) std::fprintf(stderr, "threads_echo_server: listen on %s:%d: %s\n", host.c_str(), port, std::strerror(err));
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "0.0.0.0";
  int port = 6000;
  green_cli::App app("threads_echo_server",
                     "Echoes every byte a client sends, one OS thread per connection (blocking\n"
                     "recv/send). Port 0 picks a free port; the port in use is printed.\n"
                     "SIGINT/SIGTERM stop the server.");
  app.add_option("--host", host, "address to listen on")->type_name("ADDR");
  green_cli::add_port(app, port);
  if (auto code = green_cli::parse(app, argc, argv)) return *code;

  // Blocked before any thread starts, so every connection thread inherits
  // the mask and the signals only ever arrive through the signalfd. Their
  // disposition goes back to the default first: a shell starts background
  // jobs with SIGINT ignored, and an ignored signal never reaches a signalfd.
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  const int sig_fd = signalfd(-1, &stop_signals, SFD_CLOEXEC);
  if (sig_fd < 0) {
    std::fprintf(stderr, "threads_echo_server: signalfd: %s\n", std::strerror(errno));
    return 1;
  }

  const int listen_fd = listen_on(host, port);
  if (listen_fd < 0) return 1;
  sockaddr_storage bound{};
  socklen_t bound_len = sizeof bound;
  getsockname(listen_fd, reinterpret_cast<sockaddr*>(&bound), &bound_len);
  std::printf("threads_echo_server: listening on %s (one thread per connection)\n", to_string(bound).c_str());
  std::fflush(stdout);

  // Never destroyed: a detached connection thread may still be on its way
  // out of remove() when the last one lets stop_and_wait() return.
  auto& conns = *new Connections;
  bool thread_error_said = false;
  for (;;) {
    pollfd pfds[2] = {{listen_fd, POLLIN, 0}, {sig_fd, POLLIN, 0}};
    if (::poll(pfds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "threads_echo_server: poll: %s\n", std::strerror(errno));
      break;
    }
    if (pfds[1].revents) break;  // SIGINT or SIGTERM
    if (!pfds[0].revents) continue;
    // Accepted sockets do not inherit O_NONBLOCK on Linux: they block.
    const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
        std::fprintf(stderr, "threads_echo_server: accept: %s\n", std::strerror(errno));
        ::poll(nullptr, 0, 10);  // let connections close before trying again
      }
      continue;  // EAGAIN, ECONNABORTED, EINTR, ...: the next one
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (!conns.add(fd)) {
      ::close(fd);
      break;
    }
    try {
      std::thread(serve, fd, &conns).detach();
    } catch (const std::system_error& e) {  // out of threads: this connection is refused
      if (!thread_error_said) std::fprintf(stderr, "threads_echo_server: no thread for a connection: %s\n", e.what());
      thread_error_said = true;
      conns.remove(fd);
    }
  }
  ::close(listen_fd);
  conns.stop_and_wait();
  ::close(sig_fd);
  return 0;
}
