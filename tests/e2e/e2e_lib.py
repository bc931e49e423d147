"""Helpers shared by the e2e test servers (servers.py, http_origin.py) and the clients in
clients/ (stdlib only): endpoint text, the download pattern, WebSocket frames."""

import base64
import hashlib
import socket
import struct

BLOCK = 64 * 1024
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B65"


def parse_endpoint(text):
    """'1.2.3.4:80' or '[2001:db8::1]:80' -> (family, host, port)."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
        return socket.AF_INET6, host, int(port)
    host, _, port = text.rpartition(":")
    return (socket.AF_INET6 if ":" in host else socket.AF_INET), host, int(port)


def fmt(addr):
    """A socket address as 'ip:port' or '[v6]:port'."""
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def pattern_block():
    """The 64 KiB block that large test bodies repeat (http_origin.py /download, stream.py)."""
    seed = hashlib.sha256(b"egressd-e2e-download").digest()
    return (seed * (BLOCK // len(seed) + 1))[:BLOCK]


def ws_accept(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def ws_frame(opcode, payload, mask=None):
    """One final frame; `mask` (4 bytes) for client-to-server frames, None for the server's."""
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, bit | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, bit | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, bit | 127, n)
    if not mask:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def _read_exact(rfile, n):
    data = rfile.read(n)
    return data if data is not None and len(data) == n else None


def read_ws_frame(rfile):
    """(opcode, unmasked payload, was_masked) of one unfragmented frame; None at EOF."""
    head = _read_exact(rfile, 2)
    if head is None:
        return None
    opcode, masked, length = head[0] & 0x0F, bool(head[1] & 0x80), head[1] & 0x7F
    if length in (126, 127):
        ext = _read_exact(rfile, 2 if length == 126 else 8)
        if ext is None:
            return None
        length = struct.unpack("!H" if length == 126 else "!Q", ext)[0]
    mask = _read_exact(rfile, 4) if masked else b"\0\0\0\0"
    payload = _read_exact(rfile, length) if length else b""
    if mask is None or payload is None:
        return None
    if masked:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return opcode, payload, masked


def parse_response_head(head):
    """(status, content_length) of an HTTP/1.1 response head (bytes up to CRLFCRLF)."""
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())
    return status, length


async def read_response(reader):
    """(status, body) of one Content-Length-framed response from an asyncio reader."""
    status, length = parse_response_head(await reader.readuntil(b"\r\n\r\n"))
    body = await reader.readexactly(length) if length else b""
    return status, body
