// StreamServer and DatagramServer: the life cycle of gevent-behaviours 41
// (refused before start, port 0, serve_forever ended by stop, refused after
// stop, an error in a handler closes only its connection, a bounded pool
// holds a third client back), stop(grace) with connected clients, the echo
// example of case 44, Unix domain servers, and UDP request/reply.
#include <sys/socket.h>
#include <unistd.h>

#include <green/green.hpp>
#include <green/io.hpp>
#include <green/sync.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "io_test_util.hpp"
#include "test_util.hpp"

using namespace std::chrono_literals;

namespace {

using green::Address;
using green::Socket;
using green::StreamServer;
using green::io_testing::Clock;
using green::io_testing::ms_since;
using green::io_testing::recv_all;
using green::io_testing::wait_parked;
using green::testing::MyError;
using green::testing::wait_until;

// An echo handler: every line back, until the client closes.
void echo_lines(Socket& sock, const Address&) {
  green::Stream stream(sock);
  for (auto& line : stream.lines()) sock.send_all(line);
}

// Connects and checks one echo round trip.
void expect_echo(Socket& sock, const std::string& line) {
  sock.send_all(line, 5s);
  green::Stream stream(sock);
  EXPECT_EQ(stream.read_line(), line);
}

bool refused(std::uint16_t port) {
  try {
    green::create_connection("127.0.0.1", port, 5s);
    return false;
  } catch (const green::SystemError& e) {
    EXPECT_EQ(e.code(), ECONNREFUSED) << e.what();
    return true;
  }
}

// A port that was free a moment ago (bound, read back, released).
std::uint16_t free_port() {
  Socket s(AF_INET, SOCK_STREAM);
  s.bind(Address::parse("127.0.0.1:0"));
  return s.local_address().port();
}

// ---------------------------------------------------------------------------
// Life cycle (gevent case 41).

TEST(StreamServer, RefusedBeforeStartServedAfterRefusedAfterStop) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    const std::uint16_t port = free_port();
    StreamServer server(Address::ip("127.0.0.1", port), echo_lines);
    EXPECT_FALSE(server.started());
    EXPECT_TRUE(refused(port)) << "connecting before start() must be refused";
    server.start();
    EXPECT_TRUE(server.started());
    EXPECT_EQ(server.address().port(), port);
    for (int i = 0; i < 2; ++i) {  // "/ping works twice"
      auto sock = green::create_connection("127.0.0.1", port, 5s);
      expect_echo(sock, "ping " + std::to_string(i) + "\n");
    }
    EXPECT_THROW(server.start(), green::Error) << "already started";
    server.stop(1s);
    EXPECT_TRUE(refused(port)) << "connecting after stop() must be refused";
    EXPECT_FALSE(server.started()) << "gevent: started is False after stop()";
    server.stop(1s);  // a second stop is harmless
  });
}

TEST(StreamServer, PortZeroPicksAPort) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    StreamServer server(Address::parse("127.0.0.1:0"), echo_lines);
    EXPECT_EQ(server.address().port(), 0);
    server.start();
    const Address a = server.address();
    EXPECT_NE(a.port(), 0);
    EXPECT_EQ(a.to_string(), "127.0.0.1:" + std::to_string(a.port()));
    auto sock = green::create_connection("127.0.0.1", a.port(), 5s);
    EXPECT_EQ(sock.peer_address(), a);
    expect_echo(sock, "port zero\n");
    sock.close();  // the handler ends: stop() need not wait out its grace
    server.stop(1s);
  });
}

TEST(StreamServer, MisuseIsRejected) {
  EXPECT_THROW(StreamServer(Address::parse("127.0.0.1:0"), nullptr), green::Error);
  // start() outside a green thread.
  {
    green::Runtime rt({.workers = 1});
    StreamServer server(Address::parse("127.0.0.1:0"), echo_lines);
    EXPECT_THROW(server.start(), green::Error);
    EXPECT_FALSE(server.started());
  }
  // Address in use: a second server on a bound, non-reuseport port.
  green::Runtime rt({.workers = 1});
  rt.run([] {
    Socket holder(AF_INET, SOCK_STREAM);
    holder.bind(Address::parse("127.0.0.1:0"));
    holder.listen(4);
    StreamServer server(holder.local_address(), echo_lines);
    try {
      server.start();
      ADD_FAILURE() << "bind to a port in use succeeded";
    } catch (const green::SystemError& e) {
      EXPECT_EQ(e.code(), EADDRINUSE) << e.what();
    }
  });
}

TEST(StreamServer, ServeForeverInAGreenThreadEndsWithStop) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    // serve_forever starting the server itself.
    const std::uint16_t port = free_port();
    green::Event served;
    StreamServer server(Address::ip("127.0.0.1", port), [&](Socket& sock, const Address& peer) {
      served.set();
      echo_lines(sock, peer);
    });
    auto serving = green::spawn([&] { server.serve_forever(); });
    // It binds when it runs: connect once it does.
    Socket sock;
    ASSERT_TRUE(wait_until([&] {
      try {
        sock = green::create_connection("127.0.0.1", port, 5s);
        return true;
      } catch (const green::SystemError&) {
        return false;
      }
    }));
    expect_echo(sock, "forever\n");
    ASSERT_TRUE(served.wait(5s));
    EXPECT_FALSE(serving.ready());
    sock.close();
    server.stop(2s);
    EXPECT_TRUE(serving.join(2s)) << "serve_forever must return after stop()";
    EXPECT_TRUE(serving.successful());
  });
}

TEST(StreamServer, ServeForeverAfterStart) {
  green::Runtime rt({.workers = 2});
  rt.run([&] {
    StreamServer server(Address::parse("127.0.0.1:0"), echo_lines);
    server.start();
    auto serving = green::spawn([&] { server.serve_forever(); });
    auto sock = green::create_connection("127.0.0.1", server.address().port(), 5s);
    expect_echo(sock, "started first\n");
    sock.close();
    EXPECT_FALSE(serving.ready());
    // stop() from yet another green thread (as a signal handler would).
    auto stopper = green::spawn([&] { server.stop(1s); });
    EXPECT_TRUE(serving.join(5s));
    EXPECT_TRUE(stopper.join(5s));
    stopper.get();
  });
}

// ---------------------------------------------------------------------------
// stop(grace) with connected clients.

TEST(StreamServer, StopKillsHandlersAfterGraceAndClientsSeeEof) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    std::atomic<int> killed{0}, finished{0}, entered{0};
    StreamServer server(Address::parse("127.0.0.1:0"), [&](Socket& sock, const Address&) {
      entered.fetch_add(1);
      try {
        char buf[64];
        while (sock.recv(buf, sizeof buf) > 0) {
        }
        finished.fetch_add(1);
      } catch (const green::GreenletExit&) {
        killed.fetch_add(1);
        throw;
      }
    });
    server.start();
    const std::uint16_t port = server.address().port();
    std::vector<Socket> clients;
    for (int i = 0; i < 3; ++i) clients.push_back(green::create_connection("127.0.0.1", port, 5s));
    ASSERT_TRUE(wait_until([&] { return entered.load() == 3; })) << server.connections();
    EXPECT_EQ(server.connections(), 3u);

    const auto t0 = Clock::now();
    server.stop(300ms);
    const auto took = Clock::now() - t0;
    EXPECT_GE(took, 250ms) << "stop() must give the handlers their grace: " << ms_since(t0) << " ms";
    EXPECT_LT(took, 3s) << ms_since(t0) << " ms";
    EXPECT_EQ(killed.load(), 3);
    EXPECT_EQ(finished.load(), 0);
    EXPECT_EQ(server.connections(), 0u) << "stop() returns once every handler has ended";
    for (auto& c : clients) EXPECT_EQ(c.recv(16, 5s), "") << "the client sees end of stream";
    EXPECT_TRUE(refused(port));
  });
}

TEST(StreamServer, StopWaitsForHandlersThatFinishWithinGrace) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    green::Event release;
    std::atomic<bool> completed{false}, killed{false};
    StreamServer server(Address::parse("127.0.0.1:0"), [&](Socket& sock, const Address&) {
      try {
        sock.send_all("hi\n");
        release.wait();
        sock.send_all("bye\n");
        completed = true;
      } catch (const green::GreenletExit&) {
        killed = true;
        throw;
      }
    });
    server.start();
    auto sock = green::create_connection("127.0.0.1", server.address().port(), 5s);
    green::Stream stream(sock);
    EXPECT_EQ(stream.read_line(), "hi\n");  // the handler runs

    const auto t0 = Clock::now();
    auto stopper = green::spawn([&] { server.stop(10s); });
    // stop() stops accepting first, then waits for the handler.
    ASSERT_TRUE(wait_parked(rt, stopper, "Group.join")) << rt.dump();
    EXPECT_TRUE(refused(server.address().port()));
    EXPECT_FALSE(stopper.ready()) << "stop() returned while a handler still ran";
    release.set();
    ASSERT_TRUE(stopper.join(5s));
    EXPECT_LT(Clock::now() - t0, 5s) << "stop() must return as soon as the handlers are done";
    EXPECT_TRUE(completed.load());
    EXPECT_FALSE(killed.load());
    EXPECT_EQ(stream.read_line(), "bye\n");
    EXPECT_EQ(stream.read_line(), std::nullopt) << "the server closed the connection";
  });
}

TEST(StreamServer, DestructorStopsWithoutGrace) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    std::atomic<int> killed{0}, entered{0};
    Socket client;
    {
      StreamServer server(Address::parse("127.0.0.1:0"), [&](Socket& sock, const Address&) {
        entered.fetch_add(1);
        try {
          char buf[16];
          sock.recv(buf, sizeof buf);
        } catch (const green::GreenletExit&) {
          killed.fetch_add(1);
          throw;
        }
      });
      server.start();
      client = green::create_connection("127.0.0.1", server.address().port(), 5s);
      // Running (a handler killed before it starts never runs its body).
      ASSERT_TRUE(wait_until([&] { return entered.load() == 1; }));
    }
    EXPECT_EQ(killed.load(), 1);
    EXPECT_EQ(client.recv(16, 5s), "");
  });
}

// ---------------------------------------------------------------------------
// Errors and limits.

TEST(StreamServer, HandlerExceptionClosesOnlyThatConnection) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    StreamServer server(Address::parse("127.0.0.1:0"), [](Socket& sock, const Address&) {
      green::Stream stream(sock);
      for (auto& line : stream.lines()) {
        if (line == "boom\n") throw MyError(1);
        sock.send_all(line);
      }
    });
    server.start();
    const std::uint16_t port = server.address().port();
    auto a = green::create_connection("127.0.0.1", port, 5s);
    green::Stream sa(a);
    a.send_all("hello\n");
    EXPECT_EQ(sa.read_line(), "hello\n");

    ::testing::internal::CaptureStderr();
    auto b = green::create_connection("127.0.0.1", port, 5s);
    const Address b_local = b.local_address();
    b.send_all("boom\n");
    std::string rest;
    try {
      rest = recv_all(b, 5s);
    } catch (const green::SystemError& e) {
      rest = "error: " + std::string(e.what());
    }
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_EQ(rest, "") << "the failing handler's connection is closed";
    EXPECT_NE(err.find("my error"), std::string::npos) << err;
    EXPECT_NE(err.find(b_local.to_string()), std::string::npos) << "the report names the peer: " << err;

    // The other connection and the server go on.
    a.send_all("still here\n");
    EXPECT_EQ(sa.read_line(), "still here\n");
    auto c = green::create_connection("127.0.0.1", port, 5s);
    expect_echo(c, "new client\n");
    a.close();
    c.close();
    server.stop(1s);
  });
}

TEST(StreamServer, MaxConnectionsHoldsTheThirdClientBack) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    std::atomic<int> running{0}, most{0};
    StreamServer server(
        Address::parse("127.0.0.1:0"),
        [&](Socket& sock, const Address&) {
          const int now = running.fetch_add(1) + 1;
          int seen = most.load();
          while (now > seen && !most.compare_exchange_weak(seen, now)) {
          }
          sock.send_all("welcome\n");
          green::Stream stream(sock);
          if (auto line = stream.read_line()) sock.send_all(*line);
          running.fetch_sub(1);
        },
        {.max_connections = 2});
    server.start();
    const std::uint16_t port = server.address().port();
    auto c1 = green::create_connection("127.0.0.1", port, 5s);
    auto c2 = green::create_connection("127.0.0.1", port, 5s);
    green::Stream s1(c1), s2(c2);
    EXPECT_EQ(s1.read_line(), "welcome\n");
    EXPECT_EQ(s2.read_line(), "welcome\n");

    // The kernel accepts the third connection, but nobody serves it.
    auto c3 = green::create_connection("127.0.0.1", port, 5s);
    green::Stream s3(c3);
    EXPECT_THROW(c3.recv(16, 300ms), green::TimeoutError) << "a third client was served";
    EXPECT_EQ(server.connections(), 2u);

    // One of the first two finishes: the third is served.
    c1.send_all("bye\n");
    EXPECT_EQ(s1.read_line(), "bye\n");
    EXPECT_EQ(s1.read_line(), std::nullopt);
    c3.set_timeout(5s);
    EXPECT_EQ(s3.read_line(), "welcome\n");

    c2.send_all("two\n");
    EXPECT_EQ(s2.read_line(), "two\n");
    c3.send_all("three\n");
    EXPECT_EQ(s3.read_line(), "three\n");
    EXPECT_EQ(most.load(), 2) << "never more than max_connections handlers at once";
    server.stop(1s);
  });
}

// ---------------------------------------------------------------------------
// gevent case 44: the echo example, two clients at the same time.

TEST(StreamServer, EchoExampleTwoClientsAtOnce) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    StreamServer server(Address::parse("127.0.0.1:0"), [](Socket& sock, const Address&) {
      sock.send_all("Welcome to the echo server! Type quit to exit.\r\n");
      green::Stream stream(sock);
      for (auto& line : stream.lines()) {
        if (line.starts_with("quit")) break;
        sock.send_all(line);
      }
    });
    server.start();
    const std::uint16_t port = server.address().port();
    green::Event both_connected;
    std::atomic<int> connected{0};
    auto client = [&](std::string name) {
      auto sock = green::create_connection("127.0.0.1", port, 5s);
      if (connected.fetch_add(1) + 1 == 2) both_connected.set();
      EXPECT_TRUE(both_connected.wait(5s));
      green::Stream stream(sock);
      EXPECT_EQ(stream.read_line(), "Welcome to the echo server! Type quit to exit.\r\n");
      const std::string line = "hello from " + name + "\r\n";
      sock.send_all(line);
      EXPECT_EQ(stream.read_exactly(line.size()), line);
      // The server sends nothing unsolicited.
      EXPECT_THROW(sock.recv(1, 100ms), green::TimeoutError);
      sock.send_all("quit\r\n");
      EXPECT_EQ(stream.read_line(), std::nullopt);
    };
    auto a = green::spawn(client, std::string("a"));
    auto b = green::spawn(client, std::string("b"));
    a.get(10s);
    b.get(10s);
    server.stop(1s);
  });
}

// ---------------------------------------------------------------------------
// Unix domain StreamServer.

TEST(StreamServer, UnixDomainEchoAndPathRemovedOnStop) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    const std::string path = "/tmp/green-io-test-" + std::to_string(::getpid()) + "-server.sock";
    ::unlink(path.c_str());
    struct Remove {
      std::string p;
      ~Remove() { ::unlink(p.c_str()); }
    } remove{path};
    StreamServer server(Address::unix_path(path), echo_lines);
    server.start();
    EXPECT_EQ(server.address().to_string(), "unix:" + path);
    EXPECT_EQ(::access(path.c_str(), F_OK), 0);
    std::vector<green::Greenlet<void>> clients;
    for (int i = 0; i < 5; ++i) {
      clients.push_back(green::spawn([&, i] {
        Socket s(AF_UNIX, SOCK_STREAM);
        s.connect(Address::unix_path(path), 5s);
        for (int k = 0; k < 3; ++k) expect_echo(s, "unix " + std::to_string(i) + "/" + std::to_string(k) + "\n");
      }));
    }
    for (auto& c : clients) c.get(10s);
    server.stop(1s);
    EXPECT_NE(::access(path.c_str(), F_OK), 0) << "stop() removes the socket file";
  });
}

// ---------------------------------------------------------------------------
// DatagramServer: UDP request/reply.

void datagram_echo(const char* bind_to) {
  green::Runtime rt({.workers = 2});
  rt.run([bind_to] {
    std::atomic<int> handled{0};
    green::DatagramServer server(Address::parse(bind_to),
                                 [&](std::string_view data, const Address& peer, green::DatagramServer& srv) {
                                   handled.fetch_add(1);
                                   srv.send_to("re: " + std::string(data), peer);
                                 });
    EXPECT_FALSE(server.started());
    server.start();
    EXPECT_TRUE(server.started());
    const Address addr = server.address();
    EXPECT_NE(addr.port(), 0);
    EXPECT_EQ(addr.family(), Address::parse(bind_to).family());

    // Several clients at once, each with its own socket and several requests.
    constexpr int kClients = 8, kRequests = 5;
    std::vector<green::Greenlet<int>> clients;
    for (int i = 0; i < kClients; ++i) {
      clients.push_back(green::spawn([&, i] {
        Socket s(addr.family(), SOCK_DGRAM);
        s.bind(addr.with_port(0));
        int good = 0;
        for (int k = 0; k < kRequests; ++k) {
          const std::string req = "req " + std::to_string(i) + "/" + std::to_string(k);
          s.send_to(req, addr);
          auto [reply, from] = s.recv_from(1024, 5s);  // loopback UDP does not drop here
          if (reply == "re: " + req && from == addr) ++good;
        }
        return good;
      }));
    }
    int good = 0;
    for (auto& c : clients) good += c.get(20s);
    EXPECT_EQ(good, kClients * kRequests);
    EXPECT_EQ(handled.load(), kClients * kRequests);

    // serve_forever in a green thread ends with stop().
    auto serving = green::spawn([&] { server.serve_forever(); });
    server.stop(1s);
    EXPECT_TRUE(serving.join(5s));
  });
}

TEST(DatagramServer, RequestReplyIpv4) { datagram_echo("127.0.0.1:0"); }

TEST(DatagramServer, RequestReplyIpv6) {
  GREEN_REQUIRE_IPV6();
  datagram_echo("[::1]:0");
}

TEST(DatagramServer, HandlerErrorDoesNotStopTheServer) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::DatagramServer server(Address::parse("127.0.0.1:0"),
                                 [](std::string_view data, const Address& peer, green::DatagramServer& srv) {
                                   if (data == "boom") throw MyError(2);
                                   srv.send_to(data, peer);
                                 });
    server.start();
    Socket s(AF_INET, SOCK_DGRAM);
    s.bind(Address::parse("127.0.0.1:0"));
    ::testing::internal::CaptureStderr();
    s.send_to("boom", server.address());
    s.send_to("fine", server.address());
    auto [reply, from] = s.recv_from(64, 5s);
    EXPECT_EQ(reply, "fine");
    server.stop(1s);
    const std::string err = ::testing::internal::GetCapturedStderr();
    EXPECT_NE(err.find("my error"), std::string::npos) << err;
    EXPECT_THROW(green::DatagramServer(Address::parse("127.0.0.1:0"), nullptr), green::Error);
  });
}

}  // namespace

// ---------------------------------------------------------------------------
// Helper green threads die with their connection (each handler runs in a
// green::Nursery), however the handler ends.

// The handler returns while its helper still waits: the helper is killed,
// and at that moment the socket it refers to is still open.
TEST(StreamServer, HelpersEndBeforeTheirConnectionsSocketCloses) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    std::atomic<int> killed_with_socket_open{0}, killed{0};
    StreamServer server(Address::parse("127.0.0.1:0"), [&](Socket& sock, const Address&) {
      green::Event helper_running;  // killed before its first run, it would never see the kill
      green::spawn([&] {
        helper_running.set();
        try {
          green::sleep(10s);
        } catch (const green::GreenletExit&) {
          killed.fetch_add(1);
          if (sock.fd() >= 0) killed_with_socket_open.fetch_add(1);
          throw;
        }
      });
      ASSERT_TRUE(helper_running.wait(5s));
      green::Stream stream(sock);
      stream.read_line();  // the client's one line, then the handler returns
    });
    server.start();
    auto c = green::create_connection("127.0.0.1", server.address().port(), 5s);
    c.send_all("bye\n", 5s);
    EXPECT_EQ(c.recv(16, 5s), "") << "the handler ended, so did the connection";
    EXPECT_EQ(killed.load(), 1);
    EXPECT_EQ(killed_with_socket_open.load(), 1);
    server.stop(1s);
  });
}

// The talk's pattern killed by stop(): a writer blocked sending to a client
// that never reads, its handler blocked reading. Before the Nursery the
// writer outlived the handler's socket (ASan: heap-use-after-free).
TEST(StreamServer, StopEndsAWriterBlockedOnANonReader) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    std::optional<green::Greenlet<void>> writer;
    green::Event spawned;
    std::atomic<int> writer_killed{0};
    StreamServer server(Address::parse("127.0.0.1:0"), [&](Socket& sock, const Address&) {
      const std::string chunk(64 * 1024, 'w');
      writer = green::spawn({.name = "writer"}, [&] {
        try {
          for (;;) sock.send_all(chunk);
        } catch (const green::GreenletExit&) {
          writer_killed.fetch_add(1);
          throw;
        }
      });
      spawned.set();
      char buf[16];
      while (sock.recv(buf, sizeof buf) > 0) {
      }
    });
    server.start();
    Socket c(AF_INET, SOCK_STREAM);
    const int small = 4096;
    ::setsockopt(c.fd(), SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    c.connect(server.address(), 5s);
    ASSERT_TRUE(spawned.wait(5s));
    // The writer fills every buffer between us and it, then blocks.
    ASSERT_TRUE(wait_parked(rt, *writer, "send", 10s)) << rt.dump();
    server.stop(0s);
    EXPECT_EQ(writer_killed.load(), 1);
    EXPECT_TRUE(writer->killed());
    EXPECT_EQ(server.connections(), 0u);
  });
}

TEST(StreamServer, DetachedHelpersOutliveTheirConnection) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    std::optional<green::Greenlet<void>> helper;
    green::Event spawned;
    StreamServer server(Address::parse("127.0.0.1:0"), [&](Socket&, const Address&) {
      helper = green::spawn({.detached = true}, [] { green::sleep(10s); });
      spawned.set();
    });
    server.start();
    auto c = green::create_connection("127.0.0.1", server.address().port(), 5s);
    ASSERT_TRUE(spawned.wait(5s));
    EXPECT_EQ(c.recv(16, 5s), "");
    EXPECT_FALSE(helper->ready()) << "a detached helper is not the connection's";
    helper->kill();
    server.stop(1s);
  });
}

// ---------------------------------------------------------------------------
// A port in use is refused unless sharing is asked for.

TEST(StreamServer, SecondServerOnTheSamePortIsRefusedUnlessItSharesThePort) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    StreamServer first(Address::parse("127.0.0.1:0"), echo_lines);
    first.start();
    const Address at = first.address();
    {
      StreamServer second(at, echo_lines);
      try {
        second.start();
        ADD_FAILURE() << "a second server took a port in use";
      } catch (const green::SystemError& e) {
        EXPECT_EQ(e.code(), EADDRINUSE) << e.what();
      }
      EXPECT_FALSE(second.started());
    }
    {
      StreamServer sharing(at, echo_lines, {.share_port = true});
      sharing.start();
      EXPECT_EQ(sharing.address(), at);
      for (int i = 0; i < 4; ++i) {  // served by one of the two, either way
        auto sock = green::create_connection("127.0.0.1", at.port(), 5s);
        expect_echo(sock, "shared " + std::to_string(i) + "\n");
      }
      sharing.stop(1s);
    }
    first.stop(1s);
  });
}

// ---------------------------------------------------------------------------
// Normal failures are counted, not reported.

TEST(StreamServer, PeerResetsAreCounted) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::Event entered;
    StreamServer server(Address::parse("127.0.0.1:0"), [&](Socket& sock, const Address&) {
      char buf[16];
      entered.set();
      while (sock.recv(buf, sizeof buf) > 0) {
      }
    });
    server.start();
    const int resets = 5;
    for (int i = 0; i < resets; ++i) {
      entered.clear();
      Socket c = green::create_connection("127.0.0.1", server.address().port(), 5s);
      ASSERT_TRUE(entered.wait(5s));
      linger l{1, 0};  // close with a reset
      ::setsockopt(c.fd(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
      c.close();
    }
    EXPECT_TRUE(wait_until([&] { return server.peer_errors() == resets; })) << server.peer_errors();
    server.stop(1s);
  });
}
