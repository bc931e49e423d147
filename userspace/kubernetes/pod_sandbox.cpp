#include "kubernetes/pod_sandbox.h"

#include <cstdint>
#include <cstdio>

namespace egressd::kubernetes {
namespace {

constexpr size_t kMaxSandboxId = 63;  // bpf/abi.h EGRESSD_SANDBOX_ID_LEN - 1
constexpr size_t kHashDigits = 8;

bool sandboxIdChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

uint64_t fnv1a(std::string_view text) {
  uint64_t hash = 14695981039346656037ULL;
  for (char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ULL;
  }
  return hash;
}

}  // namespace

std::string sandboxIdForPod(std::string_view ns, std::string_view name) {
  std::string id = "k8s-";
  id += ns;
  id += '_';
  id += name;
  for (char& c : id) {
    if (!sandboxIdChar(c)) {
      c = '-';
    }
  }
  if (id.size() <= kMaxSandboxId) {
    return id;
  }
  const std::string key = std::string(ns) + "/" + std::string(name);
  char hex[17];
  std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(fnv1a(key)));
  id.resize(kMaxSandboxId - kHashDigits - 1);
  return id + "-" + std::string(hex, kHashDigits);
}

bool phaseWantsSandbox(std::string_view phase) {
  return phase != "Succeeded" && phase != "Failed";
}

std::optional<DesiredSandbox> desiredSandbox(const PodRecord& pod, const std::string& nodeName) {
  auto policy = pod.annotations.find(std::string(kPolicyAnnotation));
  if (policy == pod.annotations.end() || !phaseWantsSandbox(pod.phase) ||
      pod.nodeName != nodeName) {
    return std::nullopt;
  }
  DesiredSandbox want;
  want.id = sandboxIdForPod(pod.ns, pod.name);
  want.podKey = pod.key();
  want.podUid = pod.uid;
  want.qosClass = pod.qosClass;
  want.resourceVersion = pod.resourceVersion;
  want.terminating = pod.terminating;
  want.pending = pod.phase == "Pending";
  want.policy = policy->second;
  if (want.policy.empty()) {
    want.problems.push_back(std::string(kPolicyAnnotation) + " is empty");
    return want;  // the sandbox manager refuses it with the reason; nothing is guessed
  }
  nlohmann::json params = nlohmann::json::object();
  for (const auto& [key, value] : pod.annotations) {
    if (key.rfind(kParamsAnnotationPrefix, 0) != 0) {
      continue;
    }
    const std::string param = key.substr(kParamsAnnotationPrefix.size());
    if (param.empty()) {
      want.problems.push_back("annotation " + key + " names no param");
      continue;
    }
    params[param] = value;
  }
  auto handler = pod.annotations.find(std::string(kHandlerAnnotation));
  if (handler != pod.annotations.end() && !handler->second.empty()) {
    want.outbound = OutboundBinding{handler->second, std::move(params)};
  } else if (!params.empty()) {
    want.problems.push_back(std::string(kParamsAnnotationPrefix) + "* annotations need " +
                            std::string(kHandlerAnnotation) +
                            " (params belong to a handler); they are ignored");
  }
  return want;
}

}  // namespace egressd::kubernetes
