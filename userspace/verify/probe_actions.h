// The network operations a sandboxed process attempts in the verify battery (cases.h).
// Each returns what happened without exiting or throwing: ok, or the failing step and its
// errno. Every blocking step is bounded by timeoutMs, so an enforcement hole shows up as a
// result, never as a hang. They run inside the sandbox (egressd re-executes itself there,
// see probe_main.h), never in egressd itself.
#pragma once

#include <cstdint>
#include <string>

namespace egressd::verify {

struct ActionResult {
  bool ok = false;
  int err = 0;         // errno of the failing step
  std::string step;    // the failing step ("socket", "connect", "sendto", ...)
  std::string detail;  // what was done / seen, for the table

  static ActionResult success(std::string detail);
  static ActionResult failure(int err, std::string step, std::string detail = "");
  // "OK detail" / "ERR EPERM step detail": the wire form between probe and verifier.
  std::string serialize() const;
  static ActionResult parse(const std::string& line);
  // "EPERM at connect" or "ok: detail".
  std::string describe() const;
};

struct ActionOptions {
  int timeoutMs = 1000;
};

// socket(domain, type, protocol) and close.
ActionResult openSocket(int domain, int type, int protocol, const std::string& what);
// TCP connect to addr:port (IPv4, IPv6 or v4-mapped literal), then send `payload`.
ActionResult tcpSend(const std::string& addr, uint16_t port, const std::string& payload,
                     const ActionOptions& o);
// TCP Fast Open: sendto(MSG_FASTOPEN) carries `payload` in the SYN.
ActionResult tcpFastOpen(const std::string& addr, uint16_t port, const std::string& payload,
                         const ActionOptions& o);
// UDP datagram: unconnected sendto, or connect + send.
ActionResult udpSend(const std::string& addr, uint16_t port, const std::string& payload,
                     bool connected);
// A QUIC v1 long-header Initial-shaped datagram carrying `payload`.
ActionResult quicInitial(const std::string& addr, uint16_t port, const std::string& payload);
// A DNS query for `name` (type A) over UDP or TCP; ok when an answer came back.
ActionResult dnsQuery(const std::string& server, uint16_t port, const std::string& name, bool tcp,
                      const ActionOptions& o);
// GET /`path` with Host `host` over TCP to addr:port; ok with the status line.
ActionResult httpGet(const std::string& addr, uint16_t port, const std::string& host,
                     const std::string& path, const ActionOptions& o);
// A TLS ClientHello with server name `sni` to addr:port (handshake not completed).
ActionResult tlsClientHello(const std::string& addr, uint16_t port, const std::string& sni,
                            const ActionOptions& o);
// setsockopt tries that would route packets around the judged destination.
ActionResult setRoutingHeader();      // IPV6_RTHDR, segment routing header (type 4)
ActionResult setRoutingHeader2292();  // IPV6_2292RTHDR
ActionResult setIpOptions();          // IP_OPTIONS (record route: no privilege needed)
ActionResult setNoDelay();            // TCP_NODELAY (harmless: a control)
// io_uring_setup: a ring's socket operations are invisible to the seccomp filter.
ActionResult ioUringSetup();
// mkdir a child cgroup of the caller's cgroup, move into it, then TCP to addr:port.
ActionResult childCgroupConnect(const std::string& addr, uint16_t port, const std::string& payload,
                                const ActionOptions& o);
// Write the caller's pid into every cgroup.procs above it it can find, then TCP to addr:port.
ActionResult leaveCgroupConnect(const std::string& addr, uint16_t port, const std::string& payload,
                                const ActionOptions& o);

}  // namespace egressd::verify
