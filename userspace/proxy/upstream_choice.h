// Where a host-decided connection may go: the host policy's decision on the name (Host
// header or TLS SNI) and, for an allowed name, the addresses egressd's own resolution
// returned that pass the CIDR rules on their own. The address the sandbox connected to is
// never an input: a request for an allowed name sent to another IP goes to the name's IP.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <cstdint>
#include <string>
#include <vector>

#include "common/ip_address.h"
#include "dns/resolver.h"
#include "policy/host_policy.h"
#include "proxy/sandbox_context.h"

namespace egressd::proxy {

struct UpstreamChoice {
  std::string decision = "allow";  // allow | deny | error (the name did not resolve)
  std::string reason;              // HostDecision reasons, or "resolve_failed"
  std::string rule;
  std::string detail;
  std::vector<IpAddress> addrs;  // allow: in the resolver's order

  bool allowed() const { return decision == "allow"; }
};

// Connects `socket` to the first of `addrs` that accepts on `port`, in order. Stops early
// once `timedOut` is set (the connection's watchdog cancels the socket at its deadline).
struct ConnectOutcome {
  bool connected = false;
  IpAddress addr;            // the last address tried (the connected one on success)
  std::string endpointText;  // "198.18.3.3:443", "[2001:db8::3]:443"
  std::string errors;        // per address tried: "ip:port: reason; ..."
};
asio::awaitable<ConnectOutcome> connectFirst(asio::ip::tcp::socket& socket,
                                             const std::vector<IpAddress>& addrs, uint16_t port,
                                             const bool& timedOut);

// `resolved` (may be null): the sandbox's answered addresses, for dns.requireResolved.
asio::awaitable<UpstreamChoice> chooseUpstream(const SandboxPolicyView& view,
                                               dns::Resolver& resolver,
                                               const policy::NormalizedHost& host, uint16_t port,
                                               const ResolvedAddresses* resolved = nullptr);

// dns.requireResolved: a deny choice ("unresolved_address") when the policy asks for it and
// `addr` is not among the addresses the sandbox's resolver answered it; nullopt otherwise.
std::optional<UpstreamChoice> requireResolved(const SandboxPolicyView& view,
                                              const ResolvedAddresses* resolved,
                                              const IpAddress& addr);

// chooseUpstream() with the host decision already made (`decision`, e.g. one a handler
// made): denied -> deny; an IP literal -> that address; a name -> its resolved addresses
// that judgeResolvedAddress() lets through.
asio::awaitable<UpstreamChoice> resolveUpstream(const SandboxPolicyView& view,
                                                dns::Resolver& resolver,
                                                const policy::NormalizedHost& host, uint16_t port,
                                                const policy::HostDecision& decision,
                                                const ResolvedAddresses* resolved = nullptr);

// Whether a handler bound to a host may run for it (docs/design.md precedence): when the host
// policy allows the host, or denies it only by default (`internet_disabled`, precedence 6,
// which applies only when no handler is bound). deniedHosts, allowedHosts, CIDR rules and
// special ranges come first and no handler overrides them.
inline bool handlerMayApply(const policy::HostDecision& decision) {
  return decision.allowed() || decision.reason == "internet_disabled";
}

// The decision for a host the policy left to its default deny (`internet_disabled`) when a
// handler bound to it forwards the request (docs/design.md precedence 6 applies only without a
// handler): allowed with reason "handler" and rule "handler NAME", and judged like a name
// only enableInternet allowed - its resolved private, special and embedded-IPv4 addresses
// are refused unless an allow rule covers them (no DNS rebinding through a handler). An
// IP-literal host is allowed only when it is an ordinary address (an allow rule covering
// it would have allowed it already).
policy::HostDecision handlerDecision(const policy::NormalizedHost& host,
                                     const std::string& handler);

}  // namespace egressd::proxy
