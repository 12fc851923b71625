// tls_context.cpp — building an SSL_CTX from TlsServerOptions and
// TlsClientOptions, checking each piece as it is loaded so that the error
// names the piece.
#include "green/tls_context.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>

#include "openssl_errors.hpp"

namespace green {

namespace {

using io_detail::take_openssl_errors;

[[noreturn]] void fail(const std::string& what) { throw TlsError("green::TlsContext: " + what, take_openssl_errors()); }

struct BioFree {
  void operator()(BIO* b) const noexcept { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

BioPtr memory_bio(const std::string& pem) {
  BioPtr b(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!b) fail("out of memory");
  return b;
}

// After reading PEM objects until the first failure: that failure must be
// the end of the text ("no start line"), not a damaged object.
void end_of_pem(const std::string& what) {
  const unsigned long last = ERR_peek_last_error();
  if (last != 0 && !(ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE)) fail(what);
  ERR_clear_error();
}

// Exactly one of a file and PEM text, or (when `optional`) neither.
void check_one_of(const std::string& file, const std::string& pem, const char* what, bool optional) {
  if (!file.empty() && !pem.empty()) throw TlsError(std::string("green::TlsContext: ") + what + ": give a file or PEM text, not both", "");
  if (!optional && file.empty() && pem.empty()) throw TlsError(std::string("green::TlsContext: ") + what + " missing", "");
}

// The certificate chain (leaf first) and the key, and that they match.
void load_identity(SSL_CTX* ctx, const std::string& chain_file, const std::string& key_file,
                   const std::string& chain_pem, const std::string& key_pem) {
  ERR_clear_error();
  if (!chain_file.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, chain_file.c_str()) != 1)
      fail("certificate chain file " + chain_file);
  } else {
    BioPtr b = memory_bio(chain_pem);
    X509* leaf = PEM_read_bio_X509_AUX(b.get(), nullptr, nullptr, nullptr);
    if (!leaf) fail("certificate chain PEM: no certificate");
    const int ok = SSL_CTX_use_certificate(ctx, leaf);
    X509_free(leaf);
    if (ok != 1) fail("certificate chain PEM: the certificate");
    while (X509* extra = PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr)) {
      if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {  // takes it on success only
        X509_free(extra);
        fail("certificate chain PEM: an intermediate certificate");
      }
    }
    end_of_pem("certificate chain PEM: an intermediate certificate");
  }
  // OpenSSL compares the key with the certificate as it takes it.
  auto key_failed = [](const std::string& what) {
    const unsigned long e = ERR_peek_last_error();
    if (ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
      fail(what + ": the private key does not match the certificate");
    fail(what);
  };
  if (!key_file.empty()) {
    if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1) key_failed("key file " + key_file);
  } else {
    BioPtr b = memory_bio(key_pem);
    EVP_PKEY* key = PEM_read_bio_PrivateKey(b.get(), nullptr, nullptr, nullptr);
    if (!key) fail("key PEM: no private key");
    const int ok = SSL_CTX_use_PrivateKey(ctx, key);
    EVP_PKEY_free(key);
    if (ok != 1) key_failed("key PEM");
  }
  if (SSL_CTX_check_private_key(ctx) != 1) fail("the private key does not match the certificate");
}

// CA certificates to verify the peer against; with `name_for_clients`, also
// the list of acceptable CAs a server sends with its certificate request.
void load_cas(SSL_CTX* ctx, const std::string& file, const std::string& pem, bool name_for_clients) {
  ERR_clear_error();
  if (!file.empty()) {
    if (SSL_CTX_load_verify_file(ctx, file.c_str()) != 1) fail("CA file " + file);
    if (name_for_clients) {
      STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(file.c_str());
      if (!names) fail("CA file " + file);
      SSL_CTX_set_client_CA_list(ctx, names);
    }
    return;
  }
  BioPtr b = memory_bio(pem);
  X509_STORE* store = SSL_CTX_get_cert_store(ctx);
  int count = 0;
  while (X509* ca = PEM_read_bio_X509(b.get(), nullptr, nullptr, nullptr)) {
    const bool ok = X509_STORE_add_cert(store, ca) == 1 && (!name_for_clients || SSL_CTX_add_client_CA(ctx, ca) == 1);
    X509_free(ca);
    if (!ok) fail("CA PEM");
    ++count;
  }
  if (count == 0) fail("CA PEM: no certificate");
  end_of_pem("CA PEM");
}

std::shared_ptr<ssl_ctx_st> new_context(const SSL_METHOD* method) {
  ERR_clear_error();
  std::shared_ptr<ssl_ctx_st> ctx(SSL_CTX_new(method), &SSL_CTX_free);
  if (!ctx) fail("SSL_CTX_new");
  // The policy of the header comment.
  if (SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION) != 1) fail("TLS 1.2 minimum");
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET);
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  return ctx;
}

}  // namespace

TlsContext TlsContext::server(const TlsServerOptions& o) {
  check_one_of(o.cert_chain_file, o.cert_chain_pem, "certificate chain", false);
  check_one_of(o.key_file, o.key_pem, "private key", false);
  const bool verify_clients = o.client_certificate != ClientCertificate::none;
  check_one_of(o.client_ca_file, o.client_ca_pem, "client CA", !verify_clients);
  auto ctx = new_context(TLS_server_method());
  // TLS 1.3 session tickets would be sent after the handshake, unasked-for
  // bytes a client that closes without reading turns into a reset; green
  // offers no resumption, so none are issued.
  if (SSL_CTX_set_num_tickets(ctx.get(), 0) != 1) fail("session tickets off");
  load_identity(ctx.get(), o.cert_chain_file, o.key_file, o.cert_chain_pem, o.key_pem);
  if (verify_clients) {
    load_cas(ctx.get(), o.client_ca_file, o.client_ca_pem, true);
    int mode = SSL_VERIFY_PEER;
    if (o.client_certificate == ClientCertificate::required) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
    SSL_CTX_set_verify(ctx.get(), mode, nullptr);
  }
  return TlsContext(std::move(ctx), true, false);
}

TlsContext TlsContext::client(const TlsClientOptions& o) {
  check_one_of(o.ca_file, o.ca_pem, "CA", true);
  check_one_of(o.cert_chain_file, o.cert_chain_pem, "client certificate", true);
  check_one_of(o.key_file, o.key_pem, "client key", true);
  const bool has_cert = !o.cert_chain_file.empty() || !o.cert_chain_pem.empty();
  const bool has_key = !o.key_file.empty() || !o.key_pem.empty();
  if (has_cert != has_key) throw TlsError("green::TlsContext: a client certificate needs its key and a key its certificate", "");
  auto ctx = new_context(TLS_client_method());
  if (!o.ca_file.empty() || !o.ca_pem.empty()) {
    load_cas(ctx.get(), o.ca_file, o.ca_pem, false);
  } else if (o.verify) {
    ERR_clear_error();
    if (SSL_CTX_set_default_verify_paths(ctx.get()) != 1) fail("the system's CA store");
  }
  if (has_cert) load_identity(ctx.get(), o.cert_chain_file, o.key_file, o.cert_chain_pem, o.key_pem);
  SSL_CTX_set_verify(ctx.get(), o.verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
  return TlsContext(std::move(ctx), false, o.verify);
}

}  // namespace green
