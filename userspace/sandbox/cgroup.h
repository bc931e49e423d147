// cgroup v2 plumbing for sandboxes: find the hierarchy (it is /sys/fs/cgroup on unified hosts
// and /sys/fs/cgroup/unified on hybrid ones), create, identify, populate, inspect and tear down
// sandbox cgroups. Every function that takes a cgroup path accepts an absolute path under the
// cgroup2 mount or a path relative to it, and refuses anything outside it, so a typo can never
// make removeCgroupTree() kill processes somewhere else.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace egressd::sandbox {

// Mount point of the cgroup2 filesystem, from /proc/self/mountinfo. When several are mounted,
// the one showing the hierarchy's root ("/" in mountinfo's root field) wins.
Result<std::string> findCgroup2Mount();

// True when the cgroup2 hierarchy is mounted with nsdelegate (systemd does so on unified
// hosts). Only then does the kernel itself refuse a migration out of a cgroup namespace;
// otherwise a root process can write its pid into any cgroup.procs it can reach, and spawn
// keeps it in its subtree by showing it a cgroup2 mount rooted at its own cgroup instead.
Result<bool> cgroup2HasNsDelegate();

// "/sys/fs/cgroup/unified/a/b" for "a/b" or for "/sys/fs/cgroup/unified/a/b". Normalises
// repeated and trailing slashes; rejects "." and ".." components and absolute paths outside
// the mount (EINVAL). Does not require the cgroup to exist.
Result<std::string> resolveCgroupPath(const std::string& pathOrRelative);

// The kernel's cgroup id: what bpf_get_current_cgroup_id() returns for a task inside it and
// what cgroup-keyed BPF maps use. Read from the 8-byte file handle (kernfs node id), as the
// kernel selftests' get_cgroup_id() does.
Result<uint64_t> cgroupId(const std::string& path);

// mkdir of one cgroup (the parent must exist). An existing cgroup is EEXIST unless existOk.
Status createCgroup(const std::string& path, bool existOk = false);

// Kills every process in the cgroup and all its descendants, waits until the subtree is
// unpopulated, then removes the cgroups depth-first. A missing path is success, so cleanup
// can run twice. Refuses the cgroup2 root.
Status removeCgroupTree(const std::string& path,
                        std::chrono::milliseconds timeout = std::chrono::seconds(5));

// SIGKILLs everything in the subtree: one write to cgroup.kill (Linux 5.14+), else a signal
// per pid from cgroup.procs. Does not wait.
Status killCgroupProcesses(const std::string& path);
// The pre-5.14 way, exposed so it stays tested on kernels that have cgroup.kill: SIGKILLs
// each pid listed in the subtree's cgroup.procs files (run it until the subtree is empty,
// since a process can fork between the read and the kill).
Status killCgroupProcessesBySignal(const std::string& path);

// Pids in cgroup.procs of the cgroup (and of every descendant when recursive), sorted.
Result<std::vector<pid_t>> cgroupPids(const std::string& path, bool recursive);

// Moves one process (all its threads) into the cgroup by writing its pid to cgroup.procs.
Status moveToCgroup(pid_t pid, const std::string& path);

// A process in a sandbox cgroup that can open sockets no cgroup BPF hook sees (AF_PACKET,
// raw) or reconfigure the network: it holds, or can regain, CAP_NET_RAW / CAP_NET_ADMIN.
struct CapableProcess {
  pid_t pid;
  std::string comm;
  bool netRaw;
  bool netAdmin;
};

// Every such process in the cgroup's subtree. Processes that exit while being read are skipped.
Result<std::vector<CapableProcess>> findNetworkCapableProcesses(const std::string& cgroupPath);

}  // namespace egressd::sandbox
