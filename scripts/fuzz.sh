#!/usr/bin/env bash
# Runs the libFuzzer targets of tests/fuzz in a clang-14 ASan+UBSan build (build-fuzz/).
#   scripts/fuzz.sh [--minutes N | --seconds N] [--target T]... [--jobs J] [--no-build]
# Each target runs for the given time (default 1 minute) from a scratch copy of its
# committed corpus (tests/fuzz/corpus/T), so runs never dirty the repository; new inputs
# stay in the scratch dir (printed). Any finding (crash, sanitizer report, violated
# property, timeout, out-of-memory) fails the script; its reproducer is kept in the
# scratch dir and named in the output: copy it into the corpus once the bug is fixed.
# Prints per-target execs and seconds and a total. Needs clang-14 (scripts/install-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
jobs=1
build=1
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) seconds=$(( $2 * 60 )); shift 2 ;;
    --seconds) seconds=$2; shift 2 ;;
    --target) targets+=("$2"); shift 2 ;;
    --jobs) jobs=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    *) echo "usage: scripts/fuzz.sh [--minutes N | --seconds N] [--target T]... [--jobs J] [--no-build]" >&2
       exit 2 ;;
  esac
done
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(ls tests/fuzz/corpus)
fi

if [ "$build" -eq 1 ]; then
  scripts/configure-sanitizers.sh
  cmake --build build-fuzz -j"$(nproc)" --target egressd_fuzzers
fi

scratch=$(mktemp -d /tmp/egressd-fuzz.XXXXXX)
echo "fuzz: ${#targets[@]} targets x ${seconds}s, scratch $scratch"
export ASAN_OPTIONS=detect_leaks=1:alloc_dealloc_mismatch=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# One target: fuzz, then summarize its log as "target execs seconds status".
run_one() {
  local t=$1 bin=build-fuzz/tests/fuzz/egressd_fuzz_$1
  local dir=$scratch/$t
  mkdir -p "$dir/corpus" "$dir/artifacts"
  cp tests/fuzz/corpus/"$t"/* "$dir/corpus/"
  local start end status=ok
  start=$(date +%s)
  # -timeout: one input over 10 s is a hang; -rss_limit_mb: ASan's shadow included.
  if ! "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2560 -print_final_stats=1 \
      -artifact_prefix="$dir/artifacts/" "$dir/corpus" >"$dir/log" 2>&1; then
    status=FAILED
  fi
  end=$(date +%s)
  local execs
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
  echo "$t ${execs:-0} $(( end - start )) $status" >"$dir/summary"
}

pids=()
for t in "${targets[@]}"; do
  if [ ! -x "build-fuzz/tests/fuzz/egressd_fuzz_$t" ]; then
    echo "fuzz: no target $t (build-fuzz/tests/fuzz/egressd_fuzz_$t)" >&2
    exit 2
  fi
  run_one "$t" &
  pids+=($!)
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
    wait -n || true
  done
done
wait

failed=0
total_execs=0
total_seconds=0
printf '%-20s %14s %8s  %s\n' target execs seconds result
for t in "${targets[@]}"; do
  read -r name execs secs status <"$scratch/$t/summary"
  printf '%-20s %14s %8s  %s\n' "$name" "$execs" "$secs" "$status"
  total_execs=$(( total_execs + execs ))
  total_seconds=$(( total_seconds + secs ))
  if [ "$status" != ok ]; then
    failed=1
    echo "---- $t: last lines of $scratch/$t/log" >&2
    tail -40 "$scratch/$t/log" >&2
    ls "$scratch/$t/artifacts" >&2 || true
  fi
done
printf '%-20s %14s %8s\n' total "$total_execs" "$total_seconds"
if [ "$failed" -ne 0 ]; then
  echo "fuzz: FINDINGS (reproducers under $scratch/*/artifacts)" >&2
  exit 1
fi
echo "fuzz: clean; new corpus inputs under $scratch/*/corpus"
