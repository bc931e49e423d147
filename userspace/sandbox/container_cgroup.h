// Finding a container's or a process's cgroup v2 directory without talking to any container
// runtime: a container is recognised by the directory name its runtime gives its cgroup,
// under the systemd and the cgroupfs cgroup drivers alike:
//
//   docker-<id>.scope            Docker, systemd driver (system.slice/, kubepods-*.slice/)
//   docker/<id>                  Docker, cgroupfs driver
//   cri-containerd-<id>.scope    containerd's CRI plugin (Kubernetes), systemd driver
//   crio-<id>.scope              CRI-O, systemd driver
//   libpod-<id>.scope            Podman, systemd driver (the process may sit in .../container)
//   libpod_parent/libpod-<id>    Podman, cgroupfs driver
//   kubepods/<qos>/pod<uid>/<id> any CRI runtime, cgroupfs driver
//   <namespace>/<id>             containerd (ctr, nerdctl), cgroupfs driver
//
// Ids are 64 lowercase hex digits; a bare 64-hex directory name is a container wherever it
// is. Everything here reads files only (the tree under a cgroup2 mount, /proc/PID/cgroup),
// so the unit tests run it on a directory tree that mimics these layouts.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace egressd::sandbox {

inline constexpr size_t kContainerIdLength = 64;
// The shortest prefix accepted: `docker ps` prints 12 digits, and fewer would often be
// ambiguous on a busy host.
inline constexpr size_t kMinContainerIdPrefix = 12;

// The container id a cgroup directory name carries ("docker-<id>.scope" -> id), or nullopt.
// Names of runtime helpers that are not the container ("libpod-conmon-<id>.scope") and ids
// that are not 64 hex digits give nullopt.
std::optional<std::string> containerIdFromCgroupName(std::string_view name);

struct ContainerCgroup {
  std::string id;    // the full 64-hex id
  std::string path;  // absolute: root + the directory's path below it
};

// Every container cgroup under `root` (the cgroup2 mount, or a test tree) whose id starts with
// `idOrPrefix` (12 to 64 hex digits, either case). A container's own sub-cgroups are not
// searched (podman's "container" child, nested runtimes), and unreadable directories are
// skipped. The result is sorted by id.
Result<std::vector<ContainerCgroup>> findContainerCgroups(const std::string& root,
                                                          const std::string& idOrPrefix);

// The one container cgroup `idOrPrefix` names. ENOENT when there is none (naming the forms
// looked for), EINVAL for a prefix that is not 12-64 hex digits, ENOTUNIQ when the prefix
// matches several containers (each listed with its cgroup).
Result<ContainerCgroup> findContainerCgroup(const std::string& root, const std::string& idOrPrefix);

// The cgroup v2 path in the content of a /proc/PID/cgroup file: the "0::/path" line (hybrid
// hosts list the v1 hierarchies too). " (deleted)" suffixes are refused: the cgroup is gone.
Result<std::string> cgroupV2PathFromProcFile(std::string_view content);

// The absolute cgroup v2 directory of process `pid`: /proc/PID/cgroup's v2 path joined to
// `cgroup2Mount`. ESRCH when there is no such process. The path is as the reader's cgroup
// namespace sees it, so the caller must share the cgroup namespace of the mount it joins to.
Result<std::string> cgroupDirOfPid(pid_t pid, const std::string& cgroup2Mount,
                                   const std::string& procRoot = "/proc");

}  // namespace egressd::sandbox
