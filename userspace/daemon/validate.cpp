// egressd validate FILE...: the policy checks of `egressctl policy validate`, without a
// daemon (like `nginx -t`), reporting every error of every file rather than the first.
#include <nlohmann/json.hpp>

#include <iostream>

#include "daemon/commands.h"
#include "handlers/handler.h"
#include "policy/policy.h"

namespace egressd::daemon {

int validateCommand(const std::vector<std::string>& files, bool json) {
  bool anyError = false;
  bool anyUnreadable = false;
  nlohmann::json report = nlohmann::json::array();
  for (const std::string& file : files) {
    policy::PolicyCheck check = policy::checkPolicyFile(file);
    if (check.policy) {
      // What the daemon and egressd run check next: the handler chains compile (templates,
      // conditions, references), with their own warnings.
      auto compiled = handlers::HandlerSet::compile(*check.policy);
      if (!compiled.ok()) {
        // Its message starts with FILE:LINE:COL already.
        check.errors.push_back(policy::Diagnostic{"", {}, "", compiled.error().message()});
        check.policy.reset();
      } else {
        check.warnings.insert(check.warnings.end(), (*compiled)->warnings().begin(),
                              (*compiled)->warnings().end());
      }
    }
    anyError = anyError || (!check.errors.empty() && !check.unreadable);
    anyUnreadable = anyUnreadable || check.unreadable;
    if (json) {
      nlohmann::json errors = nlohmann::json::array();
      for (const policy::Diagnostic& d : check.errors) {
        errors.push_back({{"file", file},
                          {"line", d.pos.line},
                          {"column", d.pos.column},
                          {"path", d.path},
                          {"message", d.message},
                          {"text", d.text()}});
      }
      nlohmann::json entry = {{"file", file},
                              {"valid", check.errors.empty()},
                              {"errors", errors},
                              {"warnings", check.warnings}};
      if (check.policy) {
        entry["policy"] = check.policy->name;
      }
      report.push_back(std::move(entry));
      continue;
    }
    for (const policy::Diagnostic& d : check.errors) {
      std::cerr << d.text() << "\n";
    }
    for (const std::string& warning : check.warnings) {
      std::cerr << "warning: " << warning << "\n";
    }
    if (check.policy) {
      std::cout << file << ": valid (policy " << check.policy->name << ")\n";
    } else if (!check.unreadable) {
      std::cerr << file << ": " << check.errors.size()
                << (check.errors.size() == 1 ? " error" : " errors") << "\n";
    }
  }
  if (json) {
    std::cout << nlohmann::json{{"valid", !anyError && !anyUnreadable}, {"files", report}}.dump(2)
              << "\n";
  }
  if (anyError) {
    return kExitBadPolicy;
  }
  return anyUnreadable ? kExitFailure : 0;
}

}  // namespace egressd::daemon
