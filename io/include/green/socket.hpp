// green/socket.hpp — sockets whose blocking calls suspend only the calling
// green thread (gevent.socket): TCP over IPv4 and IPv6, UDP, Unix domain.
//
//   auto sock = green::create_connection("localhost", 8080, 5s);
//   sock.send_all("hello\n");
//   char buf[4096];
//   std::size_t n = sock.recv(buf, sizeof buf);     // 0 at end of stream
//
// The fd is always non-blocking underneath. Each call tries the system call
// first and waits for readiness (green/fd.hpp) only on EAGAIN. A green thread
// whose socket is always ready yields to its worker's other green threads
// every 64 calls that did not have to wait, or sooner when they moved much
// data (every 256 KiB), so it cannot monopolise it.
//
// Timeouts. Every blocking call takes an optional timeout; without one, the
// socket's default timeout applies (set_timeout(); none by default, as in
// gevent). When it passes the call throws green::TimeoutError with
// scope_id() 0 (as Greenlet::get(timeout) does). Calls also honour
// green::Timeout scopes and kill. Every call that transfers data (or
// accepts, or connects) is an interruption point, also when its data is
// ready and it would not wait: a kill, or a Timeout that has fired, pending
// when the call starts is thrown before anything moves. A recv or send
// interrupted this way has transferred nothing; send_all may have sent part
// of its data.
//
// Errors are green::SystemError with errno, the operation and the address,
// e.g. "connect 127.0.0.1:9: Connection refused". A peer that resets the
// connection gives ECONNRESET / EPIPE as exceptions; SIGPIPE is never raised.
// recv() returning 0 means the peer closed its side (not an error).
//
// Ownership and threads. A Socket owns its fd (closed by close() or the
// destructor, through green::close_fd(), which wakes any green thread still
// waiting on it with EBADF) and is move-only. One green thread may read while
// another writes; two concurrent readers (or writers) of one socket are an
// error (green::Error). A Socket may be created on one worker and used on
// others. Outside a green thread the calls block the OS thread (poll(2)).
//
// A Socket is a green::StreamTransport (green/stream_transport.hpp), as a
// TlsSocket is: a Stream reads and writes either. Its recv() and send_all()
// are `final`, so calls on a Socket itself are direct, not virtual.
#pragma once

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "green/address.hpp"
#include "green/detail/fiber.hpp"
#include "green/stream_transport.hpp"

namespace green {

class Socket : public StreamTransport {
 public:
  Socket() = default;  // no fd (valid() is false)
  // A new socket: e.g. Socket(AF_INET6, SOCK_STREAM). Throws SystemError.
  Socket(int family, int type, int protocol = 0);
  // Takes ownership of fd and makes it non-blocking.
  static Socket adopt(int fd);
  static Socket tcp(int family = AF_INET) { return Socket(family, SOCK_STREAM); }
  static Socket udp(int family = AF_INET) { return Socket(family, SOCK_DGRAM); }

  Socket(Socket&& other) noexcept;
  Socket& operator=(Socket&& other) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  ~Socket() { close(); }

  bool valid() const noexcept { return fd() >= 0; }
  int fd() const noexcept { return fd_.load(std::memory_order_acquire); }

  // ---- set-up ------------------------------------------------------------
  void bind(const Address& addr);
  void listen(int backlog = 1024);
  // Connects, waiting at most `timeout` (TimeoutError) for the handshake.
  void connect(const Address& addr, MaybeTimeout timeout = std::nullopt);
  // The next connection and its peer's address.
  std::pair<Socket, Address> accept(MaybeTimeout timeout = std::nullopt);

  // ---- data ----------------------------------------------------------------
  // Receives up to n bytes; 0 at end of stream.
  std::size_t recv(void* buf, std::size_t n, MaybeTimeout timeout = std::nullopt) final;
  // Receives up to max_bytes as a string ("" at end of stream).
  std::string recv(std::size_t max_bytes, MaybeTimeout timeout = std::nullopt);
  // Sends some of data (at least one byte); returns how much.
  std::size_t send(const void* data, std::size_t n, MaybeTimeout timeout = std::nullopt);
  // Sends all of data, waiting as needed; the timeout covers the whole call.
  void send_all(std::string_view data, MaybeTimeout timeout = std::nullopt) final;
  void send_all(const void* data, std::size_t n, MaybeTimeout timeout = std::nullopt) {
    send_all(std::string_view(static_cast<const char*>(data), n), timeout);
  }
  // Datagrams.
  std::size_t send_to(std::string_view data, const Address& to, MaybeTimeout timeout = std::nullopt);
  std::pair<std::string, Address> recv_from(std::size_t max_bytes, MaybeTimeout timeout = std::nullopt);

  // shutdown(2): SHUT_RD, SHUT_WR or SHUT_RDWR.
  void shutdown(int how);
  // Closes the fd (idempotent); a green thread blocked on it throws EBADF.
  void close() noexcept;

  // ---- options and names --------------------------------------------------
  void set_nodelay(bool on);
  void set_reuseaddr(bool on);
  void set_reuseport(bool on);
  void set_keepalive(bool on);
  // Default timeout of the blocking calls (nullopt: wait as long as it takes).
  void set_timeout(MaybeTimeout timeout) noexcept { timeout_ = timeout; }
  MaybeTimeout timeout() const noexcept { return timeout_; }
  Address local_address() const;
  Address peer_address() const;

 private:
  explicit Socket(int fd) noexcept : fd_(fd) {}
  int checked_fd(const char* op) const;
  // checked_fd() for one transfer (recv, send, accept, connect...): a kill
  // or fired Timeout pending for the calling green thread is thrown first,
  // before any byte moves. Every I/O call is an interruption point, not only
  // one that has to wait: a killed green thread whose peer keeps up would
  // otherwise run on until its next yield.
  int transfer_fd(const char* op) const;
  detail::Deadline deadline_for(MaybeTimeout timeout) const noexcept;
  // Waits for readiness after EAGAIN; throws TimeoutError(0) past deadline.
  void wait(bool for_read, detail::Deadline deadline, const char* op);
  [[noreturn]] void fail(int err, const char* op) const;
  void set_flag(int level, int name, bool on, const char* what);

  std::atomic<int> fd_{-1};  // atomic: close() may race a blocked reader
  MaybeTimeout timeout_;
  std::atomic<unsigned> io_spent_{0};  // io_detail::spend_io_budget()'s, shared by a reader and a writer
};

// Resolves host (a name or a numeric address) for `port` off the workers
// (green::blocking(getaddrinfo)). type: SOCK_STREAM or SOCK_DGRAM. Throws
// green::Error naming the host when it cannot be resolved.
std::vector<Address> resolve(const std::string& host, std::uint16_t port, int type = SOCK_STREAM);

// Connects to host:port, trying every resolved address in turn (as Python's
// socket.create_connection does) within one overall timeout. Throws the
// last address's error if none accepts.
Socket create_connection(const std::string& host, std::uint16_t port, MaybeTimeout timeout = std::nullopt);

}  // namespace green
