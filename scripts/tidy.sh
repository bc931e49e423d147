#!/usr/bin/env bash
# clang-tidy (.clang-tidy: bugprone, performance and a modernize subset; warnings are errors)
# over userspace/ C++ files, using build/compile_commands.json (configure build/ first).
#   scripts/tidy.sh                 the .cpp files the last change touched (HEAD~1..HEAD; for a
#                                   merge commit, everything the merged branch changed)
#   scripts/tidy.sh --since REV     the .cpp files changed since REV
#   scripts/tidy.sh --all           every userspace .cpp (about 15 CPU-minutes)
#   scripts/tidy.sh FILE...         those files
# A header is checked through the .cpp files that include it (HeaderFilterRegex).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${EGRESSD_TIDY_BUILD_DIR:-build}
tidy=$(command -v clang-tidy-14 || command -v clang-tidy || true)
if [ -z "$tidy" ]; then
  echo "scripts/tidy.sh: clang-tidy not found (apt-get install clang-tidy-14)" >&2
  exit 1
fi
if [ ! -f "$build/compile_commands.json" ]; then
  echo "scripts/tidy.sh: $build/compile_commands.json missing: configure $build first" >&2
  exit 1
fi

files=()
case "${1:-}" in
  --all) mapfile -t files < <(git ls-files 'userspace/*.cpp') ;;
  --since)
    [ $# -eq 2 ] || { echo "usage: scripts/tidy.sh --since REV" >&2; exit 2; }
    mapfile -t files < <(git diff --name-only --diff-filter=AM "$2" HEAD -- 'userspace/*.cpp') ;;
  "")
    if ! git rev-parse -q --verify HEAD~1 >/dev/null; then
      echo "tidy: no parent commit to compare with; nothing to check"
      exit 0
    fi
    mapfile -t files < <(git diff --name-only --diff-filter=AM HEAD~1 HEAD -- 'userspace/*.cpp') ;;
  -*) echo "usage: scripts/tidy.sh [--all | --since REV | FILE...]" >&2; exit 2 ;;
  *) files=("$@") ;;
esac
if [ ${#files[@]} -eq 0 ]; then
  echo "tidy: no userspace .cpp file changed; nothing to check"
  exit 0
fi

# The compile database is GCC's: clang must not trip over GCC-only warning flags, and needs
# the coroutine switch CMake sets for clang builds only.
extra=(--extra-arg=-Wno-unknown-warning-option --extra-arg=-DASIO_HAS_CO_AWAIT=1)
started=$(date +%s)
printf '%s\n' "${files[@]}" |
  xargs -P "$(nproc)" -n 1 "$tidy" -p "$build" --quiet "${extra[@]}" 2>/dev/null
echo "clang-tidy: ${#files[@]} files clean in $(( $(date +%s) - started )) s"
