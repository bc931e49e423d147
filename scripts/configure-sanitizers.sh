#!/usr/bin/env bash
# Configures build-fuzz/: the one clang-14 ASan+UBSan tree (libFuzzer coverage included) that
# both scripts/test-sanitizers.sh (the whole suite) and scripts/fuzz.sh (the fuzzers) build
# in, so CI compiles the product with sanitizers once. Idempotent; prints nothing on success.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEGRESSD_BUILD_TESTS=ON \
  -DCMAKE_C_COMPILER=clang-14 -DCMAKE_CXX_COMPILER=clang++-14 \
  -DEGRESSD_SANITIZE="address;undefined" -DEGRESSD_FUZZ=ON >/dev/null
