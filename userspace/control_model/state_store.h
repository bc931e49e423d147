// The control-plane daemon's state file (<stateDir>/state.json): the policies applied
// through the API, the sandboxes with their instance overrides, and the names (with
// --persist-secrets also the values) of the secrets set through the API. Written whole
// and atomically (common/fs writeFileAtomic: temp file, fsync, rename, fsync of the
// directory), mode 0600 since it may hold secret values.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "policy/overrides.h"

namespace egressd::control_model {

struct StoredSandbox {
  std::string id;
  std::string policyName;
  std::string cgroupPath;
  bool createdCgroup = false;
  std::string netns;
  policy::InstanceOverrides overrides;
  // Who made it: "" = an operator (the API); "kubernetes-pod/<uid>" = the pod watcher of
  // `egressd daemon --kubernetes`, which touches only the sandboxes it made.
  std::string owner;
};

struct DaemonState {
  std::map<std::string, std::string> apiPolicies;  // name -> YAML
  std::vector<StoredSandbox> sandboxes;
  std::vector<std::string> secretNames;
  // Only with --persist-secrets; a stored name without a value was not kept.
  std::optional<std::map<std::string, std::string>> secretValues;
};

struct StateFormat {
  // --persist-secrets: the values of the secrets set through the API are read back (those
  // of the stored names); without it they are never read, so a state written with it
  // starts without them.
  bool secretValues = false;
};

inline constexpr int kStateVersion = 1;

nlohmann::json stateToJson(const DaemonState& state);
// Errors (EINVAL) name `path` and say how to start over.
Result<DaemonState> stateFromJson(const nlohmann::json& json, const std::string& path,
                                  StateFormat format);

class StateStore {
 public:
  StateStore(std::string stateDir, StateFormat format);

  const std::string& path() const { return path_; }
  Status save(const DaemonState& state) const;
  // nullopt: there is no state file (a first start). A file that is unreadable or not a
  // state is an error naming it, never an empty state.
  Result<std::optional<DaemonState>> load() const;

 private:
  std::string path_;
  StateFormat format_;
};

}  // namespace egressd::control_model
