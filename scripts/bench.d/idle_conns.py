#!/usr/bin/env python3
"""Idle keep-alive connections, for scripts/bench's memory-per-connection figure.

Usage: idle_conns.py HOST PORT REQUEST_TARGET COUNT
  REQUEST_TARGET is "/" for a direct or transparent target, or an absolute URL
  ("http://127.0.0.1:18080/") for an explicit proxy.

Talks to scripts/bench through the fifos in $BENCH_CTL (see client.sh):
  1. warm-up: WARMUP requests on fresh connections, closed again, so the proxy's
     one-time allocations (thread pools, caches, arenas) are in the baseline;
  2. "started", wait for "go" (scripts/bench reads the proxy's RSS: the baseline);
  3. COUNT connections, one request each (so the proxy also holds its upstream side),
     each kept open and idle; "done 0", wait for "release" (scripts/bench reads RSS again);
  4. checks that the connections are still open, prints one BENCH_IDLE JSON line.
A connection the proxy closed after its response is reported, not hidden: its memory is
not in the delta, so the figure would flatter the proxy.
"""

import http.client
import json
import os
import resource
import socket
import sys

WARMUP = 100


def say(message):
    with open(os.path.join(os.environ["BENCH_CTL"], "to_bench"), "w") as f:
        f.write(message + "\n")


def hear():
    with open(os.path.join(os.environ["BENCH_CTL"], "to_client")) as f:
        f.readline()


def one_request(host, port, target):
    """An open connection after one complete response, and the response status."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request("GET", target)
    response = conn.getresponse()
    response.read()
    return conn, response.status


def still_open(conn):
    if conn.sock is None:
        return False
    conn.sock.setblocking(False)
    try:
        return conn.sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        conn.sock.setblocking(True)


def main():
    host, port, target, count = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, count + 1024), hard))

    result = {"count": count, "statuses": {}, "errors": []}
    for _ in range(WARMUP):
        try:
            conn, _status = one_request(host, port, target)
            conn.close()
        except OSError as e:
            result["errors"].append(f"warm-up: {e}")
            break

    say("started")
    hear()
    conns = []
    for _ in range(count):
        try:
            conn, status = one_request(host, port, target)
        except (OSError, http.client.HTTPException) as e:
            result["errors"].append(f"connection {len(conns)}: {e!r}")
            break
        result["statuses"][str(status)] = result["statuses"].get(str(status), 0) + 1
        conns.append(conn)
    result["open_at_sample"] = sum(1 for c in conns if still_open(c))
    say("done 0")
    hear()
    result["open_after_sample"] = sum(1 for c in conns if still_open(c))
    for conn in conns:
        conn.close()
    print("BENCH_IDLE " + json.dumps(result))


if __name__ == "__main__":
    main()
