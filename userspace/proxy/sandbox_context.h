// What the proxy knows about one sandbox: its identity, the policy snapshot requests are
// judged by (swapped whole on reload, so a request sees one consistent policy), the resolver
// that picks its upstream addresses, and its metric series.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "dns/resolver.h"
#include "metrics/metrics.h"
#include "policy/host_policy.h"
#include "tls/certificate_authority.h"

namespace egressd::proxy {

// Which TLS server names the proxy intercepts (policy interceptHttps): all, none, or those
// matching a list of host globs. Names are normalized (lowercase, no trailing dot).
struct InterceptSelection {
  bool all = false;
  std::vector<std::string> globs;

  static InterceptSelection fromPolicy(const policy::InterceptHttps& intercept);
  bool matches(std::string_view name) const;
};

struct SandboxPolicyView {
  std::string policyName;
  policy::HostPolicy hosts;
  InterceptSelection intercept;
  int denyStatus = 403;
};

struct SandboxContext {
  std::string id;
  uint32_t slot = 0;
  std::atomic<std::shared_ptr<const SandboxPolicyView>> policy;
  std::shared_ptr<dns::Resolver> resolver;
  // The sandbox's interception CA and its minted leaves (null: no interception possible).
  std::shared_ptr<tls::LeafCache> leaves;
  std::atomic<uint64_t> openConnections{0};

  // Per-sandbox series, resolved once (see metrics::Registry).
  metrics::Histogram* requestDuration = nullptr;
  metrics::Histogram* upstreamConnect = nullptr;
  metrics::Counter* bytesFromSandbox = nullptr;
  metrics::Counter* bytesToSandbox = nullptr;
  metrics::Counter* connectionsAccepted = nullptr;

  // egressd_requests_total{sandbox, layer="proxy", decision, reason}, resolved once per
  // (decision, reason): the registry lookup builds and escapes label strings.
  metrics::Counter& decisionCounter(metrics::Registry& registry, const std::string& decision,
                                    const std::string& reason) {
    std::string key = decision + '/' + reason;
    std::lock_guard lock(countersMutex_);
    auto it = decisionCounters_.find(key);
    if (it == decisionCounters_.end()) {
      metrics::Counter* counter = &registry.counter(
          "egressd_requests_total", "Decisions, by sandbox, layer, decision and reason.",
          {{"sandbox", id}, {"layer", "proxy"}, {"decision", decision}, {"reason", reason}});
      it = decisionCounters_.emplace(std::move(key), counter).first;
    }
    return *it->second;
  }

  std::shared_ptr<const SandboxPolicyView> currentPolicy() const {
    return policy.load(std::memory_order_acquire);
  }

 private:
  std::mutex countersMutex_;
  std::unordered_map<std::string, metrics::Counter*> decisionCounters_;
};

}  // namespace egressd::proxy
