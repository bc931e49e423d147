#include "control_model/state_store.h"

#include <sys/stat.h>

#include <cerrno>

#include "common/fs.h"

namespace egressd::control_model {

namespace {

constexpr const char* kStateFile = "state.json";

// May throw nlohmann::json exceptions on content of the wrong type; stateFromJson turns
// them into an error naming the file.
Result<DaemonState> parseState(const nlohmann::json& json, const std::string& path,
                               StateFormat format) {
  DaemonState state;
  // Named, not temporaries: items() iterates the object it was called on.
  const nlohmann::json storedPolicies = json.value("policies", nlohmann::json::object());
  for (const auto& [name, p] : storedPolicies.items()) {
    state.apiPolicies[name] = p.value("yaml", "");
  }
  const nlohmann::json secrets = json.value("secrets", nlohmann::json::object());
  for (const auto& name : secrets.value("names", nlohmann::json::array())) {
    state.secretNames.push_back(name.get<std::string>());
  }
  if (format.secretValues) {
    const nlohmann::json values = secrets.value("values", nlohmann::json::object());
    state.secretValues.emplace();
    for (const std::string& name : state.secretNames) {
      if (values.contains(name)) {
        (*state.secretValues)[name] = values[name].get<std::string>();
      }
    }
  }
  const nlohmann::json storedSandboxes = json.value("sandboxes", nlohmann::json::array());
  for (const auto& s : storedSandboxes) {
    StoredSandbox sandbox;
    sandbox.id = s.value("id", "");
    sandbox.policyName = s.value("policy", "");
    sandbox.cgroupPath = s.value("cgroup", "");
    sandbox.createdCgroup = s.value("createdCgroup", false);
    sandbox.netns = s.value("netns", "");
    sandbox.owner = s.value("owner", "");
    auto overrides =
        policy::InstanceOverrides::fromJson(s.value("overrides", nlohmann::json::object()));
    if (!overrides.ok()) {
      return Error(EINVAL, path + ": sandbox " + sandbox.id + ": " + overrides.error().message());
    }
    sandbox.overrides = std::move(*overrides);
    state.sandboxes.push_back(std::move(sandbox));
  }
  return state;
}

}  // namespace

nlohmann::json stateToJson(const DaemonState& state) {
  nlohmann::json policies = nlohmann::json::object();
  for (const auto& [name, yaml] : state.apiPolicies) {
    policies[name] = {{"yaml", yaml}};
  }
  nlohmann::json sandboxes = nlohmann::json::array();
  for (const StoredSandbox& s : state.sandboxes) {
    nlohmann::json sandbox = {{"id", s.id},
                              {"policy", s.policyName},
                              {"cgroup", s.cgroupPath},
                              {"createdCgroup", s.createdCgroup},
                              {"netns", s.netns},
                              {"overrides", s.overrides.toJson()}};
    if (!s.owner.empty()) {
      sandbox["owner"] = s.owner;
    }
    sandboxes.push_back(std::move(sandbox));
  }
  nlohmann::json secrets = {{"names", state.secretNames}};
  if (state.secretValues) {
    secrets["values"] = *state.secretValues;
  }
  return {{"version", kStateVersion},
          {"policies", policies},
          {"sandboxes", sandboxes},
          {"secrets", secrets}};
}

Result<DaemonState> stateFromJson(const nlohmann::json& json, const std::string& path,
                                  StateFormat format) {
  if (!json.is_object()) {
    return Error(EINVAL, path + ": not valid JSON; move it aside to start empty");
  }
  try {
    return parseState(json, path, format);
  } catch (const nlohmann::json::exception& e) {
    return Error(EINVAL,
                 path + ": unexpected content (" + e.what() + "); move it aside to start empty");
  }
}

StateStore::StateStore(std::string stateDir, StateFormat format)
    : path_(std::move(stateDir) + "/" + kStateFile), format_(format) {}

Status StateStore::save(const DaemonState& state) const {
  // 0600: with --persist-secrets it holds secret values.
  auto written = writeFileAtomic(path_, stateToJson(state).dump(2) + "\n", 0600);
  if (!written.ok()) {
    return std::move(written).error().wrap("saving daemon state");
  }
  return okStatus();
}

Result<std::optional<DaemonState>> StateStore::load() const {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    return std::optional<DaemonState>();
  }
  auto text = readFile(path_);
  if (!text.ok()) {
    return std::move(text).error();
  }
  auto json = nlohmann::json::parse(*text, nullptr, false);
  if (json.is_discarded()) {
    return Error(EINVAL, path_ + ": not valid JSON; move it aside to start empty");
  }
  auto state = stateFromJson(json, path_, format_);
  if (!state.ok()) {
    return std::move(state).error();
  }
  return std::optional<DaemonState>(std::move(*state));
}

}  // namespace egressd::control_model
