// What a pod asks of egressd, read from its annotations, and the sandbox id it gets. Pure.
//
//   egressd.io/policy: NAME              the pod gets a sandbox with policy NAME (required)
//   egressd.io/outbound-handler: NAME    the sandbox's catch-all handler (an instance
//                                        override, as `egressctl set-outbound-handler`)
//   egressd.io/params-KEY: VALUE         that handler's params: {"KEY": "VALUE", ...}
//
// Params belong to a handler binding, as everywhere in the control plane (`--params JSON`
// goes with a handler), so they need egressd.io/outbound-handler. A binding that cannot be
// used is reported and left out: the pod still gets its policy, which is the safe half.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "kubernetes/pod_events.h"

namespace egressd::kubernetes {

inline constexpr std::string_view kPolicyAnnotation = "egressd.io/policy";
inline constexpr std::string_view kHandlerAnnotation = "egressd.io/outbound-handler";
inline constexpr std::string_view kParamsAnnotationPrefix = "egressd.io/params-";
// StoredSandbox.owner of the sandboxes the watcher makes: this prefix + the pod's uid.
inline constexpr std::string_view kOwnerPrefix = "kubernetes-pod/";

struct OutboundBinding {
  std::string handler;
  nlohmann::json params = nlohmann::json::object();  // string values

  bool operator==(const OutboundBinding& other) const {
    return handler == other.handler && params == other.params;
  }
};

struct DesiredSandbox {
  std::string id;      // sandboxIdForPod
  std::string podKey;  // namespace/name, for logs and audit
  std::string podUid;
  std::string qosClass;
  std::string resourceVersion;  // the pod's: a failed attempt is retried when the pod changes
  bool terminating = false;     // deletionTimestamp set: its cgroup may be gone already
  bool pending = false;         // phase Pending: its cgroup or first process may not be there yet
  std::string policy;
  std::optional<OutboundBinding> outbound;
  std::vector<std::string> problems;  // annotations that were not usable, and why

  std::string owner() const { return std::string(kOwnerPrefix) + podUid; }
};

// "k8s-<namespace>_<name>": '_' cannot occur in either Kubernetes name, so two pods never
// share an id ("k8s-a-b-c" would be both a-b/c and a/b-c). Characters a sandbox id may not
// hold become '-'. Longer than a sandbox id may be (63), it keeps the first 54 characters
// and ends in '-' and 8 hex digits of a hash (FNV-1a) of "namespace/name".
std::string sandboxIdForPod(std::string_view ns, std::string_view name);

// Whether the pod's phase still has processes to confine: Pending (its cgroup may not be
// there yet: the watcher retries), Running and Unknown yes; Succeeded and Failed no.
bool phaseWantsSandbox(std::string_view phase);

// The sandbox `pod` should have on this node, or nullopt: no egressd.io/policy annotation,
// a terminal phase, or another node's pod.
std::optional<DesiredSandbox> desiredSandbox(const PodRecord& pod, const std::string& nodeName);

}  // namespace egressd::kubernetes
