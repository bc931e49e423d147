#!/usr/bin/env python3
"""Many keep-alive HTTP/1.1 connections doing requests in a loop until told to stop (asyncio).

Opens --conns connections to --connect at once; each sends GET /whoami?t=TAG&c=I&r=J (TAG:
--tag, Host: --host)
one after the other on its own connection and checks every answer is a 200 whose JSON "path"
is the one it asked for. Once every connection is open and has had one answer, one line
{"running": N} is printed (flushed). The loop goes on until the file --stop exists (or
--max-seconds pass); then each connection finishes with one last request carrying
Connection: close.

Prints one last JSON line: connected, ok, statuses ({status: count}), mismatched, errors
(the first few), requests (all answered requests), seconds.
"""

import argparse
import asyncio
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from e2e_lib import parse_endpoint, read_response  # noqa: E402


class State:
    def __init__(self, conns):
        self.stats = {"connected": 0, "ok": 0, "statuses": {}, "mismatched": 0, "errors": [],
                      "requests": 0}
        self.started = 0
        self.conns = conns
        self.all_started = asyncio.Event()
        self.stop = asyncio.Event()

    def one_started(self):
        self.started += 1
        if self.started == self.conns:
            print(json.dumps({"running": self.stats["connected"]}), flush=True)
            self.all_started.set()


async def one_request(reader, writer, host, path, close, state):
    writer.write((f"GET {path} HTTP/1.1\r\nHost: {host}\r\n"
                  + ("Connection: close\r\n" if close else "") + "\r\n").encode())
    await writer.drain()
    status, body = await read_response(reader)
    s = state.stats
    s["requests"] += 1
    s["statuses"][str(status)] = s["statuses"].get(str(status), 0) + 1
    if status == 200:
        if json.loads(body).get("path") == path:
            s["ok"] += 1
        else:
            s["mismatched"] += 1


async def one_connection(i, args, state):
    _, host, port = parse_endpoint(args.connect)
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as e:
        state.stats["errors"].append(f"connect {i}: {e}")
        state.one_started()
        return
    state.stats["connected"] += 1
    r = 0
    first = True
    try:
        while True:
            done = state.stop.is_set()
            path = f"/whoami?t={args.tag}&c={i}&r={r}"
            await one_request(reader, writer, args.host, path, done, state)
            r += 1
            if first:
                first = False
                state.one_started()
            if done:
                break
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
        if len(state.stats["errors"]) < 10:
            state.stats["errors"].append(f"conn {i} request {r}: {type(e).__name__}: {e}")
        if first:
            state.one_started()
    finally:
        writer.close()


async def watch_stop(args, state):
    deadline = time.monotonic() + args.max_seconds
    while not os.path.exists(args.stop) and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    state.stop.set()


async def run(args):
    state = State(args.conns)
    start = time.monotonic()
    watcher = asyncio.create_task(watch_stop(args, state))
    try:
        await asyncio.wait_for(
            asyncio.gather(*[one_connection(i, args, state) for i in range(args.conns)]),
            timeout=args.max_seconds + 30)
    except asyncio.TimeoutError:
        state.stats["errors"].append("timed out")
    watcher.cancel()
    state.stats["seconds"] = round(time.monotonic() - start, 3)
    return state.stats


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--connect", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--conns", type=int, default=200)
    ap.add_argument("--tag", default="loop")
    ap.add_argument("--stop", required=True)
    ap.add_argument("--max-seconds", type=float, default=60.0)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.conns + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    print(json.dumps(asyncio.run(run(args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
