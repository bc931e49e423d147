// The attack battery: a throw-away sandbox (cgroup egressd-verify-<pid>, its own pin root
// and proxy, armed like `egressd run` arms one) in a private test network (testnet.h) with
// listeners (listeners.h); every case of cases.h runs inside it, as root (without the
// capabilities egressd run drops) and as an unprivileged user, through `egressd
// __verify-probe` (probe_main.h). Everything is removed again on return, also on error or
// when `interrupted` fires (Ctrl-C/SIGTERM).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "common/result.h"
#include "policy/policy.h"
#include "verify/cases.h"

namespace egressd::verify {

struct BatteryOptions {
  // The user's policy (--policy); empty: the built-in test policy (builtinPolicyYaml()).
  std::string policyFile;
  // The egressd binary to re-execute as the probe (/proc/self/exe resolved).
  std::string selfExe;
  // Run only these built-in case ids (empty: every case that applies). For tests.
  std::vector<std::string> onlyCases;
  // Polled between steps; true stops the battery (it still cleans up).
  std::function<bool()> interrupted = [] { return false; };
  // Called once the sandbox is armed, before any case runs, with its pin root and id: lets
  // the e2e test break enforcement for real (detach a hook's link) to prove the battery
  // reports the hole.
  std::function<void(const std::string& pinRoot, const std::string& sandboxId)> afterArmForTest;
};

struct CaseRow {
  Case c;
  std::string user;  // "root" or the unprivileged user's name
  Observation observed;
  Verdict verdict = Verdict::kSkip;
};

struct BatteryReport {
  std::vector<CaseRow> rows;
  std::string policyName;  // "built-in" or the file
  bool interrupted = false;
};

// The built-in test policy: allows TCP to `origin`:7001 and *.allowed.verify.test over the
// proxy, denies *.denied.verify.test, nothing else.
std::string builtinPolicyYaml(const std::string& origin);

// A few destinations the user's policy denies and allows, as sample cases (cases.h).
std::vector<Case> policySamples(const policy::Policy& policy);

Result<BatteryReport> runBattery(const BatteryOptions& options);

}  // namespace egressd::verify
