// test_sanitizers.cpp — the sanitizers still see every hooked call.
//
// ASan's and TSan's interceptors come first in the symbol search order and
// call "the next definition", the hook, which parks the green thread inside
// the interceptor (green/monkey.hpp, WITH SANITIZERS). So what an
// interceptor checks or records about a call must still happen when that
// call is hooked and waits: each test makes a call whose only trace for
// the sanitizer is its interceptor, with the hook waiting in the middle,
// and expects the sanitizer's report. Without the interceptor in the path
// (the hooks bound ahead of it, or a wait that lost its state) there is no
// report and the test fails. Each build compiles the test of its own
// sanitizer; the release build has neither (nothing to see there).
#include <sys/syscall.h>
#include <unistd.h>

#include <green/green.hpp>
#include <green/monkey.hpp>
#include <green/io.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <thread>

#include <sys/socket.h>

#include "parked.hpp"

namespace {

[[maybe_unused]] green::RuntimeOptions two_workers() {
  green::RuntimeOptions o;
  o.workers = 2;
  return o;
}

#if defined(__SANITIZE_ADDRESS__)
// The read waits in the hook (the pipe is empty when it starts); when the
// bytes come, the hook returns 64 into a 16-byte buffer and ASan's read
// interceptor, around the hook, checks the range written.
[[noreturn]] void overflowing_hooked_read() {
  int p[2];
  if (::pipe(p) != 0) std::_Exit(3);
  green::Runtime rt(two_workers());
  rt.run([&] {
    auto reader = green::spawn([&] {
      // Sized at run time, so that the compiler does not reject the
      // overflow it is meant to make.
      volatile std::size_t size = 16;
      char* small = new char[size];
      const ssize_t n = ::read(p[0], small, 64);
      delete[] small;
      return n;
    });
    if (!green::testing::wait_parked(rt, "read (hooked)", 1)) std::_Exit(5);
    char data[64];
    std::memset(data, 'x', sizeof data);
    if (::write(p[1], data, sizeof data) != 64) std::_Exit(4);
    reader.get();
  });
  std::_Exit(0);  // ASan did not see it
}

TEST(MonkeySanitizers, AsanChecksTheBufferOfAHookedReadThatWaited) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(overflowing_hooked_read(), "heap-buffer-overflow");
}
#endif

#if defined(__SANITIZE_THREAD__)
// A green thread on worker 1 writes `buffer` while another, on worker 0,
// waits in a hooked read that will fill it; the two synchronise with
// nothing (relaxed flags, and a raw write(2) that TSan does not see), and
// the writer keeps its worker, spinning, until the read is over, so that no
// lock the runtime takes on worker 1 orders its write before the read.
// TSan learns of the read's write to `buffer` only from its read
// interceptor, around the hook: it reports the race and makes the process
// exit with 66 (its default exitcode).
char buffer[8];
std::atomic<bool> wrote{false}, filled{false};

[[noreturn]] void racing_hooked_read() {
  int p[2];
  if (::pipe(p) != 0) std::_Exit(3);
  {
    green::Runtime rt(two_workers());
    rt.run([&] {
      auto reader = green::spawn({.worker = 0, .pinned = true}, [&] {
        const ssize_t n = ::read(p[0], buffer, sizeof buffer);
        filled.store(true, std::memory_order_relaxed);
        return n;
      });
      // Worker 0's: it must never wait for worker 1, which `other` holds.
      auto driver = green::spawn({.worker = 0, .pinned = true}, [&] {
        if (!green::testing::wait_parked(rt, "read (hooked)", 1)) std::_Exit(5);
        auto other = green::spawn({.worker = 1, .pinned = true}, [] {
          buffer[0] = 'y';
          wrote.store(true, std::memory_order_relaxed);
          while (!filled.load(std::memory_order_relaxed)) {
          }
        });
        for (int i = 0; !wrote.load(std::memory_order_relaxed); ++i) {
          if (i == 5000) std::_Exit(6);  // worker 1 never ran it: bounded
          green::sleep(std::chrono::milliseconds(1));
        }
        // A raw system call: TSan's write interceptor would order this
        // writer before the reader.
        if (::syscall(SYS_write, p[1], "12345678", 8) != 8) std::_Exit(4);
        other.get();
      });
      reader.get();
      driver.get();
    });
  }
  std::exit(0);  // TSan turns this into 66 if it reported
}

TEST(MonkeySanitizers, TsanRecordsTheBufferOfAHookedReadThatWaited) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(racing_hooked_read(), ::testing::ExitedWithCode(66), "data race");
}

// green's own close (green::close_fd, what a Socket's close does) must pass
// TSan's close interceptor, or TSan keeps the closed fd's history: a plain
// thread that gets the same number next (no happens-before with the green
// thread: a relaxed flag) and touches it (the hooked socketpair's fstat)
// was reported as racing with the green thread's socket(). TSan exits with
// 66 if it reports anything.
[[noreturn]] void reusing_an_fd_green_closed() {
  std::atomic<int> closed{-1};
  std::atomic<bool> reused{false};
  std::thread plain([&] {
    while (closed.load(std::memory_order_relaxed) < 0) {
    }
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) std::_Exit(3);
    if (sv[0] != closed.load(std::memory_order_relaxed) && sv[1] != closed.load(std::memory_order_relaxed))
      std::_Exit(4);  // the number was not reused: the test proves nothing
    ::close(sv[0]);
    ::close(sv[1]);
    reused.store(true, std::memory_order_relaxed);
  });
  {
    green::Runtime rt(two_workers());
    rt.run([&] {
      const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
      if (fd < 0) std::_Exit(5);
      green::close_fd(fd);
      closed.store(fd, std::memory_order_relaxed);
      // Keep this worker's thread alive and unsynchronised until the plain
      // thread is done (a runtime shutdown would order the two).
      for (int i = 0; !reused.load(std::memory_order_relaxed); ++i) {
        if (i == 5000) std::_Exit(6);
        green::sleep(std::chrono::milliseconds(1));
      }
    });
  }
  plain.join();
  std::exit(0);  // TSan turns this into 66 if it reported
}

TEST(MonkeySanitizers, TsanForgetsAnFdThatGreenClosed) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(reusing_an_fd_green_closed(), ::testing::ExitedWithCode(0), "");
}
#endif

}  // namespace
