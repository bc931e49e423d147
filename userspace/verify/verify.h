// `egressd verify [--policy FILE] [--json]`: host checks, then the attack battery from
// inside a throw-away sandbox; prints a table (or JSON) and returns the exit code
// (report.h). Ctrl-C/SIGTERM stop it between steps, and everything it made is removed.
#pragma once

#include <string>

namespace egressd::verify {

struct VerifyOptions {
  std::string policyFile;  // empty: the built-in test policy
  bool json = false;
};

int verifyCommand(const VerifyOptions& options);

// Non-empty in a deliberately weakened build (cmake -DEGRESSD_WEAKEN_FOR_VERIFY=...): the
// warning every egressd mode prints first.
std::string buildNote();

}  // namespace egressd::verify
