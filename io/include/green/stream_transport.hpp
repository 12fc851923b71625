// green/stream_transport.hpp — what green::Stream reads and writes through:
// a connected byte stream. green::Socket (plain TCP or Unix) and
// green::TlsSocket (TLS over a Socket) implement it, so a Stream, and code
// written against StreamTransport&, works over either.
//
//   void echo(green::StreamTransport& conn) {
//     green::Stream stream(conn);
//     for (auto& line : stream.lines()) conn.send_all(line);
//   }
//
// The two calls mean what Socket's mean: blocking suspends only the calling
// green thread; `timeout` bounds the call (nullopt: the transport's default
// timeout), after which it throws green::TimeoutError(0); green::Timeout
// scopes and kill end a blocked call; failures are green::Error (a
// SystemError for the system's, a TlsError for TLS's). Each implementation's
// header says what an interrupted call has transferred.
//
// It is an interface for using a connection, not for owning one: it has no
// virtual destructor, and nothing deletes a transport through it.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string_view>

namespace green {

using MaybeTimeout = std::optional<std::chrono::steady_clock::duration>;

class StreamTransport {
 public:
  // Receives up to n bytes (n > 0) into buf; 0 at the end of the stream.
  virtual std::size_t recv(void* buf, std::size_t n, MaybeTimeout timeout = std::nullopt) = 0;
  // Sends all of data, waiting as needed; the timeout covers the whole call.
  virtual void send_all(std::string_view data, MaybeTimeout timeout = std::nullopt) = 0;

 protected:
  StreamTransport() = default;
  StreamTransport(const StreamTransport&) = default;
  StreamTransport& operator=(const StreamTransport&) = default;
  ~StreamTransport() = default;
};

}  // namespace green
