// stream.cpp — Stream: a read buffer consumed from the front, compacted
// when the consumed part dominates, and a write buffer sent in one call.
#include "green/stream.hpp"

#include <algorithm>

namespace green {

namespace {
constexpr std::size_t kReadChunk = 16 * 1024;
constexpr std::size_t kWriteBuffer = 64 * 1024;
}  // namespace

Stream::Stream(StreamTransport& transport, std::size_t max_line) : t_(transport), max_line_(max_line) {
  if (max_line == 0) throw Error("green::Stream: max_line must be > 0");
}

bool Stream::fill() {
  if (eof_) return false;
  if (rpos_ > 0 && rpos_ * 2 >= rbuf_.size()) {
    rbuf_.erase(0, rpos_);
    rpos_ = 0;
  }
  const std::size_t old = rbuf_.size();
  rbuf_.resize(old + kReadChunk);
  std::size_t n;
  try {
    n = t_.recv(rbuf_.data() + old, kReadChunk);
  } catch (...) {
    rbuf_.resize(old);
    throw;
  }
  rbuf_.resize(old + n);
  if (n == 0) eof_ = true;
  return n > 0;
}

std::optional<std::string> Stream::read_until(std::string_view delim, std::size_t max_len) {
  if (delim.empty()) throw Error("green::Stream::read_until: empty delimiter");
  if (max_len == 0) throw Error("green::Stream::read_until: max_len must be > 0");
  std::size_t searched = 0;  // bytes of the unread part already searched
  for (;;) {
    const std::string_view unread(rbuf_.data() + rpos_, rbuf_.size() - rpos_);
    const std::size_t from = searched >= delim.size() ? searched - delim.size() + 1 : 0;
    const std::size_t at = unread.find(delim, from);
    if (at != std::string_view::npos && at + delim.size() <= max_len) {
      std::string line(unread.substr(0, at + delim.size()));
      rpos_ += line.size();
      return line;
    }
    if (unread.size() >= max_len) {
      rpos_ += max_len;  // skip the offending bytes; the caller may go on
      throw LineTooLong(max_len);
    }
    searched = unread.size();
    if (!fill()) {
      if (rpos_ == rbuf_.size()) return std::nullopt;
      std::string rest(rbuf_, rpos_);
      rpos_ = rbuf_.size();
      return rest;
    }
  }
}

std::string Stream::read_exactly(std::size_t n) {
  while (rbuf_.size() - rpos_ < n) {
    if (!fill())
      throw Error("green::Stream::read_exactly: stream ended after " +
                  std::to_string(rbuf_.size() - rpos_) + " of " + std::to_string(n) + " bytes");
  }
  std::string out(rbuf_, rpos_, n);
  rpos_ += n;
  return out;
}

std::string Stream::read_some(std::size_t max_bytes) {
  if (rpos_ == rbuf_.size() && !fill()) return {};
  const std::size_t n = std::min(max_bytes, rbuf_.size() - rpos_);
  std::string out(rbuf_, rpos_, n);
  rpos_ += n;
  return out;
}

void Stream::write(std::string_view data) {
  wbuf_.append(data);
  if (wbuf_.size() >= kWriteBuffer) flush();
}

void Stream::flush() {
  if (wbuf_.empty()) return;
  std::string out;
  out.swap(wbuf_);  // a failed send drops the data: the connection is broken anyway
  t_.send_all(out);
}

}  // namespace green
