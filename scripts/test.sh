#!/usr/bin/env bash
# The whole test suite, three times: an optimised build, ThreadSanitizer, and
# AddressSanitizer+UndefinedBehaviorSanitizer. Installs what is missing first.
# Each build lives in its own folder (build-release, build-tsan, build-asan),
# configured by the CMake preset of the same name (cmake --preset tsan).
#
#   scripts/test.sh                 all three
#   scripts/test.sh release         one of: release tsan asan
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

jobs=$(nproc)
configs=("$@")
[[ ${#configs[@]} -eq 0 ]] && configs=(release tsan asan)

# Sanitizer reports fail the run: halt_on_error makes any report a non-zero exit.
# tests/tsan.supp: reports inside libraries not built for TSan (each explained there).
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp ${TSAN_OPTIONS:-}"
export ASAN_OPTIONS="halt_on_error=1 detect_leaks=1 ${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="halt_on_error=1 print_stacktrace=1 ${UBSAN_OPTIONS:-}"

status=0
summary=()
for cfg in "${configs[@]}"; do
  case "$cfg" in
    release|tsan|asan) ;;
    *) echo "unknown configuration $cfg (release, tsan, asan)" >&2; exit 2 ;;
  esac
  dir="build-$cfg"
  echo "=== [$cfg] configure + build ($dir)"
  # CMakePresets.json: Ninja, RelWithDebInfo, GREEN_SANITIZE, bench only in release.
  cmake --preset "$cfg" >/dev/null
  cmake --build "$dir" -j "$jobs"
  echo "=== [$cfg] ctest"
  start=$(date +%s)
  rm -f "$dir/Testing/Temporary/LastTestsFailed.log"  # ctest leaves an old one after a clean run
  if ctest --test-dir "$dir" -j "$jobs" --output-on-failure --timeout 300; then
    summary+=("$cfg: passed in $(( $(date +%s) - start ))s")
  else
    # Name the failures here too: CI keeps only the tail of the log.
    failed=$(cut -d: -f2 "$dir/Testing/Temporary/LastTestsFailed.log" 2>/dev/null | paste -sd' ' || true)
    summary+=("$cfg: FAILED: ${failed:-see ctest output above}")
    status=1
  fi
done
echo "=== summary"
printf '  %s\n' "${summary[@]}"
exit $status
