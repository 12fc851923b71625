// green/server.hpp — StreamServer and DatagramServer (gevent.server), on
// every worker.
//
//   green::StreamServer server(green::Address::parse("0.0.0.0:6000"),
//       [](green::Socket& sock, const green::Address& peer) {
//         green::Stream stream(sock);
//         for (auto& line : stream.lines()) sock.send_all(line);
//       });
//   server.serve_forever();          // in a green thread; stop() ends it
//
// StreamServer listens with one SO_REUSEPORT socket per worker (the kernel
// spreads incoming connections over them) and accepts on each in a green
// thread pinned to that worker; every connection's handler runs in its own
// green thread spawned there, with the connected Socket (closed when the
// handler returns) and the peer's address. With max_connections, at most
// that many handlers run at once (a Pool): further connections wait,
// accepted but unserved, for a slot.
//
// A port in use is refused. The listeners share their port with each other
// only: start() first checks that nobody else listens on it and throws
// SystemError(EADDRINUSE) if somebody does, unless
// StreamServerOptions::share_port asks to join them (a prefork parent's
// children, say). The check and the bind are two steps: a process that
// binds the port with SO_REUSEPORT in between is not detected.
//
// Helper green threads die with their connection. Each handler runs inside
// a green::Nursery (green/nursery.hpp): whatever green threads the handler
// spawns (a writer for the other direction of the connection, typically,
// holding references to the Socket and the handler's locals) are killed
// and waited for when the handler ends, however it ends, before the socket
// is closed. They cannot use a closed socket or a dead stack frame. A
// helper that must outlive its connection is spawned `detached` and must
// not use the connection's objects.
//
// Errors. An exception from a handler is reported on stderr with the peer's
// address and closes only that connection; a peer that resets the
// connection or stops reading (ECONNRESET, EPIPE, ETIMEDOUT) is normal on
// the Internet: it is counted (peer_errors()), not reported. When accept()
// fails for lack of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM)
// the acceptor backs off, 5 ms doubling to 1 s, and the failure is reported
// at most once a second per server, with the count since the last report.
//
// Life cycle: start() binds and begins accepting (port 0 picks a free port:
// read it back with address()); serve_forever() is start() plus waiting
// until stop(); stop(grace) stops accepting at once, waits up to `grace` for
// running handlers to finish, then kills the rest and waits for them. The
// destructor stops with no grace. start(), serve_forever() and stop() must
// be called from green threads of one runtime; stop() may come from any of
// them (a signal handler, typically).
//
// TLS. Given a server TlsContext (green/tls_context.hpp), a StreamServer
// speaks TLS on every connection and its handler gets a TlsSocket instead
// of the Socket:
//
//   auto ctx = green::TlsContext::server({.cert_chain_file = "chain.pem", .key_file = "key.pem"});
//   green::StreamServer server(green::Address::parse("0.0.0.0:6443"), ctx,
//       [](green::TlsSocket& conn, const green::Address& peer) {
//         green::Stream stream(conn);
//         for (auto& line : stream.lines()) conn.send_all(line);
//       });
//
// The acceptors only accept: each handshake runs in its connection's own
// green thread, before the handler, so a slow or silent client holds up
// nobody else. A handshake that fails (a client speaking plain text or
// another protocol, one without the certificate the context requires, one
// whose certificate does not verify, one that does not finish within
// StreamServerOptions::tls_handshake_timeout, one that resets) closes that
// connection and is counted (tls_handshake_failures()), not reported on
// stderr: on the Internet it is normal. The handshake holds a
// max_connections slot while it runs, which is why it has a time limit.
// When the handler returns, the connection is closed with close_notify
// (TlsSocket::close()).
//
// DatagramServer binds one UDP socket and calls handler(data, peer, server)
// for every datagram, each in its own green thread; server.send_to() replies.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

#include "green/address.hpp"
#include "green/detail/server_lifecycle.hpp"
#include "green/event.hpp"
#include "green/greenlet.hpp"
#include "green/lock.hpp"
#include "green/pool.hpp"
#include "green/socket.hpp"
#include "green/tls_context.hpp"
#include "green/tls_socket.hpp"

namespace green {

struct StreamServerOptions {
  unsigned listeners = 0;           // 0: one per worker of the runtime
  std::size_t max_connections = 0;  // handlers at once; 0: no limit
  int backlog = 1024;
  bool nodelay = true;              // TCP_NODELAY on accepted connections
  bool share_port = false;          // join other processes' listeners on the port
  // TLS servers: the time a client has to complete its handshake.
  std::chrono::steady_clock::duration tls_handshake_timeout = std::chrono::seconds(10);
};

class StreamServer {
 public:
  using Handler = std::function<void(Socket&, const Address&)>;
  using TlsHandler = std::function<void(TlsSocket&, const Address&)>;

  StreamServer(Address address, Handler handler, StreamServerOptions options = {});
  // A TLS server (see the header comment). Throws green::Error if `tls` is
  // not a server context.
  StreamServer(Address address, TlsContext tls, TlsHandler handler, StreamServerOptions options = {});
  StreamServer(const StreamServer&) = delete;
  StreamServer& operator=(const StreamServer&) = delete;
  ~StreamServer();

  // Binds and starts accepting. Throws SystemError (e.g. address in use),
  // Error if already started.
  void start();
  // start() (unless started) and wait until stop().
  void serve_forever();
  // See the header comment. Returns once every handler has ended.
  void stop(std::chrono::steady_clock::duration grace = std::chrono::seconds(1));

  // True from start() until stop() has finished.
  bool started() const noexcept { return life_.started(); }
  // The bound address (with the chosen port after a port-0 start()).
  Address address() const { return address_; }
  // Handlers running now.
  std::size_t connections() const { return handlers_->size(); }
  // Connections whose handler ended because the peer reset it or stopped
  // reading (not reported on stderr).
  std::uint64_t peer_errors() const noexcept { return peer_errors_.load(std::memory_order_relaxed); }
  // TLS servers: connections closed because their handshake failed.
  std::uint64_t tls_handshake_failures() const noexcept {
    return tls_handshake_failures_.load(std::memory_order_relaxed);
  }

 private:
  void accept_loop(Socket& listener);
  void serve(Socket& sock, const Address& peer);
  void serve_tls(Socket& sock, const Address& peer);
  // Runs the handler's call `call` the way every connection's handler runs.
  template <class Call>
  void run_handler(const Address& peer, Call&& call);
  void check_port_free() const;
  void report_accept_failure(int err);

  Address address_;
  Handler handler_;
  TlsContext tls_;  // valid() for a TLS server, whose handler is tls_handler_
  TlsHandler tls_handler_;
  StreamServerOptions options_;
  std::unique_ptr<Group> handlers_;
  std::vector<Socket> listeners_;
  std::vector<Greenlet<void>> acceptors_;
  detail::ServerLifecycle life_{"StreamServer"};
  // A stop() from another green thread while start() still spawns the
  // acceptors waits for it: acceptors_ is start()'s until start_done_.
  std::atomic<bool> starting_{false};
  Event start_done_;
  std::atomic<std::uint64_t> peer_errors_{0};
  std::atomic<std::uint64_t> tls_handshake_failures_{0};
  // Accept failures since the last report, and when that report was
  // (steady_clock ticks): one report a second, whichever acceptor makes it.
  std::atomic<std::uint64_t> accept_failures_{0};
  std::atomic<std::int64_t> accept_reported_at_{0};
};

class DatagramServer {
 public:
  using Handler = std::function<void(std::string_view data, const Address& peer, DatagramServer& server)>;

  DatagramServer(Address address, Handler handler, std::size_t max_datagram = 65536);
  DatagramServer(const DatagramServer&) = delete;
  DatagramServer& operator=(const DatagramServer&) = delete;
  ~DatagramServer();

  void start();
  void serve_forever();
  void stop(std::chrono::steady_clock::duration grace = std::chrono::seconds(1));
  bool started() const noexcept { return life_.started(); }
  Address address() const { return address_; }
  // Sends a datagram from the server's socket. Handlers may call it at the
  // same time: a lock lets one of them wait for the socket at a time.
  void send_to(std::string_view data, const Address& peer) {
    std::lock_guard g(send_lock_);
    socket_.send_to(data, peer);
  }

 private:
  Address address_;
  Handler handler_;
  std::size_t max_datagram_;
  Socket socket_;
  Group handlers_;
  Greenlet<void> receiver_;
  Lock send_lock_;
  detail::ServerLifecycle life_{"DatagramServer"};
};

}  // namespace green
