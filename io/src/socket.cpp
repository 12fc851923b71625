// socket.cpp — Socket: system call first, readiness wait on EAGAIN.
#include "green/socket.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "fd_table.hpp"
#include "io_budget.hpp"
#include "green/current.hpp"
#include "green/detail/park.hpp"
#include "green/errors.hpp"
#include "green/fd.hpp"
#include "green/offload.hpp"

namespace green {

namespace {
void make_nonblocking(int fd) {
  const int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) throw SystemError(errno, "fcntl(O_NONBLOCK)");
}
}  // namespace

Socket::Socket(int family, int type, int protocol) {
  const int fd = ::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (fd < 0) throw SystemError(errno, "socket");
  fd_.store(fd, std::memory_order_release);
}

Socket Socket::adopt(int fd) {
  if (fd < 0) throw Error("green::Socket::adopt: negative fd");
  make_nonblocking(fd);
  return Socket(fd);
}

Socket::Socket(Socket&& other) noexcept
    : fd_(other.fd_.exchange(-1, std::memory_order_acq_rel)), timeout_(other.timeout_) {}


Socket& Socket::operator=(Socket&& other) noexcept {
  if (this != &other) {
    close();
    fd_.store(other.fd_.exchange(-1, std::memory_order_acq_rel), std::memory_order_release);
    timeout_ = other.timeout_;
    io_detail::reset_io_budget(io_spent_);
  }
  return *this;
}

void Socket::close() noexcept {
  // exchange: of two racing close() calls only one closes the fd.
  close_fd(fd_.exchange(-1, std::memory_order_acq_rel));
}

int Socket::checked_fd(const char* op) const {
  const int fd = this->fd();
  if (fd < 0) throw SystemError(EBADF, op);
  return fd;
}

int Socket::transfer_fd(const char* op) const {
  detail::throw_if_interrupted();
  return checked_fd(op);
}

detail::Deadline Socket::deadline_for(MaybeTimeout timeout) const noexcept {
  if (!timeout) timeout = timeout_;
  return timeout ? detail::deadline_after(*timeout) : detail::kNoDeadline;
}

void Socket::wait(bool for_read, detail::Deadline deadline, const char* op) {
  io_detail::reset_io_budget(io_spent_);
  const int fd = checked_fd(op);
  const auto dir = for_read ? io_detail::Direction::read : io_detail::Direction::write;
  if (!io_detail::wait_fd(fd, dir, deadline, op)) throw TimeoutError(0);
}

void Socket::fail(int err, const char* op) const {
  std::string what = op;
  const int fd = this->fd();
  if (fd >= 0) {
    Address peer;
    socklen_t len = Address::capacity();
    if (getpeername(fd, peer.data(), &len) == 0) {
      peer.set_size(len);
      what += " " + peer.to_string();
    }
  }
  throw SystemError(err, what);
}

void Socket::bind(const Address& addr) {
  if (::bind(checked_fd("bind"), addr.data(), addr.size()) < 0)
    throw SystemError(errno, "bind " + addr.to_string());
}

void Socket::listen(int backlog) {
  if (::listen(checked_fd("listen"), backlog) < 0) throw SystemError(errno, "listen");
}

void Socket::connect(const Address& addr, MaybeTimeout timeout) {
  const auto deadline = deadline_for(timeout);
  const int fd = transfer_fd("connect");
  int r;
  do {
    r = ::connect(fd, addr.data(), addr.size());
  } while (r < 0 && errno == EINTR);
  if (r == 0) return;
  if (errno != EINPROGRESS && errno != EAGAIN) throw SystemError(errno, "connect " + addr.to_string());
  if (!io_detail::wait_fd(fd, io_detail::Direction::write, deadline, "connect"))
    throw TimeoutError(0);
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
  if (err) throw SystemError(err, "connect " + addr.to_string());
}

std::pair<Socket, Address> Socket::accept(MaybeTimeout timeout) {
  const auto deadline = deadline_for(timeout);
  for (;;) {
    Address peer;
    socklen_t len = Address::capacity();
    const int fd = ::accept4(transfer_fd("accept"), peer.data(), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      peer.set_size(len);
      io_detail::spend_io_budget(io_spent_, 0);
      return {Socket(fd), peer};
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      wait(true, deadline, "accept");
    } else if (errno == EINTR || errno == ECONNABORTED) {
      continue;
    } else {
      throw SystemError(errno, "accept");
    }
  }
}

std::size_t Socket::recv(void* buf, std::size_t n, MaybeTimeout timeout) {
  detail::Deadline deadline{};
  bool have_deadline = false;
  for (;;) {
    const ssize_t r = ::recv(transfer_fd("recv"), buf, n, 0);
    if (r >= 0) {
      io_detail::spend_io_budget(io_spent_, static_cast<std::size_t>(r));
      return static_cast<std::size_t>(r);
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) fail(errno, "recv");
    if (!have_deadline) {  // computed only when a wait is needed
      deadline = deadline_for(timeout);
      have_deadline = true;
    }
    wait(true, deadline, "recv");
  }
}

std::string Socket::recv(std::size_t max_bytes, MaybeTimeout timeout) {
  std::string out(max_bytes, '\0');
  out.resize(recv(out.data(), max_bytes, timeout));
  return out;
}

std::size_t Socket::send(const void* data, std::size_t n, MaybeTimeout timeout) {
  detail::Deadline deadline{};
  bool have_deadline = false;
  for (;;) {
    const ssize_t r = ::send(transfer_fd("send"), data, n, MSG_NOSIGNAL);
    if (r >= 0) {
      io_detail::spend_io_budget(io_spent_, static_cast<std::size_t>(r));
      return static_cast<std::size_t>(r);
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) fail(errno, "send");
    if (!have_deadline) {
      deadline = deadline_for(timeout);
      have_deadline = true;
    }
    wait(false, deadline, "send");
  }
}

void Socket::send_all(std::string_view data, MaybeTimeout timeout) {
  const auto deadline = deadline_for(timeout);
  while (!data.empty()) {
    const ssize_t r = ::send(transfer_fd("send"), data.data(), data.size(), MSG_NOSIGNAL);
    if (r >= 0) {
      data.remove_prefix(static_cast<std::size_t>(r));
      io_detail::spend_io_budget(io_spent_, static_cast<std::size_t>(r));
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) fail(errno, "send");
    wait(false, deadline, "send");
  }
}

std::size_t Socket::send_to(std::string_view data, const Address& to, MaybeTimeout timeout) {
  detail::Deadline deadline{};
  bool have_deadline = false;
  for (;;) {
    const ssize_t r = ::sendto(transfer_fd("sendto"), data.data(), data.size(), MSG_NOSIGNAL,
                               to.data(), to.size());
    if (r >= 0) {
      io_detail::spend_io_budget(io_spent_, static_cast<std::size_t>(r));
      return static_cast<std::size_t>(r);
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) throw SystemError(errno, "sendto " + to.to_string());
    if (!have_deadline) {
      deadline = deadline_for(timeout);
      have_deadline = true;
    }
    wait(false, deadline, "sendto");
  }
}

std::pair<std::string, Address> Socket::recv_from(std::size_t max_bytes, MaybeTimeout timeout) {
  detail::Deadline deadline{};
  bool have_deadline = false;
  std::string buf(max_bytes, '\0');
  for (;;) {
    Address from;
    socklen_t len = Address::capacity();
    const ssize_t r = ::recvfrom(transfer_fd("recvfrom"), buf.data(), buf.size(), 0, from.data(), &len);
    if (r >= 0) {
      from.set_size(len);
      buf.resize(static_cast<std::size_t>(r));
      io_detail::spend_io_budget(io_spent_, buf.size());
      return {std::move(buf), from};
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) throw SystemError(errno, "recvfrom");
    if (!have_deadline) {
      deadline = deadline_for(timeout);
      have_deadline = true;
    }
    wait(true, deadline, "recvfrom");
  }
}

void Socket::shutdown(int how) {
  if (::shutdown(checked_fd("shutdown"), how) < 0 && errno != ENOTCONN) throw SystemError(errno, "shutdown");
}

void Socket::set_flag(int level, int name, bool on, const char* what) {
  const int v = on ? 1 : 0;
  if (setsockopt(checked_fd(what), level, name, &v, sizeof v) < 0) throw SystemError(errno, what);
}

void Socket::set_nodelay(bool on) { set_flag(IPPROTO_TCP, TCP_NODELAY, on, "setsockopt(TCP_NODELAY)"); }
void Socket::set_reuseaddr(bool on) { set_flag(SOL_SOCKET, SO_REUSEADDR, on, "setsockopt(SO_REUSEADDR)"); }
void Socket::set_reuseport(bool on) { set_flag(SOL_SOCKET, SO_REUSEPORT, on, "setsockopt(SO_REUSEPORT)"); }
void Socket::set_keepalive(bool on) { set_flag(SOL_SOCKET, SO_KEEPALIVE, on, "setsockopt(SO_KEEPALIVE)"); }

namespace {
// getsockname(2) or getpeername(2) into an Address.
Address name_of(int fd, int (*get)(int, sockaddr*, socklen_t*), const char* op) {
  Address a;
  socklen_t len = Address::capacity();
  if (get(fd, a.data(), &len) < 0) throw SystemError(errno, op);
  a.set_size(len);
  return a;
}
}  // namespace

Address Socket::local_address() const {
  return name_of(checked_fd("getsockname"), &::getsockname, "getsockname");
}

Address Socket::peer_address() const {
  return name_of(checked_fd("getpeername"), &::getpeername, "getpeername");
}

// ---------------------------------------------------------------------------

std::vector<Address> resolve(const std::string& host, std::uint16_t port, int type) {
  auto lookup = [host, port, type] {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = type;
    hints.ai_flags = AI_ADDRCONFIG;
    addrinfo* res = nullptr;
    const std::string service = std::to_string(port);
    const int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res);
    if (rc != 0) throw Error("green::resolve " + host + ": " + gai_strerror(rc));
    std::vector<Address> out;
    for (addrinfo* ai = res; ai; ai = ai->ai_next) out.emplace_back(ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(res);
    return out;
  };
  // A numeric address needs no lookup (and no thread hop).
  try {
    return {Address::ip(host, port)};
  } catch (const Error&) {
  }
  return in_green_thread() ? blocking(lookup) : lookup();
}

Socket create_connection(const std::string& host, std::uint16_t port, MaybeTimeout timeout) {
  const auto deadline = timeout ? detail::deadline_after(*timeout) : detail::kNoDeadline;
  const std::vector<Address> addrs = resolve(host, port, SOCK_STREAM);
  if (addrs.empty()) throw Error("green::create_connection: no address for " + host);
  std::exception_ptr last;
  for (const Address& a : addrs) {
    try {
      Socket s(a.family(), SOCK_STREAM);
      MaybeTimeout left;
      if (deadline != detail::kNoDeadline) left = deadline - detail::Clock::now();
      s.connect(a, left);
      return s;
    } catch (const SystemError&) {
      last = std::current_exception();
    }
  }
  std::rethrow_exception(last);
}

}  // namespace green
