#!/usr/bin/env python3
"""Sends raw bytes (given in hex) to a TLS port and reports what came back (stdlib only).

Each --hex payload is sent as is, --gap seconds after the previous one (a send that fails
because the server already closed is reported, not fatal). The answer is read until the
server closes or --read-timeout seconds pass.

Prints one JSON object: data_hex (what the server sent), end ("eof", "reset", "timeout"),
seconds (from the last send to that end), send_error, connect_error, alert ({level, description} of the first TLS alert record in
the answer, if it starts with one).
"""

import argparse
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from e2e_lib import parse_endpoint  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--connect", required=True, help="ADDR:PORT or [V6]:PORT")
    ap.add_argument("--hex", action="append", default=[], help="bytes to send, in hex")
    ap.add_argument("--repeat", type=int, default=1, help="send the payloads this many times")
    ap.add_argument("--gap", type=float, default=0.0)
    ap.add_argument("--read-timeout", type=float, default=5.0)
    args = ap.parse_args()

    family, host, port = parse_endpoint(args.connect)
    result = {"data_hex": "", "end": ""}
    try:
        sock = socket.create_connection((host, port), timeout=5)
    except OSError as e:
        result["connect_error"] = f"{type(e).__name__}: {e}"
        print(json.dumps(result))
        return 0
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    first = True
    for _ in range(args.repeat):
        for text in args.hex:
            if not first:
                time.sleep(args.gap)
            first = False
            try:
                sock.sendall(bytes.fromhex(text))
            except OSError as e:
                result["send_error"] = f"{type(e).__name__}: {e}"
                break
        if "send_error" in result:
            break
    received = b""
    sent_at = time.monotonic()
    sock.settimeout(args.read_timeout)
    while True:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            result["end"] = "timeout"
            break
        except ConnectionResetError:
            result["end"] = "reset"
            break
        if not chunk:
            result["end"] = "eof"
            break
        received += chunk
    result["seconds"] = round(time.monotonic() - sent_at, 3)
    result["data_hex"] = received.hex()
    if len(received) >= 7 and received[0] == 0x15:
        result["alert"] = {"level": received[5], "description": received[6]}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
