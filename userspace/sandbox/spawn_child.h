// The child's side of spawnInCgroup() (spawn.h): the plan the parent prepares (C strings and
// fds only, so the child need not allocate) and the code that runs on it between clone and
// execve. Internal to the sandbox library.
#pragma once

#include <limits.h>
#include <sys/types.h>

#include <cstddef>

#include "sandbox/caps.h"
#include "sandbox/hide.h"
#include "sandbox/seccomp.h"

namespace egressd::sandbox {

// A hidden directory's entry (hide.h), as C strings for the child.
struct ChildEntry {
  const char* relative;
  const char* absolute;
  const char* linkTarget;
  HiddenEntry::Kind kind;
  bool bind;
};

struct ChildHiddenDir {
  const char* dir;
  const char* tmpfsOptions;
  const ChildEntry* entries;
  size_t entryCount;
};

// Everything the child needs, prepared by the parent: the child only reads it.
struct ChildPlan {
  // Every PATH match, in order: the child tries them as the command's user, the way execvp
  // does, so a match that user cannot reach (a 0700 home's shims) falls through to the next.
  const char* const* paths = nullptr;
  size_t pathCount = 0;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  pid_t parentPid = 0;
  int errFd = -1;   // CLOEXEC write end: closed by a successful execve
  int syncFd = -1;  // fork fallback: wait for one byte (sent once we are in the cgroup)
  int netnsFd = -1;
  const char* netnsPath = "";
  bool newMountNs = false;
  const char* const* hidePaths = nullptr;
  size_t hideCount = 0;
  const ChildHiddenDir* hiddenDirs = nullptr;
  size_t hiddenDirCount = 0;
  bool changeUser = false;
  uid_t uid = 0;
  gid_t gid = 0;
  const gid_t* groups = nullptr;
  size_t groupCount = 0;
  const char* cwd = nullptr;   // entered after the mounts (nullptr: stay)
  const char* home = nullptr;  // fallback for cwd
  int landlockFd = -1;
  bool newCgroupNs = false;
  const char* const* cgroup2Mounts = nullptr;  // remounted from inside the cgroup namespace
  size_t cgroup2MountCount = 0;
  const CapabilityDrop* caps = nullptr;
  const SeccompProgram* seccomp = nullptr;
  int stdio[3] = {-1, -1, -1};
  int maxFd = 0;  // for the pre-5.11 close-on-exec loop
};

// One write(2) of at most PIPE_BUF bytes is atomic, so the parent reads all or nothing.
struct ChildReport {
  int err;
  char step[64];
  char detail[512];
};
static_assert(sizeof(ChildReport) <= PIPE_BUF);

// Runs between clone and execve: syscalls and async-signal-safe calls only. Reports a failed
// step as a ChildReport on plan.errFd and exits 127.
[[noreturn]] void runChild(const ChildPlan& plan) noexcept;

}  // namespace egressd::sandbox
