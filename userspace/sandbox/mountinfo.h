// /proc/self/mountinfo parsing, shared by the cgroup2 lookup and by spawn (which hides every
// bpffs mount from the sandbox). Parsed in the parent: the child after clone must not allocate.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"

namespace egressd::sandbox {

struct MountEntry {
  std::string root;          // path inside the filesystem that is mounted ("/" for all of it)
  std::string mountPoint;    // octal escapes (\040 …) decoded
  std::string mountOptions;  // per-mount options: "rw,nosuid,…"
  std::string fsType;        // "cgroup2", "bpf", "tmpfs", …
  std::string superOptions;  // filesystem-wide options: "rw,nsdelegate,…"
};

Result<std::vector<MountEntry>> readMountInfo(const std::string& path = "/proc/self/mountinfo");

// Parses mountinfo text; lines that do not have the documented shape are skipped.
std::vector<MountEntry> parseMountInfo(const std::string& text);

}  // namespace egressd::sandbox
