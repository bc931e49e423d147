#!/usr/bin/env python3
"""Sends raw bytes to an HTTP server and reports what came back (stdlib only).

Each --send argument is sent as is (its bytes, CR/LF included), --gap seconds after the
previous one; with --drip the payloads go out one byte at a time, --drip seconds apart.
Whatever the server answers is read concurrently until it closes the connection, or
--read-timeout seconds after the last byte was sent; --shutdown half-closes the connection
(SHUT_WR) once everything is sent.

Prints one JSON object: data (the bytes received, as latin-1 text), end ("eof", "reset" or
"timeout"), seconds (from connect to that end), send_error (when a send failed, e.g. the
server closed while we were still dripping), connect_error.
"""

import argparse
import json
import os
import selectors
import socket
import sys
import time

# The shared helpers live one directory up (tests/e2e/e2e_lib.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from e2e_lib import parse_endpoint  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--connect", required=True, help="ADDR:PORT or [V6]:PORT")
    ap.add_argument("--send", action="append", default=[], help="raw bytes to send")
    ap.add_argument("--gap", type=float, default=0.0, help="seconds between --send payloads")
    ap.add_argument("--drip", type=float, default=0.0, help="send byte by byte, this far apart")
    ap.add_argument("--read-timeout", type=float, default=5.0)
    ap.add_argument("--shutdown", action="store_true",
                    help="half-close (SHUT_WR) once everything is sent")
    args = ap.parse_args()

    family, host, port = parse_endpoint(args.connect)
    result = {"data": "", "end": "", "seconds": 0.0}
    start = time.monotonic()
    try:
        sock = socket.create_connection((host, port), timeout=5)
    except OSError as e:
        result["connect_error"] = f"{type(e).__name__}: {e}"
        print(json.dumps(result))
        return 0
    sock.setblocking(False)

    # (due time, bytes) in sending order.
    schedule = []
    due = time.monotonic()
    for i, text in enumerate(args.send):
        payload = os.fsencode(text)
        if i > 0:
            due += args.gap
        if args.drip > 0:
            for j in range(len(payload)):
                schedule.append((due, payload[j:j + 1]))
                due += args.drip
        else:
            schedule.append((due, payload))

    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    received = bytearray()
    last_send = time.monotonic()
    pending = b""
    shut = False
    while True:
        now = time.monotonic()
        if not pending and schedule and schedule[0][0] <= now:
            pending = schedule.pop(0)[1]
        if pending and "send_error" not in result:
            try:
                n = sock.send(pending)
                pending = pending[n:]
                last_send = time.monotonic()
            except BlockingIOError:
                pass
            except OSError as e:
                result["send_error"] = f"{type(e).__name__}: {e}"
                pending, schedule = b"", []
        if pending or schedule:
            wait = 0.0 if pending else max(0.0, schedule[0][0] - time.monotonic())
        else:
            if args.shutdown and not shut:
                shut = True
                try:
                    sock.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
            wait = last_send + args.read_timeout - time.monotonic()
            if wait <= 0:
                result["end"] = "timeout"
                break
        if sel.select(timeout=min(wait, 0.05) if pending else wait):
            try:
                chunk = sock.recv(65536)
            except BlockingIOError:
                continue
            except ConnectionResetError:
                result["end"] = "reset"
                break
            if not chunk:
                result["end"] = "eof"
                break
            received += chunk
    result["seconds"] = round(time.monotonic() - start, 3)
    result["data"] = received.decode("latin-1")
    sock.close()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
