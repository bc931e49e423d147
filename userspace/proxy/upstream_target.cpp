#include "proxy/upstream_target.h"

#include <algorithm>
#include <utility>

namespace egressd::proxy {

bool UpstreamTarget::mayUse(const IpAddress& addr) const {
  return reroute.has_value() || std::find(addrs.begin(), addrs.end(), addr) != addrs.end();
}

UpstreamTarget upstreamTargetFor(const std::string& host, uint16_t port,
                                 std::optional<handlers::RerouteTarget> reroute) {
  UpstreamTarget target;
  target.port = port;
  target.key = host + "|" + std::to_string(port);
  target.reroute = std::move(reroute);
  if (!target.reroute) {
    return target;
  }
  const handlers::RerouteTarget& r = *target.reroute;
  target.port = r.port;
  switch (r.kind) {
    case handlers::RerouteTarget::Kind::kTcp:
      target.key = "reroute|tcp|" + r.host + "|" + std::to_string(r.port);
      break;
    case handlers::RerouteTarget::Kind::kTls:
      target.key = "reroute|tls|" + r.host + "|" + std::to_string(r.port);
      break;
    case handlers::RerouteTarget::Kind::kUnix:
      target.key = "reroute|unix|" + r.path;
      break;
  }
  return target;
}

}  // namespace egressd::proxy
