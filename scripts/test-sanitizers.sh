#!/usr/bin/env bash
# The whole suite (unit + e2e) built with AddressSanitizer + UndefinedBehaviorSanitizer.
# Not part of .ci/run (it doubles the build time); run it before landing risky changes.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "scripts/test-sanitizers.sh: run as root" >&2; exit 1; }
scripts/install-deps.sh
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEGRESSD_SANITIZE="address;undefined"
cmake --build build-asan -j"$(nproc)"
# alloc_dealloc_mismatch=0: Asio 1.22's recycling allocator frees with free() what its
# aligned_new() took with operator new when no aligned allocation function is detected
# (asio/detail/memory.hpp); harmless with glibc, reported by ASan on every proxy thread.
ASAN_OPTIONS=detect_leaks=1:alloc_dealloc_mismatch=0 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan --output-on-failure --timeout 300
