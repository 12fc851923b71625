// Proves that green::monkey links for an outside project, through either
// way of getting green, and that the hooks are live in a program whose own
// code calls none of the hooked functions (as when only a library such as
// libcurl does): the linker must not drop the hook library.
#include <green/green.hpp>
#include <green/monkey.hpp>

#include <cstdio>

int main() {
  if (!green::monkey::active()) {
    std::printf("consumer_monkey: the hooks are not live\n");
    return 1;
  }
  std::printf("consumer_monkey ok 42\n");
  return 0;
}
