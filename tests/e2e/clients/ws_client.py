#!/usr/bin/env python3
"""A minimal RFC 6455 client (stdlib only): handshake, one masked text and one masked binary
frame, their echoes, then a close handshake.

Prints one JSON object: status (of the handshake response), accept_ok (Sec-WebSocket-Accept
matches the key), text (the echoed text), binary_ok (the echoed binary payload is identical),
close_ok (the server answered our close frame), error.
"""

import argparse
import base64
import json
import os
import socket
import struct
import sys

# The shared helpers live one directory up (tests/e2e/e2e_lib.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from e2e_lib import parse_endpoint, read_ws_frame, ws_accept, ws_frame  # noqa: E402


def masked_frame(opcode, payload):
    return ws_frame(opcode, payload, mask=os.urandom(4))


def read_frame(f):
    frame = read_ws_frame(f)
    if frame is None:
        raise ConnectionError("connection ended inside a frame")
    opcode, payload, masked = frame
    if masked:
        raise ConnectionError("the server masked its frame")
    return opcode, payload


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--connect", required=True)
    ap.add_argument("--host", required=True, help="Host header")
    ap.add_argument("--path", default="/ws")
    args = ap.parse_args()

    result = {"status": 0, "accept_ok": False, "text": "", "binary_ok": False,
              "close_ok": False}
    key = base64.b64encode(os.urandom(16)).decode()
    try:
        _, host, port = parse_endpoint(args.connect)
        sock = socket.create_connection((host, port), timeout=10)
        f = sock.makefile("rb")
        sock.sendall((f"GET {args.path} HTTP/1.1\r\nHost: {args.host}\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        status_line = f.readline().decode("latin-1")
        result["status"] = int(status_line.split()[1]) if len(status_line.split()) > 1 else 0
        headers = {}
        while True:
            line = f.readline().decode("latin-1")
            if line in ("\r\n", "\n", ""):
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        result["accept_ok"] = headers.get("sec-websocket-accept") == ws_accept(key)
        if result["status"] != 101:
            raise ConnectionError("no 101: " + status_line.strip())

        text = "hello through egressd \u00e9"
        sock.sendall(masked_frame(0x1, text.encode()))
        opcode, payload = read_frame(f)
        if opcode == 0x1:
            result["text"] = payload.decode()
        binary = bytes(range(256)) * 2  # 512 bytes: the 16-bit extended length form
        sock.sendall(masked_frame(0x2, binary))
        opcode, payload = read_frame(f)
        result["binary_ok"] = opcode == 0x2 and payload == binary
        sock.sendall(masked_frame(0x8, struct.pack("!H", 1000)))
        opcode, payload = read_frame(f)
        result["close_ok"] = opcode == 0x8 and payload[:2] == struct.pack("!H", 1000)
    except (OSError, ValueError) as e:
        result["error"] = f"{type(e).__name__}: {e}"
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
