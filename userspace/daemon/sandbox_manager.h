// The control-plane daemon's model: named policies, sandboxes with their instance overrides,
// and the secret store — and every change the control API makes to them. Each change is
// validated whole before anything moves (bad input changes nothing), then applied to the
// kernel (double-buffered rule swap), the proxy (one atomic view swap: the next request,
// also on an open keep-alive connection, sees it), the sandbox's established sockets that
// the tighter kernel rules now deny (SOCK_DESTROY), and the state file, in that order.
//
// Methods return control::ApiResponse directly: this class is the API's implementation and
// its errors are the API's errors (status, stable code, a message a person can act on).
// All public methods take one lock; the API server calls them one at a time anyway, the
// lock is for SIGHUP reloads coming from the main thread.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "control/api.h"
#include "daemon/commands.h"
#include "daemon/proxy_runtime.h"
#include "daemon/sandbox_request.h"
#include "handlers/handler.h"
#include "handlers/secret_store.h"
#include "loader/enforcer.h"
#include "policy/overrides.h"
#include "policy/policy.h"

namespace egressd::daemon {

struct ManagerOptions {
  std::string pinRoot;
  std::string stateDir = "/var/lib/egressd";
  std::string policyDir = "/etc/egressd/policies";
  std::string cgroupParent;  // for createCgroup; "" = <cgroup2 mount>/egressd
  std::string socketPath;    // reported by /v1/status
  bool persistSecrets = false;
};

class SandboxManager {
 public:
  static Result<std::unique_ptr<SandboxManager>> create(const ManagerOptions& options,
                                                        const ProxyOptions& proxy);
  ~SandboxManager();

  // Start-up: the policy files, then the state file's policies, secrets and sandboxes
  // (re-armed: pinned links are adopted, so enforcement never paused).
  Status restore();
  // SIGHUP and POST /v1/reload: every policy file again, all or nothing.
  control::ApiResponse reloadPolicyFiles();
  void flush();

  // --- the API (control::Router handlers call these with validated shapes)
  control::ApiResponse status();
  control::ApiResponse createSandbox(const control::ApiRequest& request);
  control::ApiResponse deleteSandbox(const std::string& id);
  control::ApiResponse listSandboxes();
  control::ApiResponse showSandbox(const std::string& id);
  // What a client needs to start a command inside the sandbox with `egressd run`'s
  // hardening (egressctl run): its cgroup, netns, CA files, the policy's secret sources to
  // hide or refuse, and egressd's directories to hide.
  control::ApiResponse spawnInfo(const std::string& id);

  enum class HostListKind { kAllowed, kDenied };
  control::ApiResponse setHosts(const std::string& id, HostListKind kind,
                                const std::vector<std::string>& hosts);
  control::ApiResponse addHost(const std::string& id, HostListKind kind, const std::string& host);
  control::ApiResponse removeHost(const std::string& id, HostListKind kind,
                                  const std::string& host);
  control::ApiResponse setOutboundByHost(const std::string& id, const std::string& host,
                                         const policy::HandlerRef& ref);
  control::ApiResponse removeOutboundByHost(const std::string& id, const std::string& host);
  control::ApiResponse setOutboundByHosts(const std::string& id,
                                          const std::map<std::string, policy::HandlerRef>& refs);
  control::ApiResponse setOutboundHandler(const std::string& id, const policy::HandlerRef& ref);
  control::ApiResponse removeOutboundHandler(const std::string& id);

  control::ApiResponse setSecret(const std::string& name, std::string value);
  control::ApiResponse removeSecret(const std::string& name);
  control::ApiResponse listSecrets();

  control::ApiResponse applyPolicy(const std::string& yaml, const std::string& source);
  control::ApiResponse validatePolicy(const std::string& yaml, const std::string& source);
  control::ApiResponse listPolicies();
  control::ApiResponse showPolicy(const std::string& name);
  struct AuditQuery {
    size_t lines = 50;
    std::string sandbox;  // "" = any; likewise layer and decision
    std::string layer;
    std::string decision;
    // Set: the records written after this byte offset of the log (a previous answer's
    // "next"), for `audit tail -f`; unset: the last `lines` records.
    std::optional<uint64_t> after;
  };
  control::ApiResponse auditTail(const AuditQuery& query);

  struct PolicyEntry {
    policy::Policy policy;
    std::shared_ptr<const handlers::HandlerSet> handlers;
    std::string yaml;
    std::string source;  // "file:/etc/egressd/policies/a.yaml" or "api"
    bool fromApi = false;
  };
  struct SandboxRecord {
    std::string id;
    std::string policyName;
    std::string cgroupPath;
    bool createdCgroup = false;
    std::string netns;
    policy::InstanceOverrides overrides;
    ProxyTarget proxy;
    uint64_t closedSockets = 0;
  };

  explicit SandboxManager(const ManagerOptions& options);

 private:
  struct Compiled;  // a sandbox's effective policy, ready to apply
  Result<Compiled> compile(const SandboxRecord& record, const PolicyEntry& entry) const;
  // Applies a compiled policy: kernel, proxy view, socket reaping. `first`: arm anew.
  Status applyCompiled(SandboxRecord& record, const Compiled& compiled);
  // Checks a changed record against its policy, then applies it and saves state; on any
  // error the record stays as it was.
  control::ApiResponse changeSandbox(const std::string& id,
                                     const std::function<Status(SandboxRecord&)>& change);
  Status armNew(SandboxRecord& record, const PolicyEntry& entry);
  void reapDeniedSockets(SandboxRecord& record, const Compiled& compiled);
  Result<std::map<std::string, PolicyEntry>> loadPolicyDir() const;
  Status swapPolicies(std::map<std::string, PolicyEntry> next, std::vector<std::string>* touched);
  nlohmann::json detailJson(const SandboxRecord& record) const;
  Status saveState() const;
  Status restoreFrom(const nlohmann::json& state, const std::string& statePath);
  const PolicyEntry* policyFor(const SandboxRecord& record) const;

  ManagerOptions options_;
  ProxyOptions proxyOptions_;
  loader::Enforcer enforcer_;
  std::unique_ptr<ProxyRuntime> runtime_;
  std::shared_ptr<handlers::SecretStore> secrets_;
  std::map<std::string, PolicyEntry> policies_;
  std::map<std::string, SandboxRecord> sandboxes_;
  // API secret names whose values were not kept across a restart (persistSecrets off).
  std::vector<std::string> missingSecretNames_;
  mutable std::recursive_mutex mutex_;
};

}  // namespace egressd::daemon
