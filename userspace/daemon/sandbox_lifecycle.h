// One control-plane sandbox's life in the kernel and the proxy: placed in a cgroup, armed
// anew (kernel rules, a reserved proxy port and DNS sockets, the proxy serving it),
// updated with a compiled policy (rules swapped, proxy view swapped, established sockets
// the new rules deny ended), and detached. Errors are Result/Error; the API adapter turns
// them into responses.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "common/result.h"
#include "control_model/policy_registry.h"
#include "control_model/state_store.h"
#include "daemon/proxy_runtime.h"
#include "daemon/sandbox_request.h"
#include "loader/enforcer.h"
#include "policy/overrides.h"
#include "policy/policy.h"
#include "proxy/sandbox_context.h"

namespace egressd::daemon {

// What state.json keeps of a sandbox, plus what only the running daemon has.
struct SandboxRecord : control_model::StoredSandbox {
  ProxyTarget proxy;
  uint64_t closedSockets = 0;
  // The kernel's id of the cgroup armed; another id at cgroupPath means a new cgroup.
  uint64_t cgroupId = 0;
};

// A sandbox's effective policy (policy + instance overrides), ready to apply.
struct CompiledSandbox {
  policy::Policy effective;
  std::shared_ptr<const proxy::SandboxPolicyView> view;
};

// Checks the record's instance overrides against `entry` (handler references, host lists)
// and builds both halves, kernel and proxy, without applying anything.
Result<CompiledSandbox> compileSandbox(const SandboxRecord& record,
                                       const control_model::PolicyEntry& entry);

// Where a new sandbox's cgroup comes from: an existing one, or one egressd creates.
struct CgroupChoice {
  std::optional<std::string> existing;  // the request's "cgroup"
  bool create = false;                  // the request's "createCgroup"
  std::string parent;                   // --cgroup-parent; "" = <cgroup2 mount>/egressd
};
struct PlacedCgroup {
  std::string path;
  bool created = false;
};
// Resolves (or creates) the sandbox's cgroup; refuses the root cgroup (EINVAL). A cgroup
// created here and then not used must be removed with removeCreatedCgroup.
Result<PlacedCgroup> placeCgroup(const std::string& sandboxId, const CgroupChoice& choice);

// Ends the processes of a cgroup egressd created, then removes it.
void removeCreatedCgroup(const std::string& path);

class SandboxLifecycle {
 public:
  SandboxLifecycle(std::string pinRoot, bool proxyEnabled, loader::Enforcer& enforcer,
                   ProxyRuntime& runtime);

  // Arms the sandbox for the first time (or adopts its pinned links on a restart) and
  // starts serving it; sets record.proxy. On error the caller undoes with stopServing()
  // and detachKernel().
  Status armNew(SandboxRecord& record, const control_model::PolicyEntry& entry);
  // Applies a compiled policy to an armed sandbox: kernel rules, proxy view, then ends
  // the established sockets the new rules deny (counted in record.closedSockets).
  Status apply(SandboxRecord& record, const CompiledSandbox& compiled);
  // Stops serving the sandbox (its listener, CA files and metric series go).
  void stopServing(const std::string& id);
  // Detaches the sandbox's kernel enforcement (its pinned links and slot).
  Status detachKernel(const std::string& id);

 private:
  void reapDeniedSockets(SandboxRecord& record, const CompiledSandbox& compiled);

  std::string pinRoot_;
  bool proxyEnabled_;
  loader::Enforcer& enforcer_;
  ProxyRuntime& runtime_;
};

}  // namespace egressd::daemon
