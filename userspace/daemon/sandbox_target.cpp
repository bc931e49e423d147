#include "daemon/sandbox_target.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "common/fs.h"
#include "common/unique_fd.h"
#include "daemon/sandbox_lifecycle.h"
#include "sandbox/cgroup.h"
#include "sandbox/container_cgroup.h"

namespace egressd::daemon {
namespace {

// Same namespace file (device and inode of /proc/X/ns/Y)?
Result<bool> sameNamespace(const std::string& a, const std::string& b) {
  struct stat sa {};
  struct stat sb {};
  if (::stat(a.c_str(), &sa) != 0) {
    return lastSystemError(a);
  }
  if (::stat(b.c_str(), &sb) != 0) {
    return lastSystemError(b);
  }
  return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

bool isSameOrBelow(const std::string& path, const std::string& base) {
  return path == base || path.rfind(base + "/", 0) == 0;
}

}  // namespace

Status checkSandboxableCgroup(const std::string& cgroupPath, const std::string& cgroup2Mount,
                              const std::string& what) {
  if (cgroupPath == cgroup2Mount) {
    return Error(EINVAL, what +
                             " is in the root cgroup; a sandbox is a cgroup of its own "
                             "(start the process in a cgroup, e.g. with systemd-run --scope)");
  }
  auto own = sandbox::cgroupDirOfPid(::getpid(), cgroup2Mount);
  if (!own.ok()) {
    return std::move(own).error().wrap("the daemon's own cgroup");
  }
  if (isSameOrBelow(*own, cgroupPath)) {
    return Error(EINVAL, what + " is in cgroup " + cgroupPath + ", which holds egressd itself (" +
                             *own + "): its rules would judge the daemon's own traffic");
  }
  return okStatus();
}

Result<std::string> cgroupOfProcess(pid_t pid, pid_t peerPid, const std::string& cgroup2Mount) {
  const std::string what = "pid " + std::to_string(pid);
  if (pid <= 0) {
    return Error(EINVAL, what + ": not a process id");
  }
  // The operator's pid is one of the caller's pid namespace; it names the same process here
  // only if the daemon shares that namespace.
  auto shared = peerPid > 0 ? sameNamespace("/proc/" + std::to_string(peerPid) + "/ns/pid",
                                            "/proc/self/ns/pid")
                            : Result<bool>(false);
  if (!shared.ok() || !*shared) {
    return Error(EPERM, what + ": egressctl runs in another pid namespace than egressd, where " +
                            "this pid may be another process; run egressctl beside the daemon, "
                            "or use --container ID or --cgroup PATH --netns PATH");
  }
  auto cgroup = sandbox::cgroupDirOfPid(pid, cgroup2Mount);
  if (!cgroup.ok()) {
    return std::move(cgroup).error();
  }
  EGRESSD_TRY(checkSandboxableCgroup(*cgroup, cgroup2Mount, what));
  return cgroup;
}

Result<std::string> cgroupOfContainer(const std::string& idOrPrefix,
                                      const std::string& cgroup2Mount) {
  auto found = sandbox::findContainerCgroup(cgroup2Mount, idOrPrefix);
  if (!found.ok()) {
    return std::move(found).error();
  }
  EGRESSD_TRY(
      checkSandboxableCgroup(found->path, cgroup2Mount, "container " + found->id.substr(0, 12)));
  return found->path;
}

std::string netnsPinPath(const std::string& runDir, const std::string& sandboxId) {
  return runDir + "/netns/" + sandboxId;
}

Result<std::string> pinNetnsOfCgroup(const std::string& cgroupPath, pid_t preferredPid,
                                     const std::string& runDir, const std::string& sandboxId) {
  auto mount = sandbox::findCgroup2Mount();
  if (!mount.ok()) {
    return std::move(mount).error();
  }
  std::vector<pid_t> candidates;
  if (preferredPid > 0) {
    candidates.push_back(preferredPid);
  }
  if (auto pids = sandbox::cgroupPids(cgroupPath, true); pids.ok()) {
    candidates.insert(candidates.end(), pids->begin(), pids->end());
  }
  for (pid_t pid : candidates) {
    const std::string nsPath = "/proc/" + std::to_string(pid) + "/ns/net";
    UniqueFd ns(::open(nsPath.c_str(), O_RDONLY | O_CLOEXEC));
    if (!ns) {
      continue;  // exited meanwhile
    }
    // Opened first, checked second: if `pid` now belongs to another process, that process
    // is not in the cgroup and its namespace is not used.
    auto now = sandbox::cgroupDirOfPid(pid, *mount);
    if (!now.ok() || !isSameOrBelow(*now, cgroupPath)) {
      continue;
    }
    auto own = sameNamespace("/proc/self/fd/" + std::to_string(ns.get()), "/proc/self/ns/net");
    if (!own.ok()) {
      return std::move(own).error();
    }
    if (*own) {
      return std::string();  // the daemon's own network namespace
    }
    const std::string pin = netnsPinPath(runDir, sandboxId);
    EGRESSD_TRY(makeDirs(runDir + "/netns", 0755));
    ::umount2(pin.c_str(), MNT_DETACH);  // a stale pin of a sandbox of this id
    UniqueFd file(::open(pin.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0444));
    if (!file) {
      return lastSystemError("create " + pin);
    }
    const std::string source = "/proc/self/fd/" + std::to_string(ns.get());
    if (::mount(source.c_str(), pin.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      Error error = lastSystemError("bind mount the network namespace of pid " +
                                    std::to_string(pid) + " at " + pin);
      ::unlink(pin.c_str());
      return error;
    }
    return pin;
  }
  return Error(ESRCH, "no process in cgroup " + cgroupPath +
                          " to take the network namespace from (is it still running?)");
}

Result<SandboxRecord> placeSandbox(
    const CreateSandboxRequest& request, const std::string& cgroupParent, const std::string& runDir,
    const std::function<std::string(const std::string&)>& cgroupOwner) {
  SandboxRecord record;
  record.id = request.id;
  record.policyName = request.policyName;
  record.owner = request.owner;
  const bool fromProcess = request.pid.has_value() || request.container.has_value();
  const bool pinsNetns = fromProcess || request.netnsOfCgroup;
  if (request.netnsOfCgroup) {
    auto mount = sandbox::findCgroup2Mount();
    if (!mount.ok()) {
      return std::move(mount).error();
    }
    if (!request.cgroup) {
      return Error(EINVAL, "the netns of a cgroup's processes needs \"cgroup\"");
    }
    if (auto sandboxable =
            checkSandboxableCgroup(*request.cgroup, *mount, "cgroup " + *request.cgroup);
        !sandboxable.ok()) {
      return std::move(sandboxable).error();
    }
  }
  if (request.netns) {
    if (pinsNetns) {
      return Error(EINVAL,
                   "\"netns\" goes with \"cgroup\": with \"pid\" or \"container\" "
                   "the network namespace is that of the process or container");
    }
    struct stat st {};
    if (::stat(request.netns->c_str(), &st) != 0) {
      return Error(EINVAL, "netns " + *request.netns + ": " + std::strerror(errno));
    }
    record.netns = *request.netns;
  }
  CgroupChoice choice{request.cgroup, request.createCgroup, cgroupParent};
  if (fromProcess) {
    auto mount = sandbox::findCgroup2Mount();
    if (!mount.ok()) {
      return std::move(mount).error();
    }
    auto cgroup = request.pid ? cgroupOfProcess(*request.pid, request.peerPid, *mount)
                              : cgroupOfContainer(*request.container, *mount);
    if (!cgroup.ok()) {
      return Error(EINVAL, cgroup.error().message());  // the request names nothing usable
    }
    choice.existing = *cgroup;
  }
  auto placed = placeCgroup(record.id, choice);
  if (!placed.ok()) {
    return std::move(placed).error();
  }
  record.cgroupPath = placed->path;
  record.createdCgroup = placed->created;
  auto undoPlacement = [&] {
    if (record.createdCgroup) {
      ::rmdir(record.cgroupPath.c_str());
    }
  };
  if (const std::string owner = cgroupOwner(record.cgroupPath); !owner.empty()) {
    undoPlacement();
    return Error(EEXIST, "cgroup " + record.cgroupPath + " is sandbox " + owner);
  }
  auto id = sandbox::cgroupId(record.cgroupPath);
  if (!id.ok()) {
    undoPlacement();
    return Error(EINVAL, id.error().message());
  }
  record.cgroupId = *id;
  if (pinsNetns) {
    auto netns = pinNetnsOfCgroup(record.cgroupPath, request.pid.value_or(0), runDir, record.id);
    if (!netns.ok()) {
      return Error(EINVAL, netns.error().message());
    }
    record.netns = *netns;
  }
  return record;
}

void unpinNetns(const std::string& netnsPath, const std::string& runDir,
                const std::string& sandboxId) {
  if (netnsPath.empty() || netnsPath != netnsPinPath(runDir, sandboxId)) {
    return;
  }
  if (::umount2(netnsPath.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    spdlog::warn("sandbox {}: unmount {}: {}", sandboxId, netnsPath, std::strerror(errno));
  }
  if (::unlink(netnsPath.c_str()) != 0 && errno != ENOENT) {
    spdlog::warn("sandbox {}: remove {}: {}", sandboxId, netnsPath, std::strerror(errno));
  }
}

}  // namespace egressd::daemon
