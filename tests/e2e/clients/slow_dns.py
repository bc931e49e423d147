#!/usr/bin/env python3
"""A slow DNS resolver for fault tests: relays every UDP query to --upstream (the test
internet's dnsmasq) and sends the answer back after --delay seconds. Runs in the test
internet. Each query is handled on its own thread, so a slow answer delays only itself.
Writes --ready once bound; exits on SIGTERM or after --max-seconds.
"""

import argparse
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from e2e_lib import parse_endpoint  # noqa: E402


def relay(sock, query, client, upstream, delay):
    family, host, port = upstream
    time.sleep(delay)
    with socket.socket(family, socket.SOCK_DGRAM) as up:
        up.settimeout(5)
        try:
            up.sendto(query, (host, port))
            answer, _ = up.recvfrom(65535)
        except OSError:
            return
    sock.sendto(answer, client)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--listen", required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--delay", type=float, required=True)
    ap.add_argument("--ready", required=True)
    ap.add_argument("--max-seconds", type=float, default=600)
    args = ap.parse_args()
    family, host, port = parse_endpoint(args.listen)
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, port))
    sock.settimeout(0.5)
    upstream = parse_endpoint(args.upstream)
    with open(args.ready + ".tmp", "w") as f:
        f.write(args.listen + "\n")
    os.replace(args.ready + ".tmp", args.ready)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    deadline = time.monotonic() + args.max_seconds
    while time.monotonic() < deadline:
        try:
            query, client = sock.recvfrom(65535)
        except socket.timeout:
            continue
        threading.Thread(target=relay, args=(sock, query, client, upstream, args.delay),
                         daemon=True).start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
