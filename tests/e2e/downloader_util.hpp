// tests/e2e/downloader_util.hpp — what the end-to-end tests of the two
// downloader examples (bulk_downloader over green's http_get,
// monkey_downloader over libcurl) share: they print the same lines, so the
// same server and checks serve both.
//
// Pool(P).map must keep exactly P downloads in flight, measured on the
// server side.
//
// The test serves the files itself (plain threads and blocking sockets, in
// this process) and holds the first requests at a gate until P of them are
// in flight at once; then the gate opens for good. With a pool that starts
// P downloads, the server therefore sees exactly P at once, whatever the
// machine's load or a sanitizer's slowdown: never fewer (the gate waits for
// them) and never more (a slot is freed only by a response, and a request is
// counted out before its response is sent). A pool that ran fewer at once
// would leave the gate waiting: after a deadline it opens and the peak shows
// the shortfall; one that ran more would show a peak above P.
//
// Only the first P are held: Pool::map refills a full pool in batches (when
// half of its calls have ended), so later on fewer than P may be in flight.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "e2e_util.hpp"

namespace e2e {

inline std::size_t body_size(int n) { return static_cast<std::size_t>(n) * 997 + 1; }

class GatedFileServer {
 public:
  explicit GatedFileServer(int gate) : gate_(gate) {
    listen_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_ < 0) fail_errno("socket");
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (::bind(listen_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(listen_, 256) != 0 ||
        ::getsockname(listen_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      fail_errno("listen");
    port_ = ntohs(a.sin_port);
    if (::pipe2(wake_, O_CLOEXEC) != 0) fail_errno("pipe2");
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~GatedFileServer() {
    {
      std::lock_guard g(m_);
      open_ = true;  // nobody waits at the gate any more
    }
    cv_.notify_all();
    const char x = 0;
    (void)!::write(wake_[1], &x, 1);
    acceptor_.join();
    for (auto& t : connections_) t.join();
    ::close(listen_);
    ::close(wake_[0]);
    ::close(wake_[1]);
  }

  std::uint16_t port() const { return port_; }
  int peak() {
    std::lock_guard g(m_);
    return peak_;
  }
  int requests() {
    std::lock_guard g(m_);
    return requests_;
  }
  bool gate_timed_out() {
    std::lock_guard g(m_);
    return timed_out_;
  }

 private:
  void accept_loop() {
    for (;;) {
      pollfd p[2] = {{listen_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
      if (::poll(p, 2, -1) < 0 && errno != EINTR) return;
      if (p[1].revents) return;
      if (p[0].revents & POLLIN) {
        const int fd = ::accept4(listen_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd >= 0) connections_.emplace_back([this, fd] { serve(fd); });
      }
    }
  }

  void serve(int fd) {
    try {
      serve_request(fd);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "test file server: %s\n", e.what());
    }
    ::close(fd);
  }

  void serve_request(int fd) {
    set_nonblocking(fd);
    const auto deadline = deadline_in();
    std::string head;
    while (head.find("\r\n\r\n") == std::string::npos) {
      if (!wait_fd(fd, POLLIN, deadline)) fail("request timed out");
      char buf[4096];
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n == 0) fail("request cut short");
      if (n < 0 && errno != EAGAIN && errno != EINTR) fail_errno("recv");
      if (n > 0) head.append(buf, static_cast<std::size_t>(n));
    }
    int n = -1;
    if (std::sscanf(head.c_str(), "GET /file/%d HTTP/1.1", &n) != 1 || n < 0) fail("bad request: " + head);
    {
      std::unique_lock lk(m_);
      ++requests_;
      peak_ = std::max(peak_, ++active_);
      if (!open_ && active_ == gate_) {  // P in flight at once: open for good
        open_ = true;
        cv_.notify_all();
      } else if (!open_) {
        // Well before the downloader's own 30 s timeout for a request.
        if (!cv_.wait_until(lk, deadline_in(20s), [&] { return open_; })) {
          timed_out_ = open_ = true;  // fewer than gate_ came: stop holding anyone
          cv_.notify_all();
        }
      }
      --active_;  // counted out before the response frees the client's slot
    }
    const std::string body(body_size(n), static_cast<char>('a' + n % 26));
    std::string response;
    if (n % 2) {  // odd files chunked, even ones with Content-Length
      response = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
      for (std::size_t at = 0; at < body.size(); at += 1000) {
        const std::string part = body.substr(at, 1000);
        char size[32];
        std::snprintf(size, sizeof size, "%zx\r\n", part.size());
        response += size + part + "\r\n";
      }
      response += "0\r\n\r\n";
    } else {
      response = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" +
                 body;
    }
    std::string_view rest = response;
    const auto send_deadline = deadline_in();
    while (!rest.empty()) {
      const ssize_t k = ::send(fd, rest.data(), rest.size(), MSG_NOSIGNAL);
      if (k > 0) {
        rest.remove_prefix(static_cast<std::size_t>(k));
      } else if (errno == EAGAIN) {
        if (!wait_fd(fd, POLLOUT, send_deadline)) fail("response timed out");
      } else if (errno != EINTR) {
        fail_errno("send");
      }
    }
  }

  const int gate_;
  int listen_ = -1;
  int wake_[2] = {-1, -1};
  std::uint16_t port_ = 0;
  std::thread acceptor_;
  std::vector<std::thread> connections_;  // only the acceptor touches it until it is joined
  std::mutex m_;
  std::condition_variable cv_;
  int active_ = 0, peak_ = 0, requests_ = 0;
  bool open_ = false, timed_out_ = false;
};

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

// Checks one "URL STATUS BYTES bytes MS ms" line per URL, in order; returns
// the summary line after them.
inline std::string check_downloads(const std::string& out, const std::vector<std::string>& urls,
                            const std::vector<std::size_t>& sizes) {
  const auto lines = lines_of(out);
  if (lines.size() != urls.size() + 1) fail("expected " + std::to_string(urls.size() + 1) + " lines:\n" + out);
  for (std::size_t i = 0; i < urls.size(); ++i) {
    char url[256];
    int status = 0;
    std::size_t bytes = 0;
    double ms = 0;
    EXPECT_EQ(std::sscanf(lines[i].c_str(), "%255s %d %zu bytes %lf ms", url, &status, &bytes, &ms), 4) << lines[i];
    EXPECT_EQ(url, urls[i]);
    EXPECT_EQ(status, 200) << lines[i];
    EXPECT_EQ(bytes, sizes[i]) << lines[i];
  }
  return lines.back();
}

struct UrlFile {
  std::string path;
  explicit UrlFile(const std::vector<std::string>& urls) {
    path = testing::TempDir() + "green_e2e_urls_" + std::to_string(::getpid()) + ".txt";
    std::ofstream f(path);
    for (const auto& u : urls) f << u << "\n";
    if (!f) fail("cannot write " + path);
  }
  ~UrlFile() { std::remove(path.c_str()); }
};

inline void downloads_with_pool(const std::string& program, int count, int pool) {
  GatedFileServer server(pool);
  std::vector<std::string> urls;
  std::vector<std::size_t> sizes;
  std::size_t total = 0;
  for (int i = 0; i < count; ++i) {
    urls.push_back("http://127.0.0.1:" + std::to_string(server.port()) + "/file/" + std::to_string(i));
    sizes.push_back(body_size(i));
    total += body_size(i);
  }
  UrlFile file(urls);
  std::vector<std::string> args{"--urls", file.path, "--workers", "2"};
  if (pool != 20) args.insert(args.end(), {"--concurrency", std::to_string(pool)});  // 20 is the default
  const auto r = run_to_end(program, args, 4 * kWait);
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string summary = check_downloads(r.out, urls, sizes);
  EXPECT_TRUE(summary.starts_with("downloaded " + std::to_string(count) + " URLs, " + std::to_string(total) +
                                  " bytes in "))
      << summary;
  EXPECT_TRUE(summary.ends_with(" ms with Pool(" + std::to_string(pool) + ")")) << summary;
  EXPECT_EQ(server.requests(), count);
  EXPECT_FALSE(server.gate_timed_out()) << "fewer than " << pool << " requests ever came at once; peak " << server.peak();
  EXPECT_EQ(server.peak(), pool);
}

// The example's own loopback server (the default run): every file arrives
// whole, and its server never sees more requests at once than the pool allows.
inline void downloads_from_built_in_server(const std::string& program) {
  const auto r = run_to_end(program, {"--count", "100", "--workers", "2"}, 4 * kWait);
  ASSERT_EQ(r.code, 0) << r.out;
  const auto lines = lines_of(r.out);
  ASSERT_EQ(lines.size(), 101u) << r.out;
  const auto colon = lines[0].find(':', 7);
  ASSERT_NE(colon, std::string::npos);
  const std::string base = lines[0].substr(0, lines[0].find('/', colon)) + "/file/";
  std::vector<std::string> urls;
  std::vector<std::size_t> sizes;
  for (int i = 0; i < 100; ++i) {
    urls.push_back(base + std::to_string(i));
    sizes.push_back(static_cast<std::size_t>(i) * 1000 + 1);
  }
  const std::string summary = check_downloads(r.out, urls, sizes);
  EXPECT_TRUE(summary.starts_with("downloaded 100 URLs, 4950100 bytes in ")) << summary;
  int peak = -1;
  const auto at = summary.find("with Pool(20); the server saw at most ");
  ASSERT_NE(at, std::string::npos) << summary;
  ASSERT_EQ(std::sscanf(summary.c_str() + at, "with Pool(20); the server saw at most %d requests at once", &peak), 1);
  EXPECT_GE(peak, 1);
  EXPECT_LE(peak, 20);
}

}  // namespace e2e
