// Runs a command inside a sandbox cgroup, confined before its first instruction: the child is
// created inside the cgroup (clone3 CLONE_INTO_CGROUP, so not even the pre-exec code runs
// outside it), then gets a mount namespace hiding bpffs, its own cgroup namespace and cgroup2
// view, its capabilities cut, and the socket-family seccomp filter, and only then execs. Everything
// that allocates is prepared in the parent; between clone and exec the child makes syscalls
// only, because the parent may be multi-threaded. Any failed step aborts the spawn with an
// error naming the step: there is no partially sandboxed command.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "sandbox/hide.h"
#include "sandbox/identity.h"

namespace egressd::sandbox {

struct SpawnOptions {
  // argv[0] without a '/' is looked up in PATH (from `env` when given) before spawning.
  std::vector<std::string> argv;
  // cgroup v2 directory, absolute under the mount or relative to it. Required.
  std::string cgroupPath;
  // Full environment as "K=V"; empty inherits the caller's environ.
  std::vector<std::string> env;
  // Network namespace file (/var/run/netns/NAME, /proc/PID/ns/net) to join before exec.
  std::string netnsPath;
  // Drops defaultDroppedCapabilities() from every capability set, bounding included.
  bool dropCapabilities = true;
  // Sets no_new_privs and installs SeccompProgram::buildSocketFamilyFilter().
  bool installSeccomp = true;
  bool allowIoUring = false;
  // Private (slave) mount namespace with an empty read-only tmpfs over /sys/fs/bpf and over
  // every other bpffs mount, so a root command cannot unpin the links that enforce it.
  // Together with newCgroupNamespace, every cgroup2 mount is also replaced by one made from
  // inside the new cgroup namespace, which shows only the sandbox's own subtree.
  bool newMountNamespaceHidingBpffs = true;
  // A cgroup namespace rooted at cgroupPath, so that the command cannot move itself out of
  // its subtree (moving deeper stays possible, and stays policed). The kernel enforces the
  // namespace boundary itself only when cgroup2 is mounted with nsdelegate; without it, the
  // remounted cgroup2 view above is what leaves nothing outside the subtree to write to.
  bool newCgroupNamespace = true;
  // Directories replaced in the command's mount namespace (see hide.h); needs
  // newMountNamespaceHidingBpffs.
  std::vector<HiddenDir> hiddenDirs;
  // Who the command runs as: setgroups/setresgid/setresuid after the mounts. A non-root user
  // also loses every capability (dropCapabilities then drops allCapabilities()); root keeps
  // what dropCapabilities leaves. Unset: the caller's identity.
  std::optional<RunAsUser> user;
  // The command's working directory, entered by path once the mounts are in place (a
  // directory inherited from the caller could be one that a mount now covers). If it cannot
  // be entered as the command's user: the user's home, then "/". Empty: the caller's cwd.
  std::string cwd;
  // A Landlock ruleset (createLandlockIsolation()) to enforce on the command: it can then
  // neither ptrace nor read /proc/PID/{root,environ,mem,fd} of processes outside the sandbox,
  // nor signal them. -1: none.
  int landlockRulesetFd = -1;
  // stdio for the command; -1 inherits the caller's.
  int stdinFd = -1;
  int stdoutFd = -1;
  int stderrFd = -1;
  // false forces the fallback used on kernels without clone3 CLONE_INTO_CGROUP (< 5.7, or a
  // seccomp profile answering ENOSYS): fork, the parent writes the pid into cgroup.procs,
  // and only then lets the child continue. Both paths are tested.
  bool allowClone3 = true;
};

// A Landlock ruleset that restricts nothing on the file system of note (creating device
// nodes) but makes a domain: a process inside it cannot ptrace (or read the /proc files
// guarded like ptrace of) processes outside, and, where the kernel has Landlock ABI 6, cannot
// signal them. ENOSYS/EOPNOTSUPP when the kernel has no Landlock (or it is disabled).
Result<UniqueFd> createLandlockIsolation();

// Starts the command and returns its pid once it has exec'd (or an Error like "sandbox setup:
// unshare(CLONE_NEWCGROUP): Operation not permitted" after reaping the failed child). The
// caller reaps it with waitForExit(). The child gets SIGKILL when the calling thread exits
// (PR_SET_PDEATHSIG follows the thread), so call this from a thread that outlives it.
Result<pid_t> spawnInCgroup(const SpawnOptions& options);

// Waits for `pid` (a child of this process) and returns its exit status, or 128 + signal
// number when a signal ended it, as shells report it.
Result<int> waitForExit(pid_t pid);

// While alive, forwards SIGINT, SIGTERM, SIGHUP and SIGQUIT sent to this process to the
// target pid, so `egressd run` is stopped the way the command is and can still clean up.
// Terminal-generated signals (Ctrl-C, Ctrl-\) are not forwarded while the target is in our
// process group: the tty already delivered them to it, and a second SIGINT would look like
// a second Ctrl-C. Signals this process ignores stay ignored. One forwarder per process; the
// previous handlers come back on destruction.
class SignalForwarder {
 public:
  // Installs the handlers. With no target yet (pid 0), signals are remembered and delivered
  // by setTarget(), so a Ctrl-C between spawn and setTarget is not lost.
  static Result<std::unique_ptr<SignalForwarder>> create(pid_t target = 0);

  SignalForwarder(const SignalForwarder&) = delete;
  SignalForwarder& operator=(const SignalForwarder&) = delete;
  ~SignalForwarder();

  void setTarget(pid_t pid);
  // Waits for the target (a child of this process) to exit, stops forwarding, then reaps it
  // and returns what waitForExit() would. In that order a signal arriving at the last moment
  // cannot be forwarded to a recycled pid, which reaping first and clearing second allows.
  Result<int> waitForTargetExit();
  // The last of the forwarded signals this process received, 0 if none.
  int lastSignal() const;

 private:
  SignalForwarder() = default;

  std::array<struct sigaction, 4> previous_{};
};

}  // namespace egressd::sandbox
