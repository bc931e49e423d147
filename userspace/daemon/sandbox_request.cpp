#include "daemon/sandbox_request.h"

#include "policy/compile.h"

namespace egressd::daemon {

Result<loader::SandboxRequest> buildSandboxRequest(const std::string& id,
                                                   const std::string& cgroupPath,
                                                   const policy::Policy& policy,
                                                   const ProxyTarget& proxy, uint32_t extraFlags) {
  auto rules = policy::compileKernelRules(policy);
  if (!rules.ok()) {
    return std::move(rules).error().wrap("compiling " + policy.sourceName);
  }
  policy::SandboxKnobs knobs = policy::kernelKnobs(policy);

  loader::SandboxRequest req;
  req.id = id;
  req.cgroupPath = cgroupPath;
  req.rules = std::move(*rules);

  egressd_sandbox_config& c = req.config;
  c.flags = knobs.sandboxFlags() | extraFlags;
  if (proxy.port != 0) {
    c.flags |= EGRESSD_SB_HAS_PROXY;
    c.proxy4 = proxy.addr4;
    c.proxy6 = proxy.addr6;
    c.proxy_port = proxy.port;
    c.netns_cookie = proxy.netnsCookie;
  }
  if (knobs.resolver) {
    const policy::Endpoint& r = *knobs.resolver;
    egressd_addr addr = policy::toAbiAddr(r);
    c.resolver_port = r.port;
    if (r.family == AF_INET) {
      // IPv6 sockets reach an IPv4 resolver through its v4-mapped form (TCP and
      // connected UDP; the kernel refuses that rewrite for unconnected UDP sendmsg6).
      c.resolver4 = addr;
      c.resolver6 = addr;
    } else {
      c.resolver6 = addr;  // IPv4 sockets cannot reach it: their DNS is denied
    }
  }
  for (size_t i = 0; i < knobs.proxyPorts.size() && i < EGRESSD_MAX_PROXY_PORTS; ++i) {
    c.proxied_ports[i] = knobs.proxyPorts[i];
  }
  return req;
}

}  // namespace egressd::daemon
