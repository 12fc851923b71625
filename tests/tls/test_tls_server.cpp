// StreamServer with a TlsContext: echo over Stream through
// create_tls_connection; the handshake runs in the connection's green
// thread (a silent client holds nobody else up); failed handshakes (plain
// text, a missing client certificate, an untrusted client, a silent client
// past the handshake timeout) are counted and close only their connection;
// client certificates reach the handler; stop() with TLS connections alive.
#include <sys/socket.h>

#include <green/green.hpp>
#include <green/io.hpp>
#include <green/sync.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <string>
#include <vector>

#include "test_util.hpp"
#include "tls_test_util.hpp"

using namespace std::chrono_literals;

namespace {

using green::Address;
using green::ClientCertificate;
using green::Socket;
using green::StreamServer;
using green::TlsContext;
using green::TlsError;
using green::TlsSocket;
using green::io_testing::Clock;
using green::io_testing::ms_since;
using green::testing::wait_until;
using green::tls_testing::Pki;
using green::tls_testing::recv_n;
using green::tls_testing::TestCa;

// Every line back, until the client ends.
void echo_lines(TlsSocket& conn, const Address&) {
  green::Stream stream(conn);
  for (auto& line : stream.lines()) conn.send_all(line);
}

// A TLS connection to the server at `port` echoes one line.
void expect_echo(std::uint16_t port, const TlsContext& ctx, const std::string& line) {
  TlsSocket conn = green::create_tls_connection("localhost", port, ctx, 10s);
  conn.send_all(line, 10s);
  green::Stream stream(conn);
  conn.set_timeout(10s);
  EXPECT_EQ(stream.read_line(), line);
}

// A plain TCP client that says nothing until closed.
Socket silent_client(std::uint16_t port) { return green::create_connection("127.0.0.1", port, 5s); }

TEST(TlsServer, EchoLinesThroughStream) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Pki pki;
    StreamServer server(Address::parse("127.0.0.1:0"), pki.server_context(), echo_lines);
    server.start();
    const auto ctx = pki.client_context();
    std::vector<green::Greenlet<void>> clients;
    for (int i = 0; i < 4; ++i)
      clients.push_back(green::spawn([&, i] {
        TlsSocket conn = green::create_tls_connection("localhost", server.address().port(), ctx, 10s);
        conn.set_timeout(10s);
        green::Stream stream(conn);
        for (int j = 0; j < 50; ++j) {
          const std::string line = "client " + std::to_string(i) + " line " + std::to_string(j) + "\n";
          stream.write(line);
          stream.flush();
          EXPECT_EQ(stream.read_line(), line);
        }
        conn.close();
      }));
    green::joinall(clients, 30s, true);
    EXPECT_EQ(server.tls_handshake_failures(), 0u);
    server.stop(1s);
  });
}

// The acceptor only accepts: a client that connects and says nothing keeps
// its own green thread waiting, and the next client is served meanwhile.
TEST(TlsServer, HandshakeRunsInTheConnectionsGreenThread) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Pki pki;
    StreamServer server(Address::parse("127.0.0.1:0"), pki.server_context(), echo_lines, {.listeners = 1});
    server.start();
    const std::uint16_t port = server.address().port();
    Socket silent = silent_client(port);
    ASSERT_TRUE(wait_until([&] { return server.connections() == 1; }));
    const auto t0 = Clock::now();
    expect_echo(port, pki.client_context(), "served\n");
    EXPECT_LT(Clock::now() - t0, 5s) << ms_since(t0) << " ms";
    EXPECT_EQ(server.tls_handshake_failures(), 0u);
    server.stop(100ms);
  });
}

TEST(TlsServer, PlainTextClientIsCountedAndTheNextIsServed) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Pki pki;
    StreamServer server(Address::parse("127.0.0.1:0"), pki.server_context(), echo_lines);
    server.start();
    const std::uint16_t port = server.address().port();
    {
      Socket plain = green::create_connection("127.0.0.1", port, 5s);
      plain.send_all("GET / HTTP/1.1\r\nHost: x\r\n\r\n", 5s);
      // The server closes it (after its alert, if any; a reset is fine too).
      std::string got;
      try {
        char buf[512];
        std::size_t n;
        while ((n = plain.recv(buf, sizeof buf, 5s)) > 0) got.append(buf, n);
      } catch (const green::SystemError& e) {
        EXPECT_EQ(e.code(), ECONNRESET) << e.what();
      }
      EXPECT_EQ(got.find("HTTP"), std::string::npos) << "the garbage was answered as if served";
    }
    ASSERT_TRUE(wait_until([&] { return server.tls_handshake_failures() == 1; })) << server.tls_handshake_failures();
    expect_echo(port, pki.client_context(), "next\n");
    EXPECT_EQ(server.tls_handshake_failures(), 1u);
    EXPECT_EQ(server.peer_errors(), 0u);
    server.stop(1s);
  });
}

TEST(TlsServer, RequiredClientCertificateMissingIsCountedAndAGoodClientServed) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Pki pki;
    std::vector<std::string> subjects;
    green::Lock mu;
    StreamServer server(Address::parse("127.0.0.1:0"), pki.server_context(ClientCertificate::required),
                        [&](TlsSocket& conn, const Address& peer) {
                          {
                            std::lock_guard g(mu);
                            subjects.push_back(conn.peer_certificate_subject().value_or("none"));
                          }
                          echo_lines(conn, peer);
                        });
    server.start();
    const std::uint16_t port = server.address().port();
    // Without a certificate: refused. Under TLS 1.3 the client's side of the
    // handshake ends before the server has checked, so the refusal may come
    // at the first read instead.
    try {
      TlsSocket conn = green::create_tls_connection("localhost", port, pki.client_context(false), 10s);
      conn.send_all("anyone?\n", 10s);
      char c;
      conn.recv(&c, 1, 10s);
      ADD_FAILURE() << "a client without a certificate was served";
    } catch (const green::Error&) {
      // TlsError (the server's alert) or a reset.
    }
    ASSERT_TRUE(wait_until([&] { return server.tls_handshake_failures() == 1; })) << server.tls_handshake_failures();
    // With one from another CA: refused too.
    TestCa other;
    auto stranger = other.issue("mallory");
    const auto stranger_ctx = TlsContext::client(
        {.ca_pem = pki.ca.cert_pem(), .cert_chain_pem = stranger.cert_pem, .key_pem = stranger.key_pem});
    try {
      TlsSocket conn = green::create_tls_connection("localhost", port, stranger_ctx, 10s);
      char c;
      conn.recv(&c, 1, 10s);
      ADD_FAILURE() << "a client with an untrusted certificate was served";
    } catch (const green::Error&) {
    }
    ASSERT_TRUE(wait_until([&] { return server.tls_handshake_failures() == 2; })) << server.tls_handshake_failures();
    // With a good one: served, and the handler sees who it is.
    expect_echo(port, pki.client_context(true), "alice here\n");
    EXPECT_EQ(server.tls_handshake_failures(), 2u);
    server.stop(1s);
    ASSERT_EQ(subjects.size(), 1u);
    EXPECT_EQ(subjects[0], "CN=alice,O=green tests");
  });
}

// A client that connects and never speaks cannot hold a max_connections
// slot beyond the handshake timeout.
TEST(TlsServer, SilentClientTimesOutAndFreesItsSlot) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Pki pki;
    StreamServer server(Address::parse("127.0.0.1:0"), pki.server_context(), echo_lines,
                        {.max_connections = 1, .tls_handshake_timeout = 300ms});
    server.start();
    const std::uint16_t port = server.address().port();
    Socket silent = silent_client(port);
    ASSERT_TRUE(wait_until([&] { return server.connections() == 1; }));
    const auto t0 = Clock::now();
    expect_echo(port, pki.client_context(), "my turn\n");  // waits for the slot
    const auto took = Clock::now() - t0;
    EXPECT_GE(took, 200ms) << "served while the only slot was taken: " << ms_since(t0) << " ms";
    EXPECT_LT(took, 5s) << ms_since(t0) << " ms";
    EXPECT_EQ(server.tls_handshake_failures(), 1u);
    // The silent client's connection was closed.
    char c;
    EXPECT_EQ(silent.recv(&c, 1, 5s), 0u);
    server.stop(1s);
  });
}

// stop() with TLS connections in the middle of a session: the handlers end
// (killed after the grace), the clients see the end of the stream, and the
// server is stopped.
TEST(TlsServer, StopWithTlsConnectionsAlive) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Pki pki;
    std::atomic<int> entered{0}, killed{0};
    StreamServer server(Address::parse("127.0.0.1:0"), pki.server_context(), [&](TlsSocket& conn, const Address&) {
      entered.fetch_add(1);
      try {
        conn.send_all("hello\n");
        char buf[64];
        while (conn.recv(buf, sizeof buf) > 0) {
        }
      } catch (const green::GreenletExit&) {
        killed.fetch_add(1);
        throw;
      }
    });
    server.start();
    const auto ctx = pki.client_context();
    std::vector<TlsSocket> clients;
    for (int i = 0; i < 3; ++i) {
      clients.push_back(green::create_tls_connection("localhost", server.address().port(), ctx, 10s));
      EXPECT_EQ(recv_n(clients.back(), 6), "hello\n");
    }
    ASSERT_TRUE(wait_until([&] { return entered.load() == 3; }));
    const auto t0 = Clock::now();
    server.stop(200ms);
    EXPECT_LT(Clock::now() - t0, 5s) << ms_since(t0) << " ms";
    EXPECT_EQ(killed.load(), 3);
    EXPECT_EQ(server.connections(), 0u);
    for (auto& c : clients) {
      char buf[16];
      EXPECT_EQ(c.recv(buf, sizeof buf, 5s), 0u) << "the client sees the end of the stream";
      EXPECT_TRUE(c.close_notify_received()) << "closed with close_notify";
    }
    EXPECT_EQ(server.tls_handshake_failures(), 0u);
  });
}

TEST(TlsServer, NeedsAServerContext) {
  Pki pki;
  EXPECT_THROW(StreamServer(Address::parse("127.0.0.1:0"), pki.client_context(), echo_lines), green::Error);
  EXPECT_THROW(StreamServer(Address::parse("127.0.0.1:0"), TlsContext(), echo_lines), green::Error);
}

}  // namespace
