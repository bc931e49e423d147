// Where a forwarded request goes once its host is judged: the addresses of its own host on
// the port the sandbox asked for, or a handler's reroute target; and which open or pooled
// upstream connections may carry it. Pure.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/ip_address.h"
#include "handlers/reroute.h"

namespace egressd::proxy {

struct UpstreamTarget {
  // Names the upstream connections the request may reuse: "host|port" for its own host,
  // "reroute|tcp|host|port", "reroute|tls|host|port" or "reroute|unix|path" for a reroute
  // target (so a rerouted connection never carries a plain forward, nor the reverse).
  std::string key;
  std::vector<IpAddress> addrs;  // filled in once resolved; empty for a unix socket
  uint16_t port = 0;
  std::optional<handlers::RerouteTarget> reroute;

  // Whether a connection to `addr` may carry the request: only while `addr` is still one of
  // `addrs` (a policy change or a new DNS answer may have taken it away); a reroute target
  // is the operator's, so any.
  bool mayUse(const IpAddress& addr) const;
};

// `host` on `port`, or `reroute` (its own port) when a handler rerouted the request.
UpstreamTarget upstreamTargetFor(const std::string& host, uint16_t port,
                                 std::optional<handlers::RerouteTarget> reroute);

}  // namespace egressd::proxy
