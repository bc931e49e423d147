// SandboxManager's watch on its sandboxes' cgroups: a sandbox follows its cgroup (a
// container's, usually), so when the cgroup goes the sandbox is deleted and audited.
//
// Checked by polling each sandbox's cgroup id (one name_to_handle_at per sandbox per
// interval, a second by default) rather than with inotify or cgroup.events. The id, not
// the path, is what matters: a restarted container gets a new cgroup of the same name
// (docker-<id>.scope), which a watch for "the directory was removed" would see only if it
// never missed an event, while "the id at this path is no longer the one armed" holds
// however the removal and re-creation interleave, also across a daemon restart (restore
// forgets sandboxes whose cgroup is gone). Every sandbox is watched, not only those made
// with --pid/--container: a sandbox whose cgroup is gone enforces nothing any more.
#include <spdlog/spdlog.h>

#include <cerrno>
#include <utility>
#include <vector>

#include "daemon/sandbox_manager.h"
#include "daemon/sandbox_target.h"
#include "sandbox/cgroup.h"

namespace egressd::daemon {

void SandboxManager::checkCgroupsPeriodically(const std::stop_token& stop) {
  while (!stop.stop_requested()) {
    {
      std::unique_lock lock(checkWakeMutex_);
      checkWake_.wait_for(lock, stop, options_.cgroupCheckInterval, [] { return false; });
    }
    if (stop.stop_requested()) {
      return;
    }
    reapVanishedCgroups();
  }
}

void SandboxManager::reapVanishedCgroups() {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, std::string>> vanished;  // id, why
  for (const auto& [id, record] : sandboxes_) {
    auto now = sandbox::cgroupId(record.cgroupPath);
    if (now.ok() && *now == record.cgroupId) {
      continue;
    }
    if (!now.ok() && now.error().code() != ENOENT) {
      continue;  // cannot tell (e.g. out of file descriptors): look again next time
    }
    vanished.emplace_back(
        id, now.ok() ? "cgroup " + record.cgroupPath + " was removed and made anew (id " +
                           std::to_string(record.cgroupId) + " -> " + std::to_string(*now) + ")"
                     : "cgroup " + record.cgroupPath + " was removed");
  }
  for (const auto& [id, why] : vanished) {
    forgetVanishedSandbox(id, why);
  }
}

void SandboxManager::forgetVanishedSandbox(const std::string& id, const std::string& why) {
  auto it = sandboxes_.find(id);
  if (it == sandboxes_.end()) {
    return;
  }
  // The kernel dropped the links with the cgroup; the pins, the sandbox's slot and map
  // entries, its proxy listener, DNS sockets and CA files are egressd's to drop. A cgroup
  // now at the same path is someone else's: it is never removed here, created or not.
  lifecycle_->stopServing(id);
  if (auto detached = lifecycle_->detachKernel(id); !detached.ok()) {
    spdlog::error("sandbox {}: detach: {}", id, detached.error().message());
  }
  unpinNetns(it->second.netns, proxyOptions_.runDir, id);
  audit::AuditRecord event;
  event.sandbox = id;
  event.layer = "control";
  event.decision = "delete";
  event.reason = "cgroup_gone";
  event.detail = why + "; sandbox deleted";
  runtime_->auditControlEvent(event);
  sandboxes_.erase(it);
  saveStateLogged();
  spdlog::warn("sandbox {} deleted: {}", id, why);
}

}  // namespace egressd::daemon
