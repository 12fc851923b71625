// End-to-end: bulk_downloader (green's http_get) as its own process; the
// server and the checks are in downloader_util.hpp.
#include <gtest/gtest.h>

#include "downloader_util.hpp"

using namespace e2e;

TEST(BulkDownloader, HundredDownloadsTwentyAtOnce) { downloads_with_pool(GREEN_E2E_BULK_DOWNLOADER, 100, 20); }

TEST(BulkDownloader, PoolOfFiveKeepsFiveInFlight) { downloads_with_pool(GREEN_E2E_BULK_DOWNLOADER, 30, 5); }

// The example's own loopback server (the default run).
TEST(BulkDownloader, BuiltInServer) { downloads_from_built_in_server(GREEN_E2E_BULK_DOWNLOADER); }
