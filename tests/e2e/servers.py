#!/usr/bin/env python3
"""Test servers for egressd e2e tests (stdlib only), run inside a test network namespace.

TCP: on accept, reply "hello from ADDR:PORT\\n" (ADDR:PORT = the local address the client
reached; IPv6 as [addr]:port), then echo whatever the client sends.
UDP: reply "udp ADDR:PORT <payload>" to every datagram.

Every event is logged as one line to --log (flushed): "tcp-accept LOCAL PEER",
"udp-recv LOCAL PEER <len>". Once every socket is bound, --ready is written atomically with
one line per socket, "tcp LOCAL" / "udp LOCAL" (so port 0 requests report the real port).
Exits on SIGTERM/SIGINT, and after --max-seconds at the latest.
"""

import argparse
import os
import selectors
import signal
import socket
import sys
import time

from e2e_lib import fmt, parse_endpoint


class Servers:
    def __init__(self, log_path):
        self.sel = selectors.DefaultSelector()
        self.log_file = open(log_path, "a", buffering=1) if log_path else None
        self.bound = []
        self.stop = False

    def log(self, line):
        if self.log_file:
            self.log_file.write(line + "\n")
            self.log_file.flush()

    def add_tcp(self, endpoint):
        family, host, port = parse_endpoint(endpoint)
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((host, port))
        s.listen(64)
        s.setblocking(False)
        self.sel.register(s, selectors.EVENT_READ, ("tcp-listen", None))
        self.bound.append("tcp " + fmt(s.getsockname()))

    def add_udp(self, endpoint):
        family, host, port = parse_endpoint(endpoint)
        s = socket.socket(family, socket.SOCK_DGRAM)
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((host, port))
        s.setblocking(False)
        self.sel.register(s, selectors.EVENT_READ, ("udp", None))
        self.bound.append("udp " + fmt(s.getsockname()))

    def handle(self, sock, kind):
        if kind == "tcp-listen":
            try:
                conn, peer = sock.accept()
            except OSError:
                return
            local = fmt(conn.getsockname())
            self.log(f"tcp-accept {local} {fmt(peer)}")
            conn.setblocking(False)
            try:
                conn.send(f"hello from {local}\n".encode())
            except OSError:
                conn.close()
                return
            self.sel.register(conn, selectors.EVENT_READ, ("tcp-conn", None))
        elif kind == "tcp-conn":
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                self.sel.unregister(sock)
                sock.close()
                return
            try:
                sock.send(data)
            except OSError:
                pass
        elif kind == "udp":
            try:
                data, peer = sock.recvfrom(65536)
            except OSError:
                return
            local = fmt(sock.getsockname())
            self.log(f"udp-recv {local} {fmt(peer)} {len(data)}")
            try:
                sock.sendto(b"udp " + local.encode() + b" " + data, peer)
            except OSError:
                pass

    def serve(self, deadline):
        while not self.stop and time.monotonic() < deadline:
            for key, _ in self.sel.select(timeout=0.5):
                self.handle(key.fileobj, key.data[0])


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tcp", action="append", default=[], help="ADDR:PORT to serve TCP on")
    ap.add_argument("--udp", action="append", default=[], help="ADDR:PORT to serve UDP on")
    ap.add_argument("--ready", required=True, help="file written once all sockets are bound")
    ap.add_argument("--log", help="event log file")
    ap.add_argument("--max-seconds", type=float, default=900.0)
    args = ap.parse_args()

    servers = Servers(args.log)

    def on_signal(_signo, _frame):
        servers.stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for ep in args.tcp:
        servers.add_tcp(ep)
    for ep in args.udp:
        servers.add_udp(ep)
    tmp = args.ready + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(servers.bound) + "\n")
    os.rename(tmp, args.ready)
    servers.serve(time.monotonic() + args.max_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
