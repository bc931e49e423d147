// `egressd daemon` without --sandbox: the multi-sandbox daemon with the control API.
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <iostream>
#include <optional>

#include "common/unique_fd.h"
#include "control/server.h"
#include "daemon/arming.h"
#include "daemon/commands.h"
#include "daemon/control_routes.h"
#include "daemon/kube_sandboxes.h"
#include "daemon/run_owner.h"
#include "daemon/sandbox_manager.h"
#include "daemon/service_manager.h"

namespace egressd::daemon {

int controlDaemonCommand(const ControlDaemonOptions& o, const ProxyOptions& proxy) {
  UniqueFd sigFd = blockDaemonSignals();
  if (!sigFd) {
    std::cerr << "egressd: signalfd: " << std::strerror(errno) << "\n";
    return kExitFailure;
  }

  // --kubernetes: its configuration is checked before anything starts.
  std::optional<kubernetes::WatcherOptions> kubeOptions;
  if (o.kubernetes.enabled) {
    auto resolved = resolveKubernetesOptions(o.kubernetes);
    if (!resolved.ok()) {
      std::cerr << "egressd: " << resolved.error().message() << "\n";
      return kExitUsage;
    }
    kubeOptions = std::move(*resolved);
  }

  // `egressd run`s killed before their cleanup (their owner process is gone).
  sweepOrphanRuns(proxy.runDir);

  ManagerOptions mo;
  mo.pinRoot = o.pinRoot;
  mo.stateDir = o.stateDir;
  mo.policyDir = o.policyDir;
  mo.cgroupParent = o.cgroupParent;
  mo.socketPath = o.socketPath;
  mo.persistSecrets = o.persistSecrets;
  auto manager = SandboxManager::create(mo, proxy);
  if (!manager.ok()) {
    std::cerr << "egressd: " << manager.error().message() << "\n";
    return kExitFailure;
  }
  if (auto restored = (*manager)->restore(); !restored.ok()) {
    std::cerr << "egressd: " << restored.error().message() << "\n";
    return kExitBadPolicy;
  }
  auto server = control::ControlServer::start(o.socketPath, makeControlRouter(**manager));
  if (!server.ok()) {
    std::cerr << "egressd: control API: " << server.error().message() << "\n";
    return kExitFailure;
  }
  spdlog::info("control API on {} (state in {}, policies from {})", o.socketPath, o.stateDir,
               o.policyDir);
  // After restore: the watcher's first list reconciles against the sandboxes re-armed from
  // state.json (its own among them), so a restart re-creates nothing that survived it.
  std::unique_ptr<KubernetesWatch> kubernetes;
  if (kubeOptions) {
    kubernetes = KubernetesWatch::start(std::move(*kubeOptions), **manager);
  }
  std::printf("egressd ready\n");
  std::fflush(stdout);
  // Only now: every persisted sandbox is re-armed (restore) and the socket listens.
  const std::string readyStatus = "control API on " + o.socketPath;
  notifyReady(readyStatus);

  for (;;) {
    signalfd_siginfo info{};
    const ssize_t n = ::read(sigFd.get(), &info, sizeof(info));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n != sizeof(info)) {
      continue;
    }
    if (info.ssi_signo == SIGHUP) {
      // The same reload as POST /v1/reload: all files or none, the outcome logged.
      notifyReloading();
      (void)(*manager)->reloadPolicyFiles();
      notifyReady(readyStatus);
      continue;
    }
    notifyStopping();
    spdlog::info("signal {}: exiting; enforcement stays pinned in {}, state in {}", info.ssi_signo,
                 o.pinRoot, o.stateDir);
    break;
  }
  kubernetes.reset();  // nor a watcher's change
  server->reset();     // no API call may run while the manager goes
  (*manager)->flush();
  return 0;
}

}  // namespace egressd::daemon
