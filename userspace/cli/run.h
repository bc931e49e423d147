// egressctl run / sandbox create --run: the command is started by egressctl itself, as root,
// inside a daemon sandbox. The daemon says where the sandbox is (GET /v1/sandboxes/ID/spawn:
// cgroup, netns, CA files, the policy's secret sources, its own directories), and egressctl
// spawns with daemon/hardened_run.h, the code `egressd run` uses: born in the cgroup by
// clone3(CLONE_INTO_CGROUP), joined to the netns, capabilities cut, no_new_privs, seccomp,
// bpffs and secrets hidden, Landlock, CA trust variables. Why not the daemon: its child
// would inherit the daemon's session, not the caller's terminal, signals and exit status.
#pragma once

#include "cli/commands.h"

namespace egressd::cli {

// The command's exit status (128 + signal), or kExitFailure after printing why it could
// not be started.
int runInSandbox(const Command& command, const std::string& sandboxId);

}  // namespace egressd::cli
