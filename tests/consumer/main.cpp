// Proves that an outside project can build and run against green.
#include <green/green.hpp>

#include <cstdio>

int main() {
  green::Runtime rt({.workers = 2});
  const int answer = rt.run([] {
    auto a = green::spawn([] { return 40; });
    auto b = green::spawn([] { return 2; });
    return a.get() + b.get();
  });
  std::printf("consumer ok %d\n", answer);
  return answer == 42 ? 0 : 1;
}
