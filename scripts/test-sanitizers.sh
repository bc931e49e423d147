#!/usr/bin/env bash
# The whole suite (unit + e2e) built with AddressSanitizer + UndefinedBehaviorSanitizer
# (clang 14, build-fuzz/, shared with scripts/fuzz.sh). scripts/test.sh (so CI) runs it after
# the normal suite, with --no-deps.
#   scripts/test-sanitizers.sh [--no-deps] [extra ctest arguments, e.g. -L unit]
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "scripts/test-sanitizers.sh: run as root" >&2; exit 1; }
if [ "${1:-}" = "--no-deps" ]; then
  shift
else
  scripts/install-deps.sh
fi
scripts/configure-sanitizers.sh
cmake --build build-fuzz -j"$(nproc)"
# Every ASan check is on, alloc_dealloc_mismatch included (Asio's allocator choice is fixed
# in CMakeLists.txt, see egressd_asio). halt_on_error with UBSan's -fno-sanitize-recover:
# the first finding fails the test that hit it.
ASAN_OPTIONS=detect_leaks=1:alloc_dealloc_mismatch=1:halt_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  ctest --test-dir build-fuzz --output-on-failure --timeout 600 "$@"
