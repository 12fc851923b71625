// test_curl.cpp — the talk's bulk downloader with libcurl's blocking easy
// API (curl_easy_perform), unmodified, in green::Pool(20).map, against a
// slow HTTP server in the same runtime (real_servers.hpp).
#include <curl/curl.h>

#include <green/green.hpp>
#include <green/sync.hpp>

#include <gtest/gtest.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

#include "real_servers.hpp"
#include "test_env.hpp"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using green::testing::per_build;

// libcurl's global state, set up once per process before any worker runs
// (curl_global_init is not thread-safe).
struct CurlGlobal {
  CurlGlobal() {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) throw std::runtime_error("curl_global_init failed");
  }
  ~CurlGlobal() { curl_global_cleanup(); }
};

std::size_t append(char* data, std::size_t size, std::size_t n, void* body) {
  static_cast<std::string*>(body)->append(data, size * n);
  return size * n;
}

// As a thread-per-request program writes it: no green call anywhere.
std::string fetch(const std::string& url) {
  std::string body;
  CURL* curl = curl_easy_init();
  if (!curl) throw std::runtime_error("curl_easy_init failed");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, append);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  const CURLcode rc = curl_easy_perform(curl);
  curl_easy_cleanup(curl);
  if (rc != CURLE_OK) throw std::runtime_error(url + ": " + curl_easy_strerror(rc));
  return body;
}

// 100 URLs through Pool(20).map on 2 workers, each answered after 200 ms.
// The server holds exactly 20 requests at once (its gate makes that exact;
// see SlowHttpServer), and the run takes about 100/20 x 200 ms = 1 s: never
// less (100 requests of 200 ms, at most 20 at a time), and far from the 20 s
// a serial run takes, or the 10 s of two workers each held by a transfer.
TEST(MonkeyCurl, PoolOfTwentyKeepsTwentyTransfersInFlight) {
  const CurlGlobal curl;
  constexpr int n = 100;
  constexpr int pool_size = 20;
  constexpr auto delay = 200ms;
  green::Runtime rt(green::RuntimeOptions{.workers = 2});
  rt.run([&] {
    green::testing::SlowHttpServer server(delay, pool_size);
    std::vector<std::string> urls;
    for (int i = 0; i < n; ++i) urls.push_back(server.url(i));

    const auto t0 = Clock::now();
    green::Pool pool(pool_size);
    const std::vector<std::string> bodies = pool.map(fetch, urls);
    const auto took = Clock::now() - t0;

    ASSERT_EQ(bodies.size(), static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) EXPECT_EQ(bodies[i], green::testing::SlowHttpServer::body(i)) << urls[i];
    EXPECT_EQ(server.requests(), n);
    EXPECT_FALSE(server.gate_timed_out()) << "never " << pool_size << " requests at once; peak " << server.peak();
    EXPECT_EQ(server.peak(), pool_size);
    const auto ideal = n / pool_size * delay;
    green::testing::expect_took(took, ideal, per_build(2, 3, 4) * ideal);
  });
}

}  // namespace
