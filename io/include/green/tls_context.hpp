// green/tls_context.hpp — TLS configuration over OpenSSL 3: a server's
// certificate and key, a client's trust store, and the errors TLS reports.
// The connections themselves are green::TlsSocket (green/tls_socket.hpp).
//
//   auto server_ctx = green::TlsContext::server({.cert_chain_file = "/etc/app/chain.pem",
//                                                .key_file = "/etc/app/key.pem"});
//   auto client_ctx = green::TlsContext::client();     // the system's CA store
//   auto test_ctx = green::TlsContext::client({.ca_pem = my_test_ca_pem});
//
// Policy, the same for every context: TLS 1.2 and 1.3 only, renegotiation
// refused, no compression, no session resumption (servers issue no session
// tickets). Clients verify the server's certificate by default, against the
// system's default CA store (Debian: /etc/ssl/certs, from the
// ca-certificates package) unless ca_file or ca_pem is given, and
// TlsSocket::connect checks it names the host connected to. A server may
// ask for client certificates (`client_certificate`), verified against
// client_ca_file / client_ca_pem. ca_file, ca_pem and the system's bundle
// file are read when the context is built; the system's hashed directory
// may still be read during a handshake, for an issuer the bundle lacks
// (small regular files, normally in the page cache: no readiness to wait
// for, but a disk read on a worker if they are not).
//
// Errors. Building a context checks everything it can at once: a missing or
// unreadable file, PEM that does not parse, a key that does not match the
// certificate, a verification option without a CA to verify against. Each
// throws green::TlsError naming what was wrong and carrying OpenSSL's own
// error text (openssl_error()).
//
// Ownership and threads. A TlsContext is a shared handle to an OpenSSL
// SSL_CTX: copies are cheap and share it, and it lives until the last copy
// and the last TlsSocket made from it are gone. It is immutable once built
// and may be used by any number of connections on any workers at once.
// native_handle() gives the SSL_CTX for settings this API does not cover
// (ALPN, cipher lists); change it only before the first connection uses it.
#pragma once

#include <memory>
#include <string>
#include <utility>

#include "green/errors.hpp"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX

namespace green {

// A TLS failure: a handshake refused (certificate not trusted, wrong host
// name, protocol error), a broken record, a bad certificate or key.
// what() is the whole story ("tls handshake 127.0.0.1:443: certificate
// verify failed (unable to get local issuer certificate)");
// openssl_error() is OpenSSL's part of it alone.
class TlsError : public Error {
 public:
  TlsError(const std::string& what, std::string openssl_error)
      : Error(openssl_error.empty() ? what : what + ": " + openssl_error), openssl_(std::move(openssl_error)) {}
  const std::string& openssl_error() const noexcept { return openssl_; }

 private:
  std::string openssl_;
};

// Whether a server asks its clients for a certificate.
enum class ClientCertificate {
  none,      // never asks
  optional,  // asks; a client without one is let in, one with a bad one is refused
  required,  // asks; a client without a valid one is refused
};

// A certificate, or a chain of them (the leaf first, then intermediates), and
// its private key: from PEM files or from PEM text in memory, not both.
struct TlsServerOptions {
  std::string cert_chain_file{};
  std::string key_file{};
  std::string cert_chain_pem{};
  std::string key_pem{};
  ClientCertificate client_certificate = ClientCertificate::none;
  // The CAs a client certificate must chain to (needed unless `none`).
  std::string client_ca_file{};
  std::string client_ca_pem{};
};

struct TlsClientOptions {
  // CA certificates to trust (PEM file, or PEM text); neither: the system's.
  std::string ca_file{};
  std::string ca_pem{};
  // Verify the server's certificate and host name. Turning this off makes
  // the connection open to anybody in the middle: for tests only.
  bool verify = true;
  // A client certificate, for servers that ask for one (as in the server's
  // options: files or PEM text, both or neither).
  std::string cert_chain_file{};
  std::string key_file{};
  std::string cert_chain_pem{};
  std::string key_pem{};
};

class TlsContext {
 public:
  TlsContext() = default;  // no context: valid() is false
  // Throws TlsError (see above).
  static TlsContext server(const TlsServerOptions& options);
  static TlsContext client(const TlsClientOptions& options = {});

  bool valid() const noexcept { return ctx_ != nullptr; }
  bool is_server() const noexcept { return server_; }
  // Whether clients of this context verify the server (always false for a server context).
  bool verifies_peer() const noexcept { return verify_; }
  ssl_ctx_st* native_handle() const noexcept { return ctx_.get(); }

 private:
  TlsContext(std::shared_ptr<ssl_ctx_st> ctx, bool server, bool verify)
      : ctx_(std::move(ctx)), server_(server), verify_(verify) {}

  std::shared_ptr<ssl_ctx_st> ctx_;
  bool server_ = false;
  bool verify_ = false;
};

}  // namespace green
