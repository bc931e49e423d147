// The control-plane daemon's service: named policies (control_model::PolicyRegistry),
// sandboxes with their instance overrides, and the secret store — and every change the
// control API makes to them. Each change is validated whole before anything moves (bad
// input changes nothing), then applied to the kernel (double-buffered rule swap), the proxy
// (one atomic view swap: the next request, also on an open keep-alive connection, sees it),
// the sandbox's established sockets that the tighter kernel rules now deny (SOCK_DESTROY),
// all by SandboxLifecycle, and then the state file (control_model::StateStore).
//
// Methods return JSON bodies or an Error with the codes of control_model/errors.h;
// control_routes (the API adapter) turns them into responses. All public methods take one
// lock; the API server calls them one at a time anyway, the lock is for SIGHUP reloads
// coming from the main thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "audit/audit_tail.h"
#include "common/result.h"
#include "control_model/override_edits.h"
#include "control_model/policy_registry.h"
#include "control_model/state_store.h"
#include "daemon/proxy_runtime.h"
#include "daemon/sandbox_lifecycle.h"
#include "daemon/sandbox_target.h"
#include "handlers/secret_store.h"
#include "loader/enforcer.h"
#include "policy/policy.h"

namespace egressd::daemon {

struct ManagerOptions {
  std::string pinRoot;
  std::string stateDir = "/var/lib/egressd";
  std::string policyDir = "/etc/egressd/policies";
  std::string cgroupParent;  // for createCgroup; "" = <cgroup2 mount>/egressd
  std::string socketPath;    // reported by /v1/status
  bool persistSecrets = false;
  // How often every sandbox's cgroup is checked: a sandbox whose cgroup is gone is deleted
  // (see reapVanishedCgroups). 0 = never (tests of the check itself call it directly).
  std::chrono::milliseconds cgroupCheckInterval{1000};
};

class SandboxManager {
 public:
  using Json = nlohmann::json;
  using HostListKind = control_model::HostListKind;

  static Result<std::unique_ptr<SandboxManager>> create(const ManagerOptions& options,
                                                        const ProxyOptions& proxy);
  ~SandboxManager();

  // Start-up: the policy files, then the state file's policies, secrets and sandboxes
  // (re-armed: pinned links are adopted, so enforcement never paused).
  Status restore();
  // Deletes every sandbox whose cgroup is gone (or was replaced by a new one at the same
  // path: its id changed), with a log line and an audit record each. The sandbox cannot
  // enforce anything any more: its links went with the cgroup, and a same-named cgroup made
  // later (a restarted container) was never armed. Runs every cgroupCheckInterval.
  void reapVanishedCgroups();
  // SIGHUP and POST /v1/reload: every policy file again, all or nothing.
  Result<Json> reloadPolicyFiles();
  void flush();

  Json status();
  Result<Json> createSandbox(const CreateSandboxRequest& request);
  // `requiredOwner`: delete only if the sandbox's owner is that (EPERM otherwise), so the pod
  // watcher never deletes a sandbox an operator made meanwhile under the same id.
  Result<Json> deleteSandbox(const std::string& id,
                             const std::optional<std::string>& requiredOwner = std::nullopt);
  // Every sandbox's id, owner, policy and instance catch-all handler (the pod watcher's view).
  struct Ownership {
    std::string id;
    std::string owner;
    std::string policyName;
    std::optional<policy::HandlerRef> outbound;
  };
  std::vector<Ownership> sandboxOwnership();
  // An audit record of the control layer (the pod watcher's creates and deletes).
  void auditControlEvent(const audit::AuditRecord& record);
  Json listSandboxes();
  Result<Json> showSandbox(const std::string& id);
  // What a client needs to start a command inside the sandbox with `egressd run`'s
  // hardening (egressctl run): its cgroup, netns, CA files, the policy's secret sources to
  // hide or refuse, and egressd's directories to hide.
  Result<Json> spawnInfo(const std::string& id);

  Result<Json> setHosts(const std::string& id, HostListKind kind,
                        const std::vector<std::string>& hosts);
  Result<Json> addHost(const std::string& id, HostListKind kind, const std::string& host);
  Result<Json> removeHost(const std::string& id, HostListKind kind, const std::string& host);
  Result<Json> setOutboundByHost(const std::string& id, const std::string& host,
                                 const policy::HandlerRef& ref);
  Result<Json> removeOutboundByHost(const std::string& id, const std::string& host);
  Result<Json> setOutboundByHosts(const std::string& id,
                                  const std::map<std::string, policy::HandlerRef>& refs);
  Result<Json> setOutboundHandler(const std::string& id, const policy::HandlerRef& ref);
  Result<Json> removeOutboundHandler(const std::string& id);

  Result<Json> setSecret(const std::string& name, std::string value);
  Result<Json> removeSecret(const std::string& name);
  Json listSecrets();

  Result<Json> applyPolicy(const std::string& yaml, const std::string& source);
  Result<Json> validatePolicy(const std::string& yaml, const std::string& source);
  Json listPolicies();
  Result<Json> showPolicy(const std::string& name);
  Result<Json> auditTail(const audit::AuditQuery& query);

  explicit SandboxManager(const ManagerOptions& options);

 private:
  using Change = std::function<Status(SandboxRecord&, const control_model::PolicyEntry&)>;
  // Checks a changed copy of the record against its policy, then applies it and saves
  // state; on any error the record stays as it was.
  Result<Json> changeSandbox(const std::string& id, const Change& change);
  // The registry's next set, checked against every sandbox before it replaces the current
  // one; the sandboxes whose effective policy changed are then updated (ids in `touched`).
  Status swapPolicies(control_model::PolicySet next, std::vector<std::string>* touched);
  Status restoreFrom(const control_model::DaemonState& state);
  // Undoes a sandbox that lost its cgroup: no cgroup removal, the rest as deleteSandbox.
  void forgetVanishedSandbox(const std::string& id, const std::string& why);
  void checkCgroupsPeriodically(const std::stop_token& stop);
  Json detailJson(const SandboxRecord& record) const;
  // Saves the state file; a failure is logged (the change it records is in force already).
  void saveStateLogged() const;
  Status saveState() const;

  ManagerOptions options_;
  ProxyOptions proxyOptions_;
  loader::Enforcer enforcer_;
  std::unique_ptr<ProxyRuntime> runtime_;
  std::unique_ptr<SandboxLifecycle> lifecycle_;
  std::shared_ptr<handlers::SecretStore> secrets_;
  control_model::PolicyRegistry registry_;
  control_model::StateStore stateStore_;
  std::map<std::string, SandboxRecord> sandboxes_;
  // API secret names whose values were not kept across a restart (persistSecrets off).
  std::vector<std::string> missingSecretNames_;
  mutable std::recursive_mutex mutex_;
  // Last, so it stops first: the check it runs uses everything above.
  std::condition_variable_any checkWake_;
  std::mutex checkWakeMutex_;
  std::jthread cgroupChecker_;
};

}  // namespace egressd::daemon
