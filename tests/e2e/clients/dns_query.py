#!/usr/bin/env python3
"""DNS queries from inside a sandbox, with raw sockets of the stdlib (no dig per query).

  dns_query.py SERVER NAME [--count N] [--type A] [--tcp] [--timeout S]

Sends COUNT queries one after the other to SERVER (an IPv4 or IPv6 address, port 53) for
NAME, in which "{i}" becomes the query's number base32-encoded (a DNS-tunnel-like label:
"{i}.x.test" -> "gaaa.x.test", ...). Prints one JSON object: {"rcodes": {"NOERROR": n, ...},
"timeouts": n, "answers": n (answer records summed), "names": [the first 5 names sent]}.
"""

import argparse
import base64
import json
import random
import socket
import struct

RCODES = {0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED"}
TYPES = {"A": 1, "NS": 2, "CNAME": 5, "NULL": 10, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28,
         "SRV": 33, "NAPTR": 35, "HTTPS": 65, "ANY": 255}


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode()
        out += bytes([len(raw)]) + raw
    return out + b"\0"


def query(qid, name, qtype):
    header = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    return header + encode_name(name) + struct.pack("!HH", qtype, 1)


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def ask(server, family, msg, qid, tcp, timeout):
    """(rcode, answer count) or None on timeout/error."""
    try:
        if tcp:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.settimeout(timeout)
                s.connect((server, 53))
                s.sendall(struct.pack("!H", len(msg)) + msg)
                length = struct.unpack("!H", recv_exact(s, 2))[0]
                reply = recv_exact(s, length)
        else:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.settimeout(timeout)
                s.sendto(msg, (server, 53))
                while True:
                    reply, _ = s.recvfrom(65535)
                    if len(reply) >= 12 and struct.unpack("!H", reply[:2])[0] == qid:
                        break
    except (OSError, ConnectionError):
        return None
    flags, _, ancount = struct.unpack("!HHH", reply[2:8])
    return flags & 0xF, ancount


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("server")
    parser.add_argument("name")
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--type", default="A")
    parser.add_argument("--tcp", action="store_true")
    parser.add_argument("--timeout", type=float, default=2.0)
    args = parser.parse_args()
    family = socket.AF_INET6 if ":" in args.server else socket.AF_INET
    qtype = TYPES.get(args.type.upper()) or int(args.type)
    result = {"rcodes": {}, "timeouts": 0, "answers": 0, "names": []}
    for i in range(args.count):
        label = base64.b32encode(struct.pack("!I", i)).decode().rstrip("=").lower()
        name = args.name.replace("{i}", label)
        if len(result["names"]) < 5:
            result["names"].append(name)
        qid = random.randrange(65536)
        got = ask(args.server, family, query(qid, name, qtype), qid, args.tcp, args.timeout)
        if got is None:
            result["timeouts"] += 1
            continue
        rcode, answers = got
        key = RCODES.get(rcode, str(rcode))
        result["rcodes"][key] = result["rcodes"].get(key, 0) + 1
        result["answers"] += answers
    print(json.dumps(result))


if __name__ == "__main__":
    main()
