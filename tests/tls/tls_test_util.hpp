// tls_test_util.hpp — what the TLS tests share: a throwaway certificate
// authority made with OpenSSL's C API at test time (EC P-256 keys: fast),
// certificates it issues, PEM files in a private temporary folder, and a
// connected pair of TlsSockets over loopback. Nothing is committed: every
// key and certificate exists only for the test that made it.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>
#include <unistd.h>

#include <green/green.hpp>
#include <green/io.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "../io/io_test_util.hpp"

namespace green::tls_testing {

struct PkeyFree {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
struct X509Free {
  void operator()(X509* x) const noexcept { X509_free(x); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

[[noreturn]] inline void openssl_failed(const char* what) {
  throw std::runtime_error(std::string("test PKI: ") + what + " failed");
}

inline PkeyPtr new_key() {
  PkeyPtr k(EVP_EC_gen("P-256"));
  if (!k) openssl_failed("EVP_EC_gen");
  return k;
}

inline void add_extension(X509* cert, X509V3_CTX* ctx, int nid, const char* value) {
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, ctx, nid, value);
  if (!ext) openssl_failed("X509V3_EXT_conf_nid");
  const int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  if (ok != 1) openssl_failed("X509_add_ext");
}

inline std::string to_pem(X509* cert) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_X509(b, cert);
  char* p = nullptr;
  const long n = BIO_get_mem_data(b, &p);
  std::string out(p, static_cast<std::size_t>(n));
  BIO_free(b);
  return out;
}

inline std::string to_pem(EVP_PKEY* key) {
  BIO* b = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* p = nullptr;
  const long n = BIO_get_mem_data(b, &p);
  std::string out(p, static_cast<std::size_t>(n));
  BIO_free(b);
  return out;
}

// A certificate and its private key, in PEM.
struct Identity {
  std::string cert_pem;
  std::string key_pem;
};

// How long an issued certificate is valid, relative to now (seconds).
struct Validity {
  long not_before = -3600;
  long not_after = 24 * 3600;
};

// A self-signed CA that issues leaf certificates.
class TestCa {
 public:
  explicit TestCa(const std::string& common_name = "green test CA") : key_(new_key()) {
    cert_ = make(common_name, key_.get(), nullptr, nullptr, true, {}, Validity{-3600, 7 * 24 * 3600});
    cert_pem_ = to_pem(cert_.get());
  }
  const std::string& cert_pem() const { return cert_pem_; }

  // A leaf for server and client use, naming `common_name` and the given
  // subject alternative names ("DNS:localhost", "IP:127.0.0.1").
  Identity issue(const std::string& common_name,
                 const std::vector<std::string>& alt_names = {"DNS:localhost", "IP:127.0.0.1"},
                 Validity validity = {}) const {
    PkeyPtr key = new_key();
    X509Ptr cert = make(common_name, key.get(), cert_.get(), key_.get(), false, alt_names, validity);
    return {to_pem(cert.get()), to_pem(key.get())};
  }

 private:
  static X509Ptr make(const std::string& cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key, bool ca,
                      const std::vector<std::string>& alt_names, Validity validity) {
    static std::atomic<long> serial{1};
    X509Ptr x(X509_new());
    if (!x) openssl_failed("X509_new");
    X509_set_version(x.get(), 2);  // v3
    ASN1_INTEGER_set(X509_get_serialNumber(x.get()), serial.fetch_add(1) + 1000 * static_cast<long>(::getpid()));
    X509_gmtime_adj(X509_getm_notBefore(x.get()), validity.not_before);
    X509_gmtime_adj(X509_getm_notAfter(x.get()), validity.not_after);
    X509_set_pubkey(x.get(), key);
    X509_NAME* name = X509_get_subject_name(x.get());
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("green tests"), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(x.get(), issuer ? X509_get_subject_name(issuer) : name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer ? issuer : x.get(), x.get(), nullptr, nullptr, 0);
    add_extension(x.get(), &ctx, NID_subject_key_identifier, "hash");
    if (ca) {
      add_extension(x.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE");
      add_extension(x.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
      add_extension(x.get(), &ctx, NID_authority_key_identifier, "keyid:always");
      add_extension(x.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE");
      add_extension(x.get(), &ctx, NID_key_usage, "critical,digitalSignature");
      add_extension(x.get(), &ctx, NID_ext_key_usage, "serverAuth,clientAuth");
      std::string sans;
      for (const auto& n : alt_names) sans += (sans.empty() ? "" : ",") + n;
      if (!sans.empty()) add_extension(x.get(), &ctx, NID_subject_alt_name, sans.c_str());
    }
    if (X509_sign(x.get(), issuer_key ? issuer_key : key, EVP_sha256()) == 0) openssl_failed("X509_sign");
    return x;
  }

  PkeyPtr key_;
  X509Ptr cert_;
  std::string cert_pem_;
};

// A private temporary folder, removed with its files at the end of scope.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "green-tls-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  // Writes `content` to a file of that name in the folder; returns its path.
  std::string write(const std::string& name, const std::string& content) const {
    const auto p = path_ / name;
    std::ofstream(p, std::ios::binary) << content;
    return p.string();
  }
  std::string path(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// A CA, a server certificate for localhost/127.0.0.1 and a client
// certificate, and the contexts of both ends trusting that CA.
struct Pki {
  TestCa ca;
  Identity server = ca.issue("localhost");
  Identity client = ca.issue("alice");

  green::TlsContext server_context(ClientCertificate client_certificate = ClientCertificate::none) const {
    TlsServerOptions o{.cert_chain_pem = server.cert_pem, .key_pem = server.key_pem};
    o.client_certificate = client_certificate;
    if (client_certificate != ClientCertificate::none) o.client_ca_pem = ca.cert_pem();
    return green::TlsContext::server(o);
  }
  green::TlsContext client_context(bool with_certificate = false) const {
    TlsClientOptions o{.ca_pem = ca.cert_pem()};
    if (with_certificate) {
      o.cert_chain_pem = client.cert_pem;
      o.key_pem = client.key_pem;
    }
    return green::TlsContext::client(o);
  }
};

// A connected pair over loopback, both handshakes done: {client, server}.
// The server's handshake runs in a green thread of its own, as StreamServer
// runs it.
inline std::pair<green::TlsSocket, green::TlsSocket> tls_pair(const green::TlsContext& client_ctx,
                                                             const green::TlsContext& server_ctx,
                                                             const std::string& server_name = "localhost") {
  auto [c, s] = green::io_testing::tcp_pair();
  green::TlsSocket server;
  auto server_side = green::spawn([&server, &server_ctx, sock = std::move(s)]() mutable {
    server = green::TlsSocket::accept(std::move(sock), server_ctx, std::chrono::seconds(10));
  });
  green::TlsSocket client;
  try {
    client = green::TlsSocket::connect(std::move(c), client_ctx, server_name, std::chrono::seconds(10));
  } catch (...) {
    server_side.join();  // it uses `server`; its handshake ends with the client's socket
    throw;
  }
  server_side.get();
  return {std::move(client), std::move(server)};
}

// Receives until `n` bytes came or the stream ended.
inline std::string recv_n(green::StreamTransport& t, std::size_t n,
                          green::MaybeTimeout timeout = std::chrono::seconds(10)) {
  std::string out;
  std::vector<char> buf(64 * 1024);
  while (out.size() < n) {
    const std::size_t got = t.recv(buf.data(), std::min(buf.size(), n - out.size()), timeout);
    if (got == 0) break;
    out.append(buf.data(), got);
  }
  return out;
}

}  // namespace green::tls_testing
