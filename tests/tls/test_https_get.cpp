// http_get over TLS: https:// URLs parse with port 443 by default; a GET to
// a TLS StreamServer returns its response (Content-Length and chunked, a
// name and a numeric host, from a green thread and from a plain thread);
// the process's default context (the system's CA store) refuses the test
// CA's server; the timeout covers a handshake that never comes.
#include <green/green.hpp>
#include <green/io.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <mutex>
#include <string>
#include <thread>

#include "test_util.hpp"
#include "tls_test_util.hpp"

using namespace std::chrono_literals;

namespace {

using green::Address;
using green::StreamServer;
using green::TlsSocket;
using green::io_testing::Clock;
using green::io_testing::ms_since;
using green::tls_testing::Pki;

// A TLS StreamServer on a free loopback port, with a certificate from a
// throwaway CA (pki) for localhost and 127.0.0.1, serving one GET a
// connection: "/chunked" in two chunks, anything else with a
// Content-Length; it remembers the last request's head. Made (and so
// started) in a green thread.
struct HelloServer {
  Pki pki;
  std::mutex mu;
  std::string last_head;
  StreamServer server{Address::parse("127.0.0.1:0"), pki.server_context(),
                      [this](TlsSocket& conn, const Address& peer) { serve(conn, peer); }};

  HelloServer() { server.start(); }

  std::string url(const std::string& host, const std::string& path) const {
    return "https://" + host + ":" + std::to_string(server.address().port()) + path;
  }

  void serve(TlsSocket& conn, const Address&) {
    green::Stream in(conn);
    std::string head;
    while (auto line = in.read_line()) {
      if (*line == "\r\n") break;
      head += *line;
    }
    {
      std::lock_guard g(mu);
      last_head = head;
    }
    if (head.starts_with("GET /chunked ")) {
      conn.send_all("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nhello \r\n8\r\nin parts\r\n0\r\n\r\n");
    } else {
      const std::string body = "hello over tls";
      conn.send_all("HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
    }
  }

  std::string head() {
    std::lock_guard g(mu);
    return last_head;
  }
};

TEST(HttpsUrl, SchemeAndDefaultPorts) {
  const auto s = green::Url::parse("https://example.org/a/b");
  EXPECT_TRUE(s.tls);
  EXPECT_EQ(s.host, "example.org");
  EXPECT_EQ(s.port, 443);
  EXPECT_EQ(s.path, "/a/b");
  const auto p = green::Url::parse("https://[::1]:8443");
  EXPECT_TRUE(p.tls);
  EXPECT_EQ(p.host, "::1");
  EXPECT_EQ(p.port, 8443);
  EXPECT_EQ(p.path, "/");
  const auto h = green::Url::parse("http://example.org");
  EXPECT_FALSE(h.tls);
  EXPECT_EQ(h.port, 80);
  try {
    green::Url::parse("ftp://example.org/");
    ADD_FAILURE() << "ftp:// parsed";
  } catch (const green::Error& e) {
    EXPECT_NE(std::string(e.what()).find("only http:// and https:// URLs are supported: 'ftp://example.org/'"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(green::Url::parse("https://:443/"), green::Error);
  EXPECT_THROW(green::Url::parse("https://host:99999/"), green::Error);
}

TEST(HttpsGet, GetsTheResponseOfATlsServer) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    HelloServer hello;
    const auto port = std::to_string(hello.server.address().port());
    const auto ctx = hello.pki.client_context();

    auto r = green::http_get(hello.url("localhost", "/hello"), ctx, 10s);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "hello over tls");
    const std::string head = hello.head();
    EXPECT_TRUE(head.starts_with("GET /hello HTTP/1.1\r\n")) << head;
    EXPECT_NE(head.find("\r\nHost: localhost:" + port + "\r\n"), std::string::npos) << head;

    // Chunked, and a numeric host (the certificate names 127.0.0.1 too).
    r = green::http_get(hello.url("127.0.0.1", "/chunked"), ctx, 10s);
    EXPECT_EQ(r.status, 200);
    EXPECT_EQ(r.body, "hello in parts");
    EXPECT_EQ(hello.server.tls_handshake_failures(), 0u);
    hello.server.stop(1s);
  });
}

TEST(HttpsGet, FromAPlainThread) {
  green::Runtime rt({.workers = 2});
  HelloServer* hello = nullptr;
  green::Event started, done;
  auto serving = rt.spawn([&] {
    HelloServer h;
    hello = &h;
    started.set();
    done.wait();
    h.server.stop(1s);
  });
  ASSERT_TRUE(started.wait(10s));
  std::string body;
  std::thread plain([&] { body = green::http_get(hello->url("localhost", "/x"), hello->pki.client_context(), 10s).body; });
  plain.join();
  EXPECT_EQ(body, "hello over tls");
  done.set();
  EXPECT_TRUE(serving.join(10s));
}

// Without a context of the caller's, https:// trusts the system's CA store,
// which does not hold the test's throwaway CA.
TEST(HttpsGet, TheDefaultContextRefusesAnUntrustedServer) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    HelloServer hello;
    try {
      green::http_get(hello.url("localhost", "/hello"), 10s);
      ADD_FAILURE() << "an untrusted server was accepted";
    } catch (const green::TlsError& e) {
      EXPECT_NE(std::string(e.what()).find("certificate verify failed"), std::string::npos) << e.what();
    }
    EXPECT_TRUE(hello.head().empty());  // no request was sent
    hello.server.stop(1s);
  });
}

// A server that accepts TCP and never answers the handshake: the call's
// timeout covers the handshake and ends it as TimeoutError(0).
TEST(HttpsGet, TheTimeoutCoversTheHandshake) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    Pki pki;
    green::Socket listener = green::Socket::tcp();
    listener.bind(Address::parse("127.0.0.1:0"));
    listener.listen();  // the kernel completes the TCP handshake; nobody speaks TLS
    const auto url = "https://localhost:" + std::to_string(listener.local_address().port()) + "/";
    const auto t0 = Clock::now();
    try {
      green::http_get(url, pki.client_context(), 200ms);
      ADD_FAILURE() << "no timeout";
    } catch (const green::TimeoutError& e) {
      EXPECT_EQ(e.scope_id(), 0u) << e.what();
    }
    EXPECT_GE(Clock::now() - t0, 150ms);
    EXPECT_LT(Clock::now() - t0, 5s) << ms_since(t0) << " ms";
  });
}

}  // namespace
