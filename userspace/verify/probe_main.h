// `egressd __verify-probe`: the hidden subcommand verify runs inside its throw-away sandbox
// (egressd re-executes itself, so an installed egressd needs no separate test binary).
//
//   egressd __verify-probe --origin IP --other IP --dns IP --loopback-port N --token T
//                          CASE_ID|sample:KIND:PARAM ...
//
// Runs each named case of cases.h in a forked child (a case that moves itself to another
// cgroup affects no other case), bounded in time, and prints one line per case:
//   CASE <index> OK <detail>  |  CASE <index> ERR <ERRNO_NAME> <errno> <step> <detail>
// The token of case i is T + "x" + i + "z"; the verifier looks for it at the listeners.
#pragma once

#include <string>
#include <vector>

#include "verify/cases.h"

namespace egressd::verify {

inline constexpr const char* kProbeSubcommand = "__verify-probe";

// The token of the case at `index` in one probe run.
std::string caseToken(const std::string& tokenPrefix, size_t index);

// The probe's arguments (after the subcommand) for these cases; samples are passed as
// "sample:KIND:PARAM".
std::vector<std::string> probeArguments(const Targets& t, const std::string& tokenPrefix,
                                        const std::vector<Case>& cases);

// main() of the hidden subcommand: `args` are the words after it. Returns the exit code.
int probeMain(const std::vector<std::string>& args);

}  // namespace egressd::verify
