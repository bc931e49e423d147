// Test-owned cgroup v2 directories ("<cgroup2 mount>/egressd-test-<pid>-<n>") and their
// children. The cgroup2 mount is detected from /proc/self/mountinfo (/sys/fs/cgroup on
// unified hosts, /sys/fs/cgroup/unified on hybrid ones). Removal kills every process in
// the tree (cgroup.kill) and removes directories bottom-up, with bounded retries.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace egressd::test {

// Mount point of the cgroup v2 hierarchy (cached after the first call).
Result<std::string> cgroup2Root();
// The cgroup id bpftool prints (the directory's inode number on cgroup2).
Result<uint64_t> cgroupId(const std::string& path);
// Pids listed in <path>/cgroup.procs.
std::vector<pid_t> cgroupProcs(const std::string& path);
// Immediate child cgroup directory names.
std::vector<std::string> cgroupChildren(const std::string& path);
// Kills all processes below `path` and removes it and all child cgroups.
Status removeCgroupTree(const std::string& path,
                        std::chrono::milliseconds timeout = std::chrono::milliseconds(5000));

class TestCgroup {
 public:
  // Creates <cgroup2>/egressd-test-<pid>-<n>.
  static Result<TestCgroup> create();

  TestCgroup(TestCgroup&& other) noexcept;
  TestCgroup& operator=(TestCgroup&& other) noexcept;
  TestCgroup(const TestCgroup&) = delete;
  TestCgroup& operator=(const TestCgroup&) = delete;
  ~TestCgroup();

  const std::string& path() const { return path_; }
  std::string name() const;
  Result<uint64_t> id() const { return cgroupId(path_); }
  // Creates (mkdir -p) a child cgroup "rel" ("a" or "a/b") and returns its path.
  Result<std::string> createChild(const std::string& rel) const;
  std::vector<pid_t> procs() const { return cgroupProcs(path_); }
  // Kills everything in the tree and removes it; idempotent.
  Status destroy();

 private:
  explicit TestCgroup(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace egressd::test
