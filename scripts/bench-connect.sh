#!/usr/bin/env bash
# Benchmark (not a test): ns per connect()+close() on loopback from inside a sandbox
# cgroup versus outside it, with 10 and with 100,000 CIDR rules in force.
# Usage (root): scripts/bench-connect.sh [BUILD_DIR]   env: ITER (default 20000), RUNS (5)
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
iter="${ITER:-20000}"
runs="${RUNS:-5}"
port=18999
egressd="$build/userspace/daemon/egressd"
bench="$build/tests/bench/egressd-connect-bench"
[ -x "$egressd" ] && [ -x "$bench" ] || { echo "build first (cmake --build $build)" >&2; exit 1; }

cg_root=$(awk '$9 == "cgroup2" {print $5; exit}' /proc/self/mountinfo)
cg="$cg_root/egressd-test-bench-$$"
pin="/sys/fs/bpf/egressd-test-bench-$$"
tmp=$(mktemp -d)
stats_before=$(cat /proc/sys/kernel/bpf_stats_enabled)
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  echo "$stats_before" >/proc/sys/kernel/bpf_stats_enabled
  "$egressd" detach --sandbox bench --pin-root "$pin" >/dev/null 2>&1 || true
  rm -rf "$pin" "$tmp"
  [ -d "$cg" ] && rmdir "$cg" 2>/dev/null || true
}
trap cleanup EXIT
mkdir "$cg"

# Policy with N rules: the loopback port the benchmark uses plus N-1 /32s in 10.0.0.0/8.
make_policy() {
  python3 - "$1" "$port" >"$tmp/p$1.yaml" <<'PY'
import sys
n, port = int(sys.argv[1]), int(sys.argv[2])
print("name: bench\nenableInternet: false\nallow:")
print(f"  - {{cidr: 127.0.0.1/32, ports: [{port}, {port + 1}]}}")
for i in range(n - 1):
    print(f"  - {{cidr: 10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}/32, ports: [5432], protocol: tcp}}")
PY
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# Runs alternate outside/inside so drift on a shared machine hits both alike.
# $1 = tcp|udp; prints "outside_median inside_median".
measure() {
  local out="$tmp/out" in="$tmp/in"
  : >"$out"; : >"$in"
  local p=$port
  [ "$1" = tcp-client ] && p=$((port + 1))
  for _ in $(seq "$runs"); do
    taskset -c 0 "$bench" "$1" $p "$iter" | awk '{print $2}' >>"$out"
    sh -c "echo \$\$ > '$cg/cgroup.procs'; exec taskset -c 0 '$bench' $1 $p $iter" |
      awk '{print $2}' >>"$in"
  done
  echo "$(median <"$out") $(median <"$in")"
}

# Per-program cost from the kernel's own accounting (run_time_ns / run_cnt), immune to
# the scheduler noise that dominates loopback connect timings on a small VM.
hook_costs() {
  local out=""
  for prog in egressd_connect4 egressd_sock_create egressd_sockops egressd_skb_egress; do
    local id
    id=$(bpftool -j link show pinned "$pin/links/bench/$prog" | python3 -c 'import json,sys; print(json.load(sys.stdin)["prog_id"])')
    out+=$(bpftool -j prog show id "$id" | python3 -c '
import json, sys
p = json.load(sys.stdin)
n = p.get("run_cnt", 0)
print(" %s=%.0f" % (sys.argv[1].replace("egressd_", ""), p.get("run_time_ns", 0) / n if n else 0))' "$prog")
  done
  echo "$out"
}

# The peer listens outside the sandbox, on the other CPU, like a real sandbox's peers.
taskset -c 1 "$bench" serve $((port + 1)) >/dev/null &
server_pid=$!
sleep 0.3

make_policy 10
make_policy 100000
# bpf_stats costs two clock reads per program run: on only for its own pass.
stats_pass() {
  echo 1 >/proc/sys/kernel/bpf_stats_enabled
  sh -c "echo \$\$ > '$cg/cgroup.procs'; exec taskset -c 0 '$bench' tcp-client $((port + 1)) $iter" >/dev/null
  hook_costs
  echo 0 >/proc/sys/kernel/bpf_stats_enabled
}
"$egressd" apply --sandbox bench --cgroup "$cg" --policy "$tmp/p10.yaml" --pin-root "$pin" 2>/dev/null
read -r udp_out udp_10 < <(measure udp)
read -r tcp_out tcp_10 < <(measure tcp)
read -r tcpc_out tcpc_10 < <(measure tcp-client)
costs_10=$(stats_pass)
t0=$(date +%s.%N)
"$egressd" apply --sandbox bench --cgroup "$cg" --policy "$tmp/p100000.yaml" --pin-root "$pin" 2>/dev/null
t1=$(date +%s.%N)
read -r udp_out2 udp_100k < <(measure udp)
read -r tcp_out2 tcp_100k < <(measure tcp)
read -r tcpc_out2 tcpc_100k < <(measure tcp-client)
costs_100k=$(stats_pass)

printf '\nconnect()+close() on loopback, %s iterations x %s runs (median), pinned to CPU 0\n' "$iter" "$runs"
printf '%-44s %10s %10s %10s\n' "case" "outside" "inside" "added"
row() { printf '%-44s %10s %10s %10s\n' "$1" "$2" "$3" "$(($3 - $2))"; }
row "UDP socket+connect+close, 10 rules (ns)" "$udp_out" "$udp_10"
row "UDP socket+connect+close, 100000 rules (ns)" "$udp_out2" "$udp_100k"
row "TCP, peer outside the sandbox, 10 rules" "$tcpc_out" "$tcpc_10"
row "TCP, peer outside the sandbox, 100000 rules" "$tcpc_out2" "$tcpc_100k"
row "TCP, peer inside too (both ends), 10 rules" "$tcp_out" "$tcp_10"
row "TCP, peer inside too (both ends), 100000" "$tcp_out2" "$tcp_100k"
printf 'ns per program run (bpf_stats, TCP client pass), 10 rules:    %s\n' "$costs_10"
printf 'ns per program run (bpf_stats, TCP client pass), 100000 rules: %s\n' "$costs_100k"
printf 'loading 100000 rules (parse + compile + map writes): %.2f s\n' "$(echo "$t1 - $t0" | bc -l)"
