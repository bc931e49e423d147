#!/usr/bin/env python3
"""A TLS client for the egressd HTTPS e2e tests (stdlib only), run inside a sandbox.

The TLS engine is ssl.SSLObject over MemoryBIOs, so the client decides how its bytes reach
the socket: the ClientHello can go out in --split TCP segments (--split-gap seconds apart,
TCP_NODELAY) and be cut into --records TLS records first (a handshake message may span
records, RFC 8446 5.1). The first piece is at most 3 bytes: not even a record header.

  --connect ENDPOINT      "ADDR:PORT" or "[V6]:PORT"
  --sni NAME              server_name to send; without it no SNI is sent
  --cafile FILE           verify the server against FILE only (chain, and host name = --sni,
                          or the IP of --connect when there is no --sni); without: no checks
  --alpn P1,P2            ALPN protocols to offer
  --host HOST --path P    after the handshake, "GET P HTTP/1.1" with "Host: HOST" and
                          "Connection: close"; the response is read and parsed
  --then-host H --then-path P
                          the first request keeps the connection open, and a second one
                          (with Connection: close) follows on it
  --split N --split-gap S --records N
  --ech                   add an encrypted_client_hello extension (0xfe0d, a dummy outer
                          payload) to the hello: a server that sees it finds a transcript
                          mismatch, so only a refusal before the handshake is meaningful
  --timeout S             for connect and every read

Prints one JSON object:
  connected, connect_error
  handshake (bool), error (text), error_reason (OpenSSL's reason, e.g.
  "TLSV1_ALERT_ACCESS_DENIED"), verify_message
  hello_bytes, hello_pieces, hello_records
  version, alpn, cert_pem (the leaf the server sent), cert_sha256 (hex of its DER)
  response: {status, headers (lowercase names), body} when a request was made,
  response_error when it failed; then_response / then_response_error for --then-host
"""

import argparse
import hashlib
import json
import os
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from e2e_lib import parse_endpoint  # noqa: E402


class Conn:
    def __init__(self, sock, obj, incoming, outgoing, timeout):
        self.sock = sock
        self.obj = obj
        self.incoming = incoming
        self.outgoing = outgoing
        self.timeout = timeout

    def flush(self):
        data = self.outgoing.read()
        if data:
            self.sock.sendall(data)

    def fill(self):
        """Reads once from the socket into the TLS engine; False at EOF."""
        chunk = self.sock.recv(65536)
        if not chunk:
            self.incoming.write_eof()
            return False
        self.incoming.write(chunk)
        return True


def refragment(hello, records):
    """The ClientHello record(s) in `hello` re-cut into `records` TLS records."""
    if records <= 1 or len(hello) < 5 or hello[0] != 0x16:
        return hello
    version = hello[1:3]
    body = b""
    pos = 0
    while pos + 5 <= len(hello):  # the handshake bytes of every record
        n = int.from_bytes(hello[pos + 3:pos + 5], "big")
        body += hello[pos + 5:pos + 5 + n]
        pos += 5 + n
    size = -(-len(body) // records)
    out = b""
    for i in range(0, len(body), size):
        piece = body[i:i + size]
        out += b"\x16" + version + len(piece).to_bytes(2, "big") + piece
    return out


def add_ech_extension(hello):
    """`hello` (one handshake record holding a ClientHello) with an ECH extension appended."""
    if len(hello) < 9 or hello[0] != 0x16 or hello[5] != 0x01:
        return hello
    body = bytearray(hello[9:9 + int.from_bytes(hello[6:9], "big")])
    pos = 2 + 32  # legacy_version, random
    pos += 1 + body[pos]  # session id
    pos += 2 + int.from_bytes(body[pos:pos + 2], "big")  # cipher suites
    pos += 1 + body[pos]  # compression methods
    ext_len = int.from_bytes(body[pos:pos + 2], "big")
    # ECHClientHello, outer: type 0, HpkeSymmetricCipherSuite (KDF 1, AEAD 1), config id,
    # enc (32 bytes), payload (64 bytes): looks like a real one to a parser.
    payload = (b"\x00" + b"\x00\x01\x00\x01" + b"\x2a" + (32).to_bytes(2, "big") + b"\x11" * 32
               + (64).to_bytes(2, "big") + b"\x22" * 64)
    ext = (0xfe0d).to_bytes(2, "big") + len(payload).to_bytes(2, "big") + payload
    body[pos:pos + 2] = (ext_len + len(ext)).to_bytes(2, "big")
    body += ext
    msg = b"\x01" + len(body).to_bytes(3, "big") + bytes(body)
    return hello[:3] + len(msg).to_bytes(2, "big") + msg


def send_split(sock, data, pieces, gap):
    """`data` in `pieces` segments: the first at most 3 bytes, the rest halves of the rest."""
    if pieces <= 1:
        sock.sendall(data)
        return 1
    cuts = [min(3, len(data))]
    rest = len(data) - cuts[0]
    for i in range(1, pieces - 1):
        cuts.append(cuts[0] + rest * i // (pieces - 1))
    cuts.append(len(data))
    start = 0
    sent = 0
    for end in cuts:
        if end > start:
            if sent:
                time.sleep(gap)
            sock.sendall(data[start:end])
            sent += 1
        start = end
    return sent


def parse_response(data):
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return {"status": int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0,
            "headers": headers, "body": body.decode("utf-8", "replace")}


def response_complete(data):
    r = parse_response(data)
    if r is None:
        return False
    length = r["headers"].get("content-length")
    return length is not None and len(r["body"].encode("utf-8", "replace")) >= int(length)


def exchange(conn, host, path, close, result, key):
    """One GET on the connection; its parsed response in result[key] (or key + "_error")."""
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: egressd-tls-client\r\n"
               + ("Connection: close\r\n" if close else "") + "\r\n")
    received = b""
    try:
        conn.obj.write(request.encode())
        conn.flush()
        while not response_complete(received):
            try:
                received += conn.obj.read(65536)
            except ssl.SSLWantReadError:
                if not conn.fill():
                    continue  # the engine now reports the EOF
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                break
    except (ssl.SSLError, OSError) as e:
        result[key + "_error"] = f"{type(e).__name__}: {e}"
    parsed = parse_response(received)
    if parsed is not None:
        result[key] = parsed
    elif key + "_error" not in result:
        result[key + "_error"] = "no complete response head: " + received.decode(
            "latin-1")[:2000]


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--connect", required=True)
    ap.add_argument("--sni")
    ap.add_argument("--cafile")
    ap.add_argument("--alpn")
    ap.add_argument("--host")
    ap.add_argument("--path", default="/whoami")
    ap.add_argument("--then-host", help="a second request on the same connection")
    ap.add_argument("--then-path", default="/whoami")
    ap.add_argument("--split", type=int, default=1)
    ap.add_argument("--split-gap", type=float, default=0.1)
    ap.add_argument("--records", type=int, default=1)
    ap.add_argument("--ech", action="store_true")
    ap.add_argument("--timeout", type=float, default=8.0)
    args = ap.parse_args()

    family, addr, port = parse_endpoint(args.connect)
    result = {"connected": False, "handshake": False}

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if args.cafile:
        ctx.load_verify_locations(cafile=args.cafile)
        ctx.check_hostname = True
        ctx.verify_mode = ssl.CERT_REQUIRED
        # An IP as server_hostname: Python sends no SNI and checks the IP SAN.
        server_hostname = args.sni or addr
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        server_hostname = args.sni
    if args.alpn:
        ctx.set_alpn_protocols(args.alpn.split(","))

    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(args.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect((addr, port))
    except OSError as e:
        result["connect_error"] = f"{type(e).__name__}: {e}"
        print(json.dumps(result))
        return 0
    result["connected"] = True

    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_side=False, server_hostname=server_hostname)
    conn = Conn(sock, obj, incoming, outgoing, args.timeout)

    first = True
    try:
        while True:
            try:
                obj.do_handshake()
                done = True
            except ssl.SSLWantReadError:
                done = False
            data = outgoing.read()
            if data and first:
                first = False
                hello = add_ech_extension(data) if args.ech else data
                hello = refragment(hello, args.records)
                result["hello_bytes"] = len(hello)
                result["hello_records"] = max(args.records, 1)
                result["hello_pieces"] = send_split(sock, hello, args.split, args.split_gap)
            elif data:
                sock.sendall(data)
            if done:
                break
            conn.fill()
        result["handshake"] = True
    except ssl.SSLError as e:
        result["error"] = str(e)
        result["error_reason"] = e.reason or type(e).__name__
        if isinstance(e, ssl.SSLCertVerificationError):
            result["verify_message"] = e.verify_message
        try:
            conn.flush()  # our alert, if any
        except OSError:
            pass
    except OSError as e:
        result["error"] = f"{type(e).__name__}: {e}"
        result["error_reason"] = type(e).__name__

    if result["handshake"]:
        result["version"] = obj.version()
        result["alpn"] = obj.selected_alpn_protocol()
        der = obj.getpeercert(binary_form=True)
        if der:
            result["cert_pem"] = ssl.DER_cert_to_PEM_cert(der)
            result["cert_sha256"] = hashlib.sha256(der).hexdigest()
        if args.host:
            exchange(conn, args.host, args.path, not args.then_host, result, "response")
        if args.host and args.then_host and "response" in result:
            exchange(conn, args.then_host, args.then_path, True, result, "then_response")
    sock.close()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
