// memory_case.cpp — what a parked green thread costs in memory.
//
// n green threads are spawned and each parks on one shared Event (gevent's
// "a million greenlets waiting"). Once all of them wait, the growth of the
// process's resident set over n is the cost of one parked green thread: its
// control block plus the stack pages it touched (a stack is reserved at full
// size but committed page by page). The kernel's page tables for those
// stacks are not in the resident set; they are reported beside it, because
// a stackful design pays them and a growable-stack runtime (Go) mostly does
// not. The measurement runs in a fresh child process (green_bench
// --memory-child), so that stacks pooled by earlier cases do not hide the
// cost.
#include <green/sync.hpp>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "cases.hpp"

namespace bench {

namespace {

// A "Key:   123 kB" line of /proc/self/status, in bytes.
std::size_t status_bytes(const char* key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::string prefix = std::string(key) + ":";
  while (std::getline(in, line))
    if (line.rfind(prefix, 0) == 0) return std::stoull(line.substr(prefix.size())) * 1024;
  throw std::runtime_error(std::string("no ") + key + " in /proc/self/status");
}

}  // namespace

ParkedMemory parked_memory(unsigned workers, int n) {
  green::Runtime rt({.workers = workers});
  return rt.run([n] {
    // Warm the runtime's own structures first, so they are not charged to
    // the parked green threads.
    green::spawn([] {}).join();
    const std::size_t rss0 = status_bytes("VmRSS"), pte0 = status_bytes("VmPTE");
    green::Event release;
    std::atomic<int> waiting{0};
    std::vector<green::Greenlet<void>> parked;
    parked.reserve(static_cast<std::size_t>(n));
    const std::size_t handles = parked.capacity() * sizeof(green::Greenlet<void>);
    for (int i = 0; i < n; ++i)
      parked.push_back(green::spawn([&] {
        waiting.fetch_add(1, std::memory_order_relaxed);
        release.wait();
      }));
    // Every one has run up to its wait (it counts itself just before).
    while (waiting.load(std::memory_order_relaxed) < n) green::sleep(std::chrono::milliseconds(1));
    green::sleep(std::chrono::milliseconds(20));  // the last few reach the park itself
    const std::size_t rss1 = status_bytes("VmRSS"), pte1 = status_bytes("VmPTE");
    release.set();
    green::joinall(parked);
    ParkedMemory m;
    // The vector of handles is the caller's bookkeeping, not the thread's.
    m.rss_bytes = (static_cast<double>(rss1) - static_cast<double>(rss0) - static_cast<double>(handles)) / n;
    m.page_table_bytes = (static_cast<double>(pte1) - static_cast<double>(pte0)) / n;
    return m;
  });
}

}  // namespace bench
