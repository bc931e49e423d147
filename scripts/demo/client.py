#!/usr/bin/env python3
"""What the sandboxed program tries; each line says what happened and why it matters."""
import errno
import socket
import subprocess


def tcp(label, host, port, family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect((host, port))
        greeting = s.recv(64).decode(errors="replace").strip()
        print(f"  ALLOWED  {label:<44} -> {greeting!r}")
    except OSError as e:
        print(f"  BLOCKED  {label:<44} -> {errno.errorcode.get(e.errno, e.errno)} ({e.strerror})")
    finally:
        s.close()


def attempt(label, fn):
    try:
        fn()
        print(f"  ALLOWED  {label}")
    except OSError as e:
        print(f"  BLOCKED  {label:<44} -> {errno.errorcode.get(e.errno, e.errno)} ({e.strerror})")


print("From inside the sandbox:")
tcp("database 198.18.200.3:5432 (allow rule)", "198.18.200.3", 5432)
tcp("same host, port 7000 (no rule)", "198.18.200.3", 7000)
tcp("denied host 198.18.200.4:5432 (deniedHosts)", "198.18.200.4", 5432)
tcp("same database via v4-mapped IPv6", "::ffff:198.18.200.4", 5432, socket.AF_INET6)
tcp("host loopback via 0.0.0.0:22", "0.0.0.0", 22)
tcp("web 198.18.200.3:80 (proxied, no proxy yet)", "198.18.200.3", 80)
attempt("raw socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
attempt("packet socket (seccomp)", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
attempt("UDP 443 (QUIC)", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"q", ("198.18.200.3", 443)))
print("  DNS: dig @198.18.200.99 api.demo.test (an address nobody serves; pinned to the resolver):")
out = subprocess.run(["dig", "+short", "+time=2", "+tries=1", "@198.18.200.99", "api.demo.test"],
                     capture_output=True, text=True)
print("           answer:", out.stdout.strip() or out.stderr.strip())
