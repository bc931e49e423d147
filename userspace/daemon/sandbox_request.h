// Policy + proxy target -> what the loader writes for one sandbox.
#pragma once

#include <string>

#include "common/result.h"
#include "loader/enforcer.h"
#include "policy/policy.h"

namespace egressd::daemon {

// Where the kernel sends a sandbox's proxied connections.
struct ProxyTarget {
  egressd_addr addr4{};  // v4-mapped
  egressd_addr addr6{};
  uint16_t port = 0;
  uint64_t netnsCookie = 0;
  // egressd's resolver for the sandbox: UDP and TCP on the same loopback addresses, the
  // kernel's target for every DNS query (0 = none: DNS is denied).
  uint16_t dnsPort = 0;
};

Result<loader::SandboxRequest> buildSandboxRequest(const std::string& id,
                                                   const std::string& cgroupPath,
                                                   const policy::Policy& policy,
                                                   const ProxyTarget& proxy, uint32_t extraFlags);

}  // namespace egressd::daemon
