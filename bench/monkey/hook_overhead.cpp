// hook_overhead — what green::monkey costs code that never runs in a green
// thread (issue 14: a hooked read/write on a plain thread within 5 ns of the
// libc call, median, same run).
//
// Two shapes, each timed through the process's own read/write symbols (the
// hooks) and through libc's definitions (looked up in libc.so.6 itself),
// in alternating batches so that a noisy spell on the machine hits both:
//   pipe   write 1 byte + read it back on a pipe made by the hooked pipe():
//          the fd the hooks emulate, so each call looks its record up;
//   devnull  write 1 byte to /dev/null + read 1 byte from /dev/zero: fds
//          the hooks never emulate (opened with open()), the cheapest path.
// The difference of the medians is the hooks' cost per call.
//
//   hook_overhead [--batches N] [--calls N] [--csv FILE]
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <green/monkey.hpp>

#include "cli.hpp"  // examples/cli.hpp

namespace {

using ReadFn = ssize_t (*)(int, void*, size_t);
using WriteFn = ssize_t (*)(int, const void*, size_t);
using Clock = std::chrono::steady_clock;

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "hook_overhead: %s\n", what.c_str());
  std::exit(1);
}

// ns per call of `calls` write+read pairs (two calls each).
double time_pairs(ReadFn rd, WriteFn wr, int wfd, int rfd, long calls) {
  char c = 'x';
  const auto t0 = Clock::now();
  for (long i = 0; i < calls; ++i) {
    if (wr(wfd, &c, 1) != 1 || rd(rfd, &c, 1) != 1) fail("a write or read failed");
  }
  return std::chrono::duration<double, std::nano>(Clock::now() - t0).count() / (2.0 * calls);
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  unsigned batches = 21;
  unsigned long calls = 100000;
  std::string csv;
  green_cli::App app("hook_overhead",
                     "The cost of green::monkey's read/write hooks on a plain thread: hooked and\n"
                     "libc calls timed in alternating batches; medians in ns per call.");
  green_cli::add_count(app, "--batches", batches, "batches of each kind", 1u, 10001u);
  green_cli::add_count(app, "--calls", calls, "write+read pairs per batch", 1ul, 100000000ul);
  app.add_option("--csv", csv, "also write the rows to FILE as CSV")->type_name("FILE");
  if (auto code = green_cli::parse(app, argc, argv)) return *code;

  if (!green::monkey::active()) fail("the hooks are not live (green/monkey.hpp)");
  void* libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  if (!libc) fail("libc.so.6 is not loaded?");
  auto libc_read = reinterpret_cast<ReadFn>(dlsym(libc, "read"));
  auto libc_write = reinterpret_cast<WriteFn>(dlsym(libc, "write"));
  if (!libc_read || !libc_write) fail("no read/write in libc.so.6");
  // The symbols the program's own calls bind to: the hooks (active() said so).
  ReadFn hooked_read = &::read;
  WriteFn hooked_write = &::write;
  if (reinterpret_cast<void*>(hooked_read) == reinterpret_cast<void*>(libc_read))
    fail("read binds to libc's definition: nothing to compare");

  int p[2];
  if (::pipe(p) != 0) fail("pipe");
  const int devnull = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  const int devzero = ::open("/dev/zero", O_RDONLY | O_CLOEXEC);
  if (devnull < 0 || devzero < 0) fail("open /dev/null, /dev/zero");

  struct Shape {
    const char* name;
    int wfd, rfd;
    std::vector<double> hooked, libc;
  };
  Shape shapes[] = {{"pipe", p[1], p[0], {}, {}}, {"devnull", devnull, devzero, {}, {}}};
  for (unsigned b = 0; b < batches; ++b) {
    for (Shape& s : shapes) {
      // Which goes first alternates too: the first of a pair warms the caches for the second.
      if (b % 2 == 0) {
        s.hooked.push_back(time_pairs(hooked_read, hooked_write, s.wfd, s.rfd, static_cast<long>(calls)));
        s.libc.push_back(time_pairs(libc_read, libc_write, s.wfd, s.rfd, static_cast<long>(calls)));
      } else {
        s.libc.push_back(time_pairs(libc_read, libc_write, s.wfd, s.rfd, static_cast<long>(calls)));
        s.hooked.push_back(time_pairs(hooked_read, hooked_write, s.wfd, s.rfd, static_cast<long>(calls)));
      }
    }
  }
  FILE* out = csv.empty() ? nullptr : std::fopen(csv.c_str(), "w");
  if (!csv.empty() && !out) fail("cannot write " + csv);
  if (out) std::fprintf(out, "case,median_hooked_ns,median_libc_ns,overhead_ns,batches\n");
  std::printf("%-10s %14s %14s %14s  (ns per call, medians of %u batches of %lu write+read pairs)\n", "case",
              "hooked", "libc", "hooks' cost", batches, calls);
  for (const Shape& s : shapes) {
    const double h = median(s.hooked), l = median(s.libc);
    std::printf("%-10s %14.1f %14.1f %14.1f\n", s.name, h, l, h - l);
    if (out) std::fprintf(out, "%s,%.2f,%.2f,%.2f,%u\n", s.name, h, l, h - l, batches);
  }
  if (out) std::fclose(out);
  return 0;
}
