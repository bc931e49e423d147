// Where a new sandbox gets its cgroup and network namespace: the cgroup named, or created,
// or that of a running process or container (`egressctl sandbox create ID --pid PID |
// --container ID`).
//
// The daemon resolves, not egressctl. A pid means something only in a pid namespace and a
// /proc/PID/cgroup path only against a cgroup2 mount in a cgroup namespace; the daemon is
// the one that attaches to the cgroup and opens the netns, so it reads both with its own
// /proc and its own mount, and checks that the caller (SO_PEERCRED) shares its pid namespace,
// so that the pid the operator typed is the process the daemon finds. egressctl sending
// "/proc/PID/ns/net" and a cgroup path instead would be right only when the two happen to
// share namespaces, and a pid that exits and is reused between the two steps would name
// another process. A container id needs no pid at all: it is found in the cgroup tree.
//
// The netns is taken from a process in the cgroup and kept by a bind mount at
// RUN_DIR/netns/ID (as `ip netns attach` does), because the daemon opens it again later
// (restart, socket reaping, `egressctl run`) when that process may be gone or its pid reused.
// The mount is made from the opened namespace after checking that the process is still in
// the cgroup, so a reused pid cannot slip another namespace in.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>

#include "common/result.h"
#include "daemon/sandbox_lifecycle.h"

namespace egressd::daemon {

// POST /v1/sandboxes, its fields already typed.
struct CreateSandboxRequest {
  std::string id;
  std::string policyName;
  std::optional<std::string> cgroup;  // an existing cgroup...
  std::optional<std::string> netns;
  bool createCgroup = false;             // ...or one egressd creates...
  std::optional<pid_t> pid;              // ...or that of this process (and its netns)...
  std::optional<std::string> container;  // ...or of this container (id or prefix)
  pid_t peerPid = 0;                     // the caller, for `pid` (see above)
  // With `cgroup` (not through the API): the netns is that of the cgroup's processes, pinned
  // as for `pid` (the pod watcher: a pod's cgroup, its pause container's namespace).
  bool netnsOfCgroup = false;
  std::string owner;  // StoredSandbox::owner ("" = an operator)
};

// A new sandbox's record with its cgroup (found, or created under `cgroupParent`), the
// cgroup's id and its netns (named, or pinned under `runDir` for pid/container); nothing
// armed. `cgroupOwner(path)` names the sandbox that has that cgroup already ("" = none).
// Errors are EINVAL (or EEXIST for a cgroup taken) and undo what was made.
Result<SandboxRecord> placeSandbox(
    const CreateSandboxRequest& request, const std::string& cgroupParent, const std::string& runDir,
    const std::function<std::string(const std::string&)>& cgroupOwner);

// The cgroup of process `pid` (as the daemon sees it). ESRCH: no such process; EPERM: the
// caller `peerPid` is in another pid namespace. Refuses what checkSandboxableCgroup refuses.
Result<std::string> cgroupOfProcess(pid_t pid, pid_t peerPid, const std::string& cgroup2Mount);

// The cgroup of the container `idOrPrefix` (sandbox/container_cgroup.h), refused like above.
Result<std::string> cgroupOfContainer(const std::string& idOrPrefix,
                                      const std::string& cgroup2Mount);

// EINVAL when `cgroupPath` is the root cgroup, or the daemon's own cgroup or one above it
// (its rules would then judge the daemon's own traffic, proxy included). `what` names the
// request in the message ("pid 42", "container 0123…").
Status checkSandboxableCgroup(const std::string& cgroupPath, const std::string& cgroup2Mount,
                              const std::string& what);

// RUN_DIR/netns/ID.
std::string netnsPinPath(const std::string& runDir, const std::string& sandboxId);

// The network namespace of the processes in `cgroupPath`: "" when it is the daemon's own
// (a host process, a --network=host container: nothing to pin), else the pin path, bind
// mounted. `preferredPid` (0 = any) is tried first; any pid of the cgroup's subtree that is
// still in it after its namespace was opened will do.
Result<std::string> pinNetnsOfCgroup(const std::string& cgroupPath, pid_t preferredPid,
                                     const std::string& runDir, const std::string& sandboxId);

// Undoes pinNetnsOfCgroup when `netnsPath` is this sandbox's pin path; anything else (a
// netns the operator named, "") is left alone. Missing pins are fine.
void unpinNetns(const std::string& netnsPath, const std::string& runDir,
                const std::string& sandboxId);

}  // namespace egressd::daemon
