// Proves that an outside project can build and run against green, through
// green::green (scheduler, sync and io), with C++20 from green's usage
// requirements alone. It makes a TlsContext, so that a static libgreen_io
// must bring OpenSSL to the link (greenConfig.cmake's find_dependency).
#include <green/green.hpp>
#include <green/io.hpp>
#include <green/sync.hpp>

#include <cstdio>

static_assert(__cplusplus >= 202002L, "green::green must bring C++20 to its consumers");

int main() {
  green::Runtime rt({.workers = 2});
  const int answer = rt.run([] {
    green::Queue<int> q;
    auto a = green::spawn([&q] { q.put(40); });
    auto b = green::spawn([] { return 2; });
    a.get();
    return q.get() + b.get();
  });
  const auto port = green::Address::parse("127.0.0.1:42").port();
  const bool tls = green::TlsContext::client({.verify = false}).valid();
  std::printf("consumer ok %d\n", port == 42 && tls ? answer : -1);
  return answer == 42 && port == 42 && tls ? 0 : 1;
}
