// TlsSocket over loopback: round trips, Stream over TLS, MiBs both ways
// with the reader and the writer of each end on different workers,
// verification failures (untrusted CA, wrong host name, expired), timeouts
// (per call, the default, a Timeout scope), kill while blocked in recv and in
// the handshake, close_notify against a bare TCP close, garbage from the
// peer, and create_tls_connection's SNI and host-name check.
#include <sys/socket.h>

#include <green/green.hpp>
#include <green/io.hpp>
#include <green/sync.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "test_util.hpp"
#include "tls_test_util.hpp"

using namespace std::chrono_literals;

namespace {

using green::Socket;
using green::TlsContext;
using green::TlsError;
using green::TlsSocket;
using green::io_testing::Clock;
using green::io_testing::listener;
using green::io_testing::ms_since;
using green::io_testing::open_fd_count;
using green::io_testing::tcp_pair;
using green::io_testing::wait_parked;
using green::testing::on_worker;
using green::tls_testing::Pki;
using green::tls_testing::recv_n;
using green::tls_testing::TestCa;
using green::tls_testing::tls_pair;

// Byte i of a test pattern: not periodic in any record or buffer size.
char pattern(std::uint64_t i, std::uint64_t seed) { return static_cast<char>((i * 2654435761u + seed) >> 7); }

// The client's handshake against a server end that runs its own in a green
// thread; returns what the client's connect threw (empty: it succeeded).
std::string client_failure(const TlsContext& client_ctx, const TlsContext& server_ctx, const std::string& name) {
  auto [c, s] = tcp_pair();
  auto server = green::spawn([&server_ctx, sock = std::move(s)]() mutable {
    try {
      TlsSocket::accept(std::move(sock), server_ctx, 10s);
    } catch (const green::Error&) {
    }
  });
  std::string what;
  try {
    TlsSocket::connect(std::move(c), client_ctx, name, 10s);
  } catch (const TlsError& e) {
    what = e.what();
    EXPECT_FALSE(e.openssl_error().empty()) << what;
  }
  server.join();
  return what;
}

TEST(TlsSocket, EchoRoundTrip) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Pki pki;
    auto [client, server] = tls_pair(pki.client_context(), pki.server_context());
    auto echo = green::spawn([&server] {
      char buf[100];
      for (;;) {
        const std::size_t n = server.recv(buf, sizeof buf, 10s);
        if (n == 0) return;
        server.send_all(std::string_view(buf, n), 10s);
      }
    });
    for (const std::string& msg : std::vector<std::string>{"hello", "x", std::string(5000, 'y')}) {
      client.send_all(msg, 10s);
      EXPECT_EQ(recv_n(client, msg.size()), msg);
    }
    EXPECT_TRUE(client.protocol() == "TLSv1.3" || client.protocol() == "TLSv1.2") << client.protocol();
    EXPECT_EQ(client.peer_certificate_subject().value_or("none"), "CN=localhost,O=green tests");
    EXPECT_EQ(server.server_name(), "localhost");  // SNI
    EXPECT_FALSE(server.peer_certificate_subject().has_value());  // the server asked for none
    client.close();
    echo.get(10s);
  });
}

TEST(TlsSocket, StreamLinesOverTls) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Pki pki;
    auto [client, server] = tls_pair(pki.client_context(), pki.server_context());
    auto writer = green::spawn([&client] {
      green::Stream out(client);
      for (int i = 0; i < 1000; ++i) out.write("line " + std::to_string(i) + "\n");
      out.write("last, without an end");
      out.flush();
      client.close();
    });
    green::Stream in(server);
    int i = 0;
    std::string last;
    for (auto& line : in.lines()) {
      if (i < 1000) {
        EXPECT_EQ(line, "line " + std::to_string(i) + "\n");
      }
      last = line;
      ++i;
    }
    EXPECT_EQ(i, 1001);
    EXPECT_EQ(last, "last, without an end");
    EXPECT_TRUE(server.close_notify_received());
    writer.get(10s);
  });
}

// One reader and one writer green thread per end, each on its own worker, so
// that both ends' SSL objects are used from two workers at once; MiBs each
// way, checked byte by byte.
constexpr std::size_t kBytes = green::testing::per_build<std::size_t>(8, 4, 2) << 20;

TEST(TlsSocket, MiBsBothWaysReaderAndWriterOnDifferentWorkers) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Pki pki;
    auto [a, b] = tls_pair(pki.client_context(), pki.server_context());
    auto writer = [](TlsSocket& t, std::uint64_t seed) {
      std::string chunk;
      for (std::size_t sent = 0; sent < kBytes;) {
        const std::size_t n = std::min<std::size_t>(kBytes - sent, 1 + (sent * 7919) % 100000);
        chunk.resize(n);
        for (std::size_t i = 0; i < n; ++i) chunk[i] = pattern(sent + i, seed);
        t.send_all(chunk, 60s);
        sent += n;
      }
    };
    auto reader = [](TlsSocket& t, std::uint64_t seed) {
      std::vector<char> buf(70000);
      std::size_t got = 0, bad = 0;
      while (got < kBytes) {
        const std::size_t n = t.recv(buf.data(), 1 + (got * 31) % buf.size(), 60s);
        if (n == 0) break;
        for (std::size_t i = 0; i < n; ++i) bad += buf[i] != pattern(got + i, seed);
        got += n;
      }
      EXPECT_EQ(bad, 0u);
      return got;
    };
    auto wa = green::spawn(on_worker(0), [&] { writer(a, 1); });
    auto ra = green::spawn(on_worker(1), [&] { return reader(a, 2); });
    auto wb = green::spawn(on_worker(1), [&] { writer(b, 2); });
    auto rb = green::spawn(on_worker(0), [&] { return reader(b, 1); });
    EXPECT_EQ(rb.get(120s), kBytes);
    EXPECT_EQ(ra.get(120s), kBytes);
    wa.get(120s);
    wb.get(120s);
  });
}

TEST(TlsSocket, TwoConcurrentReadersAreAnError) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    Pki pki;
    auto [client, server] = tls_pair(pki.client_context(), pki.server_context());
    auto first = green::spawn([&server] { return recv_n(server, 3); });
    ASSERT_TRUE(wait_parked(rt, first, "tls recv")) << rt.dump();
    char c;
    EXPECT_THROW(server.recv(&c, 1, 1s), green::Error);
    client.send_all("abc");
    EXPECT_EQ(first.get(10s), "abc");
  });
}

TEST(TlsSocket, UntrustedCaIsRefusedWithAClearError) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Pki pki;
    TestCa other("another CA");
    const auto client_ctx = TlsContext::client({.ca_pem = other.cert_pem()});
    const std::string what = client_failure(client_ctx, pki.server_context(), "localhost");
    EXPECT_NE(what.find("tls handshake 127.0.0.1:"), std::string::npos) << what;
    EXPECT_NE(what.find("certificate verify failed"), std::string::npos) << what;
    EXPECT_NE(what.find("unable to get local issuer certificate"), std::string::npos) << what;
  });
}

TEST(TlsSocket, SelfSignedWithoutTrustIsRefused) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    TestCa self("localhost");  // a server presenting the CA certificate itself
    Pki pki;
    // The server's chain is its own (self-signed) certificate; the client trusts pki's CA.
    green::tls_testing::Identity id = self.issue("localhost");
    const auto server_ctx = TlsContext::server({.cert_chain_pem = id.cert_pem, .key_pem = id.key_pem});
    const std::string what = client_failure(pki.client_context(), server_ctx, "localhost");
    EXPECT_NE(what.find("certificate verify failed"), std::string::npos) << what;
  });
}

TEST(TlsSocket, WrongHostNameIsRefusedWithAClearError) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Pki pki;
    const std::string what = client_failure(pki.client_context(), pki.server_context(), "www.example.org");
    EXPECT_NE(what.find("certificate verify failed"), std::string::npos) << what;
    EXPECT_NE(what.find("hostname mismatch"), std::string::npos) << what;
    // An IP address the certificate does not list.
    const std::string ip = client_failure(pki.client_context(), pki.server_context(), "10.1.2.3");
    EXPECT_NE(ip.find("IP address mismatch"), std::string::npos) << ip;
    // The names it does list pass: a DNS name and an IP address.
    EXPECT_EQ(client_failure(pki.client_context(), pki.server_context(), "localhost"), "");
    EXPECT_EQ(client_failure(pki.client_context(), pki.server_context(), "127.0.0.1"), "");
  });
}

TEST(TlsSocket, ExpiredCertificateIsRefused) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Pki pki;
    auto old = pki.ca.issue("localhost", {"DNS:localhost"}, {-7200, -3600});
    const auto server_ctx = TlsContext::server({.cert_chain_pem = old.cert_pem, .key_pem = old.key_pem});
    const std::string what = client_failure(pki.client_context(), server_ctx, "localhost");
    EXPECT_NE(what.find("certificate has expired"), std::string::npos) << what;
  });
}

TEST(TlsSocket, VerifyingClientNeedsAServerName) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    Pki pki;
    auto [c, s] = tcp_pair();
    EXPECT_THROW(TlsSocket::connect(std::move(c), pki.client_context(), ""), green::Error);
  });
}

TEST(TlsSocket, RecvTimeoutPerCallAndDefault) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Pki pki;
    auto [client, server] = tls_pair(pki.client_context(), pki.server_context());
    char buf[16];
    auto t0 = Clock::now();
    EXPECT_THROW(server.recv(buf, sizeof buf, 100ms), green::TimeoutError);
    green::testing::expect_about(Clock::now() - t0, 100ms);

    server.set_timeout(150ms);
    ASSERT_TRUE(server.timeout().has_value());
    EXPECT_TRUE(*server.timeout() == 150ms);
    t0 = Clock::now();
    try {
      server.recv(buf, sizeof buf);
      ADD_FAILURE() << "recv returned without data";
    } catch (const green::TimeoutError& e) {
      EXPECT_EQ(e.scope_id(), 0u);
    }
    green::testing::expect_about(Clock::now() - t0, 150ms);

    // A Timeout scope ends it too, and names itself.
    server.set_timeout(std::nullopt);
    green::Timeout scope(100ms);
    try {
      server.recv(buf, sizeof buf);
      ADD_FAILURE() << "recv returned without data";
    } catch (const green::TimeoutError& e) {
      EXPECT_TRUE(e.is(scope));
    }
    scope.cancel();

    // The connection is still good.
    client.send_all("after");
    EXPECT_EQ(recv_n(server, 5), "after");
  });
}

TEST(TlsSocketKill, BlockedInRecv) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    const int fds_before = open_fd_count();
    {
      Pki pki;
      auto [client, server] = tls_pair(pki.client_context(), pki.server_context());
      auto victim = green::spawn([&server] {
        char buf[16];
        server.recv(buf, sizeof buf);
      });
      ASSERT_TRUE(wait_parked(rt, victim, "tls recv")) << rt.dump();
      const auto t0 = Clock::now();
      EXPECT_TRUE(victim.kill(green::GreenletExit(), 2s));
      EXPECT_LT(Clock::now() - t0, 1s) << ms_since(t0) << " ms";
      EXPECT_TRUE(victim.killed());
      // The connection and its reader slot are usable again.
      auto reader = green::spawn([&server] { return recv_n(server, 5); });
      client.send_all("after");
      EXPECT_EQ(reader.get(10s), "after");
    }
    EXPECT_EQ(open_fd_count(), fds_before) << "fds leaked";
  });
}

// A server that accepts and never answers: the client's handshake waits for
// the ServerHello until it is killed, or until its timeout.
TEST(TlsSocketKill, BlockedInHandshake) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    const int fds_before = open_fd_count();
    {
      Pki pki;
      auto l = listener();
      const auto ctx = pki.client_context();
      auto victim = green::spawn([&] {
        Socket s(AF_INET, SOCK_STREAM);
        s.connect(l.local_address(), 5s);
        TlsSocket::connect(std::move(s), ctx, "localhost");
      });
      auto [silent, peer] = l.accept(5s);
      ASSERT_TRUE(wait_parked(rt, victim, "tls handshake")) << rt.dump();
      const auto t0 = Clock::now();
      EXPECT_TRUE(victim.kill(green::GreenletExit(), 2s));
      EXPECT_LT(Clock::now() - t0, 1s) << ms_since(t0) << " ms";
      EXPECT_TRUE(victim.killed());
      // The client's socket was closed: the silent server sees its end.
      char buf[4096];
      std::size_t n;
      while ((n = silent.recv(buf, sizeof buf, 5s)) > 0) {
      }
      EXPECT_EQ(n, 0u);

      // And the handshake's own timeout.
      Socket s(AF_INET, SOCK_STREAM);
      s.connect(l.local_address(), 5s);
      auto silent2 = l.accept(5s);
      const auto t1 = Clock::now();
      EXPECT_THROW(TlsSocket::connect(std::move(s), ctx, "localhost", 150ms), green::TimeoutError);
      green::testing::expect_about(Clock::now() - t1, 150ms);
    }
    EXPECT_EQ(open_fd_count(), fds_before) << "fds leaked";
  });
}

// close() sends close_notify: the peer's recv returns 0 with
// close_notify_received(). A bare TCP close gives 0 without it.
TEST(TlsSocket, CloseSendsCloseNotifyAndThePeerSeesACleanEnd) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Pki pki;
    {
      auto [client, server] = tls_pair(pki.client_context(), pki.server_context());
      client.send_all("bye");
      client.close();
      EXPECT_FALSE(client.valid());
      EXPECT_EQ(recv_n(server, 100), "bye");
      EXPECT_TRUE(server.close_notify_received());
      char c;
      EXPECT_EQ(server.recv(&c, 1, 1s), 0u);  // and again: the end stays
    }
    {
      auto [client, server] = tls_pair(pki.client_context(), pki.server_context());
      client.send_all("cut");
      client.socket().close();  // the TCP connection alone: a truncation
      EXPECT_EQ(recv_n(server, 100), "cut");
      EXPECT_FALSE(server.close_notify_received());
    }
    {
      // The server's close reaches the client the same way.
      auto [client, server] = tls_pair(pki.client_context(), pki.server_context());
      server.close();
      char c;
      EXPECT_EQ(client.recv(&c, 1, 5s), 0u);
      EXPECT_TRUE(client.close_notify_received());
    }
  });
}

TEST(TlsSocket, UseAfterCloseIsEbadf) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Pki pki;
    auto [client, server] = tls_pair(pki.client_context(), pki.server_context());
    client.close();
    client.close();  // idempotent
    try {
      client.send_all("x", 1s);
      ADD_FAILURE() << "send on a closed TlsSocket";
    } catch (const green::SystemError& e) {
      EXPECT_EQ(e.code(), EBADF);
    }
    TlsSocket none;
    EXPECT_FALSE(none.valid());
    char c;
    EXPECT_THROW(none.recv(&c, 1), green::SystemError);
  });
}

// Garbage from the peer after the handshake is a TlsError in recv, not a
// crash or a hang.
TEST(TlsSocket, GarbageRecordIsATlsError) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Pki pki;
    auto [client, server] = tls_pair(pki.client_context(), pki.server_context());
    ::send(client.socket().fd(), "GET / HTTP/1.0\r\n\r\n", 18, MSG_NOSIGNAL);
    char buf[16];
    try {
      server.recv(buf, sizeof buf, 5s);
      ADD_FAILURE() << "garbage was accepted";
    } catch (const TlsError& e) {
      EXPECT_NE(std::string(e.what()).find("tls recv"), std::string::npos) << e.what();
    }
  });
}

TEST(CreateTlsConnection, SendsSniAndChecksTheHostName) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Pki pki;
    auto l = listener();
    const auto server_ctx = pki.server_context();
    const std::uint16_t port = l.local_address().port();
    auto server = green::spawn([&] {
      std::vector<std::string> names;
      for (int i = 0; i < 2; ++i) {
        auto [sock, peer] = l.accept(10s);
        try {
          TlsSocket t = TlsSocket::accept(std::move(sock), server_ctx, 10s);
          names.push_back(t.server_name());
          t.send_all("hi");
        } catch (const green::Error&) {
          names.push_back("failed");
        }
      }
      return names;
    });
    TlsSocket t = green::create_tls_connection("localhost", port, pki.client_context(), 10s);
    EXPECT_EQ(recv_n(t, 2), "hi");
    // The host name is checked by default: 127.0.0.1 is in the certificate,
    // but a context trusting another CA refuses it.
    TestCa other;
    EXPECT_THROW(green::create_tls_connection("127.0.0.1", port, TlsContext::client({.ca_pem = other.cert_pem()}), 10s),
                 TlsError);
    const auto names = server.get(10s);
    ASSERT_EQ(names.size(), 2u);
    EXPECT_EQ(names[0], "localhost");
    EXPECT_EQ(names[1], "failed");  // no SNI for an address, and the client refused
  });
}

}  // namespace
