#!/usr/bin/env python3
"""Large HTTP bodies through egressd, generated and checked on the fly (stdlib only; nothing
is held whole, nothing touches the disk).

  stream.py upload   --connect ADDR:PORT --host H --bytes N [--chunked]
      POST /upload with N bytes of the pattern (chunked, or with Content-Length); prints
      {status, sent_bytes, sent_sha256, response: the origin's JSON {bytes, sha256}, seconds}
  stream.py download --connect ADDR:PORT --host H --bytes N
      GET /download?bytes=N; prints {status, bytes, sha256, expected_sha256, seconds}
  stream.py sha-zeros --bytes N
      prints {sha256} of N zero bytes (what a sparse file of that size reads as)
The pattern is e2e_lib.pattern_block() repeated, as http_origin.py's /download sends it.
"""

import argparse
import hashlib
import http.client
import json
import os
import sys
import time

# The shared helpers live one directory up (tests/e2e/e2e_lib.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from e2e_lib import BLOCK, parse_endpoint, pattern_block  # noqa: E402


def pattern_pieces(total, digest):
    block = memoryview(pattern_block())
    left = total
    while left:
        piece = block[:min(left, BLOCK)]
        digest.update(piece)
        left -= len(piece)
        yield piece


def connection(endpoint):
    _, host, port = parse_endpoint(endpoint)
    return http.client.HTTPConnection(host, port, timeout=60)


def upload(args):
    conn = connection(args.connect)
    digest = hashlib.sha256()
    headers = {"Host": args.host, "Content-Type": "application/octet-stream"}
    if not args.chunked:
        headers["Content-Length"] = str(args.bytes)
    start = time.monotonic()
    # An iterable body without Content-Length goes out chunked (encode_chunked).
    conn.request("POST", "/upload", body=pattern_pieces(args.bytes, digest), headers=headers,
                 encode_chunked=args.chunked)
    resp = conn.getresponse()
    body = resp.read()
    out = {"status": resp.status, "sent_bytes": args.bytes, "sent_sha256": digest.hexdigest(),
           "seconds": round(time.monotonic() - start, 3)}
    try:
        out["response"] = json.loads(body)
    except ValueError:
        out["response_text"] = body.decode("latin-1")[:2000]
    return out


def download(args):
    conn = connection(args.connect)
    start = time.monotonic()
    conn.request("GET", f"/download?bytes={args.bytes}", headers={"Host": args.host})
    resp = conn.getresponse()
    digest = hashlib.sha256()
    total = 0
    while True:
        piece = resp.read(BLOCK)
        if not piece:
            break
        digest.update(piece)
        total += len(piece)
    expected = hashlib.sha256()
    for _ in pattern_pieces(args.bytes, expected):
        pass
    return {"status": resp.status, "bytes": total, "sha256": digest.hexdigest(),
            "expected_sha256": expected.hexdigest(),
            "seconds": round(time.monotonic() - start, 3)}


def sha_zeros(args):
    digest = hashlib.sha256()
    zeros = bytes(BLOCK)
    left = args.bytes
    while left:
        n = min(left, BLOCK)
        digest.update(zeros[:n])
        left -= n
    return {"sha256": digest.hexdigest()}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["upload", "download", "sha-zeros"])
    ap.add_argument("--connect")
    ap.add_argument("--host")
    ap.add_argument("--bytes", type=int, required=True)
    ap.add_argument("--chunked", action="store_true")
    args = ap.parse_args()
    try:
        out = {"upload": upload, "download": download, "sha-zeros": sha_zeros}[args.mode](args)
    except (OSError, http.client.HTTPException) as e:
        out = {"error": f"{type(e).__name__}: {e}"}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
