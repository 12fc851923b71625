// The opt-in hook library through the installed/exported green::monkey. This
// program's own code calls no hooked function (as one that leaves its I/O to
// libpq or libcurl): the hooks must still be linked and live, whatever the
// linker's --as-needed does with a library nothing before it on the command
// line uses.
#include <green/monkey.hpp>

#include <cstdio>

static_assert(__cplusplus >= 202002L, "green::monkey must require C++20 itself");

int main() {
  if (!green::monkey::active()) {
    std::puts("consumer_monkey: the hooks are not live");
    return 1;
  }
  std::puts("consumer_monkey ok 42");
  return 0;
}
