// What the proxy knows about one sandbox: its identity, the policy snapshot requests are
// judged by (swapped whole on reload, so a request sees one consistent policy), the resolver
// that picks its upstream addresses, and its metric series.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.h"
#include "dns/resolver.h"
#include "handlers/handler.h"
#include "handlers/host_binding.h"
#include "handlers/secret_store.h"
#include "metrics/metrics.h"
#include "policy/compile.h"
#include "policy/host_policy.h"
#include "policy/overrides.h"
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

// The handlers that may apply to a sandbox's requests: the policy's compiled
// outboundHandlers and every binding of a handler to hosts, from the policy and from the
// instance's runtime overrides. Immutable once in a view, like the rest of it.
struct HandlerBindings {
  std::shared_ptr<const handlers::HandlerSet> set;        // null: no handlers at all
  std::vector<handlers::HostBinding> instanceByHost;      // runtime setOutboundByHost
  std::vector<handlers::HostBinding> policyByHost;        // policy outboundByHost, file order
  std::optional<handlers::HostBinding> instanceOutbound;  // runtime setOutboundHandler
  std::optional<handlers::HostBinding> policyOutbound;    // policy outbound

  // docs/design.md precedence 3-5: instance per-host, policy per-host, instance catch-all,
  // policy catch-all. `from` (when given) gets "instance" or "policy". nullptr: no handler.
  // `host` is normalized (policy::normalizeHost).
  const handlers::HostBinding* pick(std::string_view host, std::string_view* from = nullptr) const;
  bool empty() const;

  // The policy's part: its outboundHandlers compiled (errors with FILE:LINE:COL), its
  // outboundByHost in file order and its outbound. Instance bindings are left empty.
  static Result<HandlerBindings> fromPolicy(const policy::Policy& policy);
};

struct SandboxPolicyView {
  std::string policyName;
  policy::HostPolicy hosts;
  InterceptSelection intercept;
  int denyStatus = 403;
  HandlerBindings handlers{};
  std::map<std::string, policy::SecretSource> secretSources{};  // the policy's `secrets:`
  policy::HttpRules http{};  // the policy's `http:` (docs/security.md)
  bool requireSni = false;   // policy::requiresSni()
  policy::DnsPolicy dns{};   // the sandbox resolver's answer for denied names and its limits
  std::vector<policy::AllowRule> nameRules{};  // name-based `allow` rules (policy::nameRules)
};

// What requests of a sandbox are judged by: the effective policy (instance host lists already
// merged), its compiled handlers (null: compiled from `effective` here) and the instance's
// handler overrides (null: none).
Result<std::shared_ptr<const SandboxPolicyView>> makePolicyView(
    const policy::Policy& effective, std::shared_ptr<const handlers::HandlerSet> compiled = nullptr,
    const policy::InstanceOverrides* overrides = nullptr);

// The addresses a sandbox's resolver answered it (for allowed names), with when each stops
// counting: what dns.requireResolved checks IP-literal and no-SNI connections against.
class ResolvedAddresses {
 public:
  void record(const std::vector<IpAddress>& addrs, std::chrono::steady_clock::time_point until) {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    if (until_.size() >= kMaxEntries) {
      std::erase_if(until_, [now](const auto& item) { return item.second <= now; });
      if (until_.size() >= kMaxEntries) {
        until_.clear();  // a flood of distinct answers: forget rather than grow
      }
    }
    for (const IpAddress& a : addrs) {
      auto& entry = until_[a];
      entry = std::max(entry, until);
    }
  }
  bool contains(const IpAddress& addr) const {
    const auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex_);
    auto it = until_.find(addr);
    return it != until_.end() && it->second > now;
  }

 private:
  static constexpr size_t kMaxEntries = 65536;
  mutable std::mutex mutex_;
  std::unordered_map<IpAddress, std::chrono::steady_clock::time_point, IpAddressHash> until_;
};

struct SandboxContext {
  std::string id;
  uint32_t slot = 0;
  std::string cgroupPath;  // "" when not known (then no socket of it is looked at)
  std::string netnsPath;   // "" = the daemon's own netns
  std::atomic<std::shared_ptr<const SandboxPolicyView>> policy;
  std::shared_ptr<dns::Resolver> resolver;
  // The sandbox's interception CA and its minted leaves (null: no interception possible).
  std::shared_ptr<tls::LeafCache> leaves;
  // API-set secret values, shared by all sandboxes of the daemon (null: only the policy's
  // file/env sources resolve).
  std::shared_ptr<handlers::SecretStore> secrets;
  std::atomic<uint64_t> openConnections{0};
  ResolvedAddresses resolved;  // filled by the DNS server, read by dns.requireResolved

  // Per-sandbox series, resolved once (see metrics::Registry).
  metrics::Histogram* requestDuration = nullptr;
  metrics::Histogram* upstreamConnect = nullptr;
  metrics::Counter* bytesFromSandbox = nullptr;
  metrics::Counter* bytesToSandbox = nullptr;
  metrics::Counter* connectionsAccepted = nullptr;
  // Refused with a 503 because the proxy was at ProxyConfig::maxConnections.
  metrics::Counter* connectionsRefused = nullptr;

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
