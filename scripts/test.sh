#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit + e2e on the real kernel), the
# changed files through clang-tidy, the whole suite again under ASan+UBSan, and every fuzz
# target for a bounded time (docs/testing.md). Run as root on Debian 12. CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh: run as root (the e2e tests create cgroups, netns and BPF links)" >&2
  exit 1
fi
# Each phase prints when it starts, so a slow CI run shows where its time went.
phase() { echo "== scripts/test.sh: $1 (at ${SECONDS} s)"; }
phase "install dependencies"
scripts/install-deps.sh
phase "build (build/: Release with debug info, tests included)"
# The tests run against the optimization packagers ship (Release, -O3), so -O3-only
# warnings (-Werror) fail here too. -g1 (functions and line tables) gives failing tests
# backtraces with lines; full -g made every compile ~40% slower (measured on GCC 12).
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="-O3 -DNDEBUG -g1" \
  -DCMAKE_CXX_FLAGS_RELEASE="-O3 -DNDEBUG -g1" -DEGRESSD_BUILD_TESTS=ON
cmake --build build -j"$(nproc)"
phase "test suite (build/)"
# e2e tests share the machine's cgroup tree and bpffs: run serially.
ctest --test-dir build --output-on-failure --timeout 300
# clang-tidy on the .cpp files the last change touched (.clang-tidy; warnings are errors).
phase "clang-tidy"
scripts/tidy.sh
# The whole suite again under ASan+UBSan (clang 14, build-fuzz/), then every fuzz target for
# 30 s (one per core at a time) in that same tree; any finding fails.
# EGRESSD_CI_SANITIZERS=0 skips the sanitizer suite, EGRESSD_CI_FUZZ_SECONDS=0 the fuzzers.
if [ "${EGRESSD_CI_SANITIZERS:-1}" = 1 ]; then
  phase "test suite under ASan+UBSan (build-fuzz/)"
  scripts/test-sanitizers.sh --no-deps
fi
fuzz_seconds=${EGRESSD_CI_FUZZ_SECONDS:-30}
if [ "$fuzz_seconds" -gt 0 ]; then
  phase "fuzzers"
  scripts/fuzz.sh --seconds "$fuzz_seconds" --jobs "$(nproc)"
fi
phase "done"
