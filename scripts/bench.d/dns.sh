#!/usr/bin/env bash
# DNS through egressd's resolver vs. straight to the upstream (issue 13), one run side by
# side: dnsperf throughput (cached name, unique names) and sequential latency p50/p99 (a
# python client, one query at a time). Everything runs pinned to one core (taskset -c
# ${CPU:-1}): egressd, the client and dnsmasq's answers share it. As root; makes a private
# netns with dnsmasq on 198.18.237.2 (bench.test -> .3, TTL 300) and removes it on exit.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" -eq 0 ] || { echo "dns.sh: run as root" >&2; exit 1; }
. scripts/testenv/netns.sh
egressd=${EGRESSD:-$PWD/build/userspace/daemon/egressd}
cpu=${CPU:-1}
tmp=$(mktemp -d)
trap 'testenv_down; rm -rf "$tmp"' EXIT
testenv_up "egdnsb-$$" 237
testenv_exec dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts --bind-interfaces \
  --listen-address=198.18.237.2 --port=53 --address=/bench.test/198.18.237.3 --local-ttl=300 \
  --pid-file= --cache-size=10000 >"$tmp/dnsmasq.log" 2>&1 &
sleep 0.5
cat >"$tmp/policy.yaml" <<'P'
name: dnsbench
enableInternet: false
allowedHosts: ["*.bench.test", "bench.test"]
dns:
  upstream: "198.18.237.2:53"
  limits: { qps: 1000000, burst: 1000000, uniqueNamesPerMinute: 1000000,
            queryBytesPerMinute: 100000000 }
P
# The same with a name-based allow rule: every answer also writes the kernel allow map.
sed 's/^enableInternet: false$/enableInternet: false\nallow: [{ host: bench.test, ports: [5432], protocol: tcp }]/' \
  "$tmp/policy.yaml" >"$tmp/policy-rule.yaml"
for _ in $(seq 1 20); do echo "bench.test A"; done >"$tmp/cached.txt"
for i in $(seq 1 200000); do echo "q$i.bench.test A"; done >"$tmp/unique.txt"
cat >"$tmp/lat.py" <<'PY'
import random, socket, struct, sys, time
server, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
def query(qid, nm):
    out = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in nm.split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\0" + struct.pack("!HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
lat = []
for i in range(n):
    qid = random.randrange(65536)
    msg = query(qid, name.replace("{i}", str(i)))
    t = time.perf_counter_ns()
    s.sendto(msg, (server, 53))
    while struct.unpack("!H", s.recvfrom(4096)[0][:2])[0] != qid:
        pass
    lat.append(time.perf_counter_ns() - t)
lat.sort()
print(f"    sequential: p50 {lat[n // 2] / 1000:.1f} us, p99 {lat[n * 99 // 100] / 1000:.1f} us")
PY
perf() { grep -E "Queries per second|Average Latency|Queries lost" | sed 's/^ */    /'; }
# --user root: the clients read their inputs from the root-only scratch directory.
inside() { taskset -c "$cpu" "$egressd" run --user root --policy "$tmp/policy.yaml" -- "$@" 2>/dev/null; }
insideRule() { taskset -c "$cpu" "$egressd" run --user root --policy "$tmp/policy-rule.yaml" -- "$@" 2>/dev/null; }
direct() { taskset -c "$cpu" "$@"; }
echo "direct to dnsmasq, one cached name:";    direct dnsperf -s 198.18.237.2 -d "$tmp/cached.txt" -l 8 -q 50 | perf
echo "through egressd, one cached name:";      inside dnsperf -s 198.18.237.99 -d "$tmp/cached.txt" -l 8 -q 50 | perf
echo "direct to dnsmasq, unique names:";       direct dnsperf -s 198.18.237.2 -d "$tmp/unique.txt" -l 5 -q 20 -n 1 | perf
echo "through egressd, unique names:";         inside dnsperf -s 198.18.237.99 -d "$tmp/unique.txt" -l 5 -q 20 -n 1 | perf
echo "latency, cached name, direct:";          direct python3 "$tmp/lat.py" 198.18.237.2 bench.test 5000
echo "latency, cached name, egressd:";         inside python3 "$tmp/lat.py" 198.18.237.99 bench.test 5000
echo "latency, cached name, egressd + name rule:"; insideRule python3 "$tmp/lat.py" 198.18.237.99 bench.test 5000
echo "through egressd + name rule, cached name:"; insideRule dnsperf -s 198.18.237.99 -d "$tmp/cached.txt" -l 8 -q 50 | perf
echo "latency, unique names, direct:";         direct python3 "$tmp/lat.py" 198.18.237.2 "a{i}.bench.test" 5000
echo "latency, unique names, egressd:";        inside python3 "$tmp/lat.py" 198.18.237.99 "b{i}.bench.test" 5000
