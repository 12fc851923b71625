// tls_socket.cpp — TlsSocket: OpenSSL over two memory BIOs, the bytes moved
// between them and the non-blocking socket by the calling green thread.
//
// OpenSSL never touches the fd. It reads ciphertext from `in` and writes
// ciphertext to `out`, both memory BIOs, so no OpenSSL call can block: it
// reports "want read" when `in` runs dry, and writes to `out` always succeed
// (whole records: SSL_write never stops halfway, so nothing ever has to be
// retried with the same buffer). The caller does the system calls and, on
// EAGAIN, parks on the fd with green's own wait (io_detail::wait_fd).
//
// Concurrency. One reader and any number of writers (taking turns) may use
// a TlsSocket at once, on different workers, while OpenSSL's connection
// object must never be entered twice at a time:
//   * `mu` (a std::mutex) guards the SSL object, its BIOs, `pending` and the
//     flags. It is held around one OpenSSL call and its bookkeeping (at most
//     one record's crypto: writes go in 16 KiB pieces), never across a park
//     or a system call, so a worker waits for it at most that long.
//   * Ciphertext OpenSSL produced is moved from `out` to `pending` under
//     `mu`, in the order produced, whoever produced it: a writer's records,
//     or what a read produced (an alert; a TLS 1.3 key update's answer).
//   * `send_side` (a green::Lock) is held by the one green thread that sends
//     ciphertext to the socket: a writer for its whole call, the handshake,
//     and a reader or close() only when they find it free. The holder swaps
//     `pending` into `sending` (its own) and sends that outside `mu`, waiting
//     for writability as needed; only the holder ever waits to write, so
//     the fd's one writer slot is never contended.
//   * A reader never waits to send: it sends what its read produced only if
//     the send side is free and the socket takes it at once. Otherwise the
//     bytes wait in `pending` (or `sending`) for the next holder. So that a
//     holder about to leave cannot miss them, release_send_side() looks at
//     `pending` after unlocking and, if something came, takes the lock back
//     to send it: either that look sees the reader's bytes, or the reader's
//     try_lock came after the unlock and the reader sends them itself.
//   * `reading` marks the one reader: only it pulls from the socket, so only
//     it waits for readability.
// OpenSSL's error queue is per OS thread: it is cleared before each call and
// read straight after, under `mu`, before anything can park and move the
// green thread (openssl_errors.hpp).
#include "green/tls_socket.hpp"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <mutex>
#include <vector>

#include "fd_table.hpp"
#include "green/current.hpp"
#include "green/detail/fd_wait.hpp"
#include "green/detail/park.hpp"
#include "green/lock.hpp"
#include "io_budget.hpp"
#include "openssl_errors.hpp"

namespace green {

namespace io_detail {

struct TlsState {
  Socket sock;
  SSL* ssl = nullptr;  // owns `in` and `out`
  BIO* in = nullptr;   // ciphertext from the peer, for OpenSSL to read
  BIO* out = nullptr;  // ciphertext OpenSSL wrote, for the peer

  mutable std::mutex mu;  // see the file comment; guards the fields below
  std::string pending;    // ciphertext taken from `out`, not yet being sent
  bool input_eof = false;  // the socket reached the end of its stream
  bool handshake_done = false;
  bool close_notify_received = false;
  bool close_notify_sent = false;

  Lock send_side;          // held by whoever sends to the socket
  std::string sending;     // the holder's: ciphertext being sent
  std::size_t sent = 0;    // how much of `sending` went out

  std::atomic<bool> reading{false};  // a green thread is in recv()
  std::atomic<bool> closed{false};
  std::atomic<unsigned> io_spent{0};  // Socket's yield heuristic (io_budget.hpp)

  TlsState() = default;
  TlsState(const TlsState&) = delete;
  TlsState& operator=(const TlsState&) = delete;
  ~TlsState() { SSL_free(ssl); }  // `sock` closes itself after
};

}  // namespace io_detail

namespace {

using io_detail::TlsState;
using detail::Clock;
using detail::Deadline;

constexpr std::size_t kRecord = 16 * 1024;      // plaintext per SSL_write (one record)
constexpr std::size_t kSendBatch = 64 * 1024;   // ciphertext gathered per send(2)
constexpr std::size_t kRecvChunk = 16 * 1024 + 512;  // a whole record and its overhead

Deadline deadline_for(const Socket& sock, MaybeTimeout timeout) {
  if (!timeout) timeout = sock.timeout();
  return timeout ? detail::deadline_after(*timeout) : detail::kNoDeadline;
}

// "tls recv 127.0.0.1:8443": the operation and, while it is known, the peer.
std::string with_peer(const TlsState& s, const char* op) {
  std::string what = op;
  const int fd = s.sock.fd();
  if (fd >= 0) {
    Address peer;
    socklen_t len = Address::capacity();
    if (::getpeername(fd, peer.data(), &len) == 0) {
      peer.set_size(len);
      what += " " + peer.to_string();
    }
  }
  return what;
}

int checked_fd(const TlsState& s, const char* op) {
  const int fd = s.sock.fd();
  if (fd < 0) throw SystemError(EBADF, op);
  return fd;
}

// Under mu: moves what OpenSSL wrote to `out` onto `pending`.
void collect_output(TlsState& s) {
  const std::size_t n = BIO_ctrl_pending(s.out);
  if (n == 0) return;
  const std::size_t old = s.pending.size();
  s.pending.resize(old + n);
  const int got = BIO_read(s.out, s.pending.data() + old, static_cast<int>(n));
  s.pending.resize(old + static_cast<std::size_t>(std::max(got, 0)));
}

// Under mu, right after a failed call: why it failed, in words.
std::string failure_text(const TlsState& s, int ssl_error) {
  std::string why = io_detail::take_openssl_errors();
  // Why the certificate was refused, where it is checked at all (a context
  // that does not verify still records a result, which means nothing).
  const long verify = SSL_get_verify_result(s.ssl);
  if (verify != X509_V_OK && SSL_get_verify_mode(s.ssl) != SSL_VERIFY_NONE)
    why += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
  if (why.empty()) {
    why = ssl_error == SSL_ERROR_WANT_READ ? "OpenSSL needed to read in the middle of a write (renegotiation is off)"
                                           : "SSL error " + std::to_string(ssl_error);
  }
  return why;
}

void wait_for(TlsState& s, int fd, io_detail::Direction dir, Deadline deadline, const char* op) {
  io_detail::reset_io_budget(s.io_spent);
  if (!io_detail::wait_fd(fd, dir, deadline, op)) throw TimeoutError(0);
}

// One recv(2) from the socket into OpenSSL's input: > 0 bytes moved, 0 at
// the end of the stream, -1 with errno. The buffer is the OS thread's own;
// this function never parks, and is not inlined, so that no caller keeps
// the thread-local's address across a park (the green thread may resume on
// another worker).
[[gnu::noinline]] ssize_t recv_into_ssl(TlsState& s, int fd) {
  thread_local std::vector<char> buf(kRecvChunk);
  const ssize_t r = ::recv(fd, buf.data(), buf.size(), 0);
  if (r > 0) {
    std::lock_guard g(s.mu);
    if (BIO_write(s.in, buf.data(), static_cast<int>(r)) != r) throw std::bad_alloc();
  } else if (r == 0) {
    std::lock_guard g(s.mu);
    s.input_eof = true;
  }
  return r;
}

// Reads what the socket has (at least one byte, or its end) into OpenSSL's
// input, waiting as `op` until something comes. The reader's (or the
// handshake's) alone.
void pull(TlsState& s, Deadline deadline, const char* op) {
  for (;;) {
    const int fd = checked_fd(s, op);
    if (recv_into_ssl(s, fd) >= 0) return;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) throw SystemError(errno, with_peer(s, op));
    wait_for(s, fd, io_detail::Direction::read, deadline, op);
  }
}

// What push() does when the socket is full.
enum class OnFull {
  wait,          // wait for writability until the deadline (throws as Socket does)
  give_up,       // return false at once
  wait_quietly,  // wait until the deadline but never throw: close()'s way
};

// The send side's holder only: sends `sending`, then whatever is pending,
// until nothing is left (true), or OnFull says to stop (false).
bool push(TlsState& s, Deadline deadline, const char* op, OnFull on_full) {
  for (;;) {
    if (s.sent == s.sending.size()) {
      s.sending.clear();
      s.sent = 0;
      std::lock_guard g(s.mu);
      if (s.pending.empty()) return true;
      s.sending.swap(s.pending);
    }
    const int fd = s.sock.fd();
    if (fd < 0) {
      if (on_full == OnFull::wait_quietly) return false;
      throw SystemError(EBADF, op);
    }
    const ssize_t r = ::send(fd, s.sending.data() + s.sent, s.sending.size() - s.sent, MSG_NOSIGNAL);
    if (r >= 0) {
      s.sent += static_cast<std::size_t>(r);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) {
      if (on_full == OnFull::wait_quietly) return false;
      throw SystemError(errno, with_peer(s, op));
    }
    switch (on_full) {
      case OnFull::give_up:
        return false;
      case OnFull::wait:
        wait_for(s, fd, io_detail::Direction::write, deadline, op);
        break;
      case OnFull::wait_quietly: {
        int err = 0;
        // Status, not exception: a kill or Timeout stays pending for the
        // green thread's next blocking call.
        if (io_detail::wait_fd_status(fd, false, deadline, op, err) != io_detail::FdWaitResult::ready) return false;
        break;
      }
    }
  }
}

// Takes the send side, waiting until `deadline` (TimeoutError(0) past it).
void take_send_side(TlsState& s, Deadline deadline) {
  if (s.send_side.try_lock()) return;
  if (deadline == detail::kNoDeadline) {
    s.send_side.lock();
    return;
  }
  const auto left = deadline - Clock::now();
  if (left <= Clock::duration::zero() || !s.send_side.try_lock_for(left)) throw TimeoutError(0);
}

// Gives the send side back after a call that completed, sending what a
// reader queued meanwhile (the file comment's no-orphan rule).
void release_send_side(TlsState& s, Deadline deadline, const char* op, OnFull on_full) {
  for (;;) {
    s.send_side.unlock();
    {
      std::lock_guard g(s.mu);
      if (s.pending.empty()) return;
    }
    if (!s.send_side.try_lock()) return;  // the new holder sends it
    bool done = false;
    try {
      done = push(s, deadline, op, on_full);
    } catch (...) {
      s.send_side.unlock();
      throw;
    }
    if (!done) {  // gave up on a full socket: the next holder goes on
      s.send_side.unlock();
      return;
    }
  }
}

// Holds the send side for a scope; an exception gives it back as it is.
class SendSide {
 public:
  SendSide(TlsState& s, Deadline deadline, const char* op) : s_(s), deadline_(deadline), op_(op) {
    take_send_side(s_, deadline_);
  }
  SendSide(const SendSide&) = delete;
  SendSide& operator=(const SendSide&) = delete;
  ~SendSide() {
    if (held_) s_.send_side.unlock();
  }
  void release() {
    held_ = false;
    release_send_side(s_, deadline_, op_, OnFull::wait);
  }

 private:
  TlsState& s_;
  Deadline deadline_;
  const char* op_;
  bool held_ = true;
};

// A reader's output goes out only if nobody else is sending and the socket
// takes it now (see the file comment).
void send_reader_output(TlsState& s) {
  if (!s.send_side.try_lock()) return;
  bool done = false;
  try {
    done = push(s, detail::kNoDeadline, "tls recv", OnFull::give_up);
  } catch (const SystemError&) {
    // The connection broke: the read that follows reports it.
  }
  if (done) {
    release_send_side(s, detail::kNoDeadline, "tls recv", OnFull::give_up);
  } else {
    s.send_side.unlock();
  }
}

// The handshake, by the only green thread that has the connection yet.
void handshake(TlsState& s, Deadline deadline) {
  constexpr const char* op = "tls handshake";
  SendSide side(s, deadline, op);
  for (;;) {
    int r = 0, err = 0;
    bool eof = false;
    std::string why;
    {
      std::lock_guard g(s.mu);
      ERR_clear_error();
      r = SSL_do_handshake(s.ssl);
      if (r == 1) {
        s.handshake_done = true;
      } else {
        err = SSL_get_error(s.ssl, r);
        if (err != SSL_ERROR_WANT_READ) why = failure_text(s, err);
      }
      collect_output(s);
      eof = s.input_eof;
    }
    if (r == 1) {
      push(s, deadline, op, OnFull::wait);
      side.release();
      return;
    }
    if (err != SSL_ERROR_WANT_READ) {
      try {
        push(s, deadline, op, OnFull::give_up);  // the alert that tells the peer why, if it fits
      } catch (const SystemError&) {
        // The peer is gone already; the TlsError says more.
      }
      throw TlsError(with_peer(s, op), why);
    }
    push(s, deadline, op, OnFull::wait);  // our flight, before waiting for theirs
    if (eof) throw TlsError(with_peer(s, op), "the peer closed the connection");
    pull(s, deadline, op);
  }
}

std::unique_ptr<TlsState> new_state(Socket sock, const TlsContext& ctx, const char* who) {
  if (!ctx.valid()) throw Error(std::string(who) + ": no TlsContext");
  if (!sock.valid()) throw SystemError(EBADF, who);
  auto s = std::make_unique<TlsState>();
  s->sock = std::move(sock);
  ERR_clear_error();
  s->ssl = SSL_new(ctx.native_handle());
  if (!s->ssl) throw TlsError(std::string(who) + ": SSL_new", io_detail::take_openssl_errors());
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  if (!in || !out) {
    BIO_free(in);
    BIO_free(out);
    throw TlsError(std::string(who) + ": BIO_new", io_detail::take_openssl_errors());
  }
  // An empty BIO means "not yet", never "end of stream": the socket's end is
  // tracked in input_eof, and what it means decided here, not by OpenSSL.
  BIO_set_mem_eof_return(in, -1);
  BIO_set_mem_eof_return(out, -1);
  SSL_set_bio(s->ssl, in, out);
  s->in = in;
  s->out = out;
  return s;
}

bool is_numeric_address(const std::string& name) {
  unsigned char buf[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, name.c_str(), buf) == 1 || ::inet_pton(AF_INET6, name.c_str(), buf) == 1;
}

// A reader's mark: one recv() at a time.
class ReaderMark {
 public:
  explicit ReaderMark(TlsState& s) : s_(s) {
    if (s_.reading.exchange(true, std::memory_order_acquire))
      throw Error("green::TlsSocket: another green thread is already reading this connection");
  }
  ReaderMark(const ReaderMark&) = delete;
  ReaderMark& operator=(const ReaderMark&) = delete;
  ~ReaderMark() { s_.reading.store(false, std::memory_order_release); }

 private:
  TlsState& s_;
};

}  // namespace

TlsSocket::TlsSocket() noexcept = default;
TlsSocket::TlsSocket(std::unique_ptr<io_detail::TlsState> state) noexcept : st_(std::move(state)) {}
TlsSocket::TlsSocket(TlsSocket&& other) noexcept : StreamTransport(), st_(std::move(other.st_)) {}
TlsSocket& TlsSocket::operator=(TlsSocket&& other) noexcept {
  if (this != &other) {
    close();
    st_ = std::move(other.st_);
  }
  return *this;
}
TlsSocket::~TlsSocket() { close(); }

bool TlsSocket::valid() const noexcept { return st_ && st_->sock.valid(); }

TlsSocket TlsSocket::connect(Socket sock, const TlsContext& ctx, const std::string& server_name, MaybeTimeout timeout) {
  constexpr const char* who = "green::TlsSocket::connect";
  const Deadline deadline = deadline_for(sock, timeout);
  if (ctx.valid() && ctx.is_server()) throw Error(std::string(who) + ": a server context");
  if (server_name.empty() && ctx.verifies_peer())
    throw Error(std::string(who) + ": a context that verifies needs the server's name to check");
  auto s = new_state(std::move(sock), ctx, who);
  SSL_set_connect_state(s->ssl);
  if (!server_name.empty()) {
    const bool numeric = is_numeric_address(server_name);
    ERR_clear_error();
    // SNI carries host names only (RFC 6066).
    if (!numeric && SSL_set_tlsext_host_name(s->ssl, server_name.c_str()) != 1)
      throw TlsError(std::string(who) + ": server name " + server_name, io_detail::take_openssl_errors());
    if (ctx.verifies_peer()) {
      bool ok;
      if (numeric) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), server_name.c_str()) == 1;
      } else {
        SSL_set_hostflags(s->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        ok = SSL_set1_host(s->ssl, server_name.c_str()) == 1;
      }
      if (!ok) throw TlsError(std::string(who) + ": server name " + server_name, io_detail::take_openssl_errors());
    }
  }
  handshake(*s, deadline);
  return TlsSocket(std::move(s));
}

TlsSocket TlsSocket::accept(Socket sock, const TlsContext& ctx, MaybeTimeout timeout) {
  constexpr const char* who = "green::TlsSocket::accept";
  const Deadline deadline = deadline_for(sock, timeout);
  if (ctx.valid() && !ctx.is_server()) throw Error(std::string(who) + ": a client context");
  auto s = new_state(std::move(sock), ctx, who);
  SSL_set_accept_state(s->ssl);
  handshake(*s, deadline);
  return TlsSocket(std::move(s));
}

std::size_t TlsSocket::recv(void* buf, std::size_t n, MaybeTimeout timeout) {
  constexpr const char* op = "tls recv";
  if (!st_) throw SystemError(EBADF, op);
  TlsState& s = *st_;
  if (s.closed.load(std::memory_order_acquire)) throw SystemError(EBADF, op);
  if (n == 0) return 0;
  detail::throw_if_interrupted();  // an interruption point, as Socket's calls are (socket.hpp)
  ReaderMark mark(s);
  const Deadline deadline = deadline_for(s.sock, timeout);
  const int want = static_cast<int>(std::min<std::size_t>(n, INT_MAX));
  for (;;) {
    int r = 0, err = 0;
    bool eof = false, output = false;
    std::string why;
    {
      std::lock_guard g(s.mu);
      ERR_clear_error();
      r = SSL_read(s.ssl, buf, want);
      if (r <= 0) {
        err = SSL_get_error(s.ssl, r);
        if (err == SSL_ERROR_ZERO_RETURN) {
          s.close_notify_received = true;
        } else if (err != SSL_ERROR_WANT_READ) {
          why = failure_text(s, err);
        }
      }
      collect_output(s);
      output = !s.pending.empty();
      eof = s.input_eof;
    }
    if (output) send_reader_output(s);
    if (r > 0) {
      io_detail::spend_io_budget(s.io_spent, static_cast<std::size_t>(r));
      return static_cast<std::size_t>(r);
    }
    if (err == SSL_ERROR_ZERO_RETURN) return 0;
    if (err != SSL_ERROR_WANT_READ) throw TlsError(with_peer(s, op), why);
    if (eof) return 0;  // the TCP stream ended without close_notify (see the header)
    pull(s, deadline, op);
  }
}

std::string TlsSocket::recv(std::size_t max_bytes, MaybeTimeout timeout) {
  std::string out(max_bytes, '\0');
  out.resize(recv(out.data(), max_bytes, timeout));
  return out;
}

void TlsSocket::send_all(std::string_view data, MaybeTimeout timeout) {
  constexpr const char* op = "tls send";
  if (!st_) throw SystemError(EBADF, op);
  TlsState& s = *st_;
  if (s.closed.load(std::memory_order_acquire)) throw SystemError(EBADF, op);
  detail::throw_if_interrupted();
  const Deadline deadline = deadline_for(s.sock, timeout);
  SendSide side(s, deadline, op);
  std::size_t unspent = 0;  // plaintext not yet counted against the budget
  while (!data.empty()) {
    const std::size_t piece = std::min(data.size(), kRecord);
    int r = 0;
    bool batch_full = false;
    std::string why;
    {
      std::lock_guard g(s.mu);
      ERR_clear_error();
      r = SSL_write(s.ssl, data.data(), static_cast<int>(piece));
      if (r <= 0) why = failure_text(s, SSL_get_error(s.ssl, r));
      collect_output(s);
      batch_full = s.pending.size() >= kSendBatch;
    }
    if (r <= 0) throw TlsError(with_peer(s, op), why);
    data.remove_prefix(static_cast<std::size_t>(r));
    unspent += static_cast<std::size_t>(r);
    if (batch_full || data.empty()) {
      push(s, deadline, op, OnFull::wait);
      // A long send_all yields on the way, as Socket's does.
      if (!data.empty()) io_detail::spend_io_budget(s.io_spent, std::exchange(unspent, 0));
    }
  }
  side.release();
  io_detail::spend_io_budget(s.io_spent, unspent);
}

std::size_t TlsSocket::send(const void* data, std::size_t n, MaybeTimeout timeout) {
  const std::size_t piece = std::min(n, kRecord);
  send_all(std::string_view(static_cast<const char*>(data), piece), timeout);
  return piece;
}

void TlsSocket::close() noexcept {
  if (!st_) return;
  TlsState& s = *st_;
  if (s.closed.exchange(true, std::memory_order_acq_rel)) return;
  // A writer busy on another green thread keeps the send side: its records
  // may be half sent, so no close_notify can follow them; it gets EBADF.
  if (s.send_side.try_lock()) {
    {
      std::lock_guard g(s.mu);
      if (s.handshake_done && !s.close_notify_sent) {
        ERR_clear_error();
        SSL_shutdown(s.ssl);  // queues close_notify; never waits for the peer's
        ERR_clear_error();
        s.close_notify_sent = true;
        collect_output(s);
      }
    }
    push(s, detail::deadline_after(kCloseNotifyWait), "tls close", OnFull::wait_quietly);
    s.send_side.unlock();
  }
  s.sock.close();
}

bool TlsSocket::close_notify_received() const noexcept {
  if (!st_) return false;
  std::lock_guard g(st_->mu);
  return st_->close_notify_received;
}

std::string TlsSocket::protocol() const {
  if (!st_) return {};
  std::lock_guard g(st_->mu);
  return SSL_get_version(st_->ssl);
}

std::string TlsSocket::server_name() const {
  if (!st_) return {};
  std::lock_guard g(st_->mu);
  const char* name = SSL_get_servername(st_->ssl, TLSEXT_NAMETYPE_host_name);
  return name ? name : "";
}

std::optional<std::string> TlsSocket::peer_certificate_subject() const {
  if (!st_) return std::nullopt;
  std::lock_guard g(st_->mu);
  X509* cert = SSL_get0_peer_certificate(st_->ssl);
  if (!cert) return std::nullopt;
  BIO* b = BIO_new(BIO_s_mem());
  if (!b) throw std::bad_alloc();
  X509_NAME_print_ex(b, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* p = nullptr;
  const long n = BIO_get_mem_data(b, &p);
  std::string out(p, static_cast<std::size_t>(std::max(n, 0L)));
  BIO_free(b);
  return out;
}

void TlsSocket::set_timeout(MaybeTimeout timeout) noexcept {
  if (st_) st_->sock.set_timeout(timeout);
}
MaybeTimeout TlsSocket::timeout() const noexcept { return st_ ? st_->sock.timeout() : std::nullopt; }

Socket& TlsSocket::socket() {
  if (!st_) throw Error("green::TlsSocket::socket: no connection");
  return st_->sock;
}
const Socket& TlsSocket::socket() const {
  if (!st_) throw Error("green::TlsSocket::socket: no connection");
  return st_->sock;
}

TlsSocket create_tls_connection(const std::string& host, std::uint16_t port, const TlsContext& ctx,
                                MaybeTimeout timeout) {
  const Deadline deadline = timeout ? detail::deadline_after(*timeout) : detail::kNoDeadline;
  auto left = [&]() -> MaybeTimeout {
    if (deadline == detail::kNoDeadline) return std::nullopt;
    return std::max(Clock::duration::zero(), deadline - Clock::now());
  };
  Socket sock = create_connection(host, port, left());
  // An IPv6 literal may come bracketed from a URL; the certificate names it bare.
  std::string name = host;
  if (name.size() > 2 && name.front() == '[' && name.back() == ']') name = name.substr(1, name.size() - 2);
  return TlsSocket::connect(std::move(sock), ctx, name, left());
}

}  // namespace green
