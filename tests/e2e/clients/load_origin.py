#!/usr/bin/env python3
"""An asyncio HTTP/1.1 origin for the load and fault tests (stdlib only, one thread, so
10,000 concurrent keep-alive connections cost kilobytes each, not a thread each).

Runs inside the test internet. Every request is checked for the marker header (--marker
NAME=VALUE): egressd's policy handler adds it with a secret value the sandbox never sends,
so a request without it did not come through egressd. Every connection's peer address is
counted: egressd's upstream connections come from the host side of the test veth, a
sandbox in its own netns connecting directly would come from its own address.

Routes (keep-alive unless the request says Connection: close):
  GET /whoami?...        JSON {path, peer, marked}
  GET /download?bytes=N  N bytes of 'd' with Content-Length
  GET /reset?bytes=N     Content-Length 2N, N bytes of 'r', then a RST (SO_LINGER 0)
  anything else          404

Every --stats-interval the stats are written atomically to --stats as JSON: connections
(accepted so far), open, requests, marked, unmarked, by_peer ({ip: connections}),
unmarked_samples (the first few "PEER PATH" of unmarked requests), fault_paths ({target:
count} of every request whose target contains "fault="). --ready is written
once every socket listens. Exits on SIGTERM/SIGINT or after --max-seconds.
"""

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import struct
import sys
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from e2e_lib import parse_endpoint  # noqa: E402


class Stats:
    def __init__(self):
        self.connections = 0
        self.open = 0
        self.requests = 0
        self.marked = 0
        self.unmarked = 0
        self.by_peer = {}
        self.unmarked_samples = []
        self.fault_paths = {}

    def as_json(self):
        return {"connections": self.connections, "open": self.open, "requests": self.requests,
                "marked": self.marked, "unmarked": self.unmarked, "by_peer": self.by_peer,
                "unmarked_samples": self.unmarked_samples, "fault_paths": self.fault_paths}


def write_atomically(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


async def handle(reader, writer, args, stats):
    peer = writer.get_extra_info("peername")
    peer_ip = peer[0] if peer else "?"
    stats.connections += 1
    stats.open += 1
    stats.by_peer[peer_ip] = stats.by_peer.get(peer_ip, 0) + 1
    marker_name, _, marker_value = args.marker.partition("=")
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
                return
            lines = head.decode("latin-1").split("\r\n")
            parts = lines[0].split(" ")
            if len(parts) != 3:
                return
            _method, target, _version = parts
            headers = {}
            for line in lines[1:]:
                if ":" in line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            length = int(headers.get("content-length", "0") or "0")
            if length:
                await reader.readexactly(length)
            stats.requests += 1
            if "fault=" in target:
                # Named so a test can tell which of its requests arrived, whenever they did.
                stats.fault_paths[target] = stats.fault_paths.get(target, 0) + 1
            marked = bool(marker_name) and headers.get(marker_name.lower()) == marker_value
            if marked:
                stats.marked += 1
            else:
                stats.unmarked += 1
                if len(stats.unmarked_samples) < 20:
                    stats.unmarked_samples.append(f"{peer_ip} {target}")
            close = headers.get("connection", "").lower() == "close"
            url = urllib.parse.urlsplit(target)
            query = urllib.parse.parse_qs(url.query)
            if url.path == "/whoami":
                body = json.dumps({"path": target, "peer": peer_ip, "marked": marked}).encode()
                ctype = "application/json"
            elif url.path in ("/download", "/reset"):
                n = int(query.get("bytes", ["0"])[0])
                if url.path == "/reset":
                    writer.write((f"HTTP/1.1 200 OK\r\nContent-Length: {2 * n}\r\n"
                                  "Content-Type: application/octet-stream\r\n\r\n").encode())
                    writer.write(b"r" * n)
                    await writer.drain()
                    await asyncio.sleep(0.2)
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                body = b"d" * n
                ctype = "application/octet-stream"
            else:
                body = b"not found\n"
                ctype = "text/plain"
            status = "200 OK" if ctype != "text/plain" else "404 Not Found"
            writer.write((f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\n"
                          f"Content-Length: {len(body)}\r\n"
                          + ("Connection: close\r\n" if close else "") + "\r\n").encode() + body)
            await writer.drain()
            if close:
                return
    except (ConnectionError, OSError):
        return
    finally:
        stats.open -= 1
        writer.close()


async def write_stats(args, stats):
    while True:
        write_atomically(args.stats, json.dumps(stats.as_json()))
        await asyncio.sleep(args.stats_interval)


async def run(args):
    stats = Stats()
    servers = []
    for ep in args.listen:
        family, host, port = parse_endpoint(ep)
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(4096)
        sock.setblocking(False)
        servers.append(await asyncio.start_server(
            lambda r, w: handle(r, w, args, stats), sock=sock, limit=64 * 1024))
    write_atomically(args.ready, "\n".join(args.listen) + "\n")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    writer_task = asyncio.create_task(write_stats(args, stats))
    try:
        await asyncio.wait_for(stop.wait(), timeout=args.max_seconds)
    except asyncio.TimeoutError:
        pass
    writer_task.cancel()
    write_atomically(args.stats, json.dumps(stats.as_json()))
    for s in servers:
        s.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--listen", action="append", required=True)
    ap.add_argument("--ready", required=True)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--stats-interval", type=float, default=0.2)
    ap.add_argument("--marker", default="")
    ap.add_argument("--max-seconds", type=float, default=900)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
