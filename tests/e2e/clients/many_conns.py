#!/usr/bin/env python3
"""Many concurrent keep-alive HTTP/1.1 connections (asyncio, stdlib only).

Opens --conns connections at once, waits until every one is established (so all are open
at the same time), then sends --requests GET /whoami?c=I&r=J requests on each, one after
the other on the same connection, and checks each answer is a 200 whose JSON "path" is the
path that connection asked for (a proxy that mixes up connections fails that).

Prints one JSON object: connected, ok (requests answered 200 with the right path), statuses
({status: count}), mismatched, errors (the first few), seconds.
"""

import argparse
import asyncio
import json
import os
import resource
import sys
import time

# The shared helpers live one directory up (tests/e2e/e2e_lib.py).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from e2e_lib import parse_endpoint, read_response  # noqa: E402


async def one_connection(i, args, stats, all_connected, connected_count):
    _, host, port = parse_endpoint(args.connect)
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as e:
        stats["errors"].append(f"connect {i}: {e}")
        connected_count[0] += 1  # counted so the barrier still opens
        if connected_count[0] == args.conns:
            all_connected.set()
        return
    stats["connected"] += 1
    connected_count[0] += 1
    if connected_count[0] == args.conns:
        all_connected.set()
    await all_connected.wait()
    try:
        for r in range(args.requests):
            path = f"/whoami?c={i}&r={r}"
            last = r == args.requests - 1
            writer.write((f"GET {path} HTTP/1.1\r\nHost: {args.host}\r\n"
                          + ("Connection: close\r\n" if last else "") + "\r\n").encode())
            await writer.drain()
            status, body = await read_response(reader)
            stats["statuses"][status] = stats["statuses"].get(status, 0) + 1
            if status == 200:
                if json.loads(body).get("path") == path:
                    stats["ok"] += 1
                else:
                    stats["mismatched"] += 1
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
        if len(stats["errors"]) < 10:
            stats["errors"].append(f"conn {i}: {type(e).__name__}: {e}")
    finally:
        writer.close()


async def run(args):
    stats = {"connected": 0, "ok": 0, "statuses": {}, "mismatched": 0, "errors": []}
    all_connected = asyncio.Event()
    connected_count = [0]
    start = time.monotonic()
    tasks = [one_connection(i, args, stats, all_connected, connected_count)
             for i in range(args.conns)]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=args.timeout)
    except asyncio.TimeoutError:
        stats["errors"].append(f"timed out after {args.timeout} s")
    stats["seconds"] = round(time.monotonic() - start, 3)
    return stats


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--connect", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--requests", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=60.0)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.conns + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(want, soft), hard), hard))
    print(json.dumps(asyncio.run(run(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
