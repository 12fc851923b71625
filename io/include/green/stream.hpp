// green/stream.hpp — buffered reading and writing over a Socket or a
// TlsSocket (the talk's sock.makefile()): over any green::StreamTransport.
//
//   green::Stream stream(sock);                  // a Socket or a TlsSocket
//   for (auto& line : stream.lines()) sock.send_all(line);   // echo
//
// Lines. read_line() returns the next line including its '\n' (a "\r\n"
// ending is kept as is), the last line of the stream without one if the
// peer closed mid-line, and nullopt at the end of the stream. lines() is a
// range over the same; end of stream ends the loop (it is not an error). A
// line longer than max_line bytes throws LineTooLong instead of buffering
// without bound; the stream is then positioned after those max_line bytes.
//
// Writes are buffered: write() appends and sends once the buffer holds 64
// KiB; flush() sends the rest. Destroying a Stream does not flush (a flush
// can block and fail): call flush() yourself.
//
// Blocking, timeouts and errors are the transport's: its default timeout
// (Socket::set_timeout, TlsSocket::set_timeout) applies to each read and to
// each flush, and they honour green::Timeout scopes and kill.
//
// A Stream refers to its transport, which must outlive it. Like a Socket or
// a TlsSocket, it may be read by one green thread while another writes
// through it.
#pragma once

#include <cstddef>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>

#include "green/errors.hpp"
#include "green/socket.hpp"  // the usual transport, for the examples above
#include "green/stream_transport.hpp"

namespace green {

// A line (or a read_until() record) exceeded its length limit.
class LineTooLong : public Error {
 public:
  explicit LineTooLong(std::size_t limit)
      : Error("green::Stream: line longer than " + std::to_string(limit) + " bytes") {}
};

class Stream {
 public:
  static constexpr std::size_t kDefaultMaxLine = 64 * 1024;

  explicit Stream(StreamTransport& transport, std::size_t max_line = kDefaultMaxLine);
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // The next line (see above); nullopt at the end of the stream.
  std::optional<std::string> read_line() { return read_until("\n", max_line_); }
  std::optional<std::string> read_line(std::size_t max_len) { return read_until("\n", max_len); }
  // Up to and including the next `delim`; the rest of the stream if it ends
  // first; nullopt at its end. Throws LineTooLong past max_len bytes.
  std::optional<std::string> read_until(std::string_view delim, std::size_t max_len);
  // Exactly n bytes; throws green::Error if the stream ends first.
  std::string read_exactly(std::size_t n);
  // Whatever is buffered, or one recv() of up to max_bytes ("" at the end).
  std::string read_some(std::size_t max_bytes = 64 * 1024);

  // Buffers data; sends once 64 KiB are buffered.
  void write(std::string_view data);
  // Sends everything buffered.
  void flush();

  // for (std::string& line : stream.lines()) ...
  class Lines {
   public:
    class iterator {
     public:
      using value_type = std::string;
      using difference_type = std::ptrdiff_t;
      iterator() = default;
      explicit iterator(Stream* s) : s_(s) { ++*this; }
      std::string& operator*() const { return *line_; }
      std::string* operator->() const { return &*line_; }
      iterator& operator++() {
        line_ = s_->read_line();
        return *this;
      }
      void operator++(int) { ++*this; }
      bool operator==(std::default_sentinel_t) const noexcept { return !line_.has_value(); }

     private:
      Stream* s_ = nullptr;
      mutable std::optional<std::string> line_;
    };
    explicit Lines(Stream& s) : s_(s) {}
    iterator begin() { return iterator(&s_); }
    std::default_sentinel_t end() const noexcept { return {}; }

   private:
    Stream& s_;
  };
  Lines lines() { return Lines(*this); }

  // What the Stream reads and writes (the Socket or TlsSocket it was made with).
  StreamTransport& transport() noexcept { return t_; }

 private:
  // Reads more into the buffer; false at the end of the stream.
  bool fill();

  StreamTransport& t_;
  std::size_t max_line_;
  std::string rbuf_;
  std::size_t rpos_ = 0;  // rbuf_[rpos_..] is unread
  bool eof_ = false;
  std::string wbuf_;
};

}  // namespace green
