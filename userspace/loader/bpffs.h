// bpffs and pin layout. Maps are pinned by name at the pin root (default
// /sys/fs/bpf/egressd); each sandbox's cgroup links at <root>/links/<id>/<program>.
#pragma once

#include <string>

#include "common/result.h"

namespace egressd::loader {

inline constexpr const char* kBpffsMount = "/sys/fs/bpf";

// Mounts bpffs at /sys/fs/bpf when nothing is mounted there (the design's promise).
Status ensureBpffsMounted();
// True when `path` lies on a bpf filesystem.
bool isOnBpffs(const std::string& path);

std::string linksDir(const std::string& pinRoot, const std::string& sandboxId);
std::string linkPinPath(const std::string& pinRoot, const std::string& sandboxId,
                        const std::string& programName);

// Sandbox ids become directory names and map strings: [A-Za-z0-9_.-], 1..63 chars.
Status validateSandboxId(const std::string& id);

}  // namespace egressd::loader
