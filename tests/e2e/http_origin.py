#!/usr/bin/env python3
"""HTTP/1.1 origin servers for egressd e2e tests (stdlib only), run inside the test internet.

One ThreadingHTTPServer per --listen endpoint ("ADDR:PORT", "[V6]:PORT"; port 0 picks one),
and one HTTPS server per --tls-listen "ENDPOINT|CERTFILE|KEYFILE" (the same routes over TLS;
ALPN http/1.1 offered; the handshake runs in the connection's thread, 10 s limit). Every
TLS handshake is logged as "tls SERVER PEER SNI" (SNI "-" when the client sent none), a
failed one as "tls-fail SERVER PEER REASON". Every request is logged, before its body is
read, as one line "req SERVER METHOD PATH HOST" (SERVER = the local address the request
arrived on, "ip:port" or "[v6]:port"; PATH with its query string; HOST = the Host header or
"-"), so a test can prove a request never arrived.

Endpoints:
  GET  /whoami           JSON {server, peer, host, path, method, headers, headers_hex (the
                         values hex-encoded: what egressd's redaction leaves readable)}; over TLS also
                         sni (the server name the client sent, null if none), tls_version
                         and alpn (null if none negotiated)
  HEAD /whoami           the same headers (Content-Length of that JSON), no body
  GET  /chunked          a chunked body (with a chunk extension and a trailer)
  POST|PUT /upload       body streamed (Content-Length or chunked, never held whole);
                         JSON {bytes, sha256}
  GET  /download?bytes=N N bytes of pattern_stream() with Content-Length, 64 KiB writes
  GET  /close            a body without Content-Length, ended by closing the connection
  GET  /ws               RFC 6455 handshake, then echo of text/binary frames until close
  GET  /switch           101 to whatever the Upgrade header asks (or ?proto=), with no
                         checks, then a line tunnel: every line read is logged as
                         "tunnel SERVER LINE" and answered "echo LINE"
  GET  /echo[?pad=N]     every request header sent back as a response header
                         "X-Echo-NAME: VALUE", and a body of N bytes of 'p' then the
                         /whoami JSON (an upstream that reflects what it is sent)
  TRACE anything         200 message/http: the request head as received (RFC 9110 9.3.8)
  anything else          404 JSON
Expect: 100-continue is answered by BaseHTTPRequestHandler (handle_expect_100) before the
handler reads the body.

Once every socket listens, --ready is written atomically with one line per endpoint,
"http LOCAL", then "https LOCAL" for the --tls-listen ones. Exits on SIGTERM/SIGINT, and
after --max-seconds at the latest.
"""

import argparse
import hashlib
import http.server
import json
import os
import resource
import signal
import socket
import ssl
import sys
import threading
import time
import urllib.parse

from e2e_lib import BLOCK, fmt, parse_endpoint, pattern_block, read_ws_frame, ws_accept, ws_frame


class RequestLog:
    def __init__(self, path):
        self.lock = threading.Lock()
        self.file = open(path, "a", buffering=1) if path else None

    def write(self, line):
        if self.file:
            with self.lock:
                self.file.write(line + "\n")
                self.file.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "egressd-test-origin"
    sys_version = ""

    def log_message(self, *_args):  # the request log below replaces stderr chatter
        pass

    # --- helpers

    def local(self):
        return fmt(self.connection.getsockname())

    def log_request_line(self):
        host = self.headers.get("Host", "-").replace(" ", "_")
        self.server.request_log.write(f"req {self.local()} {self.command} {self.path} {host}")

    def send_json(self, status, obj, close=False, head_only=False):
        body = (json.dumps(obj, sort_keys=True) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if not head_only:
            self.wfile.write(body)

    def read_body_chunks(self):
        """Yields the request body in pieces, de-chunked; never holds it whole."""
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            while True:
                size_line = self.rfile.readline(1024)
                if not size_line:
                    raise ConnectionError("body ended inside a chunk size line")
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return
                left = size
                while left:
                    piece = self.rfile.read(min(left, BLOCK))
                    if not piece:
                        raise ConnectionError("body ended inside a chunk")
                    left -= len(piece)
                    yield piece
                self.rfile.readline(16)  # CRLF after the chunk data
        else:
            left = int(self.headers.get("Content-Length", "0"))
            while left:
                piece = self.rfile.read(min(left, BLOCK))
                if not piece:
                    raise ConnectionError("body ended before Content-Length")
                left -= len(piece)
                yield piece

    # --- dispatch

    def do_GET(self):
        self.log_request_line()
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/whoami":
            self.whoami()
        elif url.path == "/download":
            query = urllib.parse.parse_qs(url.query)
            self.download(int(query.get("bytes", ["0"])[0]))
        elif url.path == "/close":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"body delimited by close\n")
            self.close_connection = True
        elif url.path == "/chunked":
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"chunked ", b"response ", b"for " + self.path.encode() + b"\n"):
                # A chunk extension, which the receiver must skip.
                self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\nX-Trailer: done\r\n\r\n")
        elif url.path == "/ws":
            self.websocket()
        elif url.path == "/switch":
            self.switch(urllib.parse.parse_qs(url.query).get("proto", [None])[0])
        elif url.path == "/echo":
            self.echo(int(urllib.parse.parse_qs(url.query).get("pad", ["0"])[0]))
        elif url.path == "/stall":
            # Answers only after ?ms= milliseconds: an upstream that hangs.
            query = urllib.parse.parse_qs(url.query)
            time.sleep(int(query.get("ms", ["0"])[0]) / 1000.0)
            self.whoami()
        else:
            self.send_json(404, {"error": "no such path", "path": self.path})

    def do_HEAD(self):
        # The GET answer's headers (Content-Length included) and no body: a proxy that
        # waits for that body, or relays the next response as one, loses step.
        self.log_request_line()
        if urllib.parse.urlsplit(self.path).path == "/whoami":
            self.whoami(head_only=True)
        else:
            self.send_json(404, {"error": "no such path", "path": self.path})

    def do_POST(self):
        self.log_request_line()
        if urllib.parse.urlsplit(self.path).path != "/upload":
            for _ in self.read_body_chunks():
                pass
            self.send_json(404, {"error": "no such path", "path": self.path})
            return
        digest = hashlib.sha256()
        total = 0
        for piece in self.read_body_chunks():
            digest.update(piece)
            total += len(piece)
        self.send_json(200, {"bytes": total, "sha256": digest.hexdigest(),
                             "server": self.local()})

    do_PUT = do_POST

    def do_TRACE(self):
        self.log_request_line()
        head = self.requestline + "\r\n" + "".join(
            f"{name}: {value}\r\n" for name, value in self.headers.items())
        body = head.encode("latin-1", "replace")
        self.send_response(200)
        self.send_header("Content-Type", "message/http")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    # --- endpoints

    def whoami(self, head_only=False):
        headers = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = headers[key] + ", " + value if key in headers else value
        obj = {
            "server": self.local(),
            "peer": fmt(self.client_address),
            "host": self.headers.get("Host", ""),
            "path": self.path,
            "method": self.command,
            "headers": headers,
            # The same values hex-encoded: egressd redacts an injected secret echoed back to
            # the sandbox, and this lets a test see what the origin really received.
            "headers_hex": {k: v.encode("utf-8", "surrogateescape").hex()
                            for k, v in headers.items()},
        }
        if isinstance(self.connection, ssl.SSLSocket):
            obj["sni"] = getattr(self.connection, "egressd_sni", None)
            obj["tls_version"] = self.connection.version()
            obj["alpn"] = self.connection.selected_alpn_protocol()
        self.send_json(200, head_only=head_only, obj=obj)

    def download(self, total):
        block = memoryview(self.server.block)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(total))
        self.end_headers()
        left = total
        while left:
            n = min(left, BLOCK)
            self.wfile.write(block[:n])
            left -= n

    def switch(self, proto):
        proto = proto or self.headers.get("Upgrade", "none").split(",")[0].strip()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", proto)
        self.send_header("Connection", "Upgrade")
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        while True:
            line = self.rfile.readline(4096)
            if not line:
                return
            text = line.decode("latin-1").rstrip("\r\n")
            self.server.request_log.write(f"tunnel {self.local()} {text}")
            self.wfile.write(b"echo " + text.encode("latin-1") + b"\n")
            self.wfile.flush()

    def echo(self, pad):
        headers = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = headers[key] + ", " + value if key in headers else value
        body = b"p" * pad + (json.dumps({"headers": headers, "path": self.path},
                                        sort_keys=True) + "\n").encode()
        self.send_response(200)
        for name, value in self.headers.items():
            self.send_header("X-Echo-" + name, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def websocket(self):
        key = self.headers.get("Sec-WebSocket-Key", "")
        if "websocket" not in self.headers.get("Upgrade", "").lower() or not key:
            self.send_json(400, {"error": "not a websocket handshake"}, close=True)
            return
        accept = ws_accept(key)
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        while True:
            frame = read_ws_frame(self.rfile)
            if frame is None:
                return
            opcode, payload, _ = frame
            if opcode == 0x8:  # close: answer with the same status and stop
                self.wfile.write(ws_frame(0x8, payload[:2]))
                self.wfile.flush()
                return
            if opcode == 0x9:  # ping -> pong
                self.wfile.write(ws_frame(0xA, payload))
            elif opcode in (0x1, 0x2):
                self.wfile.write(ws_frame(opcode, payload))
            self.wfile.flush()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 4096  # the 1,000-connection test opens them all at once

    def __init__(self, family, addr, request_log, block, tls_context=None):
        self.address_family = family
        self.request_log = request_log
        self.block = block
        self.tls_context = tls_context
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        if self.tls_context is None:
            super().finish_request(request, client_address)
            return
        local = fmt(request.getsockname())
        peer = fmt(client_address)
        request.settimeout(10)
        try:
            conn = self.tls_context.wrap_socket(request, server_side=True)
        except (OSError, ValueError) as e:
            reason = getattr(e, "reason", None) or type(e).__name__
            self.request_log.write(f"tls-fail {local} {peer} {reason}")
            return
        conn.settimeout(None)
        sni = getattr(conn, "egressd_sni", None)
        self.request_log.write(f"tls {local} {peer} {sni or '-'}")
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            try:
                conn.settimeout(1)
                conn.unwrap()  # close_notify: clients that insist on it see a clean end
            except (OSError, ValueError):
                pass
            try:
                conn.close()
            except OSError:
                pass

    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if self.address_family == socket.AF_INET6:
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        socket.socket.bind(self.socket, self.server_address)
        self.server_address = self.socket.getsockname()


def tls_context(cert, key):
    """A server context for one certificate; the SNI each client sent is kept on its socket."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])

    def remember_sni(sslsock, name, _ctx):
        sslsock.egressd_sni = name

    ctx.sni_callback = remember_sni
    return ctx


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", action="append", default=[], help="ADDR:PORT to serve on")
    ap.add_argument("--ready", required=True, help="file written once all sockets listen")
    ap.add_argument("--tls-listen", action="append", default=[],
                    help="ENDPOINT|CERTFILE|KEYFILE to serve HTTPS on")
    ap.add_argument("--log", help="request log file")
    ap.add_argument("--max-seconds", type=float, default=900.0)
    args = ap.parse_args()

    # One thread and two fds per connection: the concurrency test needs thousands.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    threading.stack_size(512 * 1024)

    request_log = RequestLog(args.log)
    block = pattern_block()
    servers = []
    for endpoint in args.listen:
        family, host, port = parse_endpoint(endpoint)
        servers.append(Server(family, (host, port), request_log, block))
    tls_servers = []
    for spec in args.tls_listen:
        endpoint, cert, key = spec.split("|")
        family, host, port = parse_endpoint(endpoint)
        tls_servers.append(Server(family, (host, port), request_log, block, tls_context(cert, key)))
    for s in servers + tls_servers:
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2},
                         daemon=True).start()

    tmp = args.ready + ".tmp"
    with open(tmp, "w") as f:
        f.write("".join(f"http {fmt(s.server_address)}\n" for s in servers))
        f.write("".join(f"https {fmt(s.server_address)}\n" for s in tls_servers))
    os.rename(tmp, args.ready)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait(args.max_seconds)
    # Daemon threads die with the process; shutting every server down would only add delay.
    return 0


if __name__ == "__main__":
    sys.exit(main())
