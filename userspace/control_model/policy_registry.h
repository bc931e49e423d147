// The daemon's named policies: those read from the policy directory and those applied
// through the API, each parsed and its handlers compiled once. A change replaces the whole
// set or nothing: the caller's check sees the complete next set (every sandbox must still
// compile against it) before anything moves. Pure apart from reading the policy files.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/result.h"
#include "handlers/handler.h"
#include "policy/policy.h"

namespace egressd::control_model {

struct PolicyEntry {
  policy::Policy policy;
  std::shared_ptr<const handlers::HandlerSet> handlers;
  std::string yaml;
  std::string source;  // "file:/etc/egressd/policies/a.yaml" or "api"
  bool fromApi = false;
};

using PolicySet = std::map<std::string, PolicyEntry>;

// Parses and compiles one policy; `source` names it in errors (a file path, or "api").
// Errors are kInvalidPolicy. The handlers' warnings join the policy's.
Result<PolicyEntry> parsePolicyEntry(const std::string& yaml, const std::string& source,
                                     bool fromApi);

// Every *.yaml / *.yml file of `dir` (hidden files skipped), sorted by path, warnings logged.
// A missing directory (or "") is no policies; anything else unreadable is an error, never
// "no policies", so callers keep the policies in force. Two files naming one policy is an
// error. Errors are kInvalidPolicy.
Result<PolicySet> loadPolicyDir(const std::string& dir);

// `ref` names a handler `entry` defines (kUnknownHandler) with parameters it takes (EINVAL).
Status checkHandlerRef(const PolicyEntry& entry, const policy::HandlerRef& ref);

class PolicyRegistry {
 public:
  const PolicyEntry* find(const std::string& name) const;
  const PolicySet& all() const { return policies_; }
  size_t size() const { return policies_.size(); }

  // The set a re-read of the policy files makes: `files`, with every policy applied
  // through the API kept over a file of the same name.
  PolicySet withFiles(PolicySet files) const;
  // The set with `entry` added, or replacing the policy of its name.
  PolicySet withEntry(PolicyEntry entry) const;

  // All or nothing: `check` (when given) judges the complete next set while the current
  // one is still in force; on its error nothing changes and the error is returned.
  Status replace(PolicySet next, const std::function<Status(const PolicySet& next)>& check = {});

  // Restoring: a stored API policy joins the set under the name it was stored by.
  void put(const std::string& name, PolicyEntry entry);

 private:
  PolicySet policies_;
};

}  // namespace egressd::control_model
