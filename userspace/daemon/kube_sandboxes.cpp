#include "daemon/kube_sandboxes.h"

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstdlib>

#include "audit/record.h"
#include "sandbox/cgroup.h"

namespace egressd::daemon {
namespace {

using kubernetes::DesiredSandbox;

std::optional<policy::HandlerRef> handlerRefOf(
    const std::optional<kubernetes::OutboundBinding>& b) {
  if (!b) {
    return std::nullopt;
  }
  policy::HandlerRef ref;
  ref.handler = b->handler;
  ref.params = b->params;
  return ref;
}

void auditPodEvent(SandboxManager& manager, const std::string& id, const std::string& decision,
                   const std::string& detail) {
  audit::AuditRecord event;
  event.sandbox = id;
  event.layer = "control";
  event.decision = decision;
  event.reason = "kubernetes_pod";
  event.detail = detail;
  manager.auditControlEvent(event);
}

}  // namespace

std::vector<kubernetes::ExistingSandbox> KubeSandboxes::sandboxes() {
  std::vector<kubernetes::ExistingSandbox> out;
  for (const SandboxManager::Ownership& s : manager_.sandboxOwnership()) {
    kubernetes::ExistingSandbox e;
    e.id = s.id;
    e.owner = s.owner;
    e.policy = s.policyName;
    if (s.outbound) {
      e.outbound = kubernetes::OutboundBinding{s.outbound->handler, s.outbound->params};
    }
    out.push_back(std::move(e));
  }
  return out;
}

Status KubeSandboxes::create(const DesiredSandbox& want, const std::string& cgroupPath) {
  CreateSandboxRequest request;
  request.id = want.id;
  request.policyName = want.policy;
  request.cgroup = cgroupPath;
  request.netnsOfCgroup = true;
  request.owner = want.owner();
  auto made = manager_.createSandbox(request);
  if (!made.ok()) {
    return std::move(made).error();
  }
  const std::string pod = "pod " + want.podKey + " (uid " + want.podUid + ")";
  auditPodEvent(
      manager_, want.id, "create",
      pod + ": sandbox created with policy " + want.policy + " on cgroup " + cgroupPath +
          (made->value("netns", "").empty() ? "" : ", netns " + made->value("netns", "")));
  spdlog::info("kubernetes: {}: sandbox {} created (policy {}, cgroup {})", pod, want.id,
               want.policy, cgroupPath);
  if (want.outbound) {
    // Made first with the policy alone: a handler binding that is refused leaves the pod
    // confined by its policy, which is the safe half of what it asked for.
    return rebind(want);
  }
  return okStatus();
}

Status KubeSandboxes::rebind(const DesiredSandbox& want) {
  // The plan only rebinds the watcher's own sandboxes; checked again here, at the moment of
  // the change (an operator may have re-made the id since the plan was made).
  bool own = false;
  for (const SandboxManager::Ownership& s : manager_.sandboxOwnership()) {
    own = own || (s.id == want.id && s.owner == want.owner());
  }
  if (!own) {
    return Error(EPERM, "sandbox " + want.id + " is not the one made for pod " + want.podKey);
  }
  auto changed = want.outbound ? manager_.setOutboundHandler(want.id, *handlerRefOf(want.outbound))
                               : manager_.removeOutboundHandler(want.id);
  if (!changed.ok()) {
    return std::move(changed).error();
  }
  spdlog::info("kubernetes: pod {}: sandbox {} outbound handler {}", want.podKey, want.id,
               want.outbound ? want.outbound->handler + " " + want.outbound->params.dump()
                             : std::string("removed"));
  return okStatus();
}

Status KubeSandboxes::remove(const kubernetes::Removal& removal, const std::string& owner) {
  if (owner.rfind(kubernetes::kOwnerPrefix, 0) != 0) {
    return Error(EPERM, "sandbox " + removal.id + " was not made by the pod watcher");
  }
  auto deleted = manager_.deleteSandbox(removal.id, owner);
  if (!deleted.ok()) {
    return std::move(deleted).error();
  }
  const std::string pod =
      removal.podKey.empty() ? owner : "pod " + removal.podKey + " (" + owner + ")";
  auditPodEvent(manager_, removal.id, "delete", pod + ": sandbox deleted: " + removal.why);
  spdlog::info("kubernetes: sandbox {} deleted: {}: {}", removal.id, pod, removal.why);
  return okStatus();
}

Result<kubernetes::WatcherOptions> resolveKubernetesOptions(const KubernetesOptions& o) {
  kubernetes::WatcherOptions w;
  w.nodeName = o.nodeName;
  if (w.nodeName.empty()) {
    const char* env = std::getenv("NODE_NAME");
    w.nodeName = env != nullptr ? env : "";
  }
  if (w.nodeName.empty()) {
    return Error(EINVAL,
                 "--kubernetes needs the node's name: --kube-node NAME or NODE_NAME (the "
                 "DaemonSet sets it from spec.nodeName)");
  }
  w.cgroupRoot = o.cgroupRoot;
  if (w.cgroupRoot.empty()) {
    auto mount = sandbox::findCgroup2Mount();
    if (!mount.ok()) {
      return std::move(mount).error().wrap("--kubernetes");
    }
    w.cgroupRoot = *mount;
  }
  auto api = kubernetes::resolveApiConfig(o.apiServer, o.tokenFile, o.caFile);
  if (!api.ok()) {
    return std::move(api).error();
  }
  w.api = std::move(*api);
  return w;
}

std::unique_ptr<KubernetesWatch> KubernetesWatch::start(kubernetes::WatcherOptions options,
                                                        SandboxManager& manager) {
  std::unique_ptr<KubernetesWatch> watch(new KubernetesWatch(manager, std::move(options)));
  watch->thread_ =
      std::jthread([m = watch.get()](const std::stop_token& stop) { m->watcher_.run(stop); });
  return watch;
}

KubernetesWatch::KubernetesWatch(SandboxManager& manager, kubernetes::WatcherOptions options)
    : backend_(manager), watcher_(std::move(options), backend_) {}

KubernetesWatch::~KubernetesWatch() {
  thread_.request_stop();
  if (thread_.joinable()) {
    thread_.join();
  }
}

}  // namespace egressd::daemon
