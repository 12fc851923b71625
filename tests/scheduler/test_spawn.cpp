#include <green/green.hpp>
#include <gtest/gtest.h>

TEST(Spawn, RunReturnsValue) {
  green::Runtime rt({.workers = 2});
  EXPECT_EQ(rt.run([] { return green::spawn([](int x) { return x * 2; }, 21).get(); }), 42);
}
