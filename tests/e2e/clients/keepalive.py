#!/usr/bin/env python3
"""Two HTTP/1.1 requests on ONE connection, a change made by the test in between (stdlib).

Connects to --connect, sends GET --path with Host: --host, reads the response and prints it
as one JSON line {"first": {...}} (flushed). Then waits until the file --trigger exists
(at most --wait seconds), sends GET --path2 on the same connection (never reconnecting) and
prints a last JSON line {"first": {...}, "second": {...}}. A response is {status, headers
(lowercase name -> value), body}, or {error} when the connection failed (e.g. closed by the
server: "eof", or a reset).
"""

import argparse
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from e2e_lib import parse_endpoint  # noqa: E402


def read_response(sock, buf):
    """(response dict, leftover bytes); Content-Length framing only."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return {"error": "eof", "partial": buf.decode("latin-1")}, b""
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        data = sock.recv(65536)
        if not data:
            return {"error": "eof in body", "status": status}, b""
        rest += data
    body, leftover = rest[:length], rest[length:]
    return {"status": status, "headers": headers, "body": body.decode("utf-8", "replace")}, leftover


def exchange(sock, host, path, buf):
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        return read_response(sock, buf)
    except OSError as e:
        return {"error": f"{type(e).__name__}: {e}"}, b""


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--connect", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--path", required=True)
    ap.add_argument("--path2", required=True)
    ap.add_argument("--trigger", required=True)
    ap.add_argument("--wait", type=float, default=30.0)
    args = ap.parse_args()

    family, host, port = parse_endpoint(args.connect)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.connect((host, port))
    local = sock.getsockname()[1]
    first, buf = exchange(sock, args.host, args.path, b"")
    first["local_port"] = local
    print(json.dumps({"first": first}), flush=True)
    deadline = time.monotonic() + args.wait
    while not os.path.exists(args.trigger) and time.monotonic() < deadline:
        time.sleep(0.02)
    second, _ = exchange(sock, args.host, args.path2, buf)
    second["local_port"] = sock.getsockname()[1] if "error" not in second else local
    print(json.dumps({"first": first, "second": second}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
