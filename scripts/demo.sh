#!/usr/bin/env bash
# The main job, end to end: builds egressd, makes a small private "internet" (a network
# namespace with a database, a web server and a DNS server on 198.18.200.0/24), and runs
# a program under `egressd run --policy policy/examples/demo.yaml` that tries to reach
# allowed and forbidden places, over TCP, HTTP and HTTPS (passed through by SNI, or
# intercepted with the sandbox's own CA). Everything it creates is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "scripts/demo.sh: run as root" >&2; exit 1; }

scripts/install-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DEGRESSD_BUILD_TESTS=OFF >/dev/null
cmake --build build -j"$(nproc)" >/dev/null
egressd=build/userspace/daemon/egressd
egressctl=build/userspace/cli/egressctl

. scripts/testenv/netns.sh
pids=()
tmp=$(mktemp -d)
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
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
        body = f"web server {host}:{port} answered Host: {self.headers.get('Host')}\n".encode()
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
testenv_exec python3 "$tmp/servers.py" "$tmp/origin.crt" "$tmp/origin.key" >"$tmp/servers.log" 2>&1 &
pids+=($!)
testenv_exec dnsmasq --no-daemon --conf-file=/dev/null --no-resolv --no-hosts --bind-interfaces \
  --listen-address=198.18.200.2 --port=53 --address=/api.demo.test/198.18.200.3 \
  --address=/other.demo.test/198.18.200.4 --address=/docs.demo.test/198.18.200.3 \
  --address=/tracker.ads.demo.test/198.18.200.3 \
  --pid-file= >"$tmp/dnsmasq.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do grep -q ready "$tmp/servers.log" 2>/dev/null && break; sleep 0.1; done

echo
echo "== egressd run --policy policy/examples/demo.yaml --upstream-ca-file ORIGIN-CA --audit-log AUDIT -- python3 scripts/demo/client.py"
cat policy/examples/demo.yaml | sed 's/^/   | /'
echo
# --upstream-ca-file: egressd verifies the demo internet's certificates when it intercepts.
# DEMO_ORIGIN_CA: the client verifies them itself on passed-through connections.
DEMO_ORIGIN_CA="$tmp/origin-ca.crt" "$egressd" run --policy policy/examples/demo.yaml \
  --upstream-ca-file "$tmp/origin-ca.crt" --audit-log "$tmp/audit.log" \
  -- python3 scripts/demo/client.py
echo
echo "The audit log (one JSON line per decision; kernel and proxy):"
sed 's/^/  /' "$tmp/audit.log"
echo
echo "Outside the sandbox nothing changes: same port 7000 from the host:"
python3 -c 'import socket; s=socket.create_connection(("198.18.200.3",7000),3); print("  ALLOWED ", s.recv(64).decode().strip())'
echo
echo "The sandbox's cgroup, links and rules are gone again:"
"$egressctl" status
