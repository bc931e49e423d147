// `egressd verify [--policy FILE] [--json]`: host checks, then the attack battery from
// inside a throw-away sandbox; prints a table (or JSON) and returns the exit code
// (report.h). Ctrl-C/SIGTERM stop it between steps, and everything it made is removed.
#pragma once

#include <string>

namespace egressd::verify {

struct VerifyOptions {
  std::string policyFile;  // empty: the built-in test policy
  bool json = false;
  // Where a running egressd keeps its state, for the daemon checks (egressd's own options).
  std::string pinRoot = "/sys/fs/bpf/egressd";
  std::string stateDir = "/var/lib/egressd";
  std::string socket = "/run/egressd/egressd.sock";
};

int verifyCommand(const VerifyOptions& options);

// Non-empty in a deliberately weakened build (cmake -DEGRESSD_WEAKEN_FOR_VERIFY=...): the
// warning every egressd mode prints first.
std::string buildNote();

}  // namespace egressd::verify
