// Sockets: echo at scale, connect errors and timeouts, Timeout scopes and
// kill around blocking calls, close while blocked (gevent-behaviours 42),
// TCP behaviour (43), UDP and Unix domain sockets, fd leaks, a busy worker's
// fds served by an idle one, and Address parsing.
//
// Every wait is bounded: blocked green threads are observed through
// Runtime::dump() ("parked: recv") instead of sleeping, and every timed
// assertion concerns a timeout, with generous bounds (a noisy 2-core box).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <unistd.h>

#include <green/green.hpp>
#include <green/io.hpp>
#include <green/sync.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "io_test_util.hpp"
#include "test_util.hpp"

using namespace std::chrono_literals;

namespace {

using green::Address;
using green::Socket;
using green::io_testing::Clock;
using green::io_testing::kScale;
using green::io_testing::kSanitized;
using green::io_testing::listener;
using green::io_testing::ms_since;
using green::io_testing::open_fd_count;
using green::io_testing::recv_all;
using green::io_testing::recv_n;
using green::io_testing::tcp_pair;
using green::io_testing::wait_parked;
using green::testing::spin_for;
using green::testing::wait_until;

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A Unix socket path under /tmp with the pid in it, removed on both ends.
struct TempSocketPath {
  std::string path;
  explicit TempSocketPath(const std::string& tag)
      : path("/tmp/green-io-test-" + std::to_string(::getpid()) + "-" + tag + ".sock") {
    ::unlink(path.c_str());
  }
  ~TempSocketPath() { ::unlink(path.c_str()); }
};

// ---------------------------------------------------------------------------
// Echo at scale: many concurrent connections spread over every worker.

void echo_many(unsigned workers, int connections) {
  SCOPED_TRACE("workers=" + std::to_string(workers) + " connections=" + std::to_string(connections));
  const rlim_t limit = green::io_testing::raise_fd_limit();
  // Each connection costs two fds in this process (client and server side).
  ASSERT_GT(limit, static_cast<rlim_t>(2 * connections + 100))
      << "RLIMIT_NOFILE too low for " << connections << " loopback connections";
  green::Runtime rt({.workers = workers});
  rt.run([&] {
    std::vector<std::atomic<int>> handlers_on(workers);  // handlers started per worker
    green::StreamServer server(Address::parse("127.0.0.1:0"), [&](Socket& sock, const Address&) {
      handlers_on[static_cast<unsigned>(green::this_worker())].fetch_add(1);
      green::Stream stream(sock);
      for (auto& line : stream.lines()) sock.send_all(line);
    });
    server.start();
    const std::uint16_t port = server.address().port();
    ASSERT_NE(port, 0);

    // Every client connects, then waits until all are connected (so the
    // connections really are concurrent), then does its round trips.
    std::atomic<int> arrived{0};
    green::Event all_connected, go;
    auto arrive = [&] {
      if (arrived.fetch_add(1) + 1 == connections) all_connected.set();
    };
    constexpr int kLines = 3;
    std::vector<green::Greenlet<int>> clients;
    clients.reserve(static_cast<std::size_t>(connections));
    for (int i = 0; i < connections; ++i) {
      clients.push_back(green::spawn([&, i] {
        Socket sock;
        try {
          sock = green::create_connection("127.0.0.1", port, 20s);
        } catch (...) {
          arrive();
          throw;
        }
        arrive();
        go.wait();
        green::Stream stream(sock);
        int good = 0;
        for (int k = 0; k < kLines; ++k) {
          const std::string line = "client " + std::to_string(i) + " line " + std::to_string(k) + "\n";
          sock.send_all(line, 10s);
          if (stream.read_line() == line) ++good;
        }
        return good;
      }));
    }
    // All connections are open at once: the server runs one handler each.
    // (On failure, go on: the clients must still be released.)
    EXPECT_TRUE(all_connected.wait(60s));
    EXPECT_TRUE(wait_until([&] { return server.connections() == static_cast<std::size_t>(connections); }, 30s))
        << "server.connections() = " << server.connections();
    go.set();

    ASSERT_EQ(green::joinall(clients, 60s), clients.size());
    int good = 0;
    for (auto& c : clients) good += c.get();  // rethrows a client's failure
    EXPECT_EQ(good, connections * kLines) << "every reply must come back intact";

    // Spread: the kernel hashes connections over one SO_REUSEPORT listener
    // per worker and each handler starts on its accepting worker.
    int busy_workers = 0;
    std::string spread;
    for (unsigned w = 0; w < workers; ++w) {
      busy_workers += handlers_on[w].load() > 0;
      spread += " " + std::to_string(handlers_on[w].load());
    }
    if (connections >= 1000) {
      EXPECT_EQ(busy_workers, static_cast<int>(workers)) << "handlers per worker:" << spread;
    } else {
      EXPECT_GE(busy_workers, std::min(2, static_cast<int>(workers))) << "handlers per worker:" << spread;
    }
    server.stop(5s);
    EXPECT_EQ(server.connections(), 0u);
  });
}

// Full count 1,000; under sanitizers 200 (ASan) / 100 (TSan), which make
// every green thread and syscall several times dearer.
constexpr int kEchoConnections = 1000 / kScale;

TEST(SocketEcho, ThousandConnectionsTwoWorkers) { echo_many(2, kEchoConnections); }

TEST(SocketEcho, ThousandConnectionsAllCores) {
  echo_many(std::max(1u, std::thread::hardware_concurrency()), kEchoConnections);
}

TEST(SocketEcho, Ipv6Loopback) {
  GREEN_REQUIRE_IPV6();
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::StreamServer server(Address::parse("[::1]:0"), [](Socket& sock, const Address& peer) {
      EXPECT_EQ(peer.family(), AF_INET6);
      green::Stream stream(sock);
      for (auto& line : stream.lines()) sock.send_all(line);
    });
    server.start();
    EXPECT_EQ(server.address().family(), AF_INET6);
    ASSERT_NE(server.address().port(), 0);
    auto sock = green::create_connection("::1", server.address().port(), 5s);
    EXPECT_EQ(sock.peer_address(), server.address());
    green::Stream stream(sock);
    for (int i = 0; i < 20; ++i) {
      const std::string line = "v6 " + std::to_string(i) + "\n";
      sock.send_all(line);
      EXPECT_EQ(stream.read_line(), line);
    }
    sock.close();
    server.stop(2s);
  });
}

// ---------------------------------------------------------------------------
// Connecting: refused, timed out, by name.

TEST(SocketConnect, RefusedCarriesErrnoAndAddress) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    // A bound but not listening port answers a SYN with RST; holding it
    // bound keeps anybody else from listening there meanwhile.
    Socket holder(AF_INET, SOCK_STREAM);
    holder.bind(Address::parse("127.0.0.1:0"));
    const std::uint16_t port = holder.local_address().port();
    const std::string where = "connect 127.0.0.1:" + std::to_string(port);

    Socket s(AF_INET, SOCK_STREAM);
    try {
      s.connect(Address::ip("127.0.0.1", port), 5s);
      ADD_FAILURE() << "connect to a closed port succeeded";
    } catch (const green::SystemError& e) {
      EXPECT_EQ(e.code(), ECONNREFUSED) << e.what();
      EXPECT_TRUE(contains(e.what(), where)) << e.what();
    }

    try {
      green::create_connection("127.0.0.1", port, 5s);
      ADD_FAILURE() << "create_connection to a closed port succeeded";
    } catch (const green::SystemError& e) {
      EXPECT_EQ(e.code(), ECONNREFUSED) << e.what();
      EXPECT_TRUE(contains(e.what(), where)) << e.what();
    }
  });
}

TEST(SocketConnect, RefusedIpv6) {
  GREEN_REQUIRE_IPV6();
  green::Runtime rt({.workers = 1});
  rt.run([] {
    Socket holder(AF_INET6, SOCK_STREAM);
    holder.bind(Address::parse("[::1]:0"));
    const std::uint16_t port = holder.local_address().port();
    try {
      green::create_connection("::1", port, 5s);
      ADD_FAILURE() << "connect to a closed port succeeded";
    } catch (const green::SystemError& e) {
      EXPECT_EQ(e.code(), ECONNREFUSED) << e.what();
      EXPECT_TRUE(contains(e.what(), "connect [::1]:" + std::to_string(port))) << e.what();
    }
  });
}

TEST(SocketConnect, TimesOutWhenSynIsDropped) {
  // A listener that never accepts, with backlog 0: once its accept queue
  // is full the kernel drops further SYNs (and retries them only after a
  // second), so a connect with a 200 ms timeout must throw TimeoutError.
  // Connections that still complete fill the queue; stop at the first
  // timeout (the queue fills after one or two).
  green::Runtime rt({.workers = 2});
  rt.run([] {
    auto l = listener("127.0.0.1:0", 0);
    const Address addr = l.local_address();
    std::vector<Socket> queued;
    bool timed_out = false;
    for (int i = 0; i < 32 && !timed_out; ++i) {
      Socket s(AF_INET, SOCK_STREAM);
      const auto t0 = Clock::now();
      try {
        s.connect(addr, 200ms);
        queued.push_back(std::move(s));
      } catch (const green::TimeoutError& e) {
        timed_out = true;
        const auto took = Clock::now() - t0;
        EXPECT_EQ(e.scope_id(), 0u);
        EXPECT_GE(took, 180ms) << ms_since(t0) << " ms";
        EXPECT_LT(took, 2s) << ms_since(t0) << " ms";
      }
    }
    EXPECT_TRUE(timed_out) << "the kernel completed " << queued.size() << " handshakes on a backlog-0 listener";
    EXPECT_LE(queued.size(), 8u);
  });
}

TEST(SocketConnect, TimeoutScopeAroundConnect) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    auto l = listener("127.0.0.1:0", 0);
    std::vector<Socket> queued;
    bool fired = false;
    for (int i = 0; i < 32 && !fired; ++i) {
      Socket s(AF_INET, SOCK_STREAM);
      green::Timeout t(200ms);
      try {
        s.connect(l.local_address());
        queued.push_back(std::move(s));
      } catch (const green::TimeoutError& e) {
        EXPECT_TRUE(e.is(t));
        EXPECT_TRUE(t.expired());
        fired = true;
      }
    }
    EXPECT_TRUE(fired);
  });
}

TEST(SocketConnect, CreateConnectionByNameTriesEveryAddress) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    // What "localhost" resolves to here, in the order it is tried.
    const std::vector<Address> addrs = green::resolve("localhost", 1);
    ASSERT_FALSE(addrs.empty());
    for (const Address& a : addrs) {
      EXPECT_TRUE(a.family() == AF_INET || a.family() == AF_INET6) << a.to_string();
      EXPECT_EQ(a.port(), 1);
    }
    // Listen on the address tried LAST, and hold every other address's port
    // bound but not listening (so it refuses): create_connection must get
    // past the refusals to the last one.
    auto l = listener(addrs.back().with_port(0));
    const std::uint16_t port = l.local_address().port();
    std::vector<Socket> holders;
    for (std::size_t i = 0; i + 1 < addrs.size(); ++i) {
      if (addrs[i].with_port(port) == l.local_address()) continue;
      Socket h(addrs[i].family(), SOCK_STREAM);
      try {
        h.bind(addrs[i].with_port(port));
        holders.push_back(std::move(h));
      } catch (const green::SystemError&) {
        // Taken by somebody else: then it probably refuses anyway.
      }
    }
    auto sock = green::create_connection("localhost", port, 5s);
    EXPECT_EQ(sock.peer_address(), l.local_address());
    auto [server_side, peer] = l.accept(5s);
    EXPECT_EQ(peer, sock.local_address());
    sock.send_all("by name");
    EXPECT_EQ(recv_n(server_side, 7), "by name");
    if (addrs.size() < 2) std::printf("note: localhost resolves to one address here (%s)\n", addrs[0].to_string().c_str());
  });
}

TEST(SocketConnect, NumericResolveNeedsNoLookup) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    const auto v4 = green::resolve("127.0.0.1", 80);
    ASSERT_EQ(v4.size(), 1u);
    EXPECT_EQ(v4[0], Address::parse("127.0.0.1:80"));
    const auto v6 = green::resolve("::1", 81);
    ASSERT_EQ(v6.size(), 1u);
    EXPECT_EQ(v6[0], Address::parse("[::1]:81"));
  });
}

// ---------------------------------------------------------------------------
// Timeouts: Timeout scopes, per-call and default timeouts.

TEST(SocketTimeout, ScopeAroundRecvThatNeverCompletes) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    auto [c, s] = tcp_pair();
    char buf[16];
    const auto t0 = Clock::now();
    try {
      green::Timeout t(100ms);
      s.recv(buf, sizeof buf);
      ADD_FAILURE() << "recv returned without data";
    } catch (const green::TimeoutError& e) {
      // (t is out of scope here; check identity inside instead below.)
      EXPECT_NE(e.scope_id(), 0u);
    }
    EXPECT_GE(Clock::now() - t0, 90ms);
    EXPECT_LT(Clock::now() - t0, 2s);

    // Identity, and nesting: the inner (earlier) scope fires, the outer stays armed.
    green::Timeout outer(10s);
    {
      green::Timeout inner(50ms);
      try {
        s.recv(buf, sizeof buf);
        ADD_FAILURE() << "recv returned without data";
      } catch (const green::TimeoutError& e) {
        EXPECT_TRUE(e.is(inner));
        EXPECT_FALSE(e.is(outer));
        EXPECT_TRUE(inner.expired());
      }
    }
    EXPECT_FALSE(outer.expired());
    // The socket is still usable after the interrupted recv.
    c.send_all("ok");
    EXPECT_EQ(recv_n(s, 2), "ok");
  });
}

TEST(SocketTimeout, RecvOwnTimeout) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    auto [c, s] = tcp_pair();
    char buf[16];
    const auto t0 = Clock::now();
    try {
      green::Timeout scope(10s);  // a longer scope must not be the one that fires
      s.recv(buf, sizeof buf, 100ms);
      ADD_FAILURE() << "recv returned without data";
    } catch (const green::TimeoutError& e) {
      EXPECT_EQ(e.scope_id(), 0u) << "a call's own timeout reports scope 0";
    }
    EXPECT_GE(Clock::now() - t0, 90ms);
    EXPECT_LT(Clock::now() - t0, 2s);
    EXPECT_THROW(s.recv(16, 20ms), green::TimeoutError);
    c.send_all("x");
    EXPECT_EQ(s.recv(16, 5s), "x");
  });
}

TEST(SocketTimeout, DefaultTimeoutAppliesAndCanBeOverridden) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    auto [c, s] = tcp_pair();
    EXPECT_FALSE(s.timeout().has_value()) << "no default timeout, as in gevent";
    s.set_timeout(100ms);
    ASSERT_TRUE(s.timeout().has_value());
    EXPECT_EQ(*s.timeout(), std::chrono::steady_clock::duration(100ms));

    char buf[16];
    auto t0 = Clock::now();
    EXPECT_THROW(s.recv(buf, sizeof buf), green::TimeoutError);
    EXPECT_GE(Clock::now() - t0, 90ms);
    EXPECT_LT(Clock::now() - t0, 2s);

    // A call's own timeout wins over the default.
    s.set_timeout(30s);
    t0 = Clock::now();
    EXPECT_THROW(s.recv(buf, sizeof buf, 50ms), green::TimeoutError);
    EXPECT_LT(Clock::now() - t0, 5s);

    // The default also covers send_all and accept.
    auto l = listener();
    l.set_timeout(50ms);
    EXPECT_THROW(l.accept(), green::TimeoutError);

    // It moves with the socket.
    s.set_timeout(70ms);
    Socket moved = std::move(s);
    ASSERT_TRUE(moved.timeout().has_value());
    EXPECT_EQ(*moved.timeout(), std::chrono::steady_clock::duration(70ms));
    EXPECT_THROW(moved.recv(buf, sizeof buf), green::TimeoutError);
    moved.set_timeout(std::nullopt);
    EXPECT_FALSE(moved.timeout().has_value());
  });
}

TEST(SocketTimeout, SendAllTimesOutWhenPeerDoesNotRead) {
  // gevent case 43: settimeout(0.1); sendall(huge) -> timeout after ~0.1 s.
  green::Runtime rt({.workers = 2});
  rt.run([] {
    auto [c, s] = tcp_pair();
    const std::string big(64 << 20, 'x');  // far beyond both socket buffers
    const auto t0 = Clock::now();
    EXPECT_THROW(c.send_all(big, 100ms), green::TimeoutError);
    EXPECT_GE(Clock::now() - t0, 90ms);
    EXPECT_LT(Clock::now() - t0, 2s) << ms_since(t0) << " ms";
  });
}

// ---------------------------------------------------------------------------
// Kill of a green thread blocked in accept / recv / send.

TEST(SocketKill, BlockedInAccept) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    const int fds_before = open_fd_count();
    {
      auto l = listener();
      auto victim = green::spawn([&l] { l.accept(); });
      ASSERT_TRUE(wait_parked(rt, victim, "accept")) << rt.dump();
      const auto t0 = Clock::now();
      EXPECT_TRUE(victim.kill(green::GreenletExit(), 2s));
      EXPECT_LT(Clock::now() - t0, 1s);
      EXPECT_TRUE(victim.killed());
      EXPECT_THROW(victim.get(), green::GreenletExit);

      // The listener is still usable: another green thread accepts on it.
      auto acceptor = green::spawn([&l] { return l.accept(5s).second; });
      Socket c(AF_INET, SOCK_STREAM);
      c.connect(l.local_address(), 5s);
      EXPECT_EQ(acceptor.get(5s), c.local_address());
    }
    EXPECT_EQ(open_fd_count(), fds_before) << "fds leaked";
  });
}

TEST(SocketKill, BlockedInRecv) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    const int fds_before = open_fd_count();
    {
      auto [c, s] = tcp_pair();
      auto victim = green::spawn([&s] {
        char buf[16];
        s.recv(buf, sizeof buf);
      });
      ASSERT_TRUE(wait_parked(rt, victim, "recv")) << rt.dump();
      const auto t0 = Clock::now();
      EXPECT_TRUE(victim.kill(green::GreenletExit(), 2s));
      EXPECT_LT(Clock::now() - t0, 1s);
      EXPECT_TRUE(victim.killed());

      // The fd is still usable, and its reader slot is free again.
      auto reader = green::spawn([&s] { return recv_n(s, 5); });
      c.send_all("after");
      EXPECT_EQ(reader.get(5s), "after");
    }
    EXPECT_EQ(open_fd_count(), fds_before) << "fds leaked";
  });
}

// A kill that finds its target running is thrown at the target's next
// socket call, also one that would not wait: here every recv finds data
// ready, and the kill comes at the first recv after it, not at the next
// yield (which comes every 64 calls that did not wait).
TEST(SocketKill, RunningGreenThreadGetsItAtItsNextTransferThatNeedsNoWait) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    auto [c, s] = tcp_pair();
    c.send_all(std::string(1000, 'x'));
    std::atomic<int> phase{0};  // 1: the victim runs on, waiting for the kill; 2: the kill is pending
    std::atomic<int> calls_after_kill{-1};
    auto victim = green::spawn([&s = s, &phase, &calls_after_kill] {
      EXPECT_EQ(recv_n(s, 10), std::string(10, 'x'));  // the rest is there now: no recv below waits
      phase = 1;
      phase.notify_one();
      const auto give_up = Clock::now() + 10s;
      while (phase.load() != 2 && Clock::now() < give_up) {
      }
      ASSERT_EQ(phase.load(), 2) << "the kill never came";
      calls_after_kill = 0;
      char b;
      for (int i = 0; i < 500; ++i) {
        s.recv(&b, 1);
        ++calls_after_kill;
      }
    });
    std::thread killer([&] {
      phase.wait(0);
      victim.kill(false);  // holds the kill: the victim is running, not parked
      phase = 2;
    });
    EXPECT_TRUE(victim.join(10s));
    if (phase.exchange(3) == 0) phase.notify_one();  // the victim failed before phase 1: free the killer
    killer.join();
    EXPECT_TRUE(victim.killed());
    EXPECT_EQ(calls_after_kill.load(), 0);
  });
}

TEST(SocketKill, BlockedInSend) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    const int fds_before = open_fd_count();
    {
      auto [c, s] = tcp_pair();
      const std::string big(64 << 20, 'x');  // the peer never reads: buffers fill up
      auto victim = green::spawn([&s, &big] { s.send_all(big); });
      ASSERT_TRUE(wait_parked(rt, victim, "send", 10s)) << rt.dump();
      const auto t0 = Clock::now();
      EXPECT_TRUE(victim.kill(green::GreenletExit(), 2s));
      EXPECT_LT(Clock::now() - t0, 1s);
      EXPECT_TRUE(victim.killed());

      // The writer slot is free again: a new writer's data follows whatever
      // part of `big` went out before the kill.
      auto drain = green::spawn([&c] { return recv_all(c, 10s); });
      auto writer = green::spawn([&s] {
        s.send_all("tail", 10s);
        s.shutdown(SHUT_WR);
      });
      writer.get(10s);
      const std::string got = drain.get(20s);
      ASSERT_GE(got.size(), 4u);
      EXPECT_EQ(got.substr(got.size() - 4), "tail");
      EXPECT_LT(got.size(), big.size() + 4) << "the killed send_all cannot have sent everything";
      EXPECT_EQ(got.find_first_not_of('x'), got.size() - 4);
    }
    EXPECT_EQ(open_fd_count(), fds_before) << "fds leaked";
  });
}

// ---------------------------------------------------------------------------
// gevent case 42: close while another green thread is blocked; concurrent use.

TEST(SocketClose, CloseWakesBlockedRecvWithEbadf) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    auto [c, s] = tcp_pair();
    auto reader = green::spawn([&s]() -> int {
      char buf[16];
      try {
        s.recv(buf, sizeof buf);
        return -1;
      } catch (const green::SystemError& e) {
        return e.code();
      }
    });
    ASSERT_TRUE(wait_parked(rt, reader, "recv")) << rt.dump();
    const auto t0 = Clock::now();
    s.close();
    EXPECT_FALSE(s.valid());
    ASSERT_TRUE(reader.join(2s));
    // gevent asks for 0.1 s; allow more on a noisy machine.
    EXPECT_LT(Clock::now() - t0, 500ms) << ms_since(t0) << " ms";
    EXPECT_EQ(reader.get(), EBADF);
    // Using the closed socket fails cleanly too.
    try {
      s.recv(16, 1s);
      ADD_FAILURE() << "recv on a closed socket";
    } catch (const green::SystemError& e) {
      EXPECT_EQ(e.code(), EBADF);
    }
    s.close();  // idempotent
  });
}

TEST(SocketClose, CloseWakesBlockedSendWithEbadf) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    auto [c, s] = tcp_pair();
    const std::string big(64 << 20, 'y');
    auto writer = green::spawn([&s, &big]() -> int {
      try {
        s.send_all(big);
        return -1;
      } catch (const green::SystemError& e) {
        return e.code();
      }
    });
    ASSERT_TRUE(wait_parked(rt, writer, "send", 10s)) << rt.dump();
    s.close();
    ASSERT_TRUE(writer.join(2s));
    EXPECT_EQ(writer.get(), EBADF);
  });
}

TEST(SocketClose, SecondConcurrentRecvIsAnError) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    auto [c, s] = tcp_pair();
    auto first = green::spawn([&s] { return recv_n(s, 3); });
    ASSERT_TRUE(wait_parked(rt, first, "recv")) << rt.dump();
    const auto t0 = Clock::now();
    try {
      char buf[4];
      s.recv(buf, sizeof buf, 5s);
      ADD_FAILURE() << "a second concurrent recv must not wait";
    } catch (const green::TimeoutError&) {
      ADD_FAILURE() << "second recv waited for its timeout instead of failing";
    } catch (const green::SystemError& e) {
      ADD_FAILURE() << "expected a usage error, got SystemError: " << e.what();
    } catch (const green::Error& e) {
      EXPECT_TRUE(contains(e.what(), "already waited on")) << e.what();
    }
    EXPECT_LT(Clock::now() - t0, 1s);
    // The first reader is unaffected.
    c.send_all("abc");
    EXPECT_EQ(first.get(5s), "abc");
  });
}

TEST(SocketClose, OneReaderAndOneWriterMayShareASocket) {
  // gevent case 43: full duplex, and close() does not hang.
  green::Runtime rt({.workers = 2});
  rt.run([] {
    auto [c, s] = tcp_pair();
    const std::size_t n = (8u << 20) / static_cast<std::size_t>(kScale);
    std::string pattern_a(n, '\0'), pattern_b(n, '\0');
    for (std::size_t i = 0; i < n; ++i) {
      pattern_a[i] = static_cast<char>('a' + i % 23);
      pattern_b[i] = static_cast<char>('A' + i % 19);
    }
    // Both sides write and read at once, each with its own reader and writer.
    auto c_writer = green::spawn([&] { c.send_all(pattern_a, 30s); });
    auto s_writer = green::spawn([&] { s.send_all(pattern_b, 30s); });
    auto c_reader = green::spawn([&] { return recv_n(c, n, 30s); });
    auto s_reader = green::spawn([&] { return recv_n(s, n, 30s); });
    c_writer.get(30s);
    s_writer.get(30s);
    EXPECT_TRUE(s_reader.get(30s) == pattern_a) << "payload a to s corrupted";
    EXPECT_TRUE(c_reader.get(30s) == pattern_b) << "payload b to c corrupted";
    const auto t0 = Clock::now();
    c.close();
    s.close();
    EXPECT_LT(Clock::now() - t0, 1s);
  });
}

TEST(SocketHangUp, HangUpThatCameWithTheLastBytesEndsTheNextRecv) {
  // When the peer's last bytes and its FIN raise one edge together, no edge
  // follows: a recv after them must see the end of the stream, not wait for
  // ever. One worker, so the bytes and the FIN are both queued before the
  // hub is polled and they reach the reader as a single event.
  green::Runtime rt({.workers = 1});
  rt.run([] {
    auto [c, s] = tcp_pair();
    auto reader = green::spawn([&s] {
      char buf[64];
      const std::size_t first = s.recv(buf, sizeof buf, 5s);
      const std::size_t second = s.recv(buf, sizeof buf, 5s);
      return std::make_pair(first, second);
    });
    green::yield();  // the reader runs until it waits in recv
    c.send_all("last");
    c.shutdown(SHUT_WR);
    const auto [first, second] = reader.get(10s);
    EXPECT_EQ(first, 4u);
    EXPECT_EQ(second, 0u);
  });
}

TEST(SocketHangUp, ManySmallRequestsAndRepliesLoseNothing) {
  // Request/response over one connection, every read short, ended by a
  // hang-up: nothing may be lost or stall, and the server's loop ends.
  green::Runtime rt({.workers = 2});
  rt.run([] {
    auto [c, s] = tcp_pair();
    constexpr int kRounds = 2000;
    auto server = green::spawn([&s] {
      char buf[256];
      std::size_t total = 0;
      while (std::size_t n = s.recv(buf, sizeof buf, 10s)) {
        s.send_all(std::string_view(buf, n), 10s);
        total += n;
      }
      return total;
    });
    for (int i = 0; i < kRounds; ++i) {
      const std::string msg = "request " + std::to_string(i);
      c.send_all(msg, 10s);
      EXPECT_EQ(recv_n(c, msg.size(), 10s), msg);
    }
    c.shutdown(SHUT_WR);
    std::size_t expected = 0;
    for (int i = 0; i < kRounds; ++i) expected += ("request " + std::to_string(i)).size();
    EXPECT_EQ(server.get(10s), expected);
  });
}

// ---------------------------------------------------------------------------
// UDP and Unix domain sockets.

void udp_round_trip(const char* any_port) {
  green::Runtime rt({.workers = 2});
  rt.run([any_port] {
    const Address bind_to = Address::parse(any_port);
    Socket a(bind_to.family(), SOCK_DGRAM);
    a.bind(bind_to);
    Socket b(bind_to.family(), SOCK_DGRAM);
    b.bind(bind_to);
    EXPECT_NE(a.local_address().port(), 0);

    // a waits first (a real wait, not a ready datagram), b sends.
    auto receiver = green::spawn([&a] { return a.recv_from(1024, 5s); });
    EXPECT_EQ(b.send_to("ping", a.local_address()), 4u);
    auto [data, from] = receiver.get(5s);
    EXPECT_EQ(data, "ping");
    EXPECT_EQ(from, b.local_address());

    // Reply to the sender's address.
    a.send_to("pong!", from);
    auto [reply, reply_from] = b.recv_from(1024, 5s);
    EXPECT_EQ(reply, "pong!");
    EXPECT_EQ(reply_from, a.local_address());

    // A datagram larger than max_bytes is truncated to it.
    b.send_to("0123456789", a.local_address());
    EXPECT_EQ(a.recv_from(4, 5s).first, "0123");

    // recv_from honours its timeout.
    const auto t0 = Clock::now();
    EXPECT_THROW(a.recv_from(16, 50ms), green::TimeoutError);
    EXPECT_GE(Clock::now() - t0, 40ms);
  });
}

TEST(SocketUdp, SendToRecvFromIpv4) { udp_round_trip("127.0.0.1:0"); }

TEST(SocketUdp, SendToRecvFromIpv6) {
  GREEN_REQUIRE_IPV6();
  udp_round_trip("[::1]:0");
}

TEST(SocketUnix, StreamRoundTripAndCleanup) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    TempSocketPath tmp("raw");
    const Address addr = Address::unix_path(tmp.path);
    Socket l(AF_UNIX, SOCK_STREAM);
    l.bind(addr);
    l.listen(8);
    EXPECT_EQ(l.local_address().to_string(), "unix:" + tmp.path);
    EXPECT_EQ(l.local_address().port(), 0);

    auto server = green::spawn([&l] {
      auto [conn, peer] = l.accept(5s);
      EXPECT_EQ(peer.family(), AF_UNIX);
      green::Stream stream(conn);
      int n = 0;
      for (auto& line : stream.lines()) {
        conn.send_all("echo: " + line);
        ++n;
      }
      return n;
    });
    Socket c(AF_UNIX, SOCK_STREAM);
    c.connect(addr, 5s);
    green::Stream stream(c);
    for (int i = 0; i < 10; ++i) {
      const std::string line = "unix " + std::to_string(i) + "\n";
      c.send_all(line);
      EXPECT_EQ(stream.read_line(), "echo: " + line);
    }
    c.shutdown(SHUT_WR);
    EXPECT_EQ(server.get(5s), 10);
    EXPECT_EQ(stream.read_line(), std::nullopt);

    // Connecting to a path nobody listens on is refused (or missing).
    l.close();
    ::unlink(tmp.path.c_str());
    Socket d(AF_UNIX, SOCK_STREAM);
    try {
      d.connect(addr, 1s);
      ADD_FAILURE() << "connect to a removed Unix socket";
    } catch (const green::SystemError& e) {
      EXPECT_TRUE(e.code() == ENOENT || e.code() == ECONNREFUSED) << e.what();
      EXPECT_TRUE(contains(e.what(), "connect unix:" + tmp.path)) << e.what();
    }
  });
}

TEST(SocketUnix, AdoptedSocketpair) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);  // blocking fds: adopt makes them non-blocking
    Socket a = Socket::adopt(sv[0]);
    Socket b = Socket::adopt(sv[1]);
    EXPECT_THROW(Socket::adopt(-1), green::Error);
    auto reader = green::spawn([&b] { return recv_n(b, 5); });
    a.send_all("hello");
    EXPECT_EQ(reader.get(5s), "hello");
    // Non-blocking underneath: a recv with nothing there times out instead
    // of blocking the worker.
    EXPECT_THROW(b.recv(4, 30ms), green::TimeoutError);
  });
}

// ---------------------------------------------------------------------------
// Many sequential connections leak no fds.

TEST(SocketLeak, SequentialConnectCloseLeaksNoFd) {
  // 10,000 connections (1,000 under TSan, 2,000 under ASan). The server
  // closes first, so no client port piles up in TIME_WAIT.
  const int n = 10000 / kScale;
  green::Runtime rt({.workers = 2});
  rt.run([n] {
    green::StreamServer server(Address::parse("127.0.0.1:0"), [](Socket&, const Address&) {});
    server.start();
    const std::uint16_t port = server.address().port();
    auto cycle = [port](int count) {
      for (int i = 0; i < count; ++i) {
        Socket s = green::create_connection("127.0.0.1", port, 5s);
        char buf[8];
        EXPECT_EQ(s.recv(buf, sizeof buf, 5s), 0u);  // the handler ends: EOF
        s.close();
      }
    };
    cycle(100);  // warm-up: anything the runtime opens lazily is open now
    ASSERT_TRUE(wait_until([&] { return server.connections() == 0; }, 10s));
    const int before = open_fd_count();
    cycle(n);
    ASSERT_TRUE(wait_until([&] { return server.connections() == 0; }, 10s));
    const int after = open_fd_count();
    EXPECT_NEAR(after, before, 2) << "fds before " << before << ", after " << after << " (" << n
                                  << " connections)";
    server.stop(2s);
  });
}

// ---------------------------------------------------------------------------
// A green thread whose socket calls never wait yields after 64 of them, or
// sooner when they move much data: a unit for each call and for each 4 KiB,
// 64 units a turn (io/src/io_budget.hpp), so at most 256 KiB and one call.

TEST(SocketYield, AReaderWhoseDataIsReadyYieldsWithinAQuarterMebibyte) {
  green::Runtime rt({.workers = 1});
  rt.run([] {
    auto [c, s] = tcp_pair();
    const int big = 1 << 20;  // the kernel caps it (net.core.rmem_max/wmem_max), at 416 KiB by default
    ASSERT_EQ(::setsockopt(s.fd(), SOL_SOCKET, SO_RCVBUF, &big, sizeof big), 0);
    ASSERT_EQ(::setsockopt(c.fd(), SOL_SOCKET, SO_SNDBUF, &big, sizeof big), 0);
    const std::size_t ready = 384 << 10;
    c.send_all(std::string(ready, 'x'), 5s);  // fits the two buffers: every recv below finds data
    std::size_t taken = 0;
    std::size_t taken_when_other_ran = 0;
    // Spawned in this order on one worker: the reader runs first, and the
    // other only when the reader yields or waits.
    auto reader = green::spawn([&s = s, &taken, ready] {
      std::vector<char> buf(64 << 10);
      while (taken < ready) taken += s.recv(buf.data(), buf.size(), 5s);
    });
    auto other = green::spawn([&] { taken_when_other_ran = taken; });
    reader.get(10s);
    other.get(10s);
    EXPECT_GT(taken_when_other_ran, 0u);
    EXPECT_LE(taken_when_other_ran, std::size_t{320} << 10) << "the reader kept its worker";
  });
}

// ---------------------------------------------------------------------------
// A busy worker's fds are served by an idle worker (steal.cpp's
// poll_busy_hubs: an idle worker polls a busy peer's hub every 1 ms).

TEST(SocketBusyWorker, IdleWorkerServesBusyWorkersHub) {
  green::Runtime rt({.workers = 2});
  rt.run([&rt] {
    auto [c, s] = tcp_pair();
    // The echo green thread starts on worker 0 but is not pinned (handlers
    // must be able to migrate). Its first wait registers s with worker 0's
    // hub, where it stays.
    std::atomic<int> first_wait_on{-1};
    std::atomic<int> last_served_on{-1};
    auto echo = green::spawn({.name = "echo", .worker = 0}, [&] {
      first_wait_on = green::this_worker();  // no switch until recv's first wait
      green::Stream stream(s);
      for (auto& line : stream.lines()) {
        last_served_on = green::this_worker();
        s.send_all(line);
      }
    });
    ASSERT_TRUE(wait_parked(rt, echo, "recv")) << rt.dump();
    ASSERT_EQ(first_wait_on.load(), 0) << "s must be registered with worker 0's hub";

    // The client runs pinned on worker 1.
    std::atomic<bool> busy_started{false}, busy_done{false};
    auto client = green::spawn({.name = "client", .worker = 1, .pinned = true}, [&] {
      green::Stream stream(c);
      c.send_all("warm-up\n");
      EXPECT_EQ(stream.read_line(), "warm-up\n");
      // Worker 0 now computes for 300 ms without yielding.
      EXPECT_TRUE(wait_until([&] { return busy_started.load(); }));
      std::vector<long long> rtts;
      bool all_during_busy = true;
      for (int i = 0; i < 3; ++i) {
        const std::string line = "during busy " + std::to_string(i) + "\n";
        const auto t0 = Clock::now();
        c.send_all(line);
        EXPECT_EQ(stream.read_line(), line);
        rtts.push_back(ms_since(t0));
        if (busy_done.load()) all_during_busy = false;
        EXPECT_EQ(last_served_on.load(), 1) << "the echo must have run on worker 1";
      }
      EXPECT_TRUE(all_during_busy) << "round trips waited for worker 0 to finish computing";
      for (long long ms : rtts) EXPECT_LT(ms, 150) << "round trip while worker 0 is busy";
    });
    auto busy = green::spawn({.name = "busy", .worker = 0, .pinned = true}, [&] {
      EXPECT_EQ(green::this_worker(), 0);
      busy_started = true;
      spin_for(300ms);
      busy_done = true;
    });
    client.get(10s);
    busy.get(10s);
    c.close();
    echo.get(5s);
  });
}

// ---------------------------------------------------------------------------
// Addresses.

TEST(Address, ParsesAndPrintsIpv4) {
  const Address a = Address::parse("127.0.0.1:8080");
  EXPECT_EQ(a.family(), AF_INET);
  EXPECT_EQ(a.port(), 8080);
  EXPECT_EQ(a.size(), sizeof(sockaddr_in));
  EXPECT_EQ(a.to_string(), "127.0.0.1:8080");
  EXPECT_EQ(Address::parse(a.to_string()), a);
  EXPECT_EQ(Address::ip("10.1.2.3", 0).to_string(), "10.1.2.3:0");
  EXPECT_EQ(Address::parse("0.0.0.0:65535").port(), 65535);
  EXPECT_EQ(a.with_port(9).to_string(), "127.0.0.1:9");
  EXPECT_EQ(a.with_port(9).family(), AF_INET);
  const auto* sin = reinterpret_cast<const sockaddr_in*>(a.data());
  EXPECT_EQ(ntohl(sin->sin_addr.s_addr), 0x7f000001u);
  EXPECT_EQ(ntohs(sin->sin_port), 8080);
}

TEST(Address, ParsesAndPrintsIpv6) {
  const Address a = Address::parse("[::1]:443");
  EXPECT_EQ(a.family(), AF_INET6);
  EXPECT_EQ(a.port(), 443);
  EXPECT_EQ(a.size(), sizeof(sockaddr_in6));
  EXPECT_EQ(a.to_string(), "[::1]:443");
  EXPECT_EQ(Address::parse(a.to_string()), a);
  // Printed in the canonical short form, and that form round-trips.
  const Address b = Address::parse("[fe80:0:0:0:0:0:0:1]:1");
  EXPECT_EQ(b.to_string(), "[fe80::1]:1");
  EXPECT_EQ(Address::parse(b.to_string()), b);
  EXPECT_EQ(Address::ip("::ffff:1.2.3.4", 7).to_string(), "[::ffff:1.2.3.4]:7");
  EXPECT_EQ(Address::ip("2001:db8::5", 80), Address::parse("[2001:db8::5]:80"));
  EXPECT_EQ(a.with_port(0).to_string(), "[::1]:0");
}

TEST(Address, UnixPaths) {
  const Address a = Address::unix_path("/tmp/chat.sock");
  EXPECT_EQ(a.family(), AF_UNIX);
  EXPECT_EQ(a.port(), 0);
  EXPECT_EQ(a.to_string(), "unix:/tmp/chat.sock");
  EXPECT_EQ(Address::parse("unix:/tmp/chat.sock"), a);
  EXPECT_EQ(Address::parse(a.to_string()), a);
  EXPECT_THROW(a.with_port(1), green::Error);
  // The longest path that fits (sun_path holds it with its NUL).
  const std::string longest(sizeof(sockaddr_un{}.sun_path) - 1, 'p');
  EXPECT_EQ(Address::unix_path(longest).to_string(), "unix:" + longest);
  EXPECT_THROW(Address::unix_path(longest + "p"), green::Error);
  EXPECT_THROW(Address::unix_path(""), green::Error);
  EXPECT_THROW(Address::parse("unix:"), green::Error);
}

TEST(Address, EmptyAndComparison) {
  const Address none;
  EXPECT_EQ(none.family(), AF_UNSPEC);
  EXPECT_EQ(none.port(), 0);
  EXPECT_EQ(none.size(), 0u);
  EXPECT_EQ(none.to_string(), "(no address)");
  EXPECT_THROW(none.with_port(1), green::Error);
  EXPECT_EQ(Address::parse("1.2.3.4:5"), Address::ip("1.2.3.4", 5));
  EXPECT_FALSE(Address::parse("1.2.3.4:5") == Address::parse("1.2.3.4:6"));
  EXPECT_FALSE(Address::parse("1.2.3.4:5") == Address::parse("1.2.3.5:5"));
  EXPECT_FALSE(Address::parse("127.0.0.1:5") == Address::parse("[::1]:5"));
  // From a raw sockaddr.
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(99);
  sin.sin_addr.s_addr = htonl(0x0a000001);
  const Address raw(reinterpret_cast<const sockaddr*>(&sin), sizeof sin);
  EXPECT_EQ(raw.to_string(), "10.0.0.1:99");
}

TEST(Address, RejectsBadInput) {
  for (const char* bad : {"", "127.0.0.1", "127.0.0.1:", ":80", "127.0.0.1:65536", "127.0.0.1:-1",
                          "127.0.0.1:80x", "127.0.0.1: 80", "127.0.0.1:+80", "256.0.0.1:80", "1.2.3:80",
                          "localhost:80", "example.com:80", "[::1]", "[::1]80", "[::1:80", "[::1]:",
                          "[::1]:99999", "[127.0.0.1]:80x", "[nonsense]:80", "[]:80", "unix:"}) {
    SCOPED_TRACE(std::string("input '") + bad + "'");
    try {
      const Address a = Address::parse(bad);
      ADD_FAILURE() << "accepted as " << a.to_string();
    } catch (const green::Error& e) {
      EXPECT_TRUE(contains(e.what(), "green::Address")) << e.what();
      EXPECT_EQ(dynamic_cast<const green::SystemError*>(&e), nullptr) << "bad input is not a system error";
    }
  }
  EXPECT_THROW(Address::ip("localhost", 1), green::Error);
  EXPECT_THROW(Address::ip("", 1), green::Error);
  EXPECT_THROW(Address::ip("1.2.3.4:5", 1), green::Error);
}

}  // namespace
