#!/usr/bin/env python3
"""Load clients for the load and fault tests (asyncio, stdlib only). Talks to
tests/e2e/clients/load_origin.py through egressd; every outcome is counted, none is assumed.

mix: --conns N connections opened at once, then every one of them is open at the same time
  (a barrier after the connects) and does its part, by i % 10:
    0-5 keep-alive: GET /whoami, wait until every keep-alive connection has its first
        answer (all open at once), GET /whoami again with Connection: close;
    6-7 slow reader: GET /download?bytes=--slow-bytes, read nothing for --slow-wait
        seconds, then read it all;
    8-9 slowloris: half a request head, then nothing; the proxy must end it.
  Each connection ends in one outcome of its class: "served" (every answer a 200 with the
  path it asked for and the marker seen by the origin), "status_NNN" (egressd answered
  NNN: refused with a clear status), "closed_without_status", "reset", "timeout",
  "connect_ENAME", "unmarked" (a 200 the origin saw without egressd's marker: a direct
  hit), "mismatch", and "idle_closed": closed without a status after the connection had sent
  nothing for longer than --header-timeout (the proxy's --header-timeout-ms): egressd ends a
  connection that never spoke without an answer, by design. On a busy machine opening every
  connection before the barrier can take longer than that timeout.
  Prints {"outcomes": {class: {outcome: n}}, "seconds", "max_silence", "errors"}.

loop: --conns workers, each connecting and sending GETs on a kept-alive connection until
  the file --stop exists; every 10th request asks for --denied-host (egressd's 403). A
  failed connect or a cut connection is counted and retried after 50 ms. Outcomes are
  counted under the current phase, the content of the file --phase ("" when absent):
  "ok" (200, the right path, marked, from --expect-peer when given), "denied_403",
  "refused" (ECONNREFUSED), "cut" (EOF/RST before a whole answer), "timeout",
  "unmarked"/"peer_PEER" (a direct hit), "other". Stats are written atomically to
  --stats every 100 ms and at the end: {"phases": {phase: {outcome: n}}, "errors"}.
"""

import argparse
import asyncio
import errno
import json
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from e2e_lib import parse_endpoint, parse_response_head  # noqa: E402


class Cut(Exception):
    pass


async def read_response(reader, timeout):
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except asyncio.IncompleteReadError as e:
        raise Cut("closed_without_status" if not e.partial else "cut_in_head") from e
    status, length = parse_response_head(head)
    try:
        body = await asyncio.wait_for(reader.readexactly(length), timeout) if length else b""
    except asyncio.IncompleteReadError as e:
        raise Cut("cut_in_body") from e
    return status, body


def count(table, key, n=1):
    table[key] = table.get(key, 0) + n


def os_error_name(e):
    return errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__


# --- mix -----------------------------------------------------------------------------------

async def mix_connection(i, args, st):
    kind = ("keepalive" if i % 10 < 6 else "slow_reader" if i % 10 < 8 else "slowloris")
    silence = 0.0
    outcome = None
    writer = None
    answered_first = False
    _, host, port = parse_endpoint(args.connect)
    try:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=1 << 20), args.connect_timeout)
        except OSError as e:
            outcome = "connect_" + os_error_name(e)
            return
        except asyncio.TimeoutError:
            outcome = "connect_timeout"
            return
        finally:
            connected_at = time.monotonic()
            st["connect_done"] += 1
            if st["connect_done"] == args.conns:
                st["all_connected"].set()
        await st["all_connected"].wait()
        silence = time.monotonic() - connected_at
        st["max_silence"] = max(st["max_silence"], silence)
        if kind == "keepalive":
            statuses = []
            for r in range(2):
                path = f"/whoami?c={i}&r={r}"
                last = r == 1
                writer.write((f"GET {path} HTTP/1.1\r\nHost: {args.host}\r\n"
                              + ("Connection: close\r\n" if last else "") + "\r\n").encode())
                await writer.drain()
                status, body = await read_response(reader, args.timeout)
                statuses.append(status)
                if status != 200:
                    outcome = f"status_{status}"
                    break
                who = json.loads(body)
                if who.get("path") != path:
                    outcome = "mismatch"
                    break
                if not who.get("marked"):
                    outcome = "unmarked"
                    break
                if r == 0:
                    answered_first = True
                    st["first_answers"] += 1
                    if st["first_answers"] == st["keepalive_connected"]:
                        st["all_answered"].set()
                    await asyncio.wait_for(st["all_answered"].wait(), args.timeout)
            outcome = outcome or "served"
        elif kind == "slow_reader":
            writer.write((f"GET /download?bytes={args.slow_bytes}&c={i} HTTP/1.1\r\n"
                          f"Host: {args.host}\r\nConnection: close\r\n\r\n").encode())
            await writer.drain()
            await asyncio.sleep(args.slow_wait)
            status, body = await read_response(reader, args.timeout)
            if status != 200:
                outcome = f"status_{status}"
            elif len(body) != args.slow_bytes:
                outcome = "mismatch"
            else:
                outcome = "served"
        else:
            writer.write((f"GET /whoami?c={i}&slowloris=1 HTTP/1.1\r\n"
                          f"Host: {args.host}\r\nX-Never-Ends: ").encode())
            await writer.drain()
            status, _ = await read_response(reader, args.timeout)
            outcome = f"status_{status}"
    except Cut as e:
        outcome = str(e)
        if (outcome == "closed_without_status" and args.header_timeout is not None
                and silence > args.header_timeout and not answered_first):
            outcome = "idle_closed"
    except asyncio.TimeoutError:
        outcome = "timeout"
    except ConnectionResetError:
        outcome = "reset"
    except (OSError, ValueError) as e:
        outcome = "error_" + (os_error_name(e) if isinstance(e, OSError) else "value")
        if len(st["errors"]) < 10:
            st["errors"].append(f"conn {i}: {type(e).__name__}: {e}")
    finally:
        if kind == "keepalive" and not answered_first:
            # Never part of the second barrier: stop waiting for it.
            st["keepalive_connected"] -= 1
            if st["first_answers"] >= st["keepalive_connected"]:
                st["all_answered"].set()
        count(st["outcomes"].setdefault(kind, {}), outcome or "unknown")
        if writer is not None:
            writer.close()


async def run_mix(args):
    keepalive = sum(1 for i in range(args.conns) if i % 10 < 6)
    st = {"outcomes": {}, "errors": [], "connect_done": 0, "first_answers": 0,
          "keepalive_connected": keepalive, "all_connected": asyncio.Event(), "max_silence": 0.0,
          "all_answered": asyncio.Event()}
    start = time.monotonic()
    tasks = [asyncio.create_task(mix_connection(i, args, st)) for i in range(args.conns)]
    # Connection failures lower the number of first answers to wait for; re-check once all
    # connects are done so the second barrier cannot wait for a connection that failed.
    await st["all_connected"].wait()
    if st["first_answers"] >= st["keepalive_connected"]:
        st["all_answered"].set()
    done, pending = await asyncio.wait(tasks, timeout=args.timeout * 3)
    for t in pending:
        t.cancel()
    if pending:
        st["errors"].append(f"{len(pending)} connections still pending at the end")
    return {"outcomes": st["outcomes"], "errors": st["errors"],
            "max_silence": round(st["max_silence"], 3),
            "seconds": round(time.monotonic() - start, 3)}


# --- loop ----------------------------------------------------------------------------------

def current_phase(args):
    try:
        with open(args.phase) as f:
            return f.read().strip()
    except OSError:
        return ""


async def loop_worker(i, args, st):
    _, host, port = parse_endpoint(args.connect)
    r = 0
    while not st["stop"].is_set():
        writer = None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2.0)
            while not st["stop"].is_set():
                denied = args.denied_host and r % 10 == 9
                path = f"/whoami?w={i}&r={r}"
                r += 1
                writer.write((f"GET {path} HTTP/1.1\r\nHost: "
                              f"{args.denied_host if denied else args.host}\r\n\r\n").encode())
                await writer.drain()
                status, body = await read_response(reader, 5.0)
                phases = st["phases"].setdefault(current_phase(args), {})
                if denied:
                    count(phases, "denied_403" if status == 403 else f"denied_got_{status}")
                    if status == 200:
                        count(phases, "unmarked")  # a denied host answered by the origin
                    continue
                if status != 200:
                    count(phases, f"status_{status}")
                    continue
                who = json.loads(body)
                if not who.get("marked"):
                    count(phases, "unmarked")
                elif args.expect_peer and who.get("peer") not in args.expect_peer.split(","):
                    count(phases, "peer_" + str(who.get("peer")))
                elif who.get("path") != path:
                    count(phases, "mismatch")
                else:
                    count(phases, "ok")
        except ConnectionRefusedError:
            count(st["phases"].setdefault(current_phase(args), {}), "refused")
        except (Cut, ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError):
            count(st["phases"].setdefault(current_phase(args), {}), "cut")
        except asyncio.TimeoutError:
            count(st["phases"].setdefault(current_phase(args), {}), "timeout")
        except (OSError, ValueError) as e:
            count(st["phases"].setdefault(current_phase(args), {}), "other")
            if len(st["errors"]) < 10:
                st["errors"].append(f"worker {i}: {type(e).__name__}: {e}")
        finally:
            if writer is not None:
                writer.close()
        await asyncio.sleep(0.05)


def write_atomically(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


async def run_loop(args):
    st = {"phases": {}, "errors": [], "stop": asyncio.Event()}
    workers = [asyncio.create_task(loop_worker(i, args, st)) for i in range(args.conns)]
    deadline = time.monotonic() + args.max_seconds
    while not os.path.exists(args.stop) and time.monotonic() < deadline:
        write_atomically(args.stats, json.dumps({"phases": st["phases"], "errors": st["errors"]}))
        await asyncio.sleep(0.1)
    st["stop"].set()
    await asyncio.wait(workers, timeout=10)
    out = {"phases": st["phases"], "errors": st["errors"]}
    write_atomically(args.stats, json.dumps(out))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("mode", choices=["mix", "loop"])
    ap.add_argument("--connect", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--conns", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--connect-timeout", type=float, default=30.0)
    ap.add_argument("--slow-bytes", type=int, default=256 * 1024)
    ap.add_argument("--slow-wait", type=float, default=3.0)
    ap.add_argument("--header-timeout", type=float, default=None,
                    help="the proxy's --header-timeout-ms, in seconds (for idle_closed)")
    ap.add_argument("--denied-host", default="")
    ap.add_argument("--expect-peer", default="", help="comma-separated peer addresses")
    ap.add_argument("--phase", default="/nonexistent")
    ap.add_argument("--stop", default="/nonexistent")
    ap.add_argument("--stats", default="/dev/null")
    ap.add_argument("--max-seconds", type=float, default=120.0)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = args.conns + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(want, soft), hard), hard))
    if args.mode == "mix":
        print(json.dumps(asyncio.run(run_mix(args))), flush=True)
    else:
        print(json.dumps(asyncio.run(run_loop(args))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
