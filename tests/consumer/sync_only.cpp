// Proves that green::sync alone (with the green::scheduler it builds on) is a
// usable target for an outside project.
#include <green/green.hpp>
#include <green/sync.hpp>

#include <cstdio>

static_assert(__cplusplus >= 202002L, "green::sync must bring C++20 to its consumers");

int main() {
  green::Runtime rt({.workers = 1});
  const int answer = rt.run([] {
    green::Event done;
    int value = 0;
    auto g = green::spawn([&] { value = 42; done.set(); });
    done.wait();
    g.get();
    return value;
  });
  std::printf("consumer_sync ok %d\n", answer);
  return answer == 42 ? 0 : 1;
}
