// The watcher's one decision: the sandboxes this node's pods want (pod_sandbox) against the
// sandboxes the daemon has, which of them the watcher made (their owner names a pod) and
// which an operator made. Pure, so every case is a unit test; pod_watcher executes the plan.
//
// Sandboxes the watcher did not make are never in a plan: a pod whose id is an operator's
// sandbox is reported as a conflict and gets nothing.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "kubernetes/pod_sandbox.h"

namespace egressd::kubernetes {

// A sandbox of the daemon as the watcher sees it.
struct ExistingSandbox {
  std::string id;
  std::string owner;  // "" = made by an operator (the API); kOwnerPrefix + uid = by the watcher
  std::string policy;
  std::optional<OutboundBinding> outbound;  // its instance catch-all handler
};

struct Removal {
  std::string id;
  std::string why;     // "no pod on this node asks for it any more", "pod ... was made anew"
  std::string podKey;  // namespace/name when a pod still maps to the id, else ""
};

struct Conflict {
  std::string id;
  std::string why;
};

struct ReconcilePlan {
  // In this order: removals first (a replaced pod's old sandbox goes before its new one is
  // made under the same id), then creations, then handler changes on kept sandboxes.
  std::vector<Removal> remove;
  std::vector<DesiredSandbox> create;
  std::vector<DesiredSandbox> rebind;  // same pod and policy, another outbound binding
  std::vector<Conflict> conflicts;

  bool empty() const { return remove.empty() && create.empty() && rebind.empty(); }
};

// `desired`: one entry per pod that wants a sandbox. A sandbox the watcher made is removed
// when no pod wants it any more, and re-created when its id now belongs to another pod (new
// uid: a StatefulSet pod made anew) or the pod asks for another policy (the daemon has no
// in-place policy switch; see docs/kubernetes.md for the moment in between).
ReconcilePlan planReconcile(const std::vector<DesiredSandbox>& desired,
                            const std::vector<ExistingSandbox>& existing);

}  // namespace egressd::kubernetes
