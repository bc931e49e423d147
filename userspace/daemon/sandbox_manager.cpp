#include "daemon/sandbox_manager.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/fs.h"
#include "control_model/errors.h"
#include "daemon/sandbox_detail.h"
#include "daemon/sandbox_target.h"
#include "loader/bpffs.h"
#include "sandbox/cgroup.h"

namespace egressd::daemon {

using control_model::kInternal;
using control_model::kInvalidPolicy;
using control_model::PolicyEntry;
using control_model::PolicySet;
using Json = nlohmann::json;

namespace {

Error unknownSandbox(const std::string& id) {
  return Error(control_model::kUnknownSandbox, "no sandbox '" + id + "' (egressctl sandbox list)");
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) {
    out += (out.empty() ? "" : ", ") + s;
  }
  return out;
}

}  // namespace

SandboxManager::SandboxManager(const ManagerOptions& options)
    : options_(options),
      enforcer_(options.pinRoot),
      stateStore_(options.stateDir, control_model::StateFormat{options.persistSecrets}) {}

SandboxManager::~SandboxManager() = default;

Result<std::unique_ptr<SandboxManager>> SandboxManager::create(const ManagerOptions& options,
                                                               const ProxyOptions& proxy) {
  auto manager = std::make_unique<SandboxManager>(options);
  manager->proxyOptions_ = proxy;
  EGRESSD_TRY(makeDirs(options.stateDir, 0700));
  manager->enforcer_.keepMapsWhenEmpty();
  EGRESSD_TRY(manager->enforcer_.ensureMaps());
  auto runtime = ProxyRuntime::start(proxy, options.pinRoot);
  if (!runtime.ok()) {
    return std::move(runtime).error();
  }
  manager->runtime_ = std::move(*runtime);
  manager->lifecycle_ = std::make_unique<SandboxLifecycle>(options.pinRoot, proxy.enabled,
                                                           manager->enforcer_, *manager->runtime_);
  manager->secrets_ = manager->runtime_->secrets();
  if (options.cgroupCheckInterval.count() > 0) {
    manager->cgroupChecker_ = std::jthread(
        [m = manager.get()](const std::stop_token& stop) { m->checkCgroupsPeriodically(stop); });
  }
  return manager;
}

void SandboxManager::flush() {
  std::lock_guard lock(mutex_);
  runtime_->flush();
  if (sandboxes_.empty()) {
    enforcer_.removeMapsIfUnused();
  }
}

// --- policies

Status SandboxManager::swapPolicies(PolicySet next, std::vector<std::string>* touched) {
  // Everything is checked before anything changes: each sandbox must compile against its
  // (possibly new) policy, instance handler overrides included.
  std::vector<std::pair<SandboxRecord*, CompiledSandbox>> plan;
  auto everySandboxCompiles = [&](const PolicySet& candidate) -> Status {
    for (auto& [id, record] : sandboxes_) {
      auto it = candidate.find(record.policyName);
      if (it == candidate.end()) {
        return Error(kInvalidPolicy, "sandbox " + id + " uses policy '" + record.policyName +
                                         "', which would be gone");
      }
      const PolicyEntry* current = registry_.find(record.policyName);
      if (current != nullptr && current->yaml == it->second.yaml &&
          current->source == it->second.source) {
        continue;
      }
      auto compiled = compileSandbox(record, it->second);
      if (!compiled.ok()) {
        return Error(compiled.error().code(), "policy " + record.policyName + " for sandbox " + id +
                                                  ": " + compiled.error().message());
      }
      plan.emplace_back(&record, std::move(*compiled));
    }
    return okStatus();
  };
  EGRESSD_TRY(registry_.replace(std::move(next), everySandboxCompiles));
  Status result = okStatus();
  for (auto& [record, compiled] : plan) {
    Status applied = lifecycle_->apply(*record, compiled);
    if (!applied.ok() && result.ok()) {
      result = std::move(applied);
    }
    if (touched != nullptr) {
      touched->push_back(record->id);
    }
  }
  return result;
}

Result<Json> SandboxManager::reloadPolicyFiles() {
  std::lock_guard lock(mutex_);
  auto files = control_model::loadPolicyDir(options_.policyDir);
  if (!files.ok()) {
    spdlog::error("reload rejected, the policies in force stay: {}", files.error().message());
    return std::move(files).error();
  }
  std::vector<std::string> touched;
  Status swapped = swapPolicies(registry_.withFiles(std::move(*files)), &touched);
  if (!swapped.ok()) {
    spdlog::error("reload: {}", swapped.error().message());
    return std::move(swapped).error();
  }
  Json names = Json::array();
  for (const auto& [name, entry] : registry_.all()) {
    names.push_back(name);
  }
  spdlog::info("policies reloaded from {} ({} sandboxes updated)", options_.policyDir,
               touched.size());
  return Json{{"policies", names}, {"sandboxes", touched}};
}

Result<Json> SandboxManager::applyPolicy(const std::string& yaml, const std::string& source) {
  std::lock_guard lock(mutex_);
  auto entry = control_model::parsePolicyEntry(yaml, source.empty() ? "api" : source, true);
  if (!entry.ok()) {
    return std::move(entry).error();
  }
  const std::string name = entry->policy.name;
  Json warnings = entry->policy.warnings;
  for (const std::string& warning : entry->policy.warnings) {
    spdlog::warn("{}", warning);
  }
  std::vector<std::string> touched;
  EGRESSD_TRY(swapPolicies(registry_.withEntry(std::move(*entry)), &touched));
  saveStateLogged();
  spdlog::info("policy {} applied through the API ({} sandboxes updated)", name, touched.size());
  return Json{{"name", name}, {"sandboxes", touched}, {"warnings", warnings}};
}

Result<Json> SandboxManager::validatePolicy(const std::string& yaml, const std::string& source) {
  auto entry = control_model::parsePolicyEntry(yaml, source.empty() ? "api" : source, true);
  if (!entry.ok()) {
    return std::move(entry).error();
  }
  return Json{{"valid", true}, {"name", entry->policy.name}, {"warnings", entry->policy.warnings}};
}

Json SandboxManager::listPolicies() {
  std::lock_guard lock(mutex_);
  Json list = Json::array();
  for (const auto& [name, entry] : registry_.all()) {
    std::vector<std::string> users;
    for (const auto& [id, record] : sandboxes_) {
      if (record.policyName == name) {
        users.push_back(id);
      }
    }
    list.push_back({{"name", name}, {"source", entry.source}, {"sandboxes", users}});
  }
  return Json{{"policies", list}};
}

Result<Json> SandboxManager::showPolicy(const std::string& name) {
  std::lock_guard lock(mutex_);
  const PolicyEntry* entry = registry_.find(name);
  if (entry == nullptr) {
    return Error(control_model::kPolicyNotFound,
                 "no policy '" + name + "' (egressctl policy show)");
  }
  return Json{{"name", name}, {"source", entry->source}, {"yaml", entry->yaml}};
}

// --- sandboxes

Result<Json> SandboxManager::changeSandbox(const std::string& id, const Change& change) {
  std::lock_guard lock(mutex_);
  auto it = sandboxes_.find(id);
  if (it == sandboxes_.end()) {
    return unknownSandbox(id);
  }
  SandboxRecord next = it->second;
  const PolicyEntry* entry = registry_.find(next.policyName);
  if (entry == nullptr) {
    return Error(kInternal, "sandbox " + id + " has no policy " + next.policyName);
  }
  EGRESSD_TRY(change(next, *entry));
  auto compiled = compileSandbox(next, *entry);
  if (!compiled.ok()) {
    return std::move(compiled).error();
  }
  EGRESSD_TRY(lifecycle_->apply(next, *compiled));
  it->second = std::move(next);
  saveStateLogged();
  return detailJson(it->second);
}

Result<Json> SandboxManager::createSandbox(const CreateSandboxRequest& request) {
  if (auto valid = loader::validateSandboxId(request.id); !valid.ok()) {
    return Error(EINVAL, valid.error().message());
  }
  const int choices =
      static_cast<int>(request.cgroup.has_value()) + static_cast<int>(request.createCgroup) +
      static_cast<int>(request.pid.has_value()) + static_cast<int>(request.container.has_value());
  if (choices != 1) {
    return Error(EINVAL,
                 "give one of \"cgroup\" (an existing cgroup), \"createCgroup\": true, "
                 "\"pid\" (a process's cgroup) or \"container\" (a container's id)");
  }
  std::lock_guard lock(mutex_);
  if (sandboxes_.count(request.id) != 0U) {
    return Error(EEXIST, "sandbox '" + request.id + "' exists already");
  }
  const PolicyEntry* entry = registry_.find(request.policyName);
  if (entry == nullptr) {
    return Error(control_model::kUnknownPolicy,
                 "no policy '" + request.policyName + "' (egressctl policy show lists them)");
  }
  auto placed = placeSandbox(request, options_.cgroupParent, proxyOptions_.runDir,
                             [this](const std::string& cgroup) -> std::string {
                               for (const auto& [otherId, other] : sandboxes_) {
                                 if (other.cgroupPath == cgroup) {
                                   return otherId;
                                 }
                               }
                               return "";
                             });
  if (!placed.ok()) {
    return std::move(placed).error();
  }
  SandboxRecord record = std::move(*placed);
  if (auto armed = lifecycle_->armNew(record, *entry); !armed.ok()) {
    lifecycle_->stopServing(record.id);
    (void)lifecycle_->detachKernel(record.id);
    unpinNetns(record.netns, proxyOptions_.runDir, record.id);
    if (record.createdCgroup) {
      ::rmdir(record.cgroupPath.c_str());
    }
    return std::move(armed).error();
  }
  auto [it, inserted] = sandboxes_.emplace(record.id, std::move(record));
  (void)inserted;
  saveStateLogged();
  spdlog::info("sandbox {} created (cgroup {}, policy {})", it->first, it->second.cgroupPath,
               it->second.policyName);
  return detailJson(it->second);
}

Result<Json> SandboxManager::deleteSandbox(const std::string& id,
                                           const std::optional<std::string>& requiredOwner) {
  std::lock_guard lock(mutex_);
  auto it = sandboxes_.find(id);
  if (it == sandboxes_.end()) {
    return unknownSandbox(id);
  }
  if (requiredOwner && it->second.owner != *requiredOwner) {
    return Error(EPERM, "sandbox " + id + " belongs to " +
                            (it->second.owner.empty() ? "an operator" : it->second.owner) +
                            ", not " + *requiredOwner);
  }
  lifecycle_->stopServing(id);
  if (auto detached = lifecycle_->detachKernel(id); !detached.ok()) {
    spdlog::error("sandbox {}: detach: {}", id, detached.error().message());
  }
  if (it->second.createdCgroup) {
    removeCreatedCgroup(it->second.cgroupPath);
  }
  unpinNetns(it->second.netns, proxyOptions_.runDir, id);
  sandboxes_.erase(it);
  saveStateLogged();
  spdlog::info("sandbox {} deleted", id);
  return Json{{"deleted", id}};
}

Json SandboxManager::listSandboxes() {
  std::lock_guard lock(mutex_);
  Json list = Json::array();
  for (const auto& [id, record] : sandboxes_) {
    Json entry = {{"id", id},
                  {"policy", record.policyName},
                  {"cgroup", record.cgroupPath},
                  {"openConnections", runtime_->openConnections(id)}};
    if (!record.owner.empty()) {
      entry["owner"] = record.owner;
    }
    list.push_back(std::move(entry));
  }
  return Json{{"sandboxes", list}};
}

std::vector<SandboxManager::Ownership> SandboxManager::sandboxOwnership() {
  std::lock_guard lock(mutex_);
  std::vector<Ownership> out;
  for (const auto& [id, record] : sandboxes_) {
    out.push_back({id, record.owner, record.policyName, record.overrides.outbound});
  }
  return out;
}

void SandboxManager::auditControlEvent(const audit::AuditRecord& record) {
  runtime_->auditControlEvent(record);
}

Result<Json> SandboxManager::showSandbox(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = sandboxes_.find(id);
  if (it == sandboxes_.end()) {
    return unknownSandbox(id);
  }
  return detailJson(it->second);
}

Result<Json> SandboxManager::spawnInfo(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = sandboxes_.find(id);
  if (it == sandboxes_.end()) {
    return unknownSandbox(id);
  }
  const SandboxRecord& record = it->second;
  Json files = Json::array();
  Json variables = Json::array();
  if (const PolicyEntry* entry = registry_.find(record.policyName); entry != nullptr) {
    for (const auto& [name, source] : entry->policy.secrets) {
      (source.kind == policy::SecretSource::Kind::kFile ? files : variables)
          .push_back(source.value);
    }
  }
  const SandboxCaFiles ca = runtime_->caFiles(record.id);
  return Json{{"id", record.id},
              {"cgroup", record.cgroupPath},
              {"netns", record.netns},
              {"caCert", ca.certificate},
              {"caBundle", ca.bundle},
              {"secretFiles", files},
              {"secretVariables", variables},
              {"runDir", proxyOptions_.runDir},
              {"stateDir", options_.stateDir}};
}

Json SandboxManager::detailJson(const SandboxRecord& record) const {
  return sandboxDetailJson(record, registry_.find(record.policyName), options_.pinRoot, *runtime_);
}

// --- instance overrides

Result<Json> SandboxManager::setHosts(const std::string& id, HostListKind kind,
                                      const std::vector<std::string>& hosts) {
  return changeSandbox(id, [&](SandboxRecord& r, const PolicyEntry&) {
    return control_model::setHostList(r.overrides, kind, hosts);
  });
}

Result<Json> SandboxManager::addHost(const std::string& id, HostListKind kind,
                                     const std::string& host) {
  return changeSandbox(id, [&](SandboxRecord& r, const PolicyEntry&) {
    return control_model::addHostEntry(r.overrides, kind, host);
  });
}

Result<Json> SandboxManager::removeHost(const std::string& id, HostListKind kind,
                                        const std::string& host) {
  return changeSandbox(id, [&](SandboxRecord& r, const PolicyEntry& entry) {
    const policy::HostList& base =
        kind == HostListKind::kAllowed ? entry.policy.allowedHosts : entry.policy.deniedHosts;
    return control_model::removeHostEntry(r.overrides, kind, host, base, id);
  });
}

Result<Json> SandboxManager::setOutboundByHost(const std::string& id, const std::string& host,
                                               const policy::HandlerRef& ref) {
  return changeSandbox(id, [&](SandboxRecord& r, const PolicyEntry&) {
    return control_model::setOutboundByHost(r.overrides, host, ref);
  });
}

Result<Json> SandboxManager::removeOutboundByHost(const std::string& id, const std::string& host) {
  return changeSandbox(id, [&](SandboxRecord& r, const PolicyEntry&) {
    return control_model::removeOutboundByHost(r.overrides, host, id);
  });
}

Result<Json> SandboxManager::setOutboundByHosts(
    const std::string& id, const std::map<std::string, policy::HandlerRef>& refs) {
  return changeSandbox(id, [&](SandboxRecord& r, const PolicyEntry&) {
    return control_model::setOutboundByHosts(r.overrides, refs);
  });
}

Result<Json> SandboxManager::setOutboundHandler(const std::string& id,
                                                const policy::HandlerRef& ref) {
  return changeSandbox(id, [&](SandboxRecord& r, const PolicyEntry&) {
    control_model::setOutboundHandler(r.overrides, ref);
    return okStatus();
  });
}

Result<Json> SandboxManager::removeOutboundHandler(const std::string& id) {
  return changeSandbox(id, [&](SandboxRecord& r, const PolicyEntry&) {
    return control_model::removeOutboundHandler(r.overrides, id);
  });
}

// --- secrets

Result<Json> SandboxManager::setSecret(const std::string& name, std::string value) {
  std::lock_guard lock(mutex_);
  if (auto set = secrets_->set(name, std::move(value)); !set.ok()) {
    return Error(EINVAL, set.error().message());
  }
  missingSecretNames_.erase(
      std::remove(missingSecretNames_.begin(), missingSecretNames_.end(), name),
      missingSecretNames_.end());
  saveStateLogged();
  return Json{{"name", name}, {"persisted", options_.persistSecrets}};
}

Result<Json> SandboxManager::removeSecret(const std::string& name) {
  std::lock_guard lock(mutex_);
  const auto missing = std::find(missingSecretNames_.begin(), missingSecretNames_.end(), name);
  const bool wasMissing = missing != missingSecretNames_.end();
  if (wasMissing) {
    missingSecretNames_.erase(missing);
  }
  if (!secrets_->remove(name) && !wasMissing) {
    return Error(ENOENT, "no secret '" + name + "' was set through the API");
  }
  saveStateLogged();
  return Json{{"removed", name}};
}

Json SandboxManager::listSecrets() {
  std::lock_guard lock(mutex_);
  Json list = Json::array();
  for (const std::string& name : secrets_->apiNames()) {
    list.push_back({{"name", name}, {"source", "api"}});
  }
  for (const std::string& name : missingSecretNames_) {
    list.push_back({{"name", name},
                    {"source", "api"},
                    {"missing", true},
                    {"note", "value not kept across the restart: set it again"}});
  }
  for (const auto& [policyName, entry] : registry_.all()) {
    for (const auto& [name, source] : entry.policy.secrets) {
      const bool file = source.kind == policy::SecretSource::Kind::kFile;
      list.push_back(
          {{"name", name},
           {"source", "policy " + policyName + ": " + (file ? "file " : "env ") + source.value}});
    }
  }
  return Json{{"secrets", list}};
}

// --- status, audit

Json SandboxManager::status() {
  std::lock_guard lock(mutex_);
  return Json{{"version", EGRESSD_VERSION},     {"pinRoot", options_.pinRoot},
              {"stateDir", options_.stateDir},  {"policyDir", options_.policyDir},
              {"socket", options_.socketPath},  {"persistSecrets", options_.persistSecrets},
              {"sandboxes", sandboxes_.size()}, {"policies", registry_.size()}};
}

Result<Json> SandboxManager::auditTail(const audit::AuditQuery& query) {
  const std::string& path = proxyOptions_.auditLog;
  if (path.empty() || path == "-") {
    return Error(control_model::kNoAuditFile,
                 "the daemon writes no audit file (it was started with --audit-log - or none)");
  }
  auto tail = audit::readAuditTail(path, query);
  if (!tail.ok()) {
    return Error(kInternal, tail.error().message());
  }
  if (!tail->fileExists) {
    // Nothing decided yet: the log is created with its first record.
    return Json{{"records", Json::array()}, {"next", 0}};
  }
  return Json{{"records", std::move(tail->records)}, {"next", tail->next}, {"file", path}};
}

// --- state

Status SandboxManager::saveState() const {
  control_model::DaemonState state;
  for (const auto& [name, entry] : registry_.all()) {
    if (entry.fromApi) {
      state.apiPolicies[name] = entry.yaml;
    }
  }
  for (const auto& [id, r] : sandboxes_) {
    state.sandboxes.push_back(static_cast<const control_model::StoredSandbox&>(r));
  }
  state.secretNames = secrets_->apiNames();
  state.secretNames.insert(state.secretNames.end(), missingSecretNames_.begin(),
                           missingSecretNames_.end());
  if (options_.persistSecrets) {
    state.secretValues = secrets_->apiValues();
  }
  return stateStore_.save(state);
}

void SandboxManager::saveStateLogged() const {
  if (auto saved = saveState(); !saved.ok()) {
    spdlog::error("{}", saved.error().message());
  }
}

Status SandboxManager::restore() {
  std::lock_guard lock(mutex_);
  auto files = control_model::loadPolicyDir(options_.policyDir);
  if (!files.ok()) {
    return std::move(files).error();
  }
  EGRESSD_TRY(registry_.replace(std::move(*files)));
  auto state = stateStore_.load();
  if (!state.ok()) {
    return std::move(state).error();
  }
  if (!state->has_value()) {
    spdlog::info("no state in {}: starting empty", options_.stateDir);
    return saveState();
  }
  return restoreFrom(**state);
}

Status SandboxManager::restoreFrom(const control_model::DaemonState& state) {
  for (const auto& [name, yaml] : state.apiPolicies) {
    auto entry = control_model::parsePolicyEntry(yaml, "api", true);
    if (!entry.ok()) {
      return Error(EINVAL,
                   stateStore_.path() + ": stored policy " + name + ": " + entry.error().message());
    }
    registry_.put(name, std::move(*entry));
  }
  for (const std::string& name : state.secretNames) {
    if (state.secretValues && state.secretValues->count(name) != 0U) {
      if (auto set = secrets_->set(name, state.secretValues->at(name)); !set.ok()) {
        spdlog::warn("stored secret {}: {}", name, set.error().message());
      }
    } else {
      missingSecretNames_.push_back(name);
    }
  }
  if (!missingSecretNames_.empty()) {
    spdlog::warn(
        "secret values set through the API were not kept (--persist-secrets is off): "
        "{}; set them again",
        joined(missingSecretNames_));
  }
  for (const control_model::StoredSandbox& s : state.sandboxes) {
    SandboxRecord record;
    static_cast<control_model::StoredSandbox&>(record) = s;
    struct stat cg {};
    if (::stat(record.cgroupPath.c_str(), &cg) != 0) {
      spdlog::warn("sandbox {}: its cgroup {} is gone; forgetting the sandbox", record.id,
                   record.cgroupPath);
      (void)lifecycle_->detachKernel(record.id);
      unpinNetns(record.netns, proxyOptions_.runDir, record.id);
      continue;
    }
    if (auto id = sandbox::cgroupId(record.cgroupPath); id.ok()) {
      record.cgroupId = *id;
    }
    const PolicyEntry* entry = registry_.find(record.policyName);
    if (entry == nullptr) {
      // Enforcement stays pinned as it was: never less strict because a file went missing.
      return Error(ENOENT, "sandbox " + record.id + " uses policy '" + record.policyName +
                               "', which is neither in " + options_.policyDir + " nor stored");
    }
    if (auto armed = lifecycle_->armNew(record, *entry); !armed.ok()) {
      return std::move(armed).error().wrap("restoring sandbox " + record.id);
    }
    spdlog::info("sandbox {} restored (policy {})", record.id, record.policyName);
    sandboxes_.emplace(record.id, std::move(record));
  }
  return saveState();
}

}  // namespace egressd::daemon
