// What the proxy knows about one sandbox: its identity, the policy snapshot requests are
// judged by (swapped whole on reload, so a request sees one consistent policy), the resolver
// that picks its upstream addresses, and its metric series.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "dns/resolver.h"
#include "metrics/metrics.h"
#include "policy/host_policy.h"

namespace egressd::proxy {

struct SandboxPolicyView {
  std::string policyName;
  policy::HostPolicy hosts;
  int denyStatus = 403;
};

struct SandboxContext {
  std::string id;
  uint32_t slot = 0;
  std::atomic<std::shared_ptr<const SandboxPolicyView>> policy;
  std::shared_ptr<dns::Resolver> resolver;
  std::atomic<uint64_t> openConnections{0};

  // Per-sandbox series, resolved once (see metrics::Registry).
  metrics::Histogram* requestDuration = nullptr;
  metrics::Histogram* upstreamConnect = nullptr;
  metrics::Counter* bytesFromSandbox = nullptr;
  metrics::Counter* bytesToSandbox = nullptr;
  metrics::Counter* connectionsAccepted = nullptr;

  std::shared_ptr<const SandboxPolicyView> currentPolicy() const {
    return policy.load(std::memory_order_acquire);
  }
};

}  // namespace egressd::proxy
