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

asio::awaitable<UpstreamChoice> chooseUpstream(const SandboxPolicyView& view,
                                               dns::Resolver& resolver,
                                               const policy::NormalizedHost& host, uint16_t port);

}  // namespace egressd::proxy
