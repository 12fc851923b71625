// End-to-end: monkey_downloader as its own process: the talk's downloader
// over plain blocking libcurl (curl_easy_perform), in Pool(P).map, green
// because the program links green::monkey. The same server and checks as
// bulk_downloader's (downloader_util.hpp): exactly P transfers in flight,
// measured on the server side, and every file whole, chunked or not.
#include <gtest/gtest.h>

#include "downloader_util.hpp"

using namespace e2e;

TEST(MonkeyDownloader, HundredDownloadsTwentyAtOnce) { downloads_with_pool(GREEN_E2E_MONKEY_DOWNLOADER, 100, 20); }

TEST(MonkeyDownloader, PoolOfFiveKeepsFiveInFlight) { downloads_with_pool(GREEN_E2E_MONKEY_DOWNLOADER, 30, 5); }

// The example's own loopback server (the default run).
TEST(MonkeyDownloader, BuiltInServer) { downloads_from_built_in_server(GREEN_E2E_MONKEY_DOWNLOADER); }
