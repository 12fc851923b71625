// TlsContext: built from files and from PEM text; every way of getting it
// wrong is a TlsError that names the piece (missing file, garbage PEM, a key
// that does not match its certificate, a verifying server without a CA,
// both or neither of file and PEM), and a context from files works.
#include <openssl/ssl.h>

#include <green/green.hpp>
#include <green/io.hpp>

#include <gtest/gtest.h>

#include <string>

#include "tls_test_util.hpp"

using namespace std::chrono_literals;

namespace {

using green::ClientCertificate;
using green::TlsContext;
using green::TlsError;
using green::tls_testing::Pki;
using green::tls_testing::TempDir;
using green::tls_testing::tls_pair;
using green::tls_testing::recv_n;

// What building the context threw (empty if it did not throw).
template <class Build>
std::string error_of(Build build) {
  try {
    build();
  } catch (const TlsError& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(TlsContext, MissingCertificateFileNamesTheFile) {
  Pki pki;
  TempDir dir;
  const std::string key = dir.write("key.pem", pki.server.key_pem);
  const std::string what = error_of([&] {
    TlsContext::server({.cert_chain_file = dir.path("no-such-chain.pem"), .key_file = key});
  });
  EXPECT_TRUE(contains(what, "certificate chain file " + dir.path("no-such-chain.pem"))) << what;
  EXPECT_TRUE(contains(what, "No such file or directory")) << what;
}

TEST(TlsContext, MissingKeyFileNamesTheFile) {
  Pki pki;
  TempDir dir;
  const std::string chain = dir.write("chain.pem", pki.server.cert_pem);
  const std::string what = error_of([&] {
    TlsContext::server({.cert_chain_file = chain, .key_file = dir.path("no-such-key.pem")});
  });
  EXPECT_TRUE(contains(what, "key file " + dir.path("no-such-key.pem"))) << what;
}

TEST(TlsContext, GarbagePemIsRefused) {
  Pki pki;
  TempDir dir;
  const std::string junk = dir.write("junk.pem", "this is not PEM\n");
  EXPECT_TRUE(contains(error_of([&] {
                         TlsContext::server({.cert_chain_file = junk, .key_file = junk});
                       }),
                       "certificate chain file"));
  EXPECT_TRUE(contains(error_of([&] {
                         TlsContext::server({.cert_chain_pem = "junk", .key_pem = pki.server.key_pem});
                       }),
                       "certificate chain PEM"));
  EXPECT_TRUE(contains(error_of([&] {
                         TlsContext::server({.cert_chain_pem = pki.server.cert_pem, .key_pem = "junk"});
                       }),
                       "key PEM"));
  EXPECT_TRUE(contains(error_of([] { TlsContext::client({.ca_pem = "junk"}); }), "CA PEM"));
}

TEST(TlsContext, KeyNotMatchingTheCertificateIsRefused) {
  Pki pki;
  const std::string what = error_of([&] {
    TlsContext::server({.cert_chain_pem = pki.server.cert_pem, .key_pem = pki.client.key_pem});
  });
  EXPECT_TRUE(contains(what, "the private key does not match the certificate")) << what;
  TempDir dir;
  const std::string chain = dir.write("chain.pem", pki.server.cert_pem);
  const std::string key = dir.write("key.pem", pki.client.key_pem);
  EXPECT_FALSE(error_of([&] { TlsContext::server({.cert_chain_file = chain, .key_file = key}); }).empty());
}

TEST(TlsContext, IncompleteOptionsAreRefused) {
  Pki pki;
  EXPECT_TRUE(contains(error_of([] { TlsContext::server({}); }), "certificate chain missing"));
  EXPECT_TRUE(contains(error_of([&] { TlsContext::server({.cert_chain_pem = pki.server.cert_pem}); }),
                       "private key missing"));
  EXPECT_TRUE(contains(error_of([&] {
                         TlsContext::server({.cert_chain_file = "/x", .key_file = "/y",
                                             .cert_chain_pem = pki.server.cert_pem, .key_pem = pki.server.key_pem});
                       }),
                       "not both"));
  EXPECT_TRUE(contains(error_of([&] {
                         TlsContext::server({.cert_chain_pem = pki.server.cert_pem,
                                             .key_pem = pki.server.key_pem,
                                             .client_certificate = ClientCertificate::required});
                       }),
                       "client CA missing"));
  EXPECT_TRUE(contains(error_of([&] { TlsContext::client({.cert_chain_pem = pki.client.cert_pem}); }),
                       "needs its key"));
}

TEST(TlsContext, FromFilesWithAChainServesAClient) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Pki pki;
    TempDir dir;
    const auto server_ctx = TlsContext::server({.cert_chain_file = dir.write("chain.pem", pki.server.cert_pem),
                                                .key_file = dir.write("key.pem", pki.server.key_pem)});
    const auto client_ctx = TlsContext::client({.ca_file = dir.write("ca.pem", pki.ca.cert_pem())});
    EXPECT_TRUE(server_ctx.is_server());
    EXPECT_FALSE(client_ctx.is_server());
    EXPECT_TRUE(client_ctx.verifies_peer());
    auto [client, server] = tls_pair(client_ctx, server_ctx);
    client.send_all("ok");
    EXPECT_EQ(recv_n(server, 2), "ok");
  });
}

TEST(TlsContext, SystemStoreClientAndNoVerifyClient) {
  // The system's store (whatever this machine has) loads; without
  // verification an untrusted server is accepted (for tests only).
  EXPECT_TRUE(TlsContext::client().verifies_peer());
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Pki pki;
    const auto lax = TlsContext::client({.verify = false});
    EXPECT_FALSE(lax.verifies_peer());
    auto [client, server] = tls_pair(lax, pki.server_context(), "");
    server.send_all("unverified");
    EXPECT_EQ(recv_n(client, 10), "unverified");
  });
}

TEST(TlsContext, OnlyTls12AndUp) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Pki pki;
    const auto server_ctx = pki.server_context();
    EXPECT_EQ(SSL_CTX_get_min_proto_version(server_ctx.native_handle()), TLS1_2_VERSION);
    // A client that speaks at most TLS 1.1 is refused.
    const auto old_client = pki.client_context();
    SSL_CTX_set_min_proto_version(old_client.native_handle(), TLS1_VERSION);
    SSL_CTX_set_max_proto_version(old_client.native_handle(), TLS1_1_VERSION);
    auto [c, s] = green::io_testing::tcp_pair();
    auto server = green::spawn([&server_ctx, sock = std::move(s)]() mutable {
      EXPECT_THROW(green::TlsSocket::accept(std::move(sock), server_ctx, 10s), TlsError);
    });
    EXPECT_THROW(green::TlsSocket::connect(std::move(c), old_client, "localhost", 10s), TlsError);
    server.get(10s);
  });
}

}  // namespace
