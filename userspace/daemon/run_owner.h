// Ownership records of `egressd run` sandboxes, so that a run killed before it could clean up
// (SIGKILL, the OOM killer) does not leave its cgroup, pinned links and files forever.
//
// Before it creates anything, `egressd run` writes <runDir>/runs/<id>.json: its pid, that
// process's start time (field 22 of /proc/PID/stat, so a reused pid is not taken for the
// owner), the cgroup it creates and the pin root it arms in. It removes the record last, after
// its own cleanup. sweepOrphanRuns() removes what a record names when its owner is gone; it is
// run by the next `egressd run`, by `egressd detach` and at daemon startup. Nothing without a
// record is touched, and a record is only believed for a cgroup named egressd-<its id>.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

#include "common/result.h"

namespace egressd::daemon {

struct RunOwner {
  std::string id;  // "run-<pid>"
  pid_t pid = 0;
  uint64_t startTime = 0;  // clock ticks since boot, /proc/PID/stat field 22
  std::string cgroup;      // absolute cgroup path
  std::string pinRoot;
};

// Field 22 of /proc/PID/stat; ESRCH/ENOENT when there is no such process.
Result<uint64_t> processStartTime(pid_t pid);

std::string runOwnerPath(const std::string& runDir, const std::string& id);

// The record for this process (owner = getpid()), written atomically (0600, dir 0700).
Status writeRunOwner(const std::string& runDir, const RunOwner& owner);
void removeRunOwner(const std::string& runDir, const std::string& id);

struct SweepResult {
  int removed = 0;  // orphaned runs cleaned up
  int failed = 0;   // orphans whose cleanup failed (their record stays, to retry)
};

// Cleans up every recorded run whose owner process is gone: kills and removes its cgroup
// tree, detaches its pinned enforcement, removes its files and record. Logs each.
SweepResult sweepOrphanRuns(const std::string& runDir);

}  // namespace egressd::daemon
