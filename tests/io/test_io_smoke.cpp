// A first round trip through every io/ layer: server, socket, stream.
#include <green/green.hpp>
#include <green/io.hpp>
#include <green/offload.hpp>

#include <gtest/gtest.h>

#include <string>

using namespace std::chrono_literals;

TEST(IoSmoke, EchoRoundTrip) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    green::StreamServer server(green::Address::parse("127.0.0.1:0"), [](green::Socket& sock, const green::Address&) {
      green::Stream stream(sock);
      for (auto& line : stream.lines()) sock.send_all(line);
    });
    server.start();
    auto sock = green::create_connection("127.0.0.1", server.address().port(), 5s);
    green::Stream stream(sock);
    for (int i = 0; i < 100; ++i) {
      const std::string line = "hello " + std::to_string(i) + "\n";
      sock.send_all(line);
      EXPECT_EQ(stream.read_line(), line);
    }
    sock.close();
    server.stop(1s);
  });
}

TEST(IoSmoke, OffloadAndBlocking) {
  green::Runtime rt({.workers = 2});
  rt.run([] {
    EXPECT_EQ(green::offload([] { return 6 * 7; }), 42);
    EXPECT_EQ(green::blocking([] { return std::string("done"); }), "done");
    EXPECT_THROW(green::offload([]() -> int { throw green::Error("boom"); }), green::Error);
  });
}
