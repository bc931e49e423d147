#include "verify/cases.h"

#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstring>

namespace egressd::verify {
namespace {

constexpr ActionOptions kOpts{};

// "c612:0304" for 198.18.3.4: an IPv4 address as the two low groups of an IPv6 literal.
std::string embedV4(const std::string& v4) {
  in_addr a{};
  if (::inet_pton(AF_INET, v4.c_str(), &a) != 1) {
    return "0:0";
  }
  const auto* b = reinterpret_cast<const uint8_t*>(&a.s_addr);
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%x:%x", (b[0] << 8) | b[1], (b[2] << 8) | b[3]);
  return buf;
}

std::string payload(const std::string& token) {
  return "egressd-verify " + token + "\n";
}

Case attack(std::string id, std::string attempt, CaseAction action, Sink sink = {}) {
  Case c;
  c.id = std::move(id);
  c.attempt = std::move(attempt);
  c.action = action;
  c.sink = std::move(sink);
  return c;
}

Case family(std::string id, std::string attempt, CaseAction action) {
  Case c = attack(std::move(id), std::move(attempt), action);
  // The seccomp filter answers a refused family with EAFNOSUPPORT; the sock_create hook
  // answers a refused kind with EPERM.
  c.refusedErrnos = {EPERM, EACCES, EAFNOSUPPORT};
  // socket() fails with these before any hook runs when the protocol is not built/loaded.
  c.unsupportedErrnos = {EPROTONOSUPPORT, ESOCKTNOSUPPORT};
  return c;
}

Case sinkCase(std::string id, std::string attempt, CaseAction action, Sink sink,
              Expect expect = Expect::kBlocked, Role role = Role::kAttack) {
  Case c = attack(std::move(id), std::move(attempt), action, std::move(sink));
  c.evidence = Evidence::kSink;
  c.expect = expect;
  c.role = role;
  return c;
}

std::vector<Case> makeBuiltinCases() {
  std::vector<Case> cases;
  // ---- controls: the test network works, so "blocked" below means something ----
  cases.push_back(sinkCase(
      "control-tcp-allowed", "TCP to origin:7001, which the test policy allows",
      [](const Targets& t, const Case&, const std::string& tok) {
        return tcpSend(t.origin, kTcpPort, payload(tok), kOpts);
      },
      {"origin", kTcpPort, false}, Expect::kAllowed, Role::kControl));
  cases.push_back(sinkCase(
      "control-http-allowed", "HTTP to origin:80 for an allowed host, through the proxy",
      [](const Targets& t, const Case&, const std::string& tok) {
        return httpGet(t.origin, kHttpPort, tok + "." + t.allowedDomain, tok, kOpts);
      },
      {"origin", kHttpPort, false}, Expect::kAllowed, Role::kControl));
  cases.push_back(sinkCase(
      "control-dns-allowed", "DNS query for an allowed name, answered through egressd",
      [](const Targets& t, const Case&, const std::string& tok) {
        return dnsQuery(t.dns, kDnsPort, tok + "." + t.allowedDomain, false, kOpts);
      },
      {"dns", kDnsPort, true}, Expect::kAllowed, Role::kControl));
  {
    Case c = attack("control-sockopt-harmless", "setsockopt(TCP_NODELAY), which nothing refuses",
                    [](const Targets&, const Case&, const std::string&) { return setNoDelay(); });
    c.role = Role::kControl;
    c.expect = Expect::kAllowed;
    cases.push_back(c);
  }

  // ---- socket families and kinds no destination hook could judge ----
  cases.push_back(family("socket-packet", "socket(AF_PACKET, SOCK_RAW): raw frames",
                         [](const Targets&, const Case&, const std::string&) {
                           return openSocket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL), "AF_PACKET");
                         }));
  cases.push_back(family("socket-raw4", "socket(AF_INET, SOCK_RAW, UDP): hand-built IPv4",
                         [](const Targets&, const Case&, const std::string&) {
                           return openSocket(AF_INET, SOCK_RAW, IPPROTO_UDP, "AF_INET SOCK_RAW");
                         }));
  cases.push_back(family("socket-raw6", "socket(AF_INET6, SOCK_RAW, UDP): hand-built IPv6",
                         [](const Targets&, const Case&, const std::string&) {
                           return openSocket(AF_INET6, SOCK_RAW, IPPROTO_UDP, "AF_INET6 SOCK_RAW");
                         }));
  cases.push_back(family("socket-ping4", "socket(AF_INET, SOCK_DGRAM, ICMP): ping socket",
                         [](const Targets&, const Case&, const std::string&) {
                           return openSocket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP, "ICMP ping");
                         }));
  cases.push_back(family("socket-ping6", "socket(AF_INET6, SOCK_DGRAM, ICMPV6): ping socket",
                         [](const Targets&, const Case&, const std::string&) {
                           return openSocket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6, "ICMPv6 ping");
                         }));
  cases.push_back(family("socket-sctp", "socket(AF_INET, SOCK_STREAM, SCTP)",
                         [](const Targets&, const Case&, const std::string&) {
                           return openSocket(AF_INET, SOCK_STREAM, IPPROTO_SCTP, "SCTP");
                         }));
  cases.push_back(family("socket-mptcp", "socket(AF_INET, SOCK_STREAM, MPTCP)",
                         [](const Targets&, const Case&, const std::string&) {
                           return openSocket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP, "MPTCP");
                         }));
  cases.push_back(family("socket-udplite", "socket(AF_INET, SOCK_DGRAM, UDPLITE)",
                         [](const Targets&, const Case&, const std::string&) {
                           return openSocket(AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE, "UDP-Lite");
                         }));
  cases.push_back(family("socket-netlink", "socket(AF_NETLINK, NETLINK_SOCK_DIAG)",
                         [](const Targets&, const Case&, const std::string&) {
                           return openSocket(AF_NETLINK, SOCK_RAW, 4 /* NETLINK_SOCK_DIAG */,
                                             "AF_NETLINK sock_diag");
                         }));
  cases.push_back(family("socket-vsock", "socket(AF_VSOCK, SOCK_STREAM): to the hypervisor",
                         [](const Targets&, const Case&, const std::string&) {
                           return openSocket(AF_VSOCK, SOCK_STREAM, 0, "AF_VSOCK");
                         }));
  cases.push_back(family("socket-xdp", "socket(AF_XDP, SOCK_RAW)",
                         [](const Targets&, const Case&, const std::string&) {
                           return openSocket(AF_XDP, SOCK_RAW, 0, "AF_XDP");
                         }));
  cases.push_back(
      attack("io-uring", "io_uring_setup: ring socket ops bypass seccomp",
             [](const Targets&, const Case&, const std::string&) { return ioUringSetup(); }));

  // ---- socket options that route around the judged destination ----
  cases.push_back(
      attack("sockopt-ipv6-rthdr", "setsockopt(IPV6_RTHDR): segment routing header",
             [](const Targets&, const Case&, const std::string&) { return setRoutingHeader(); }));
  cases.push_back(attack(
      "sockopt-ipv6-2292rthdr", "setsockopt(IPV6_2292RTHDR)",
      [](const Targets&, const Case&, const std::string&) { return setRoutingHeader2292(); }));
  cases.push_back(
      attack("sockopt-ip-options", "setsockopt(IP_OPTIONS): IPv4 options (record route)",
             [](const Targets&, const Case&, const std::string&) { return setIpOptions(); }));

  // ---- destinations ----
  const Sink otherTcp{"other", kTcpPort, false};
  const Sink otherUdp{"other", kUdpPort, true};
  cases.push_back(attack(
      "tcp-denied", "TCP connect to other:7001 (no rule allows it)",
      [](const Targets& t, const Case&, const std::string& tok) {
        return tcpSend(t.other, kTcpPort, payload(tok), kOpts);
      },
      otherTcp));
  cases.push_back(attack(
      "tcp-fastopen", "TCP Fast Open: data in the SYN to other:7001",
      [](const Targets& t, const Case&, const std::string& tok) {
        return tcpFastOpen(t.other, kTcpPort, payload(tok), kOpts);
      },
      otherTcp));
  cases.push_back(attack(
      "udp-unconnected", "UDP sendto other:7003",
      [](const Targets& t, const Case&, const std::string& tok) {
        return udpSend(t.other, kUdpPort, payload(tok), false);
      },
      otherUdp));
  cases.push_back(attack(
      "udp-connected", "UDP connect + send to other:7003",
      [](const Targets& t, const Case&, const std::string& tok) {
        return udpSend(t.other, kUdpPort, payload(tok), true);
      },
      otherUdp));
  cases.push_back(attack("quic", "QUIC Initial to other:443/udp",
                         [](const Targets& t, const Case&, const std::string& tok) {
                           return quicInitial(t.other, kTlsPort, payload(tok));
                         },
                         {"other", kTlsPort, true}));
  cases.push_back(attack(
      "v4-mapped", "TCP6 to ::ffff:other:7001 (v4-mapped IPv6)",
      [](const Targets& t, const Case&, const std::string& tok) {
        return tcpSend("::ffff:" + t.other, kTcpPort, payload(tok), kOpts);
      },
      otherTcp));
  cases.push_back(attack(
      "v4-mapped-udp", "UDP6 to ::ffff:other:7003 (v4-mapped IPv6)",
      [](const Targets& t, const Case&, const std::string& tok) {
        return udpSend("::ffff:" + t.other, kUdpPort, payload(tok), false);
      },
      otherUdp));
  cases.push_back(attack("nat64", "TCP to 64:ff9b::other (NAT64 form of a denied IPv4)",
                         [](const Targets& t, const Case&, const std::string& tok) {
                           return tcpSend("64:ff9b::" + embedV4(t.other), kTcpPort, payload(tok),
                                          kOpts);
                         }));
  cases.push_back(attack("6to4", "TCP to 2002:other:: (6to4 form of a denied IPv4)",
                         [](const Targets& t, const Case&, const std::string& tok) {
                           return tcpSend("2002:" + embedV4(t.other) + "::1", kTcpPort,
                                          payload(tok), kOpts);
                         }));
  cases.push_back(attack("teredo", "TCP to 2001:0:other:: (Teredo form of a denied IPv4)",
                         [](const Targets& t, const Case&, const std::string& tok) {
                           return tcpSend("2001:0:" + embedV4(t.other) + "::1", kTcpPort,
                                          payload(tok), kOpts);
                         }));
  cases.push_back(attack("connect-0.0.0.0",
                         "TCP to 0.0.0.0:PORT (this host, a listener on loopback)",
                         [](const Targets& t, const Case&, const std::string& tok) {
                           return tcpSend("0.0.0.0", t.loopbackPort, payload(tok), kOpts);
                         },
                         {"loopback", 0, false}));
  cases.push_back(attack("loopback4", "TCP to 127.0.0.1:PORT (a listener on loopback)",
                         [](const Targets& t, const Case&, const std::string& tok) {
                           return tcpSend("127.0.0.1", t.loopbackPort, payload(tok), kOpts);
                         },
                         {"loopback", 0, false}));
  cases.push_back(attack("loopback6", "TCP to [::1]:PORT (a listener on loopback)",
                         [](const Targets& t, const Case&, const std::string& tok) {
                           return tcpSend("::1", t.loopbackPort, payload(tok), kOpts);
                         },
                         {"loopback", 0, false}));
  cases.push_back(attack("loopback-v4-mapped", "TCP6 to ::ffff:127.0.0.1:PORT",
                         [](const Targets& t, const Case&, const std::string& tok) {
                           return tcpSend("::ffff:127.0.0.1", t.loopbackPort, payload(tok), kOpts);
                         },
                         {"loopback", 0, false}));

  // ---- DNS: always egressd's resolver, never forwarded for a denied name ----
  const Sink otherDnsUdp{"other", kDnsPort, true};
  const Sink otherDnsTcp{"other", kDnsPort, false};
  cases.push_back(sinkCase(
      "dns-other-server", "DNS/UDP query sent to other:53 instead of the resolver",
      [](const Targets& t, const Case&, const std::string& tok) {
        return dnsQuery(t.other, kDnsPort, tok + "." + t.allowedDomain, false, kOpts);
      },
      otherDnsUdp));
  cases.push_back(sinkCase(
      "dns-tcp-other-server", "DNS/TCP query sent to other:53",
      [](const Targets& t, const Case&, const std::string& tok) {
        return dnsQuery(t.other, kDnsPort, tok + "." + t.allowedDomain, true, kOpts);
      },
      otherDnsTcp));
  cases.push_back(
      sinkCase("dns-denied-name", "DNS/UDP query for a denied name (exfiltration in the name)",
               [](const Targets& t, const Case&, const std::string& tok) {
                 return dnsQuery(t.dns, kDnsPort, tok + "." + t.deniedDomain, false, kOpts);
               },
               {"dns", kDnsPort, true}));
  cases.push_back(sinkCase("dns-tcp-denied-name", "DNS/TCP query for a denied name",
                           [](const Targets& t, const Case&, const std::string& tok) {
                             return dnsQuery(t.dns, kDnsPort, tok + "." + t.deniedDomain, true,
                                             kOpts);
                           },
                           {"dns", kDnsPort, false}));

  // ---- the proxy: host-decided requests go where egressd resolves, not where aimed ----
  cases.push_back(sinkCase("http-direct-origin",
                           "HTTP straight to other:80 by IP (its origin, no allowed host)",
                           [](const Targets& t, const Case&, const std::string& tok) {
                             return httpGet(t.other, kHttpPort, t.other, tok, kOpts);
                           },
                           {"other", kHttpPort, false}));
  cases.push_back(sinkCase("http-denied-host", "HTTP to origin:80 with a denied Host",
                           [](const Targets& t, const Case&, const std::string& tok) {
                             return httpGet(t.origin, kHttpPort, tok + "." + t.deniedDomain, tok,
                                            kOpts);
                           },
                           {"origin", kHttpPort, false}));
  cases.push_back(sinkCase(
      "http-host-spoof", "HTTP to other:80 with an allowed Host (must go to the Host's address)",
      [](const Targets& t, const Case&, const std::string& tok) {
        return httpGet(t.other, kHttpPort, tok + "." + t.allowedDomain, tok, kOpts);
      },
      {"other", kHttpPort, false}));
  cases.push_back(sinkCase(
      "tls-sni-spoof", "TLS to other:443 with an allowed SNI (must go to the SNI's address)",
      [](const Targets& t, const Case&, const std::string& tok) {
        return tlsClientHello(t.other, kTlsPort, tok + "." + t.allowedDomain, kOpts);
      },
      {"other", kTlsPort, false}));

  // ---- cgroup games ----
  cases.push_back(attack(
      "child-cgroup", "make a child cgroup, move into it, TCP to other:7001",
      [](const Targets& t, const Case&, const std::string& tok) {
        return childCgroupConnect(t.other, kTcpPort, payload(tok), kOpts);
      },
      otherTcp));
  cases.push_back(attack(
      "leave-cgroup", "write own pid to the cgroup root, TCP to other:7001",
      [](const Targets& t, const Case&, const std::string& tok) {
        return leaveCgroupConnect(t.other, kTcpPort, payload(tok), kOpts);
      },
      otherTcp));
  const std::vector<std::string> independent = {"control-sockopt-harmless",
                                                "io-uring",
                                                "sockopt-ipv6-rthdr",
                                                "sockopt-ipv6-2292rthdr",
                                                "sockopt-ip-options",
                                                "nat64",
                                                "6to4",
                                                "teredo",
                                                "connect-0.0.0.0",
                                                "loopback4",
                                                "loopback6",
                                                "loopback-v4-mapped",
                                                "dns-other-server",
                                                "dns-tcp-other-server"};
  for (Case& c : cases) {
    c.policyIndependent =
        c.id.starts_with("socket-") ||
        std::find(independent.begin(), independent.end(), c.id) != independent.end();
    if (c.refusedErrnos.empty()) {
      c.refusedErrnos = {EPERM, EACCES};
    }
  }
  return cases;
}

std::string hostOf(const std::string& param) {
  auto slash = param.find('/');
  std::string hp = param.substr(0, slash);
  if (hp.starts_with("[")) {
    return hp.substr(1, hp.find(']') - 1);
  }
  auto colon = hp.rfind(':');
  return colon == std::string::npos ? hp : hp.substr(0, colon);
}

uint16_t portOf(const std::string& param, uint16_t fallback) {
  auto slash = param.find('/');
  std::string hp = param.substr(0, slash);
  auto colon = hp.rfind(':');
  if (colon == std::string::npos || (hp.starts_with("[") && hp.find(']') > colon)) {
    return fallback;
  }
  return static_cast<uint16_t>(std::atoi(hp.c_str() + colon + 1));
}

}  // namespace

std::string Sink::label() const {
  if (host.empty()) {
    return "";
  }
  return host + (port != 0 ? ":" + std::to_string(port) : "") + (udp ? "/udp" : "/tcp");
}

std::string Case::expectedText() const {
  if (evidence == Evidence::kSink) {
    return expect == Expect::kBlocked ? "never at " + sink.label() : "reaches " + sink.label();
  }
  if (expect == Expect::kAllowed) {
    return "not refused";
  }
  std::string names;
  for (int e : refusedErrnos) {
    const char* n = ::strerrorname_np(e);
    names += (names.empty() ? "" : "/") + std::string(n != nullptr ? n : "E?");
  }
  return "refused (" + names + ")";
}

const std::vector<Case>& builtinCases() {
  static const std::vector<Case> cases = makeBuiltinCases();
  return cases;
}

const Case* findBuiltinCase(const std::string& id) {
  for (const Case& c : builtinCases()) {
    if (c.id == id) {
      return &c;
    }
  }
  return nullptr;
}

Case sampleCase(const std::string& kind, const std::string& param, std::string* error) {
  Case c;
  c.param = param;
  c.sampleKind = kind;
  c.refusedErrnos = {EPERM, EACCES};
  if (kind == "deny-cidr") {
    c.id = "policy-denied " + param;
    c.attempt = "TCP to " + param + ":443 (deniedHosts)";
    c.role = Role::kDeniedSample;
    c.action = [](const Targets&, const Case& self, const std::string& tok) {
      return tcpSend(self.param, kTlsPort, payload(tok), kOpts);
    };
  } else if (kind == "deny-host") {
    c.id = "policy-denied " + param;
    c.attempt = "HTTP to origin:80 with Host " + param + " (deniedHosts)";
    c.role = Role::kDeniedSample;
    c.evidence = Evidence::kSink;
    c.sink = {"origin", kHttpPort, false};
    c.action = [](const Targets& t, const Case& self, const std::string& tok) {
      return httpGet(t.origin, kHttpPort, self.param, tok, kOpts);
    };
  } else if (kind == "unlisted-host") {
    c.id = "policy-denied " + param;
    c.attempt = "HTTP to origin:80 with Host " + param + " (not in allowedHosts)";
    c.role = Role::kDeniedSample;
    c.evidence = Evidence::kSink;
    c.sink = {"origin", kHttpPort, false};
    c.action = [](const Targets& t, const Case& self, const std::string& tok) {
      return httpGet(t.origin, kHttpPort, self.param, tok, kOpts);
    };
  } else if (kind == "allow-cidr") {
    c.id = "policy-allowed " + param;
    c.attempt = (param.ends_with("/udp") ? "UDP to " : "TCP to ") + hostOf(param) + ":" +
                std::to_string(portOf(param, kTcpPort)) + " (allow rule; no route here)";
    c.role = Role::kAllowedSample;
    c.expect = Expect::kAllowed;
    c.action = [](const Targets&, const Case& self, const std::string& tok) {
      const uint16_t port = portOf(self.param, kTcpPort);
      if (self.param.ends_with("/udp")) {
        return udpSend(hostOf(self.param), port, payload(tok), false);
      }
      return tcpSend(hostOf(self.param), port, payload(tok), kOpts);
    };
  } else if (kind == "allow-host") {
    c.id = "policy-allowed " + param;
    c.attempt = "HTTP to origin:80 with Host " + param + " (allowedHosts)";
    c.role = Role::kAllowedSample;
    c.expect = Expect::kAllowed;
    c.evidence = Evidence::kSink;
    c.sink = {"origin", kHttpPort, false};
    c.action = [](const Targets& t, const Case& self, const std::string& tok) {
      return httpGet(t.origin, kHttpPort, self.param, tok, kOpts);
    };
  } else {
    *error = "unknown sample kind '" + kind + "'";
  }
  return c;
}

std::string_view verdictName(Verdict v) {
  switch (v) {
    case Verdict::kPass:
      return "pass";
    case Verdict::kHole:
      return "HOLE";
    case Verdict::kControlFailed:
      return "CONTROL-FAILED";
    case Verdict::kWarn:
      return "warn";
    case Verdict::kError:
      return "ERROR";
    case Verdict::kSkip:
      break;
  }
  return "skip";
}

Verdict judge(const Case& c, const Observation& o) {
  if (c.evidence == Evidence::kCall && !o.call.ok && !o.tokenAtSink &&
      std::find(c.unsupportedErrnos.begin(), c.unsupportedErrnos.end(), o.call.err) !=
          c.unsupportedErrnos.end()) {
    return Verdict::kSkip;
  }
  bool asExpected = false;
  if (c.evidence == Evidence::kSink) {
    asExpected = (c.expect == Expect::kAllowed) == o.tokenAtSink;
  } else {
    const bool refused = !o.call.ok && std::find(c.refusedErrnos.begin(), c.refusedErrnos.end(),
                                                 o.call.err) != c.refusedErrnos.end();
    asExpected = c.expect == Expect::kBlocked ? refused && !o.tokenAtSink : !refused;
  }
  if (asExpected) {
    return Verdict::kPass;
  }
  switch (c.role) {
    case Role::kControl:
      return Verdict::kControlFailed;
    case Role::kAllowedSample:
      return Verdict::kWarn;
    case Role::kAttack:
    case Role::kDeniedSample:
      break;
  }
  return Verdict::kHole;
}

std::string observedText(const Case& c, const Observation& o) {
  std::string out = o.call.ok ? "call ok" : "failed: " + o.call.describe();
  if (o.call.ok && !o.call.detail.empty()) {
    out += " (" + o.call.detail + ")";
  }
  if (!c.sink.empty() || !o.reachedSinks.empty()) {
    if (o.reachedSinks.empty()) {
      out += "; reached no listener";
    } else {
      out += "; reached";
      for (const std::string& s : o.reachedSinks) {
        out += " " + s;
      }
    }
  }
  return out;
}

}  // namespace egressd::verify
