#!/usr/bin/env bash
# The main demo: builds green, runs examples/print_sum on all cores, then a
# short scaling table of the scheduler benchmarks at workers = 1..nproc.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-release -j "$(nproc)" --target print_sum green_bench
echo "=== print_sum: 10 green threads, each sleeping 100 ms"
build-release/examples/print_sum --count 10
echo
echo "=== scheduler scaling (quick)"
build-release/bench/green_bench --quick
