// End-to-end: echo_server as its own process, in line mode and --raw.
#include <gtest/gtest.h>

#include "e2e_util.hpp"

using namespace e2e;

namespace {

// Every server is stopped with SIGTERM at the end of a test and must exit 0
// (a sanitizer report in it would make that fail); Child's destructor
// SIGKILLs it on any other way out.
void stop(Server& s) {
  const auto st = s.terminate(kWait);
  ASSERT_TRUE(st.has_value()) << "no exit within the deadline after SIGTERM";
  ASSERT_TRUE(WIFEXITED(*st)) << "killed by signal " << WTERMSIG(*st);
  EXPECT_EQ(WEXITSTATUS(*st), 0);
}

// Sends `data` while reading the echo back (so neither side's buffers can
// fill up and stall both); returns the echo once it is as long as `data`.
std::string round_trip(Client& c, std::string_view data) {
  std::string got;
  const auto deadline = deadline_in();
  std::size_t sent = 0;
  while (got.size() < data.size()) {
    const short events = static_cast<short>(POLLIN | (sent < data.size() ? POLLOUT : 0));
    if (!wait_fd(c.fd(), events, deadline)) fail("echo timed out after " + std::to_string(got.size()) + " bytes");
    if (sent < data.size()) {
      const ssize_t n =
          ::send(c.fd(), data.data() + sent, std::min<std::size_t>(data.size() - sent, 16384), MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<std::size_t>(n);
      } else if (errno != EAGAIN && errno != EINTR) {
        fail_errno("send");
      }
    }
    const bool open = c.pump();
    got += c.take_buffered();
    if (!open) break;
  }
  return got;
}

}  // namespace

TEST(EchoServer, LinesComeBackInOrder) {
  Server s(GREEN_E2E_ECHO_SERVER, {"--workers", "2"});
  Client c(s.port());
  c.send("hello\nworld\n\nlast line here\n");
  EXPECT_EQ(c.line(), "hello\n");
  EXPECT_EQ(c.line(), "world\n");
  EXPECT_EQ(c.line(), "\n");
  EXPECT_EQ(c.line(), "last line here\n");
  c.send("crlf\r\n");
  EXPECT_EQ(c.line(), "crlf\r\n");
  const std::string long_line = std::string(32 * 1024, 'x') + "\n";
  c.send(long_line);
  EXPECT_EQ(c.line(), long_line);
  c.close();
  stop(s);
}

TEST(EchoServer, LineSplitAcrossWrites) {
  Server s(GREEN_E2E_ECHO_SERVER, {"--workers", "2"});
  Client c(s.port());
  // TCP_NODELAY is on: each piece leaves as its own segment.
  c.send("hel");
  c.send("lo wo");
  c.send("rld\nsecond ");
  c.send("line\n");
  EXPECT_EQ(c.line(), "hello world\n");
  EXPECT_EQ(c.line(), "second line\n");
  // A last line without '\n' comes back once the client closes its side.
  c.send("tail");
  c.shutdown_write();
  EXPECT_EQ(c.read_to_end(), "tail");
  stop(s);
}

TEST(EchoServer, ConcurrentClientsEachGetTheirOwnLines) {
  Server s(GREEN_E2E_ECHO_SERVER, {"--workers", "2"});
  const int clients = 20, lines = 50;
  std::vector<Client> cs;
  for (int i = 0; i < clients; ++i) cs.emplace_back(s.port());
  // Interleave: every client sends line k before any sends line k+1, so all
  // connections are open and busy at once.
  for (int k = 0; k < lines; ++k)
    for (int i = 0; i < clients; ++i) cs[static_cast<std::size_t>(i)].send("client " + std::to_string(i) + " line " + std::to_string(k) + "\n");
  for (int i = 0; i < clients; ++i)
    for (int k = 0; k < lines; ++k)
      ASSERT_EQ(cs[static_cast<std::size_t>(i)].line(),
                "client " + std::to_string(i) + " line " + std::to_string(k) + "\n");
  cs.clear();
  stop(s);
}

TEST(EchoServer, RawEchoesEveryByte) {
  Server s(GREEN_E2E_ECHO_SERVER, {"--workers", "2", "--raw"});
  Client c(s.port());
  // Bytes, not lines: NULs, newlines anywhere, more than a socket buffer.
  std::string data(1 << 20, '\0');
  std::uint32_t x = 12345;
  for (auto& ch : data) {
    x = x * 1103515245u + 12345u;
    ch = static_cast<char>(x >> 24);
  }
  EXPECT_EQ(round_trip(c, data), data);
  c.send("x");
  EXPECT_EQ(c.read_bytes(1), "x");  // a single byte is not held back
  c.close();
  stop(s);
}
