// posix_echo_server — the echo benchmark's server written the way existing
// code is: socket/bind/listen/accept and a blocking recv/send loop per
// connection, the same loop as the plain-threads peer
// (bench/peers/threads/echo_server.cpp). The only green calls are the
// runtime, one spawn per connection and the stop on a signal; every blocking
// call is libc's, turned into a green-thread wait by green::monkey, which
// this program links (bench/echo_bench.sh's "posix" column, issue 14:
// at least 0.9x green's own echo_server).
//
// SIGINT or SIGTERM stops it: the signal's green thread shuts the listening
// socket down, which ends the blocking accept(); leaving the runtime then
// kills the connections' green threads, whose blocked recv() fails with EINTR
// and, retried, ECANCELED (green/monkey.hpp), so their loops end.
//
//   posix_echo_server [--host ADDR] [--port N] [--workers N]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

#include <green/green.hpp>
#include <green/signal.hpp>
#include <green/monkey.hpp>

#include "cli.hpp"  // examples/cli.hpp

namespace {

void serve(int fd) {
  char buf[16 * 1024];
  for (;;) {
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    ssize_t sent = 0;
    while (sent < n) {
      const ssize_t k = ::send(fd, buf + sent, static_cast<std::size_t>(n - sent), MSG_NOSIGNAL);
      if (k < 0 && errno == EINTR) continue;
      if (k < 0) goto done;
      sent += k;
    }
  }
done:
  ::close(fd);
}

// A blocking listening socket on an IPv4 host:port, or -1 after saying why.
int listen_on(const std::string& host, int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    std::fprintf(stderr, "posix_echo_server: --host %s: not an IPv4 address\n", host.c_str());
    return -1;
  }
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    std::fprintf(stderr, "posix_echo_server: socket: %s\n", std::strerror(errno));
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd, SOMAXCONN) != 0) {
    std::fprintf(stderr, "posix_echo_server: listen on %s:%d: %s\n", host.c_str(), port, std::strerror(errno));
    ::close(fd);
    return -1;
  }
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  std::string host = "0.0.0.0";
  int port = 6000;
  unsigned workers = 0;
  green_cli::App app("posix_echo_server",
                     "Echoes every byte a client sends with blocking POSIX calls in green threads\n"
                     "(green::monkey). Port 0 picks a free port; the port in use is printed.\n"
                     "SIGINT/SIGTERM stop the server.");
  app.add_option("--host", host, "IPv4 address to listen on")->type_name("ADDR");
  green_cli::add_port(app, port);
  green_cli::add_workers(app, workers);
  if (auto code = green_cli::parse(app, argc, argv)) return *code;
  if (!green::monkey::active()) {
    std::fprintf(stderr, "posix_echo_server: the hooks are not live (green/monkey.hpp): refusing to run\n");
    return 1;
  }
  const int listen_fd = listen_on(host, port);
  if (listen_fd < 0) return 1;
  sockaddr_in bound{};
  socklen_t bound_len = sizeof bound;
  ::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&bound), &bound_len);
  try {
    green::Runtime rt({.workers = workers});
    rt.run([&] {
      auto stop = [&] { ::shutdown(listen_fd, SHUT_RDWR); };
      green::SignalHandler on_int(SIGINT, stop);
      green::SignalHandler on_term(SIGTERM, stop);
      std::printf("posix_echo_server: listening on %s:%u with %u workers\n", host.c_str(), ntohs(bound.sin_port),
                  rt.workers());
      std::fflush(stdout);
      for (;;) {
        const int fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) {
          if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE || errno == ENFILE) {
            if (errno == EMFILE || errno == ENFILE) green::sleep(std::chrono::milliseconds(10));
            continue;
          }
          break;  // EINVAL once shut down by a signal
        }
        const int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        green::spawn([fd] { serve(fd); });
      }
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "posix_echo_server: %s\n", e.what());
    ::close(listen_fd);
    return 1;
  }
  ::close(listen_fd);
  return 0;
}
