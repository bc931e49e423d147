#!/usr/bin/env python3
"""Holds TCP connections and connected UDP sockets open across a change made by the test.

Connects every --tcp ENDPOINT (servers.py: a greeting line, then echo) and every --udp
ENDPOINT (connect()ed; servers.py answers "udp LOCAL <payload>"), checks each works once,
prints one JSON line {"ready": {...}} (flushed), then waits until --trigger exists (at most
--wait seconds) and uses every socket again: TCP sends "again\\n" and expects the echo, UDP
first collects an error the kernel queued on the socket (a non-blocking recv), then sends and
expects the answer. The last line is JSON {"ready": {...}, "after": {"tcp": {EP: RESULT},
"udp": {EP: RESULT}}}; RESULT is "ok", "eof", "timeout" or "error:ERRNO_NAME".
"""

import argparse
import errno
import json
import os
import socket
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from e2e_lib import parse_endpoint  # noqa: E402


def err_name(e):
    return "error:" + (errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__)


def tcp_roundtrip(sock, payload):
    try:
        sock.sendall(payload)
        got = b""
        while len(got) < len(payload):
            data = sock.recv(65536)
            if not data:
                return "eof"
            got += data
        return "ok" if got == payload else "mismatch"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return err_name(e)


def udp_roundtrip(sock, payload, drain_error):
    try:
        if drain_error:
            # Non-blocking for this one call (with a timeout set, Python would wait out
            # EAGAIN): an error the kernel queued on the socket comes back here.
            sock.setblocking(False)
            try:
                sock.recv(65536)
            except BlockingIOError:
                pass
            finally:
                sock.settimeout(3)
        sock.send(payload)
        data = sock.recv(65536)
        return "ok" if data.endswith(payload) else "mismatch"
    except socket.timeout:
        return "timeout"
    except OSError as e:
        return err_name(e)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tcp", action="append", default=[])
    ap.add_argument("--udp", action="append", default=[])
    ap.add_argument("--trigger", required=True)
    ap.add_argument("--wait", type=float, default=30.0)
    args = ap.parse_args()

    ready = {"tcp": {}, "udp": {}}
    tcp, udp = {}, {}
    for ep in args.tcp:
        family, host, port = parse_endpoint(ep)
        s = socket.socket(family, socket.SOCK_STREAM)
        s.settimeout(3)
        try:
            s.connect((host, port))
            greeting = b""
            while not greeting.endswith(b"\n"):
                data = s.recv(4096)
                if not data:
                    break
                greeting += data
            ready["tcp"][ep] = tcp_roundtrip(s, b"first\n") if greeting else "eof"
            tcp[ep] = s
        except OSError as e:
            ready["tcp"][ep] = err_name(e)
    for ep in args.udp:
        family, host, port = parse_endpoint(ep)
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.settimeout(3)
        try:
            s.connect((host, port))
            ready["udp"][ep] = udp_roundtrip(s, b"first", False)
            udp[ep] = s
        except OSError as e:
            ready["udp"][ep] = err_name(e)
    print(json.dumps({"ready": ready}), flush=True)

    deadline = time.monotonic() + args.wait
    while not os.path.exists(args.trigger) and time.monotonic() < deadline:
        time.sleep(0.02)
    after = {"tcp": {}, "udp": {}}
    for ep, s in tcp.items():
        after["tcp"][ep] = tcp_roundtrip(s, b"again\n")
    for ep, s in udp.items():
        after["udp"][ep] = udp_roundtrip(s, b"again", True)
    print(json.dumps({"ready": ready, "after": after}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
