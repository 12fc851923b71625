// bulk_downloader — the talk's Pool(20).map(download, urls).
//
//   def download(url): return url, len(urlopen(url).read())
//   for url, size in Pool(20).map(download, urls): print(url, size)
//
// By default it starts a small HTTP server on loopback (so it runs with no
// network) and downloads 100 URLs from it, 20 at a time; the server counts
// the most requests it served at once, which shows the pool's bound at
// work. Odd-numbered files are sent chunked, even ones with Content-Length,
// and each response is delayed a little, standing for a slow network.
// --urls FILE downloads the http:// URLs listed in FILE instead.
#include <green/io.hpp>

#include <chrono>
#include <string>

#include "downloader.hpp"

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

green_examples::Download download(const std::string& url) {
  const auto t0 = Clock::now();
  auto r = green::http_get(url, 30s);
  return {url, r.body.size(), std::chrono::duration<double, std::milli>(Clock::now() - t0).count(), r.status};
}

}  // namespace

int main(int argc, char** argv) {
  return green_examples::downloader_main(
      "bulk_downloader",
      "Downloads N files from a loopback HTTP server it starts (or the URLs in FILE),\n"
      "P at a time, with Pool(P).map, and prints bytes and time per URL.",
      download, argc, argv);
}
