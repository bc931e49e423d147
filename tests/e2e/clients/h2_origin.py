#!/usr/bin/env python3
"""An HTTP/2-only TLS origin for the egressd HTTP/2 e2e tests (python3-h2 + asyncio).

ALPN offers only "h2", so a proxy in front of it must speak HTTP/2 upstream. Every request
is logged as "req SERVER METHOD PATH AUTHORITY" when its headers arrive, every client reset
as "reset SERVER PATH".

  --listen "ADDR:PORT|CERT|KEY"  (repeatable)
  --ready FILE  written ("https LOCAL" per listener) once all listen
  --log FILE

Paths:
  /whoami          JSON: method, path, authority, headers (name -> value), server, alpn,
                   body_bytes (the request body is read to its end first)
  /big?n=N         N bytes of "x" (flow-controlled)
  /trailers        body "ok\\n", then trailers grpc-status: 0, x-trailer: yes
  /echo            the request body back (streamed as it arrives)
  /drip            a DATA frame "tick\\n" every 0.1 s until the client resets the stream
  anything else    404
"""

import argparse
import asyncio
import json
import ssl
import sys
from urllib.parse import parse_qs, urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions

log_file = None


def log(line):
    with open(log_file, "a") as f:
        f.write(line + "\n")


class Stream:
    def __init__(self, headers):
        self.headers = headers
        self.body = bytearray()
        self.ended = False
        self.ended_event = asyncio.Event()
        self.data_event = asyncio.Event()
        self.reset = False


class Connection(asyncio.Protocol):
    def __init__(self, server):
        self.server = server
        self.conn = h2.connection.H2Connection(
            config=h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.streams = {}
        self.window_open = asyncio.Event()

    def connection_made(self, transport):
        self.transport = transport
        sslobj = transport.get_extra_info("ssl_object")
        self.alpn = sslobj.selected_alpn_protocol() if sslobj else None
        self.conn.initiate_connection()
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.transport.write(data)

    def data_received(self, data):
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.flush()
            self.transport.close()
            return
        for event in events:
            if isinstance(event, h2.events.RequestReceived):
                headers = dict(event.headers)
                s = Stream(headers)
                self.streams[event.stream_id] = s
                log("req %s %s %s %s" % (self.server, headers.get(":method"), headers.get(":path"),
                                         headers.get(":authority")))
                asyncio.ensure_future(self.handle(event.stream_id, s))
            elif isinstance(event, h2.events.DataReceived):
                s = self.streams.get(event.stream_id)
                if s is not None:
                    s.body += event.data
                    s.data_event.set()
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                s = self.streams.get(event.stream_id)
                if s is not None:
                    s.ended = True
                    s.ended_event.set()
                    s.data_event.set()
            elif isinstance(event, h2.events.StreamReset):
                s = self.streams.get(event.stream_id)
                if s is not None:
                    s.reset = True
                    s.ended_event.set()
                    s.data_event.set()
                    log("reset %s %s" % (self.server, s.headers.get(":path")))
            elif isinstance(event, h2.events.WindowUpdated):
                self.window_open.set()
        self.flush()

    def connection_lost(self, exc):
        for s in self.streams.values():
            s.reset = True
            s.ended_event.set()
            s.data_event.set()
        self.window_open.set()

    async def send_body(self, stream_id, s, data, end=True):
        view = memoryview(data)
        while view:
            if s.reset:
                return False
            window = min(self.conn.local_flow_control_window(stream_id),
                         self.conn.max_outbound_frame_size)
            if window <= 0:
                self.window_open.clear()
                await self.window_open.wait()
                continue
            chunk = view[:window]
            view = view[window:]
            self.conn.send_data(stream_id, bytes(chunk))
            self.flush()
            await asyncio.sleep(0)
        if end:
            self.conn.end_stream(stream_id)
            self.flush()
        return True

    async def handle(self, stream_id, s):
        url = urlsplit(s.headers.get(":path", "/"))
        path = url.path
        query = parse_qs(url.query)
        try:
            if path == "/whoami":
                await s.ended_event.wait()
                body = json.dumps({
                    "method": s.headers.get(":method"),
                    "path": s.headers.get(":path"),
                    "authority": s.headers.get(":authority"),
                    "headers": {k: v for k, v in s.headers.items() if not k.startswith(":")},
                    "server": self.server,
                    "alpn": self.alpn,
                    "body_bytes": len(s.body),
                }).encode()
                self.conn.send_headers(stream_id, [(":status", "200"),
                                                   ("content-type", "application/json"),
                                                   ("content-length", str(len(body)))])
                await self.send_body(stream_id, s, body)
            elif path == "/big":
                n = int(query.get("n", ["1048576"])[0])
                self.conn.send_headers(stream_id, [(":status", "200"),
                                                   ("content-length", str(n))])
                self.flush()
                await self.send_body(stream_id, s, b"x" * n)
            elif path == "/trailers":
                await s.ended_event.wait()
                self.conn.send_headers(stream_id, [(":status", "200"),
                                                   ("content-type", "text/plain")])
                await self.send_body(stream_id, s, b"ok\n", end=False)
                self.conn.send_headers(stream_id, [("grpc-status", "0"), ("x-trailer", "yes")],
                                       end_stream=True)
                self.flush()
            elif path == "/echo":
                self.conn.send_headers(stream_id, [(":status", "200")])
                self.flush()
                sent = 0
                while True:
                    if len(s.body) > sent:
                        chunk = bytes(s.body[sent:])
                        sent += len(chunk)
                        if not await self.send_body(stream_id, s, chunk, end=False):
                            return
                        continue
                    if s.ended or s.reset:
                        break
                    s.data_event.clear()
                    await s.data_event.wait()
                if not s.reset:
                    self.conn.end_stream(stream_id)
                    self.flush()
            elif path == "/drip":
                self.conn.send_headers(stream_id, [(":status", "200")])
                self.flush()
                while not s.reset:
                    if not await self.send_body(stream_id, s, b"tick\n", end=False):
                        break
                    await asyncio.sleep(0.1)
            else:
                await s.ended_event.wait()
                self.conn.send_headers(stream_id, [(":status", "404"), ("content-length", "0")],
                                       end_stream=True)
                self.flush()
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            pass


async def main():
    global log_file
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", action="append", default=[])
    ap.add_argument("--ready", required=True)
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    log_file = args.log
    open(log_file, "a").close()
    lines = []
    loop = asyncio.get_running_loop()
    for spec in args.listen:
        endpoint, cert, key = spec.split("|")
        host, port = endpoint.rsplit(":", 1)
        host = host.strip("[]")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.set_alpn_protocols(["h2"])
        server = await loop.create_server(lambda ep=endpoint: Connection(ep), host, int(port),
                                          ssl=ctx)
        lines.append("https " + endpoint)
    with open(args.ready + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    import os
    os.rename(args.ready + ".tmp", args.ready)
    await asyncio.Event().wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
