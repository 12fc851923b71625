// server.cpp — StreamServer and DatagramServer.
//
// Stopping: stop() sets stopping_ and kills the acceptors (wherever they
// wait), then closes the listening sockets, joins the handlers for the grace
// period and kills the rest. No fd is closed while a green thread may still
// use it.
#include "green/server.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "green/current.hpp"
#include "green/errors.hpp"

namespace green {

namespace {
std::string describe(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "unknown exception";
  }
}
}  // namespace

StreamServer::StreamServer(Address address, Handler handler, StreamServerOptions options)
    : address_(address), handler_(std::move(handler)), options_(options) {
  if (!handler_) throw Error("green::StreamServer: empty handler");
  if (options_.max_connections > 0) {
    handlers_ = std::make_unique<Pool>(options_.max_connections);
  } else {
    handlers_ = std::make_unique<Group>();
  }
}

StreamServer::~StreamServer() {
  if (started_ && !stopping_) {
    try {
      stop(std::chrono::seconds(0));
    } catch (...) {
    }
  }
}

void StreamServer::start() {
  if (started_) throw Error("green::StreamServer: already started");
  if (stopping_) throw Error("green::StreamServer: stopped servers cannot be restarted");
  if (!in_green_thread()) throw Error("green::StreamServer::start: call it from a green thread");
  unsigned n = options_.listeners ? options_.listeners : detail::current_worker_count();
  const unsigned workers = detail::current_worker_count();
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
  started_ = true;
  for (std::size_t i = 0; i < listeners_.size(); ++i) {
    Socket* listener = &listeners_[i];
    acceptors_.push_back(spawn({.name = "StreamServer.accept", .worker = int(i % workers), .pinned = true},
                               [this, listener] { accept_loop(*listener); }));
  }
}

void StreamServer::accept_loop(Socket& listener) {
  for (;;) {
    std::pair<Socket, Address> conn;
    try {
      conn = listener.accept();
    } catch (const SystemError& e) {
      if (stopping_) return;
      if (e.code() == EMFILE || e.code() == ENFILE || e.code() == ENOBUFS || e.code() == ENOMEM) {
        // Out of descriptors: back off instead of spinning.
        std::fprintf(stderr, "green: StreamServer %s: %s\n", address_.to_string().c_str(), e.what());
        green::sleep(std::chrono::milliseconds(10));
        continue;
      }
      throw;
    }
    if (options_.nodelay && address_.family() != AF_UNIX) {
      try {
        conn.first.set_nodelay(true);
      } catch (const SystemError&) {
      }
    }
    handlers_->spawn([this, sock = std::move(conn.first), peer = conn.second]() mutable {
      struct Closer {
        Socket& s;
        ~Closer() { s.close(); }  // when the handler ends, however it ends
      } closer{sock};
      try {
        handler_(sock, peer);
      } catch (const GreenletExit&) {
        throw;  // killed by stop(): quietly
      } catch (...) {
        std::fprintf(stderr, "green: StreamServer handler for %s failed: %s\n", peer.to_string().c_str(),
                     describe(std::current_exception()).c_str());
      }
    });
  }
}

void StreamServer::serve_forever() {
  if (!started_) start();
  stopped_.wait();
}

void StreamServer::stop(std::chrono::steady_clock::duration grace) {
  if (!started_) return;
  if (stopping_.exchange(true)) {  // another stop() is under way
    stopped_.wait();
    return;
  }
  // The acceptors are killed (they may be parked in accept() or waiting for
  // a Pool slot) before the listeners are closed: an fd is never closed
  // while another green thread may still be using it.
  for (auto& a : acceptors_) a.kill();
  for (Socket& l : listeners_) l.close();
  if (!handlers_->join(grace)) handlers_->kill();
  if (address_.family() == AF_UNIX) ::unlink(address_.to_string().substr(5).c_str());
  started_ = false;
  stopped_.set();
}

// ---------------------------------------------------------------------------

DatagramServer::DatagramServer(Address address, Handler handler, std::size_t max_datagram)
    : address_(address), handler_(std::move(handler)), max_datagram_(max_datagram) {
  if (!handler_) throw Error("green::DatagramServer: empty handler");
}

DatagramServer::~DatagramServer() {
  if (started_ && !stopping_) {
    try {
      stop(std::chrono::seconds(0));
    } catch (...) {
    }
  }
}

void DatagramServer::start() {
  if (started_) throw Error("green::DatagramServer: already started");
  if (stopping_) throw Error("green::DatagramServer: stopped servers cannot be restarted");
  if (!in_green_thread()) throw Error("green::DatagramServer::start: call it from a green thread");
  socket_ = Socket(address_.family(), SOCK_DGRAM);
  socket_.bind(address_);
  address_ = socket_.local_address();
  started_ = true;
  receiver_ = spawn({.name = "DatagramServer.recv"}, [this] {
    for (;;) {
      std::pair<std::string, Address> dgram;
      try {
        dgram = socket_.recv_from(max_datagram_);
      } catch (const SystemError&) {
        if (stopping_) return;
        throw;
      }
      handlers_.spawn([this, d = std::move(dgram)] {
        try {
          handler_(d.first, d.second, *this);
        } catch (const GreenletExit&) {
          throw;
        } catch (...) {
          std::fprintf(stderr, "green: DatagramServer handler for %s failed: %s\n",
                       d.second.to_string().c_str(), describe(std::current_exception()).c_str());
        }
      });
    }
  });
}

void DatagramServer::serve_forever() {
  if (!started_) start();
  stopped_.wait();
}

void DatagramServer::stop(std::chrono::steady_clock::duration grace) {
  if (!started_) return;
  if (stopping_.exchange(true)) {
    stopped_.wait();
    return;
  }
  // Receiver and handlers end first; the socket they use is closed last.
  receiver_.kill();
  if (!handlers_.join(grace)) handlers_.kill();
  socket_.close();
  started_ = false;
  stopped_.set();
}

}  // namespace green
