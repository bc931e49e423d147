// Starting a command inside an armed sandbox with everything `egressd run` gives it: born in
// the sandbox's cgroup (and netns), capabilities cut, no_new_privs and the socket seccomp
// filter, its own mount and cgroup namespaces hiding bpffs, the policy's secret files and
// egressd's directories, a Landlock domain, and the CA trust variables. Shared by
// `egressd run` (its transient sandbox) and `egressctl run` (a daemon's sandbox), so the
// two cannot drift apart.
#pragma once

#include <string>
#include <vector>

#include "common/result.h"
#include "sandbox/identity.h"

namespace egressd::daemon {

struct HardenedCommand {
  std::string sandboxId;
  std::string cgroup;  // the sandbox's cgroup (absolute)
  std::string netns;   // "" = the caller's network namespace
  std::vector<std::string> argv;
  sandbox::RunAsUser user;
  std::vector<std::string> env;  // from buildRunEnvironment(); EGRESSD_SANDBOX and CA added
  std::string caCertificate;     // "" when the sandbox intercepts no TLS
  std::string caBundle;
  std::vector<std::string> secretFiles;  // the policy's file secret sources, hidden
  std::string runDir;                    // hidden but for sandboxes/<id>
  std::string stateDir;                  // hidden entirely
  bool allowIoUring = false;
};

// Spawns the command, forwards SIGINT/SIGTERM/SIGHUP/SIGQUIT to it, waits, and returns its
// exit status (128 + signal when a signal ended it). Warnings (no Landlock, unhideable paths)
// go to spdlog; errors name the step that failed.
Result<int> runHardened(const HardenedCommand& command);

}  // namespace egressd::daemon
