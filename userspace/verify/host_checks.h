// The host checks of `egressd verify`: what this kernel and host offer (host/features.h,
// judged for egressd), whether every BPF hook egressd needs loads and attaches (the real
// skeleton, on a throw-away cgroup egressd-verify-<pid>-hooks, detached and removed again),
// and whether a running egressd's sandboxes are enforced: every sandbox in the pinned maps
// and in the daemon's state file must have each hook's pinned link attached to its cgroup
// (a sandbox in state but not enforced is a FAIL).
#pragma once

#include <string>
#include <vector>

#include "host/features.h"

namespace egressd::verify {

enum class Level { kPass, kWarn, kFail };
std::string_view levelName(Level level);

struct Check {
  std::string name;  // stable, e.g. "kernel_version", "hook cgroup/connect4"
  Level level = Level::kPass;
  std::string detail;  // what was found
  std::string advice;  // one line of what to do (empty for a pass)
};

// A host feature probe judged for egressd (pure: unit-tested).
Check judgeFeature(const host::Feature& feature);

std::vector<Check> featureChecks();
std::vector<Check> hookChecks();

struct DaemonPaths {
  std::string pinRoot = "/sys/fs/bpf/egressd";
  std::string stateFile = "/var/lib/egressd/state.json";
  std::string socket = "/run/egressd/egressd.sock";
};
std::vector<Check> daemonChecks(const DaemonPaths& paths);

}  // namespace egressd::verify
