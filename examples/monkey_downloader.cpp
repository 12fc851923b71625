// monkey_downloader — the talk's bulk downloader, with an unmodified
// blocking library: libcurl's easy API.
//
//   def download(url): return url, len(urlopen(url).read())
//   for url, size in Pool(20).map(download, urls): print(url, size)
//
// download() below is plain libcurl, written as for a thread-per-request
// program: no green call in it. It runs in green::Pool(20).map, so 20 of
// them are in flight at once on a couple of workers, because the program
// links green::monkey: curl_easy_perform's poll(), connect(), send() and
// recv() suspend only the green thread that made them. Without the link,
// each curl_easy_perform would hold its worker for the whole transfer.
//
// By default it starts the loopback file server of the other downloader
// (examples/downloader.hpp) and fetches 100 files from it, 20 at a time;
// --urls FILE fetches the http:// URLs listed in FILE instead (use numeric
// addresses: name lookups are not hooked yet and would hold a worker).
#include <curl/curl.h>

#include <green/monkey.hpp>

#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>

#include "downloader.hpp"

namespace {

std::size_t count_bytes(char*, std::size_t size, std::size_t n, void* total) {
  *static_cast<std::size_t*>(total) += size * n;
  return size * n;
}

green_examples::Download download(const std::string& url) {
  const auto t0 = std::chrono::steady_clock::now();
  green_examples::Download d;
  d.url = url;
  CURL* curl = curl_easy_init();
  if (!curl) throw std::runtime_error("curl_easy_init failed");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, count_bytes);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &d.bytes);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
  // As in any program with threads: no SIGALRM for timeouts.
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) throw std::runtime_error(url + ": " + curl_easy_strerror(rc));
  d.status = static_cast<int>(status);
  d.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return d;
}

}  // namespace

int main(int argc, char** argv) {
  // Without the hooks this program would still run, one transfer per worker
  // at a time: refuse instead of printing misleading timings.
  if (!green::monkey::active()) {
    std::fprintf(stderr, "monkey_downloader: the green::monkey hooks are not live in this process\n");
    return 1;
  }
  // libcurl's global set-up is not thread-safe: once, before any worker runs.
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    std::fprintf(stderr, "monkey_downloader: curl_global_init failed\n");
    return 1;
  }
  const int code = green_examples::downloader_main(
      "monkey_downloader",
      "Downloads N files from a loopback HTTP server it starts (or the URLs in FILE),\n"
      "P at a time, with Pool(P).map over plain blocking libcurl (curl_easy_perform),\n"
      "and prints bytes and time per URL.",
      download, argc, argv);
  curl_global_cleanup();
  return code;
}
