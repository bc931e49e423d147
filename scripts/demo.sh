#!/usr/bin/env bash
# The main job, end to end: builds egressd, checks this host with `egressd verify` (host
# checks, then an attack battery from inside a throw-away sandbox), makes a small private "internet" (a network
# namespace with a database, a web server and a DNS server on 198.18.200.0/24), and runs
# a program under `egressd run --policy policy/examples/demo.yaml` that tries to reach
# allowed and forbidden places, over TCP, HTTP and HTTPS (passed through by SNI, or
# intercepted with the sandbox's own CA). Then `egressd daemon` serves a sandbox that
# egressctl creates and changes at runtime: credential injection by a handler, a virtual
# host, allow-host, and the staged lock-down. Everything it creates is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "scripts/demo.sh: run as root" >&2; exit 1; }

scripts/install-deps.sh
# The same configuration as scripts/test.sh's build/ (so running both builds once).
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DCMAKE_C_FLAGS_RELEASE="-O3 -DNDEBUG -g1" \
  -DCMAKE_CXX_FLAGS_RELEASE="-O3 -DNDEBUG -g1" -DEGRESSD_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
egressd=build/userspace/daemon/egressd
egressctl=build/userspace/cli/egressctl

echo "== egressd verify: is this host protected? (host checks, then bypass attempts from"
echo "   inside a throw-away sandbox, as root and as nobody; docs/verify.md)"
"$egressd" verify

. scripts/testenv/netns.sh
pids=()
tmp=$(mktemp -d)
cleanup() {
  # Part two's sandbox, when the demo stopped before deleting it.
  if [ -n "${sock:-}" ] && [ -S "$sock" ]; then
    "$egressctl" --socket "$sock" sandbox delete demo1 >/dev/null 2>&1 || true
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ -n "${democg:-}" ] && [ -d "$democg" ]; then
    "$egressd" detach --sandbox demo1 --pin-root "/sys/fs/bpf/egressd-demo-$$" >/dev/null 2>&1 || true
    if [ -d "$democg/demo1" ]; then
      echo 1 >"$democg/demo1/cgroup.kill" 2>/dev/null || true
      sleep 0.2
      rmdir "$democg/demo1" 2>/dev/null || true
    fi
    rmdir "$democg" 2>/dev/null || true
  fi
  testenv_down
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

testenv_up "egressd-demo-$$" 200
# The demo internet's own CA and a certificate for its HTTPS server (*.demo.test).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=demo internet CA" -keyout "$tmp/origin-ca.key" -out "$tmp/origin-ca.crt" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=*.demo.test" \
  -keyout "$tmp/origin.key" -out "$tmp/origin.csr" 2>/dev/null
printf 'subjectAltName=DNS:*.demo.test\n' >"$tmp/origin.ext"
openssl x509 -req -in "$tmp/origin.csr" -CA "$tmp/origin-ca.crt" -CAkey "$tmp/origin-ca.key" \
  -CAcreateserial -days 1 -extfile "$tmp/origin.ext" -out "$tmp/origin.crt" 2>/dev/null
cat >"$tmp/servers.py" <<'PY'
import http.server, socketserver, ssl, sys, threading
class Greeter(socketserver.BaseRequestHandler):
    def handle(self):
        host, port = self.server.server_address
        self.request.sendall(f"hello from {host}:{port}\n".encode())
class Web(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        host, port = self.server.server_address
        auth = self.headers.get("Authorization")
        if auth:  # the origin's own log, outside the sandbox: what egressd injected
            with open(sys.argv[3], "a") as log:
                log.write(f"Authorization: {auth}\n")
        body = (f"web server {host}:{port} answered Host: {self.headers.get('Host')}" +
                (f", Authorization: {auth}" if auth else "") + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
socketserver.TCPServer.allow_reuse_address = True
for host, port in [("198.18.200.3", 5432), ("198.18.200.3", 7000), ("198.18.200.4", 5432)]:
    srv = socketserver.ThreadingTCPServer((host, port), Greeter)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
for host in ["198.18.200.3", "198.18.200.4"]:
    srv = http.server.ThreadingHTTPServer((host, 80), Web)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
tls.load_cert_chain(sys.argv[1], sys.argv[2])
srv = http.server.ThreadingHTTPServer(("198.18.200.3", 443), Web)
srv.socket = tls.wrap_socket(srv.socket, server_side=True)
threading.Thread(target=srv.serve_forever, daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
PY
testenv_exec python3 "$tmp/servers.py" "$tmp/origin.crt" "$tmp/origin.key" "$tmp/origin-auth.log" >"$tmp/servers.log" 2>&1 &
pids+=($!)
testenv_exec dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts --bind-interfaces \
  --listen-address=198.18.200.2 --port=53 --address=/api.demo.test/198.18.200.3 \
  --address=/other.demo.test/198.18.200.4 --address=/docs.demo.test/198.18.200.3 \
  --address=/tracker.ads.demo.test/198.18.200.3 \
  --address=/my.kv/198.18.200.9 \
  --pid-file= >"$tmp/dnsmasq.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q ready "$tmp/servers.log" 2>/dev/null && break; sleep 0.1; done

echo
echo "== egressd run --policy policy/examples/demo.yaml --upstream-ca-file ORIGIN-CA --audit-log AUDIT -- python3 scripts/demo/client.py"
cat policy/examples/demo.yaml | sed 's/^/   | /'
echo
# --upstream-ca-file: egressd verifies the demo internet's certificates when it intercepts.
# DEMO_ORIGIN_CA: the client verifies them itself on passed-through connections.
# The command runs as nobody (egressd run's default without sudo), from an environment
# allowlist: it gets the client and the CA in a directory it can read, and DEMO_ORIGIN_CA
# through --env.
chmod 0711 "$tmp"
cp scripts/demo/client.py "$tmp/client.py"
chmod 0644 "$tmp/client.py" "$tmp/origin-ca.crt"
DEMO_ORIGIN_CA="$tmp/origin-ca.crt" "$egressd" run --policy policy/examples/demo.yaml \
  --upstream-ca-file "$tmp/origin-ca.crt" --audit-log "$tmp/audit.log" --env DEMO_ORIGIN_CA \
  -- python3 "$tmp/client.py"
echo
echo "The audit log (one JSON line per decision; kernel, DNS and proxy):"
sed 's/^/  /' "$tmp/audit.log"
echo
echo "Outside the sandbox nothing changes: same port 7000 from the host:"
python3 -c 'import socket; s=socket.create_connection(("198.18.200.3",7000),3); print("  ALLOWED ", s.recv(64).decode().strip())'
echo
echo "The sandbox's cgroup, links and rules are gone again:"
"$egressctl" status

# --- Part two: the control plane. One `egressd daemon` serves sandboxes that egressctl
# creates and changes at runtime; credentials are injected by a handler.
echo
echo "== egressd daemon + egressctl: runtime changes, credential injection, staged lock-down"
mkdir -p "$tmp/policies" "$tmp/state"
cp policy/examples/demo-api.yaml "$tmp/policies/"
cgroot=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
democg="$cgroot/egressd-demo-$$"
mkdir "$democg"
sock="$tmp/egressd.sock"
ctl() { echo "   \$ egressctl $*" >&2; "$egressctl" --socket "$sock" "$@"; }
# The daemon's environment holds the secret's source (policy: DEMO_TOKEN from env); the
# sandbox's processes never get it.
EGRESSD_DEMO_TOKEN=demo-token-c0ffee "$egressd" daemon --socket "$sock" --state-dir "$tmp/state" \
  --policy-dir "$tmp/policies" --run-dir "$tmp/run" --pin-root /sys/fs/bpf/egressd-demo-$$ \
  --cgroup-parent "$democg" --audit-log "$tmp/audit2.log" >"$tmp/daemon.out" 2>"$tmp/daemon.err" &
pids+=($!)
for _ in $(seq 100); do grep -q "egressd ready" "$tmp/daemon.out" && break; sleep 0.1; done
grep -q "egressd ready" "$tmp/daemon.out" || { cat "$tmp/daemon.err"; exit 1; }
ctl sandbox create demo1 --policy demo-api --create-cgroup
# A command inside the sandbox: moved into its cgroup first, then exec'd.
inside() { sh -c 'echo $$ >"$0/cgroup.procs" && shift && exec "$@"' "$democg/demo1" _ "$@"; }
get() {
  local out
  out=$(inside curl -sS -m 5 -w ' [%{http_code}]' "$1" 2>&1 || true)
  printf '  %-32s -> %s\n' "$1" "$(echo "$out" | tr '\n' ' ')"
}
echo "The sandbox asks (curl inside the sandbox's cgroup):"
get http://api.demo.test/
echo "  (egressd masks a secret the origin echoes back; the origin's own log outside the sandbox"
echo "   shows what it received: $(tail -n 1 "$tmp/origin-auth.log" 2>/dev/null))"
get http://my.kv/
get http://other.demo.test/
echo "  token in the sandbox's environment: $(inside sh -c 'env | grep -c c0ffee || true') matches"
ctl -s demo1 allow-host other.demo.test >/dev/null
echo "After allow-host other.demo.test (no restart, the same sandbox):"
get http://other.demo.test/
ctl -s demo1 set-outbound-handler noHttp >/dev/null
echo "After set-outbound-handler noHttp (setup done: lock down; api.demo.test keeps its own"
echo "per-host handler, which comes before any catch-all):"
get http://api.demo.test/
get http://docs.demo.test/
ctl sandbox show demo1
echo
echo "Its proxy audit lines (handler, decision, reason; the token appears nowhere):"
# The audit log is written by a background thread: give it a moment.
for _ in $(seq 30); do [ "$(grep -c '"layer":"proxy"' "$tmp/audit2.log")" -ge 5 ] && break; sleep 0.1; done
grep '"layer":"proxy"' "$tmp/audit2.log" | sed 's/^/  /'
echo "  (and $(grep -c '"layer":"dns"' "$tmp/audit2.log") DNS lines, one per query: other.demo.test was NXDOMAIN until allow-host)"
grep -q c0ffee "$tmp/audit2.log" "$tmp/daemon.err" && { echo "token leaked into a log"; exit 1; }
ctl sandbox delete demo1
rmdir "$democg"
