// The environment `egressd run` gives its command: a documented allowlist of the caller's
// variables, the user's identity, what --env/--env-file add, and never a variable that the
// policy names as a secret source (`secrets: X: {env: VAR}`): egressd reads VAR from its
// own environment, the command must not.
#pragma once

#include <set>
#include <string>
#include <vector>

#include "common/result.h"

namespace egressd::daemon {

// Passed through from egressd's environment when set: PATH, TERM, LANG, LANGUAGE, TZ and
// every LC_*. (HOME, USER and LOGNAME are the command's user's; egressd adds its own.)
bool isAllowlistedVariable(const std::string& name);

struct RunEnvironmentInput {
  std::vector<std::string> inherited;     // egressd's environment, "K=V"
  std::set<std::string> secretVariables;  // the policy's env secret sources
  std::string userName;
  std::string home;
  std::vector<std::string> envArgs;   // --env NAME (pass through if set) or NAME=VALUE
  std::vector<std::string> envFiles;  // --env-file: NAME=VALUE lines, '#' comments, blanks
};

// "K=V" entries, sorted by name. EINVAL (naming the variable or file and line, never a value)
// for a secret source passed explicitly, a malformed --env or env-file line.
Result<std::vector<std::string>> buildRunEnvironment(const RunEnvironmentInput& in);

// Replaces (or adds) NAME in a "K=V" list.
void setVariable(std::vector<std::string>& env, const std::string& name, const std::string& value);

}  // namespace egressd::daemon
