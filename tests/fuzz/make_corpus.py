#!/usr/bin/env python3
"""Writes the hand-made seed corpora of tests/fuzz/corpus/ (the HTTP and ClientHello ones
come from `egressd_http_fuzz_replay --write-seeds` / `egressd_client_hello_fuzz_replay
--write-seeds`). Run from anywhere; it rewrites only the files it names.
Seeds are small, valid inputs next to the interesting boundaries plus a few malformed ones:
libFuzzer and the replay mutate from there."""
import os
import re
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- DNS -----------------------------------------------------------------------------
def name(n):
    out = b""
    for label in n.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode()
    return out + b"\0"


def header(id_, flags, qd=1, an=0, ns=0, ar=0):
    return struct.pack(">HHHHHH", id_, flags, qd, an, ns, ar)


def question(n, qtype, qclass=1):
    return name(n) + struct.pack(">HH", qtype, qclass)


def rr(owner, rtype, ttl, rdata, cls=1):
    o = owner if isinstance(owner, bytes) else name(owner)
    return o + struct.pack(">HHIH", rtype, cls, ttl, len(rdata)) + rdata


def opt(size=1232):
    return b"\0" + struct.pack(">HHIH", 41, size, 0, 0)


A, CNAME, PTR, TXT, AAAA, HTTPS = 1, 5, 12, 16, 28, 65

write("dns_query", "a", header(0x1234, 0x0100) + question("www.example.test", A))
write("dns_query", "aaaa-edns", header(0x1, 0x0100, ar=1) + question("Api.Example.TEST", AAAA) + opt())
write("dns_query", "https", header(0x2, 0x0000) + question("svc.example.test", HTTPS))
write("dns_query", "ptr-private", header(0x3, 0x0100) + question("1.0.168.192.in-addr.arpa", PTR))
write("dns_query", "ptr-v6", header(0x4, 0x0100) + question(
    "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa", PTR))
write("dns_query", "escaped-label", header(0x5, 0x0100) + b"\x05a b.c" + name("test") + b"\0\x01\0\x01")
write("dns_query", "root-any", header(0x6, 0x0100) + b"\0" + struct.pack(">HH", 255, 1))
write("dns_query", "notify-opcode", header(0x7, 0x2100) + question("example.test", A))
write("dns_query", "two-questions", header(0x8, 0x0100, qd=2) + question("a.test", A) + question("b.test", A))
write("dns_query", "opt-big", header(0x9, 0x0100, ar=1) + question("x.test", TXT) + opt(65535))

QN = "www.example.test"
ptr_q = b"\xc0\x0c"  # pointer to the question name
write("dns_answer", "a-cname-chain", header(0xa11c, 0x8180, an=3) + question(QN, A)
      + rr(QN, CNAME, 60, name("cdn.example.test"))
      + rr("cdn.example.test", A, 30, bytes([198, 18, 0, 1]))
      + rr("cdn.example.test", A, 30, bytes([198, 18, 0, 2])))
write("dns_answer", "aaaa", header(0xa11d, 0x8180, an=2) + question(QN, AAAA)
      + rr(ptr_q, AAAA, 60, bytes.fromhex("20010db8000000000000000000000001"))
      + rr(ptr_q, AAAA, 60, bytes.fromhex("00000000000000000000ffffc6120007")))
write("dns_answer", "nxdomain", header(0xa11e, 0x8183) + question(QN, A))
write("dns_answer", "truncated", header(0xa11f, 0x8380) + question(QN, A))
write("dns_answer", "compressed", header(0xa120, 0x8180, an=2) + question(QN, A)
      + rr(ptr_q, CNAME, 60, b"\x03cdn\xc0\x10")
      + rr(b"\xc0\x2e", A, 60, bytes([198, 18, 7, 7])))
svc = struct.pack(">H", 1) + b"\0" + struct.pack(">HH", 4, 4) + bytes([198, 18, 0, 9]) \
    + struct.pack(">HH", 6, 16) + bytes.fromhex("20010db8000000000000000000000009")
write("dns_answer", "https-hints", header(0xa121, 0x8180, an=1) + question(QN, HTTPS)
      + rr(ptr_q, HTTPS, 300, svc))
write("dns_answer", "ttl0-and-loop", header(0xa122, 0x8180, an=2) + question(QN, A)
      + rr(ptr_q, A, 0, bytes([198, 18, 0, 3]))
      + rr(b"\xc0\x3a", CNAME, 5, b"\xc0\x3a"))
write("dns_answer", "servfail-with-records", header(0xa123, 0x8182, an=1) + question(QN, A)
      + rr(ptr_q, A, 9, bytes([10, 0, 0, 1])))
big = header(0xa124, 0x8180, an=40) + question(QN, A)
for i in range(40):
    big += rr(ptr_q, A, 100 + i, bytes([198, 18, 1, i]))
write("dns_answer", "over-512", big)
write("dns_answer", "other-question", header(0xa125, 0x8180, an=1) + question("evil.test", A)
      + rr(ptr_q, A, 60, bytes([6, 6, 6, 6])))

# ---- Policy YAML ------------------------------------------------------------------------
for d in ("policy/examples", "scripts/bench.d"):
    for f in sorted(os.listdir(os.path.join(ROOT, d))):
        if f.endswith(".yaml"):
            with open(os.path.join(ROOT, d, f), "rb") as src:
                write("policy_yaml", f.removesuffix(".yaml"), src.read())
raw = re.compile(r'R"\((.*?)\)"', re.S)
n = 0
for f in ("tests/unit/policy/policy_test.cpp", "tests/unit/policy/compile_test.cpp",
          "tests/unit/policy/host_policy_test.cpp", "tests/unit/handlers/handler_test.cpp"):
    with open(os.path.join(ROOT, f)) as src:
        for m in raw.finditer(src.read()):
            text = m.group(1)
            if ":" in text and len(text) < 2048:
                write("policy_yaml", "unit-%02d" % n, text)
                n += 1
write("policy_yaml", "anchors", "name: a\nallowedHosts: &h [\"a.test\", \"*.b.test\"]\n"
      "deniedHosts: *h\nallow:\n  - { cidr: 10.0.0.0/8, ports: [80, \"1000-1010\"], protocol: tcp }\n"
      "  - { cidr: \"2001:db8::/32\" }\n")
write("policy_yaml", "flow-nested", "{name: x, enableInternet: true, proxyPorts: [80, 8080],"
      " sockets: {raw: true, udp: false}, dns: {upstream: \"[::1]:53\"}}\n")
write("policy_yaml", "bad-indent", "name: x\n allowedHosts:\n- a\n")

# ---- Handler templates (first byte: bit 0 = secrets allowed) ----------------------------
for i, (secrets, text) in enumerate([
        (1, "Bearer ${secret:GH_TOKEN}"), (1, "${params.tenant}-${sandbox}/${params.zone}"),
        (1, "${secret:API_KEY/${sandbox}}"), (1, "${secret:API_KEY/sb-2}"), (0, "a$$b $5 end$"),
        (0, "$$$${sandbox}"), (0, "${params.}"), (0, "${secret:X}"), (1, "${unknown}"),
        (1, "${params.a}${params.b}${params.a}"), (0, "plain text"), (1, "${")]):
    write("handler_template", "t%02d" % i, bytes([secrets]) + text.encode())

# ---- Handler conditions (JSON specs, paths, "pattern\\0path") ---------------------------
with open(os.path.join(ROOT, "tests/unit/handlers/condition_test.cpp")) as src:
    for i, m in enumerate(raw.finditer(src.read())):
        write("handler_condition", "spec-%02d" % i, m.group(1))
for i, text in enumerate(["/public/../admin", "/%61dmin/./x/%2e%2e/y?q=/../", "//a//b/..",
                          "/v1/*/items\0/v1/a/b/items", "*a*b*c\0xxaxxbxxc", "/files/*.json\0/files/a?x=.json",
                          "/%2F%2f%7e%7E"]):
    write("handler_condition", "path-%02d" % i, text)

# ---- Control API bodies, query strings, paths -------------------------------------------
for i, text in enumerate([
        '{"id": "sb1", "policy": "default", "cgroup": "/sys/fs/cgroup/x", "createCgroup": true}',
        '{"hosts": ["a.test", "*.b.test"], "host": "c.test"}',
        '{"byHost": {"api.test": {"handler": "auth", "params": {"tenant": "t1"}}}}',
        '{"value": "s3cr3t", "yaml": "name: x\\nallowedHosts: [a.test]\\n", "source": null}',
        '{"handler": 5, "params": [], "hosts": [1, "x"], "createCgroup": "yes"}',
        '[1, 2.5e300, -0, "\\u00e9\\ud83d\\ude00", null, true, {}]',
        '{"id": "a', 'lines=20&sandbox=sb1&x=%41%2b+b&flag',
        '/v1/sandboxes/sb%2F1/allowed-hosts/%2A.example.test?force=1',
        '/v1/secrets/team/a%20b/c', '/v1/policies/validate', '/v1/sandboxes/%00x', '/v1/%zz']):
    write("control_json", "c%02d" % i, text)

# ---- Chunked bodies (what follows the head) ----------------------------------------------
for i, text in enumerate([
        "5\r\nhello\r\n0\r\n\r\n", "3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\n",
        "A\r\n0123456789\r\n1\r\nx\r\n0\r\n\r\n", "0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        "ffffffffffffffff\r\nx\r\n", "5\nhello\n0\n\n", "2\r\nabc\r\n0\r\n\r\n",
        "1 \r\na\r\n0\r\n\r\n", "000000000000000000001\r\na\r\n0\r\n\r\n"]):
    write("http_chunked", "b%02d" % i, text)
