#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit + e2e on the real kernel), the
# changed files through clang-tidy, and every fuzz target for a bounded time
# (docs/testing.md). Run as root on Debian 12. CI (.ci/run) calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "scripts/test.sh: run as root (the e2e tests create cgroups, netns and BPF links)" >&2
  exit 1
fi
scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEGRESSD_BUILD_TESTS=ON
cmake --build build -j"$(nproc)"
# Build-only check of the Release (-O3) product build: what packagers build, and where some
# compiler warnings appear only (-Werror). The tests are built and run from build/ above.
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DEGRESSD_BUILD_TESTS=OFF
cmake --build build-release -j"$(nproc)"
# e2e tests share the machine's cgroup tree and bpffs: run serially.
ctest --test-dir build --output-on-failure --timeout 300
# clang-tidy on the .cpp files the last change touched (.clang-tidy; warnings are errors).
scripts/tidy.sh
# The whole suite again under ASan+UBSan (build-asan/): opt-in until one complete run of it
# is recorded within CI's time budget (docs/testing.md "Sanitizers").
if [ "${EGRESSD_CI_SANITIZERS:-0}" = 1 ]; then
  scripts/test-sanitizers.sh --no-deps
fi
# Every fuzz target for 30 s (one per core at a time) in a clang ASan+UBSan build
# (build-fuzz/); any finding fails. EGRESSD_CI_FUZZ_SECONDS=0 skips them.
fuzz_seconds=${EGRESSD_CI_FUZZ_SECONDS:-30}
if [ "$fuzz_seconds" -gt 0 ]; then
  scripts/fuzz.sh --seconds "$fuzz_seconds" --jobs "$(nproc)"
fi
