// green/tls_socket.hpp — TLS over a connected green::Socket (OpenSSL 3),
// usable wherever a Socket is used as a byte stream.
//
//   auto ctx = green::TlsContext::client();
//   green::TlsSocket conn = green::create_tls_connection("example.org", 443, ctx, 10s);
//   conn.send_all("GET / HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n");
//   green::Stream stream(conn);                       // as over a Socket
//   while (auto line = stream.read_line()) ...
//   conn.close();                                     // sends close_notify
//
// A server gets its TlsSockets from StreamServer (green/server.hpp), which
// runs each handshake in the connection's own green thread, or makes one
// with TlsSocket::accept over a Socket it accepted.
//
// Blocking. No OpenSSL call ever blocks a worker: OpenSSL reads and writes
// memory buffers only, and the TlsSocket moves the bytes between them and
// the non-blocking socket itself, suspending the calling green thread on the
// fd (green/fd.hpp) when the socket is not ready, exactly as Socket does.
// On a plain thread the calls block that thread (poll(2)).
//
// Timeouts and interrupts are Socket's: each blocking call takes an optional
// timeout, the default being the underlying socket's (set_timeout() sets
// it); past it the call throws green::TimeoutError(0). green::Timeout scopes
// and kill end a blocked call, the handshake included, at once; recv and
// send_all are interruption points also when they would not wait. A recv that
// ends so has returned nothing (bytes that arrived meanwhile stay buffered
// for the next recv); a send_all that ends so may have sent part of its
// data, and whole TLS records it had already encrypted go out ahead of the
// next send's, so the stream stays well-formed.
//
// End of stream. recv() returns 0 once the peer closed its side. A peer that
// ends cleanly sends close_notify first (close_notify_received() is then
// true); one that merely closed its TCP connection gives the same 0 with
// close_notify_received() false: an application whose message framing
// cannot tell a truncated stream from a complete one should check it.
//
// Errors: green::TlsError for TLS failures (a handshake refused: not
// trusted, wrong host name, no client certificate; a corrupt record; an
// alert from the peer), green::SystemError for the socket's, with the
// operation and the peer's address, e.g. "tls handshake 127.0.0.1:8443:
// certificate verify failed (hostname mismatch)". After a TlsError the
// connection is unusable: close it.
//
// Threads. As with Socket, one green thread may read (recv) while another
// writes (send, send_all) the same TlsSocket, on any workers; two concurrent
// readers are an error (green::Error), concurrent writers take turns. An
// OpenSSL connection must never be entered by two threads at once, so every
// call into it runs under a short lock of the TlsSocket's own, never held
// while a green thread waits; whoever sends ciphertext to the socket holds
// the "send side" (a green::Lock), so the records of a reader (an alert, a
// key update answer) and of a writer never interleave on the wire.
//
// Ownership. A TlsSocket owns its Socket and OpenSSL connection, is
// move-only, and closes on destruction (close(): close_notify, then the fd).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "green/address.hpp"
#include "green/socket.hpp"
#include "green/stream_transport.hpp"
#include "green/tls_context.hpp"

namespace green {

namespace io_detail {
struct TlsState;  // tls_socket.cpp
}

class TlsSocket final : public StreamTransport {
 public:
  TlsSocket() noexcept;  // no connection (valid() is false)
  // Client side: runs the handshake over a connected socket, as `ctx` (a
  // client context) says. server_name is sent as SNI (unless it is a numeric
  // address) and, when the context verifies, the certificate must name it
  // (a DNS name or an IP address); it may be empty only for a context that
  // does not verify. On any failure the socket is closed and the error
  // thrown (TlsError, SystemError, TimeoutError after `timeout`, which
  // covers the whole handshake).
  static TlsSocket connect(Socket sock, const TlsContext& ctx, const std::string& server_name,
                           MaybeTimeout timeout = std::nullopt);
  // Server side: runs the handshake over an accepted socket with `ctx` (a
  // server context). Failures as connect().
  static TlsSocket accept(Socket sock, const TlsContext& ctx, MaybeTimeout timeout = std::nullopt);

  TlsSocket(TlsSocket&& other) noexcept;
  TlsSocket& operator=(TlsSocket&& other) noexcept;
  TlsSocket(const TlsSocket&) = delete;
  TlsSocket& operator=(const TlsSocket&) = delete;
  ~TlsSocket();

  bool valid() const noexcept;

  // ---- data (see the header comment for timeouts and interrupts) ----------
  // Receives up to n decrypted bytes; 0 at end of stream.
  std::size_t recv(void* buf, std::size_t n, MaybeTimeout timeout = std::nullopt) override;
  std::string recv(std::size_t max_bytes, MaybeTimeout timeout = std::nullopt);
  // Sends some of data (at least one byte; at most one TLS record's worth);
  // returns how much.
  std::size_t send(const void* data, std::size_t n, MaybeTimeout timeout = std::nullopt);
  // Sends all of data; the timeout covers the whole call.
  void send_all(std::string_view data, MaybeTimeout timeout = std::nullopt) override;
  void send_all(const void* data, std::size_t n, MaybeTimeout timeout = std::nullopt) {
    send_all(std::string_view(static_cast<const char*>(data), n), timeout);
  }

  // Ends the connection (idempotent; the destructor calls it). Sends
  // close_notify if the handshake completed and no other green thread is
  // sending at the moment, waiting at most kCloseNotifyWait for room in the
  // socket's buffer (a peer that does not read is not waited for longer),
  // and never waits for the peer's close_notify. Then closes the fd: a green
  // thread blocked on this connection throws SystemError(EBADF), as do later
  // recv and send calls. A kill or
  // Timeout that comes during that wait cuts it short and stays pending for
  // the green thread's next blocking call. Never throws.
  void close() noexcept;
  static constexpr std::chrono::milliseconds kCloseNotifyWait{1000};

  // ---- state --------------------------------------------------------------
  // True once the peer's close_notify arrived (see "End of stream").
  bool close_notify_received() const noexcept;
  // The protocol agreed on: "TLSv1.3" or "TLSv1.2".
  std::string protocol() const;
  // The server name the client asked for by SNI (server side; "" if none).
  std::string server_name() const;
  // The subject of the certificate the peer presented and we verified (a
  // server's, or a client's where the server asks for one), as a one-line
  // RFC 2253 name ("CN=alice,O=Example"); nullopt if it presented none.
  std::optional<std::string> peer_certificate_subject() const;

  // The default timeout of the blocking calls (that of the socket beneath).
  void set_timeout(MaybeTimeout timeout) noexcept;
  MaybeTimeout timeout() const noexcept;
  // The socket beneath, for its options and addresses. Reading or writing
  // it directly would corrupt the TLS stream. Throws green::Error when
  // there is no connection (default-constructed or moved from).
  Socket& socket();
  const Socket& socket() const;
  Address local_address() const { return socket().local_address(); }
  Address peer_address() const { return socket().peer_address(); }

 private:
  explicit TlsSocket(std::unique_ptr<io_detail::TlsState> state) noexcept;
  std::unique_ptr<io_detail::TlsState> st_;
};

// Connects to host:port (green::create_connection) and runs a client
// handshake with `ctx`, sending `host` as SNI and, when ctx verifies,
// checking that the certificate names it. One timeout covers the lookup,
// the connection and the handshake. Throws as create_connection and
// TlsSocket::connect do.
TlsSocket create_tls_connection(const std::string& host, std::uint16_t port, const TlsContext& ctx,
                                MaybeTimeout timeout = std::nullopt);

}  // namespace green
