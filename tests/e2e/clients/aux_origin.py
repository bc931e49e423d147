#!/usr/bin/env python3
"""A small HTTP/1.1 service for the control-plane e2e tests (stdlib only).

Serves on TCP endpoints (--listen "ADDR:PORT" / "[V6]:PORT", run inside the test internet)
and/or a unix socket (--unix PATH, the upstream of a `reroute: unix:/PATH` handler).

  GET /redirect?to=URL   302 with Location: URL
  anything else          200 JSON {service, server, method, path, host, headers}; `service` is
                         --name, `server` the local address ("unix:PATH" on the unix socket),
                         `headers` every request header (lowercase name; repeated headers
                         joined with ", ", so a duplicate shows)

Every request is logged, before it is answered, as one JSON line to --log with the same keys
(the headers included: the tests read what reached the service from there). Once every socket
listens, --ready is written atomically. Exits on SIGTERM/SIGINT, after --max-seconds at latest.
"""

import argparse
import http.server
import json
import os
import signal
import socket
import socketserver
import sys
import threading
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from e2e_lib import fmt, parse_endpoint  # noqa: E402


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "egressd-test-aux"
    sys_version = ""

    def log_message(self, *_args):
        pass

    def address_string(self):
        return "-"

    def local(self):
        if self.server.unix_path:
            return "unix:" + self.server.unix_path
        return fmt(self.connection.getsockname())

    def describe(self):
        headers = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = headers[key] + ", " + value if key in headers else value
        return {
            "service": self.server.name,
            "server": self.local(),
            "method": self.command,
            "path": self.path,
            "host": self.headers.get("Host", ""),
            "headers": headers,
            # The same values hex-encoded: egressd redacts an injected secret echoed back to
            # the sandbox, and this lets a test see what the service really received.
            "headers_hex": {k: v.encode("utf-8", "surrogateescape").hex()
                            for k, v in headers.items()},
        }

    def handle_any(self):
        info = self.describe()
        self.server.log(info)
        length = int(self.headers.get("Content-Length", "0") or "0")
        if length:
            self.rfile.read(length)
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/redirect":
            target = urllib.parse.parse_qs(url.query).get("to", ["/"])[0]
            body = b"redirecting\n"
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        body = (json.dumps(info, sort_keys=True) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = handle_any


class Log:
    def __init__(self, path):
        self.lock = threading.Lock()
        self.file = open(path, "a", buffering=1) if path else None

    def __call__(self, obj):
        if self.file:
            with self.lock:
                self.file.write(json.dumps(obj, sort_keys=True) + "\n")
                self.file.flush()


class TcpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, family, addr, name, log):
        self.address_family = family
        self.name = name
        self.log = log
        self.unix_path = None
        super().__init__(addr, Handler)

    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        socket.socket.bind(self.socket, self.server_address)
        self.server_address = self.socket.getsockname()


class UnixServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path, name, log):
        self.name = name
        self.log = log
        self.unix_path = path
        if os.path.exists(path):
            os.unlink(path)
        super().__init__(path, Handler)

    def get_request(self):
        conn, _ = self.socket.accept()
        return conn, ("unix", 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", action="append", default=[])
    ap.add_argument("--unix")
    ap.add_argument("--name", default="aux")
    ap.add_argument("--ready", required=True)
    ap.add_argument("--log")
    ap.add_argument("--max-seconds", type=float, default=900.0)
    args = ap.parse_args()

    log = Log(args.log)
    servers = []
    for endpoint in args.listen:
        family, host, port = parse_endpoint(endpoint)
        servers.append(TcpServer(family, (host, port), args.name, log))
    if args.unix:
        servers.append(UnixServer(args.unix, args.name, log))
    for s in servers:
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2},
                         daemon=True).start()

    tmp = args.ready + ".tmp"
    with open(tmp, "w") as f:
        for s in servers:
            f.write(("unix " + s.unix_path if s.unix_path else "http " + fmt(s.server_address))
                    + "\n")
    os.rename(tmp, args.ready)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait(args.max_seconds)
    if args.unix:
        try:
            os.unlink(args.unix)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
