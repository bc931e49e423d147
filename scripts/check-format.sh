#!/usr/bin/env bash
# Fails when a tracked C/C++ file differs from clang-format's output (vmlinux/ excluded).
set -euo pipefail
cd "$(dirname "$0")/.."
fmt=$(command -v clang-format-14 || command -v clang-format)
mapfile -t files < <(git ls-files '*.c' '*.h' '*.cpp' | grep -v '^vmlinux/')
"$fmt" --dry-run --Werror "${files[@]}"
echo "clang-format: ${#files[@]} files clean"
