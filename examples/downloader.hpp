// examples/downloader.hpp — what the two downloader examples share: the
// talk's Pool(P).map(download, urls) with its command line and report, and
// the loopback HTTP file server they fetch from when no --urls file is given
// (so that they run with no network). bulk_downloader's download() uses
// green's own http_get; monkey_downloader's is plain libcurl.
#pragma once

#include <csignal>
#include <green/green.hpp>
#include <green/io.hpp>
#include <green/sync.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "cli.hpp"

namespace green_examples {

struct Download {
  std::string url;
  std::size_t bytes = 0;
  double ms = 0;
  int status = 0;
};

// The loopback file server: GET /file/N answers N*1000+1 bytes after 20 ms.
class FileServer {
 public:
  FileServer()
      : server_(green::Address::parse("127.0.0.1:0"),
                [this](green::Socket& sock, const green::Address&) { serve(sock); }) {
    server_.start();
  }
  ~FileServer() { server_.stop(std::chrono::seconds(1)); }
  std::uint16_t port() const { return server_.address().port(); }
  int peak() const { return peak_.load(); }

 private:
  void serve(green::Socket& sock) {
    green::Stream in(sock);
    auto request = in.read_line(8192);
    if (!request) return;
    while (auto h = in.read_line(8192)) {
      if (*h == "\r\n" || *h == "\n") break;
    }
    const int now = ++active_;
    for (int seen = peak_.load(); now > seen && !peak_.compare_exchange_weak(seen, now);) {
    }
    green::sleep(std::chrono::milliseconds(20));  // a slow network
    int n = 0;
    std::sscanf(request->c_str(), "GET /file/%d", &n);
    const std::string body(static_cast<std::size_t>(n) * 1000 + 1, static_cast<char>('a' + n % 26));
    std::string response;
    if (n % 2) {
      response = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
      for (std::size_t at = 0; at < body.size(); at += 4096) {
        const std::string part = body.substr(at, 4096);
        char size[32];
        std::snprintf(size, sizeof size, "%zx\r\n", part.size());
        response += size + part + "\r\n";
      }
      response += "0\r\n\r\n";
    } else {
      response = "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) +
                 "\r\nConnection: close\r\n\r\n" + body;
    }
    --active_;
    sock.send_all(response);
  }

  green::StreamServer server_;
  std::atomic<int> active_{0}, peak_{0};
};

// The whole program around `download`: flags, the URL list (the loopback
// server's files, or --urls FILE), Pool(P).map(download, urls) on a Runtime,
// one line per URL and a summary. `name` and `description` are the help's.
inline int downloader_main(const std::string& name, const std::string& description,
                           Download (*download)(const std::string&), int argc, char** argv) {
  using Clock = std::chrono::steady_clock;
  int count = 100;
  std::size_t concurrency = 20;
  unsigned workers = 0;
  std::string url_file;
  bool quiet = false;
  green_cli::App app(name, description);
  green_cli::add_count(app, "--count", count, "files to download from the loopback server", 0);
  green_cli::add_count(app, "--concurrency", concurrency, "downloads at once: the Pool's size")->type_name("P");
  green_cli::add_workers(app, workers);
  app.add_option("--urls", url_file, "download the http:// URLs listed in FILE, one a line")->type_name("FILE");
  app.add_flag("--quiet", quiet, "print only the summary line");
  if (auto code = green_cli::parse(app, argc, argv)) return *code;
  try {
    green::Runtime rt({.workers = workers, .dump_on_signal = SIGQUIT});  // kill -QUIT: what each green thread does
    rt.run([&] {
      std::unique_ptr<FileServer> server;
      std::vector<std::string> urls;
      if (url_file.empty()) {
        server = std::make_unique<FileServer>();
        for (int i = 0; i < count; ++i)
          urls.push_back("http://127.0.0.1:" + std::to_string(server->port()) + "/file/" + std::to_string(i));
      } else {
        std::ifstream in(url_file);
        if (!in) throw green::Error("cannot read " + url_file);
        for (std::string line; std::getline(in, line);)
          if (!line.empty()) urls.push_back(line);
      }
      const auto t0 = Clock::now();
      green::Pool pool(concurrency);
      auto results = pool.map(download, urls);
      const double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      std::size_t total = 0;
      for (const Download& d : results) {
        total += d.bytes;
        if (!quiet) std::printf("%-48s %3d %9zu bytes %8.1f ms\n", d.url.c_str(), d.status, d.bytes, d.ms);
      }
      std::printf("downloaded %zu URLs, %zu bytes in %.0f ms with Pool(%zu)", results.size(), total, ms,
                  concurrency);
      if (server) std::printf("; the server saw at most %d requests at once", server->peak());
      std::printf("\n");
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", name.c_str(), e.what());
    return 1;
  }
  return 0;
}

}  // namespace green_examples
