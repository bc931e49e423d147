// The daemon's side of `egressd daemon --kubernetes`: the pod watcher (kubernetes/) creates,
// rebinds and deletes sandboxes through the SandboxManager, the same in-process service the
// control API uses, with the pod's cgroup and the network namespace of its processes; each
// create and delete is audited (layer "control", reason "kubernetes_pod") with the pod's name.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "common/result.h"
#include "daemon/commands.h"
#include "daemon/sandbox_manager.h"
#include "kubernetes/pod_watcher.h"

namespace egressd::daemon {

class KubeSandboxes : public kubernetes::SandboxBackend {
 public:
  explicit KubeSandboxes(SandboxManager& manager) : manager_(manager) {}
  std::vector<kubernetes::ExistingSandbox> sandboxes() override;
  Status create(const kubernetes::DesiredSandbox& want, const std::string& cgroupPath) override;
  Status rebind(const kubernetes::DesiredSandbox& want) override;
  Status remove(const kubernetes::Removal& removal, const std::string& owner) override;

 private:
  SandboxManager& manager_;
};

// The watcher's options from the daemon's (defaults from the environment and the
// service-account files); EINVAL names what is missing. Checked before the daemon starts.
Result<kubernetes::WatcherOptions> resolveKubernetesOptions(const KubernetesOptions& options);

// The running watcher: stopped (and joined) on destruction, the watcher first.
class KubernetesWatch {
 public:
  // Starts the watcher's thread.
  static std::unique_ptr<KubernetesWatch> start(kubernetes::WatcherOptions options,
                                                SandboxManager& manager);
  ~KubernetesWatch();
  KubernetesWatch(const KubernetesWatch&) = delete;
  KubernetesWatch& operator=(const KubernetesWatch&) = delete;

 private:
  KubernetesWatch(SandboxManager& manager, kubernetes::WatcherOptions options);

  KubeSandboxes backend_;
  kubernetes::PodWatcher watcher_;
  std::jthread thread_;  // last: stops before the rest goes
};

}  // namespace egressd::daemon
