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
  if (proxy.dnsPort != 0) {
    // egressd's resolver listens on 127.0.0.1 and ::1 (in the sandbox's netns), so IPv4
    // and IPv6 queries each have a target of their own family.
    c.flags |= EGRESSD_SB_HAS_RESOLVER;
    c.resolver4 = proxy.addr4;
    c.resolver6 = proxy.addr6;
    c.resolver_port = proxy.dnsPort;
  }
  for (size_t i = 0; i < knobs.proxyPorts.size() && i < EGRESSD_MAX_PROXY_PORTS; ++i) {
    c.proxied_ports[i] = knobs.proxyPorts[i];
  }
  return req;
}

}  // namespace egressd::daemon
