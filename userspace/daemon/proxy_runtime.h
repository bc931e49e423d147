// The userspace half of egressd that runs beside the enforcer: the proxy, the resolver it
// uses for upstreams, the audit log and the metrics endpoint. Shared by `egressd daemon`
// and `egressd run`.
#pragma once

#include <memory>
#include <string>

#include "bpf/abi.h"
#include "common/result.h"
#include "policy/policy.h"
#include "proxy/listener_reservation.h"

namespace egressd::daemon {

struct ProxyOptions {
  bool enabled = true;           // false: proxied ports stay reserved, connections refused
  std::string auditLog;          // file path, "-" for stdout, "" for none
  std::string metrics;           // "unix:/path", "127.0.0.1:9464", "" for none
  std::string upstreamResolver;  // "ip:port"; "" = the policy's dns.resolver, else resolv.conf
  unsigned threads = 0;          // 0 = one per CPU
  unsigned headerTimeoutMs = 15000;
  unsigned idleTimeoutMs = 60000;
};

class ProxyRuntime {
 public:
  static Result<std::unique_ptr<ProxyRuntime>> start(const ProxyOptions& options,
                                                     const std::string& pinRoot);
  ~ProxyRuntime();

  // Serves sandbox `id` (kernel slot `slot`) on `listener`, judging requests by `policy`.
  Status addSandbox(const std::string& id, uint32_t slot, const policy::Policy& policy,
                    proxy::ListenerReservation listener);
  // Swaps the sandbox's policy: requests from now on (also on open connections) see it.
  Status updatePolicy(const std::string& id, const policy::Policy& policy);
  void removeSandbox(const std::string& id);

  // A kernel denial from the ring buffer, as an audit line (layer "kernel").
  void auditKernelEvent(const egressd_event& event, const std::string& sandboxId,
                        const std::string& ruleName);
  void flushAudit();

  struct Impl;

 private:
  explicit ProxyRuntime(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace egressd::daemon
