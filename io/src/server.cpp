// server.cpp — StreamServer and DatagramServer.
//
// Stopping: stop() marks the server stopping, shuts the listening sockets down (no new
// connection from that moment) and kills the acceptors (wherever they
// wait), then closes the listening sockets, joins the handlers for the
// grace period and kills the rest. No fd is closed while a green thread may
// still use it.
#include "green/server.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>

#include "green/current.hpp"
#include "green/errors.hpp"
#include "green/nursery.hpp"

namespace green {

namespace {
// The handlers' group: a Pool when their number is bounded.
std::unique_ptr<Group> handler_group(std::size_t max_connections) {
  if (max_connections > 0) return std::make_unique<Pool>(max_connections);
  return std::make_unique<Group>();
}
}  // namespace

StreamServer::StreamServer(Address address, Handler handler, StreamServerOptions options)
    : address_(address), handler_(std::move(handler)), options_(options),
      handlers_(handler_group(options.max_connections)) {
  if (!handler_) throw Error("green::StreamServer: empty handler");
}

StreamServer::StreamServer(Address address, TlsContext tls, TlsHandler handler, StreamServerOptions options)
    : address_(address), tls_(std::move(tls)), tls_handler_(std::move(handler)), options_(options),
      handlers_(handler_group(options.max_connections)) {
  if (!tls_handler_) throw Error("green::StreamServer: empty handler");
  if (!tls_.valid() || !tls_.is_server()) throw Error("green::StreamServer: TLS needs a server TlsContext");
}

StreamServer::~StreamServer() { life_.stop_at_destruction(*this); }

void StreamServer::start() {
  life_.check_startable();
  starting_.store(true);
  struct Done {
    Event& done;
    ~Done() { done.set(); }  // also when start() throws
  } done{start_done_};
  unsigned n = options_.listeners ? options_.listeners : detail::current_worker_count();
  const unsigned workers = detail::current_worker_count();
  if (address_.family() != AF_UNIX && !options_.share_port) check_port_free();
  for (unsigned i = 0; i < n; ++i) {
    Socket s(address_.family(), SOCK_STREAM);
    if (address_.family() != AF_UNIX) {
      s.set_reuseaddr(true);
      s.set_reuseport(true);
    }
    s.bind(address_);
    if (i == 0) address_ = s.local_address();  // the port chosen for port 0
    s.listen(options_.backlog);
    listeners_.push_back(std::move(s));
    if (address_.family() == AF_UNIX) break;  // a path can be bound once
  }
  life_.set_started();
  for (std::size_t i = 0; i < listeners_.size(); ++i) {
    Socket* listener = &listeners_[i];
    acceptors_.push_back(spawn({.name = "StreamServer.accept", .worker = int(i % workers), .pinned = true},
                               [this, listener] { accept_loop(*listener); }));
  }
}

// SO_REUSEPORT lets any socket of the same user join the port: a second
// server started by mistake would silently take half of the connections.
// A socket without SO_REUSEPORT cannot bind a port that somebody listens on
// (SO_REUSEADDR only lets it past connections in TIME_WAIT), so binding one
// and closing it again tells whether the port is free.
void StreamServer::check_port_free() const {
  if (address_.port() == 0) return;  // the kernel picks a free one
  Socket probe(address_.family(), SOCK_STREAM);
  probe.set_reuseaddr(true);
  probe.bind(address_);  // throws SystemError(EADDRINUSE) when taken
}

// Takes the errno, not the exception: at fd exhaustion nothing may need a
// descriptor, and under UBSan a virtual call not yet checked (what()) does:
// its vptr check probes memory through a pipe.
void StreamServer::report_accept_failure(int err) {
  using namespace std::chrono;
  const std::uint64_t failures = accept_failures_.fetch_add(1, std::memory_order_relaxed) + 1;
  const std::int64_t now = steady_clock::now().time_since_epoch().count();
  std::int64_t last = accept_reported_at_.load(std::memory_order_relaxed);
  const std::int64_t interval = duration_cast<steady_clock::duration>(seconds(1)).count();
  if (last != 0 && now - last < interval) return;
  if (!accept_reported_at_.compare_exchange_strong(last, now, std::memory_order_relaxed)) return;  // another acceptor reports
  accept_failures_.fetch_sub(failures, std::memory_order_relaxed);
  std::fprintf(stderr, "green: StreamServer %s: accept: %s (%llu times since the last report; backing off)\n",
               address_.to_string().c_str(), std::strerror(err), static_cast<unsigned long long>(failures));
}

void StreamServer::accept_loop(Socket& listener) {
  using namespace std::chrono_literals;
  constexpr std::chrono::milliseconds kFirstBackoff{5}, kMaxBackoff{1000};
  std::chrono::milliseconds backoff{0};
  for (;;) {
    std::pair<Socket, Address> conn;
    try {
      conn = listener.accept();
    } catch (const SystemError& e) {
      if (life_.stopping()) return;
      if (e.code() == EMFILE || e.code() == ENFILE || e.code() == ENOBUFS || e.code() == ENOMEM) {
        // Out of descriptors or memory: wait for connections to end rather
        // than spin on a listener that stays readable (Go's net/http rule).
        backoff = backoff.count() == 0 ? kFirstBackoff : std::min(2 * backoff, kMaxBackoff);
        report_accept_failure(e.code());
        green::sleep(backoff);
        continue;
      }
      throw;
    }
    backoff = 0ms;
    if (options_.nodelay && address_.family() != AF_UNIX) {
      try {
        conn.first.set_nodelay(true);
      } catch (const SystemError&) {
      }
    }
    handlers_->spawn([this, sock = std::move(conn.first), peer = conn.second]() mutable { serve(sock, peer); });
  }
}

void StreamServer::serve(Socket& sock, const Address& peer) {
  if (tls_.valid()) {
    serve_tls(sock, peer);
    return;
  }
  struct Closer {
    Socket& s;
    ~Closer() { s.close(); }  // when the handler ends, however it ends
  } closer{sock};
  run_handler(peer, [&] { handler_(sock, peer); });
}

// In the connection's own green thread: the acceptor never waits for a
// client's handshake.
void StreamServer::serve_tls(Socket& sock, const Address& peer) {
  TlsSocket conn;
  try {
    conn = TlsSocket::accept(std::move(sock), tls_, options_.tls_handshake_timeout);
  } catch (const GreenletExit&) {
    throw;  // killed by stop(): quietly
  } catch (const TimeoutError&) {
    // The handshake's own time limit (no Timeout scope is around it here).
    tls_handshake_failures_.fetch_add(1, std::memory_order_relaxed);
    return;
  } catch (const Error&) {
    // TlsError (refused, garbage) or SystemError (reset): accept() closed it.
    tls_handshake_failures_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  struct Closer {
    TlsSocket& s;
    ~Closer() { s.close(); }  // close_notify, then the fd
  } closer{conn};
  run_handler(peer, [&] { tls_handler_(conn, peer); });
}

template <class Call>
void StreamServer::run_handler(const Address& peer, Call&& call) {
  try {
    // Declared after the caller's Closer, so destroyed before it: the
    // handler's helpers end before the connection they use is closed.
    Nursery helpers;
    call();
  } catch (const GreenletExit&) {
    throw;  // killed by stop(): quietly
  } catch (const SystemError& e) {
    if (e.code() == ECONNRESET || e.code() == EPIPE || e.code() == ETIMEDOUT) {
      peer_errors_.fetch_add(1, std::memory_order_relaxed);
    } else {
      std::fprintf(stderr, "green: StreamServer handler for %s failed: %s\n", peer.to_string().c_str(), e.what());
    }
  } catch (...) {
    std::fprintf(stderr, "green: StreamServer handler for %s failed: %s\n", peer.to_string().c_str(),
                 detail::describe(std::current_exception()).c_str());
  }
}

void StreamServer::serve_forever() { life_.serve_forever(*this); }

void StreamServer::stop(std::chrono::steady_clock::duration grace) {
  // serve_forever() may still be in start() on another worker (TSan saw
  // this stop() read acceptors_ while that start() appended to it).
  if (starting_.load()) start_done_.wait();
  if (!life_.begin_stop()) return;
  // Stop accepting at once: shutdown() makes a TCP listening socket refuse
  // new connections and fail accept() with EINVAL, without closing the fd.
  // Under load a killed acceptor may wait its turn in a queue for a while,
  // and the port must not take connections meanwhile. Not for a Unix
  // socket: there accept() then fails with EAGAIN while the socket keeps
  // reporting readiness, and the acceptor would spin without ever reaching
  // the blocking call where its kill is delivered.
  if (address_.family() != AF_UNIX) {
    for (Socket& l : listeners_) {
      try {
        l.shutdown(SHUT_RDWR);
      } catch (const SystemError&) {
      }
    }
  }
  // The acceptors are killed (they may be parked in accept() or waiting for
  // a Pool slot) before the listeners are closed: an fd is never closed
  // while another green thread may still be using it.
  for (auto& a : acceptors_) a.kill(false);
  for (auto& a : acceptors_) a.join();
  for (Socket& l : listeners_) l.close();
  if (!handlers_->join(grace)) handlers_->kill();
  if (address_.family() == AF_UNIX) ::unlink(address_.to_string().substr(5).c_str());
  life_.set_stopped();
}

// ---------------------------------------------------------------------------

DatagramServer::DatagramServer(Address address, Handler handler, std::size_t max_datagram)
    : address_(address), handler_(std::move(handler)), max_datagram_(max_datagram) {
  if (!handler_) throw Error("green::DatagramServer: empty handler");
}

DatagramServer::~DatagramServer() { life_.stop_at_destruction(*this); }

void DatagramServer::start() {
  life_.check_startable();
  socket_ = Socket(address_.family(), SOCK_DGRAM);
  socket_.bind(address_);
  address_ = socket_.local_address();
  life_.set_started();
  receiver_ = spawn({.name = "DatagramServer.recv"}, [this] {
    for (;;) {
      std::pair<std::string, Address> dgram;
      try {
        dgram = socket_.recv_from(max_datagram_);
      } catch (const SystemError&) {
        if (life_.stopping()) return;
        throw;
      }
      handlers_.spawn([this, d = std::move(dgram)] {
        try {
          handler_(d.first, d.second, *this);
        } catch (const GreenletExit&) {
          throw;
        } catch (...) {
          std::fprintf(stderr, "green: DatagramServer handler for %s failed: %s\n",
                       d.second.to_string().c_str(), detail::describe(std::current_exception()).c_str());
        }
      });
    }
  });
}

void DatagramServer::serve_forever() { life_.serve_forever(*this); }

void DatagramServer::stop(std::chrono::steady_clock::duration grace) {
  if (!life_.begin_stop()) return;
  // Receiver and handlers end first; the socket they use is closed last.
  receiver_.kill();
  if (!handlers_.join(grace)) handlers_.kill();
  socket_.close();
  life_.set_stopped();
}

}  // namespace green
