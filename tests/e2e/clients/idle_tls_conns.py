#!/usr/bin/env python3
"""Holds N idle TLS connections for the egressd memory tests. Run inside a sandbox.

  --connect ADDR:PORT --sni NAME --cafile FILE --authority HOST[:PORT] --count N
  --protocol h1|h2 --hold SECONDS
h1: ALPN http/1.1, one "GET /whoami" (keep-alive), its response read whole, then idle.
h2: ALPN h2, the preface and SETTINGS, one "POST /echo" stream opened (no END_STREAM), its
response HEADERS read, then idle with the stream open.
Prints {"ready": OK_COUNT, "failed": N, "error": FIRST_ERROR} (flushed) once all are set up,
then holds them for --hold seconds and exits.
"""

import argparse
import json
import socket
import ssl
import struct
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", ftype, flags, stream_id) + payload


def read_until(sock, predicate, timeout=10):
    data = b""
    deadline = time.time() + timeout
    while not predicate(data):
        sock.settimeout(max(0.01, deadline - time.time()))
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("closed")
        data += chunk
        if time.time() > deadline:
            raise TimeoutError("no response")
    return data


def h2_has_headers(data):
    pos = 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos:pos + 3], "big")
        if data[pos + 3] == 1 and int.from_bytes(data[pos + 5:pos + 9], "big") & 0x7FFFFFFF == 1:
            return True
        pos += 9 + length
    return False


def h1_complete(data):
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(body) >= int(line.split(b":", 1)[1])
    return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connect", required=True)
    ap.add_argument("--sni", required=True)
    ap.add_argument("--cafile", required=True)
    ap.add_argument("--authority", required=True)
    ap.add_argument("--count", type=int, default=100)
    ap.add_argument("--protocol", choices=["h1", "h2"], default="h2")
    ap.add_argument("--hold", type=float, default=30)
    args = ap.parse_args()
    host, port = args.connect.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=args.cafile)
    ctx.set_alpn_protocols(["h2"] if args.protocol == "h2" else ["http/1.1"])
    held, failed, error = [], 0, ""
    for _ in range(args.count):
        try:
            raw = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
            sock = ctx.wrap_socket(raw, server_hostname=args.sni)
            if args.protocol == "h2":
                encoder = hpack.Encoder()
                headers = encoder.encode([(":method", "POST"), (":scheme", "https"),
                                          (":authority", args.authority), (":path", "/echo")])
                sock.sendall(PREFACE + frame(4, 0, 0) + frame(1, 0x4, 1, headers))
                read_until(sock, h2_has_headers)
            else:
                sock.sendall(("GET /whoami HTTP/1.1\r\nHost: %s\r\n\r\n" % args.authority).encode())
                read_until(sock, h1_complete)
            held.append(sock)
        except Exception as e:  # noqa: BLE001
            failed += 1
            error = error or "%s: %s" % (type(e).__name__, e)
    print(json.dumps({"ready": len(held), "failed": failed, "error": error}), flush=True)
    time.sleep(args.hold)


if __name__ == "__main__":
    main()
