#include "daemon/sandbox_manager.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "common/fs.h"
#include "common/unique_fd.h"
#include "daemon/arming.h"
#include "loader/bpffs.h"
#include "loader/maps.h"
#include "sandbox/cgroup.h"
#include "sandbox/socket_reaper.h"

namespace egressd::daemon {

using control::apiError;
using control::ApiRequest;
using control::ApiResponse;

namespace {

// Error codes of this layer beyond errno, mapped to API codes by toApi().
constexpr int kUnknownHandler = 10001;
constexpr int kInvalidPolicy = 10002;
constexpr int kUnknownPolicy = 10003;

constexpr const char* kStateFile = "state.json";
constexpr int kStateVersion = 1;

ApiResponse toApi(const Error& e) {
  switch (e.code()) {
    case kUnknownHandler:
      return apiError(400, "unknown_handler", e.message());
    case kInvalidPolicy:
      return apiError(400, "invalid_policy", e.message());
    case kUnknownPolicy:
      return apiError(400, "unknown_policy", e.message());
    case EINVAL:
      return apiError(400, "invalid_request", e.message());
    case ENOENT:
      return apiError(404, "not_found", e.message());
    case EEXIST:
    case EBUSY:
      return apiError(409, "conflict", e.message());
    default:
      return apiError(500, "internal", e.message());
  }
}

ApiResponse unknownSandbox(const std::string& id) {
  return apiError(404, "unknown_sandbox", "no sandbox '" + id + "' (egressctl sandbox list)");
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) {
    out += (out.empty() ? "" : ", ") + s;
  }
  return out;
}

bool isLoopback(const IpAddress& a) {
  if (a.family == AF_INET) {
    return a.bytes[0] == 127;
  }
  static const uint8_t kV6Loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  static const uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(a.bytes.begin(), a.bytes.end(), kV6Loopback)) {
    return true;
  }
  return std::equal(a.bytes.begin(), a.bytes.begin() + 12, kMappedPrefix) && a.bytes[12] == 127;
}

Result<std::shared_ptr<const handlers::HandlerSet>> compileHandlers(const policy::Policy& p) {
  auto compiled = handlers::HandlerSet::compile(p);
  if (!compiled.ok()) {
    return Error(kInvalidPolicy, compiled.error().message());
  }
  return compiled;
}

Result<SandboxManager::PolicyEntry> parseEntry(const std::string& yaml, const std::string& source,
                                               bool fromApi) {
  auto parsed = policy::parsePolicy(yaml, source);
  if (!parsed.ok()) {
    return Error(kInvalidPolicy, parsed.error().message());
  }
  if (parsed->name.empty()) {
    return Error(kInvalidPolicy, source + ": the policy needs a name (name: ...)");
  }
  auto compiled = compileHandlers(*parsed);
  if (!compiled.ok()) {
    return std::move(compiled).error();
  }
  // Handler actions that can never run (after an unconditional terminator, ...).
  parsed->warnings.insert(parsed->warnings.end(), (*compiled)->warnings().begin(),
                          (*compiled)->warnings().end());
  SandboxManager::PolicyEntry entry;
  entry.policy = std::move(*parsed);
  entry.handlers = std::move(*compiled);
  entry.yaml = yaml;
  entry.source = fromApi ? "api" : "file:" + source;
  entry.fromApi = fromApi;
  return entry;
}

Status checkRef(const SandboxManager::PolicyEntry& entry, const policy::HandlerRef& ref) {
  if (!entry.handlers || !entry.handlers->contains(ref.handler)) {
    std::vector<std::string> names =
        entry.handlers ? entry.handlers->names() : std::vector<std::string>{};
    return Error(
        kUnknownHandler,
        "unknown handler '" + ref.handler + "': policy " + entry.policy.name +
            (names.empty() ? " defines no outboundHandlers" : " defines " + joined(names)));
  }
  auto params = entry.handlers->checkParams(ref.handler, ref.params);
  if (!params.ok()) {
    return Error(EINVAL, params.error().message());
  }
  return okStatus();
}

nlohmann::json refJson(const policy::HandlerRef& ref, const char* from) {
  return {{"handler", ref.handler}, {"params", ref.params}, {"from", from}};
}

}  // namespace

struct SandboxManager::Compiled {
  policy::Policy effective;
  std::shared_ptr<const proxy::SandboxPolicyView> view;
};

SandboxManager::SandboxManager(const ManagerOptions& options)
    : options_(options), enforcer_(options.pinRoot) {}

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
  manager->secrets_ = manager->runtime_->secrets();
  return manager;
}

void SandboxManager::flush() {
  std::lock_guard lock(mutex_);
  runtime_->flush();
  if (sandboxes_.empty()) {
    enforcer_.removeMapsIfUnused();
  }
}

const SandboxManager::PolicyEntry* SandboxManager::policyFor(const SandboxRecord& record) const {
  auto it = policies_.find(record.policyName);
  return it == policies_.end() ? nullptr : &it->second;
}

// --- policies

Result<std::map<std::string, SandboxManager::PolicyEntry>> SandboxManager::loadPolicyDir() const {
  std::map<std::string, PolicyEntry> out;
  std::error_code ec;
  if (options_.policyDir.empty()) {
    return out;
  }
  // Missing: no policy files (yet). Anything else that is not a readable directory is an
  // error, never "no policies": callers keep the policies in force.
  const auto dirStatus = std::filesystem::status(options_.policyDir, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return Error(kInvalidPolicy, "policy directory " + options_.policyDir + ": " + ec.message());
  }
  if (!std::filesystem::exists(dirStatus)) {
    return out;
  }
  if (!std::filesystem::is_directory(dirStatus)) {
    return Error(kInvalidPolicy,
                 "policy directory " + options_.policyDir + ": " + std::strerror(ENOTDIR));
  }
  std::vector<std::string> files;
  for (auto it = std::filesystem::directory_iterator(options_.policyDir, ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    const std::filesystem::path& path = it->path();
    const std::string ext = path.extension().string();
    // Hidden files are editors' (an Emacs lock file is a dangling ".#name.yaml" symlink).
    if ((ext != ".yaml" && ext != ".yml") || path.filename().string().starts_with(".")) {
      continue;
    }
    std::error_code typeError;
    if (!std::filesystem::is_regular_file(path, typeError)) {
      // A policy file that cannot be read (a directory, a FIFO, a dangling symlink) is an
      // error like a malformed one: skipping it would drop its policy silently.
      return Error(kInvalidPolicy,
                   "policy file " + path.string() + ": " +
                       (typeError ? typeError.message() : std::string("not a regular file")));
    }
    files.push_back(path.string());
  }
  if (ec) {
    return Error(kInvalidPolicy,
                 "reading policy directory " + options_.policyDir + ": " + ec.message());
  }
  std::sort(files.begin(), files.end());
  for (const std::string& file : files) {
    auto text = readFile(file);
    if (!text.ok()) {
      return Error(kInvalidPolicy, text.error().message());
    }
    auto entry = parseEntry(*text, file, false);
    if (!entry.ok()) {
      return std::move(entry).error();
    }
    for (const std::string& warning : entry->policy.warnings) {
      spdlog::warn("{}", warning);
    }
    const std::string name = entry->policy.name;
    if (auto it = out.find(name); it != out.end()) {
      return Error(kInvalidPolicy, file + ": policy name '" + name + "' is also used by " +
                                       it->second.source.substr(5));
    }
    out.emplace(name, std::move(*entry));
  }
  return out;
}

Status SandboxManager::swapPolicies(std::map<std::string, PolicyEntry> next,
                                    std::vector<std::string>* touched) {
  // Everything is checked before anything changes: each sandbox must compile against its
  // (possibly new) policy, instance handler overrides included.
  std::vector<std::pair<SandboxRecord*, Compiled>> plan;
  for (auto& [id, record] : sandboxes_) {
    auto it = next.find(record.policyName);
    if (it == next.end()) {
      return Error(kInvalidPolicy, "sandbox " + id + " uses policy '" + record.policyName +
                                       "', which would be gone");
    }
    const PolicyEntry* current = policyFor(record);
    if (current != nullptr && current->yaml == it->second.yaml &&
        current->source == it->second.source) {
      continue;
    }
    auto compiled = compile(record, it->second);
    if (!compiled.ok()) {
      return Error(compiled.error().code(), "policy " + record.policyName + " for sandbox " + id +
                                                ": " + compiled.error().message());
    }
    plan.emplace_back(&record, std::move(*compiled));
  }
  policies_ = std::move(next);
  Status result = okStatus();
  for (auto& [record, compiled] : plan) {
    Status applied = applyCompiled(*record, compiled);
    if (!applied.ok() && result.ok()) {
      result = std::move(applied);
    }
    if (touched != nullptr) {
      touched->push_back(record->id);
    }
  }
  return result;
}

ApiResponse SandboxManager::reloadPolicyFiles() {
  std::lock_guard lock(mutex_);
  auto files = loadPolicyDir();
  if (!files.ok()) {
    spdlog::error("reload rejected, the policies in force stay: {}", files.error().message());
    return toApi(files.error());
  }
  std::map<std::string, PolicyEntry> next = std::move(*files);
  for (const auto& [name, entry] : policies_) {
    if (entry.fromApi) {
      next[name] = entry;  // applied through the API: kept over a file of the same name
    }
  }
  std::vector<std::string> touched;
  Status swapped = swapPolicies(std::move(next), &touched);
  if (!swapped.ok()) {
    spdlog::error("reload: {}", swapped.error().message());
    return toApi(swapped.error());
  }
  nlohmann::json names = nlohmann::json::array();
  for (const auto& [name, entry] : policies_) {
    names.push_back(name);
  }
  spdlog::info("policies reloaded from {} ({} sandboxes updated)", options_.policyDir,
               touched.size());
  return ApiResponse{200, {{"policies", names}, {"sandboxes", touched}}};
}

ApiResponse SandboxManager::applyPolicy(const std::string& yaml, const std::string& source) {
  std::lock_guard lock(mutex_);
  auto entry = parseEntry(yaml, source.empty() ? "api" : source, true);
  if (!entry.ok()) {
    return toApi(entry.error());
  }
  const std::string name = entry->policy.name;
  nlohmann::json warnings = entry->policy.warnings;
  for (const std::string& warning : entry->policy.warnings) {
    spdlog::warn("{}", warning);
  }
  std::map<std::string, PolicyEntry> next = policies_;
  next[name] = std::move(*entry);
  std::vector<std::string> touched;
  Status swapped = swapPolicies(std::move(next), &touched);
  if (!swapped.ok()) {
    return toApi(swapped.error());
  }
  if (auto saved = saveState(); !saved.ok()) {
    spdlog::error("{}", saved.error().message());
  }
  spdlog::info("policy {} applied through the API ({} sandboxes updated)", name, touched.size());
  return ApiResponse{200, {{"name", name}, {"sandboxes", touched}, {"warnings", warnings}}};
}

ApiResponse SandboxManager::validatePolicy(const std::string& yaml, const std::string& source) {
  auto entry = parseEntry(yaml, source.empty() ? "api" : source, true);
  if (!entry.ok()) {
    return toApi(entry.error());
  }
  return ApiResponse{
      200, {{"valid", true}, {"name", entry->policy.name}, {"warnings", entry->policy.warnings}}};
}

ApiResponse SandboxManager::listPolicies() {
  std::lock_guard lock(mutex_);
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [name, entry] : policies_) {
    std::vector<std::string> users;
    for (const auto& [id, record] : sandboxes_) {
      if (record.policyName == name) {
        users.push_back(id);
      }
    }
    list.push_back({{"name", name}, {"source", entry.source}, {"sandboxes", users}});
  }
  return ApiResponse{200, {{"policies", list}}};
}

ApiResponse SandboxManager::showPolicy(const std::string& name) {
  std::lock_guard lock(mutex_);
  auto it = policies_.find(name);
  if (it == policies_.end()) {
    return apiError(404, "unknown_policy", "no policy '" + name + "' (egressctl policy show)");
  }
  return ApiResponse{200,
                     {{"name", name}, {"source", it->second.source}, {"yaml", it->second.yaml}}};
}

// --- compiling and applying one sandbox

Result<SandboxManager::Compiled> SandboxManager::compile(const SandboxRecord& record,
                                                         const PolicyEntry& entry) const {
  for (const auto& [host, ref] : record.overrides.outboundByHost) {
    auto checked = checkRef(entry, ref);
    if (!checked.ok()) {
      return Error(checked.error().code(),
                   "outboundByHost " + host + ": " + checked.error().message());
    }
  }
  if (record.overrides.outbound) {
    EGRESSD_TRY(checkRef(entry, *record.overrides.outbound));
  }
  auto effective = policy::applyHostOverrides(entry.policy, record.overrides);
  if (!effective.ok()) {
    return Error(EINVAL, effective.error().message());
  }
  // The kernel's half must build too (rule counts, CIDR forms) before anything is applied.
  auto request = buildSandboxRequest(record.id, record.cgroupPath, *effective, record.proxy, 0);
  if (!request.ok()) {
    return Error(EINVAL, request.error().message());
  }
  auto view = proxy::makePolicyView(*effective, entry.handlers, &record.overrides);
  if (!view.ok()) {
    return Error(kInvalidPolicy, view.error().message());
  }
  return Compiled{std::move(*effective), std::move(*view)};
}

Status SandboxManager::applyCompiled(SandboxRecord& record, const Compiled& compiled) {
  SandboxOptions o{record.id, record.cgroupPath, "", record.netns, options_.pinRoot};
  auto armed =
      armWithPolicy(enforcer_, o, record.cgroupPath, compiled.effective, false, record.proxy, true);
  if (!armed.ok()) {
    return std::move(armed).error().wrap("sandbox " + record.id + ": kernel rules");
  }
  EGRESSD_TRY(runtime_->updateView(record.id, compiled.view, armed->ruleNames));
  reapDeniedSockets(record, compiled);
  return okStatus();
}

void SandboxManager::reapDeniedSockets(SandboxRecord& record, const Compiled& compiled) {
  auto ids = sandbox::cgroupTreeIds(record.cgroupPath);
  if (!ids.ok()) {
    spdlog::warn("sandbox {}: cannot list its cgroups to end denied sockets: {}", record.id,
                 ids.error().message());
    return;
  }
  const policy::HostPolicy& hosts = compiled.view->hosts;
  const uint16_t proxyPort = record.proxy.port;
  const uint16_t dnsPort = record.proxy.dnsPort;
  auto denied = [&](const sandbox::SocketInfo& s) {
    // Proxied connections (the kernel sent them to the proxy's loopback port) are judged
    // per request by the proxy; DNS (sent to egressd's resolver port) per query.
    if (s.remotePort == 53 ||
        (proxyPort != 0 && s.remotePort == proxyPort && isLoopback(s.remote)) ||
        (dnsPort != 0 && s.remotePort == dnsPort && isLoopback(s.remote))) {
      return false;
    }
    const auto protocol =
        s.protocol == IPPROTO_UDP ? policy::Protocol::kUdp : policy::Protocol::kTcp;
    return !hosts.decideAddress(s.unmappedRemote(), s.remotePort, protocol).allowed();
  };
  auto destroyed = sandbox::destroySockets(record.netns, *ids, denied);
  if (!destroyed.ok()) {
    spdlog::error("sandbox {}: ending sockets the new rules deny: {}", record.id,
                  destroyed.error().message());
    return;
  }
  for (const sandbox::SocketInfo& s : *destroyed) {
    spdlog::info("sandbox {}: ended {} (denied by the new rules)", record.id, sandbox::describe(s));
  }
  record.closedSockets += destroyed->size();
}

ApiResponse SandboxManager::changeSandbox(const std::string& id,
                                          const std::function<Status(SandboxRecord&)>& change) {
  std::lock_guard lock(mutex_);
  auto it = sandboxes_.find(id);
  if (it == sandboxes_.end()) {
    return unknownSandbox(id);
  }
  SandboxRecord next = it->second;
  if (auto changed = change(next); !changed.ok()) {
    return toApi(changed.error());
  }
  const PolicyEntry* entry = policyFor(next);
  if (entry == nullptr) {
    return apiError(500, "internal", "sandbox " + id + " has no policy " + next.policyName);
  }
  auto compiled = compile(next, *entry);
  if (!compiled.ok()) {
    return toApi(compiled.error());
  }
  if (auto applied = applyCompiled(next, *compiled); !applied.ok()) {
    return toApi(applied.error());
  }
  it->second = std::move(next);
  if (auto saved = saveState(); !saved.ok()) {
    spdlog::error("{}", saved.error().message());
  }
  return ApiResponse{200, detailJson(it->second)};
}

Status SandboxManager::armNew(SandboxRecord& record, const PolicyEntry& entry) {
  SandboxOptions o{record.id, record.cgroupPath, "", record.netns, options_.pinRoot};
  auto compiled = compile(record, entry);  // checks overrides; the proxy target comes next
  if (!compiled.ok()) {
    return std::move(compiled).error();
  }
  auto armed = armWithPolicy(enforcer_, o, record.cgroupPath, compiled->effective, true,
                             std::nullopt, false);
  if (!armed.ok()) {
    return std::move(armed).error();
  }
  proxy::ListenerReservation& r = *armed->reservation;
  record.proxy = ProxyTarget{r.addr4(), r.addr6(), r.port(), r.netnsCookie(), r.dnsPort()};
  proxy::DnsSockets dnsSockets = r.takeDnsSockets();
  auto maps = loader::PinnedMaps::open(options_.pinRoot);
  if (!maps.ok()) {
    return std::move(maps).error();
  }
  auto slot = maps->findSlot(record.id);
  if (!slot.ok() || !slot->has_value()) {
    return Error(EIO, "sandbox " + record.id + " has no slot after arming");
  }
  std::optional<proxy::ListenerReservation> listener;
  if (proxyOptions_.enabled) {
    listener = std::move(armed->reservation);
  }
  return runtime_->addSandbox(record.id, **slot, compiled->effective, armed->ruleNames,
                              std::move(listener), compiled->view, std::move(dnsSockets),
                              record.cgroupPath, record.netns);
}

// --- sandboxes

ApiResponse SandboxManager::createSandbox(const ApiRequest& request) {
  auto id = control::stringField(request.body, "id");
  auto policyName = control::stringField(request.body, "policy");
  auto cgroup = control::optionalString(request.body, "cgroup");
  auto netns = control::optionalString(request.body, "netns");
  auto createCgroup = control::boolField(request.body, "createCgroup", false);
  for (const Status& s : {Status(id.ok() ? okStatus() : Status(id.error())),
                          Status(policyName.ok() ? okStatus() : Status(policyName.error())),
                          Status(cgroup.ok() ? okStatus() : Status(cgroup.error())),
                          Status(netns.ok() ? okStatus() : Status(netns.error())),
                          Status(createCgroup.ok() ? okStatus() : Status(createCgroup.error()))}) {
    if (!s.ok()) {
      return control::invalidRequest(s.error());
    }
  }
  if (auto valid = loader::validateSandboxId(*id); !valid.ok()) {
    return apiError(400, "invalid_request", valid.error().message());
  }
  if (cgroup->has_value() == *createCgroup) {
    return apiError(400, "invalid_request",
                    "give either \"cgroup\" (an existing cgroup) or \"createCgroup\": true");
  }
  std::lock_guard lock(mutex_);
  if (sandboxes_.count(*id) != 0U) {
    return apiError(409, "conflict", "sandbox '" + *id + "' exists already");
  }
  auto policyIt = policies_.find(*policyName);
  if (policyIt == policies_.end()) {
    return apiError(400, "unknown_policy",
                    "no policy '" + *policyName + "' (egressctl policy show lists them)");
  }
  SandboxRecord record;
  record.id = *id;
  record.policyName = *policyName;
  if (netns->has_value()) {
    struct stat st {};
    if (::stat((*netns)->c_str(), &st) != 0) {
      return apiError(400, "invalid_request", "netns " + **netns + ": " + std::strerror(errno));
    }
    record.netns = **netns;
  }
  auto mount = sandbox::findCgroup2Mount();
  if (!mount.ok()) {
    return toApi(mount.error());
  }
  if (*createCgroup) {
    const bool defaultParent = options_.cgroupParent.empty();
    auto resolvedParent =
        sandbox::resolveCgroupPath(defaultParent ? *mount + "/egressd" : options_.cgroupParent);
    if (!resolvedParent.ok()) {
      return toApi(resolvedParent.error().wrap("cgroup parent (egressd daemon --cgroup-parent)"));
    }
    // The default parent is egressd's own and made on first use, on any layout (unified,
    // or hybrid with cgroup2 at /sys/fs/cgroup/unified). The hooks need no controllers, so
    // none are delegated to it. A parent named with --cgroup-parent must exist: a typo
    // should not create cgroups somewhere unexpected.
    if (defaultParent) {
      if (auto made = sandbox::createCgroup(*resolvedParent, true); !made.ok()) {
        return toApi(made.error().wrap(
            "create the default cgroup parent " + *resolvedParent +
            " (or start egressd daemon with --cgroup-parent PATH, an existing cgroup)"));
      }
    } else if (struct stat st{}; ::stat(resolvedParent->c_str(), &st) != 0) {
      return apiError(400, "invalid_request",
                      "cgroup parent " + *resolvedParent +
                          " (egressd daemon --cgroup-parent): " + std::strerror(errno));
    }
    record.cgroupPath = *resolvedParent + "/" + *id;
    if (::mkdir(record.cgroupPath.c_str(), 0755) != 0) {
      return toApi(lastSystemError("create cgroup " + record.cgroupPath));
    }
    record.createdCgroup = true;
  } else {
    auto resolved = sandbox::resolveCgroupPath(**cgroup);
    if (!resolved.ok()) {
      return apiError(400, "invalid_request", resolved.error().message());
    }
    record.cgroupPath = *resolved;
  }
  std::error_code ec;
  if (std::filesystem::equivalent(record.cgroupPath, *mount, ec)) {
    return apiError(400, "invalid_request",
                    "refusing the root cgroup: a sandbox is a cgroup of its own");
  }
  for (const auto& [otherId, other] : sandboxes_) {
    if (other.cgroupPath == record.cgroupPath) {
      return apiError(409, "conflict", "cgroup " + record.cgroupPath + " is sandbox " + otherId);
    }
  }
  if (auto armed = armNew(record, policyIt->second); !armed.ok()) {
    runtime_->removeSandbox(record.id);
    (void)enforcer_.detach(record.id);
    if (record.createdCgroup) {
      ::rmdir(record.cgroupPath.c_str());
    }
    return toApi(armed.error());
  }
  auto [it, inserted] = sandboxes_.emplace(record.id, std::move(record));
  (void)inserted;
  if (auto saved = saveState(); !saved.ok()) {
    spdlog::error("{}", saved.error().message());
  }
  spdlog::info("sandbox {} created (cgroup {}, policy {})", it->first, it->second.cgroupPath,
               it->second.policyName);
  return ApiResponse{201, detailJson(it->second)};
}

namespace {

// Ends the processes of a cgroup egressd created, then removes it.
void removeCreatedCgroup(const std::string& path) {
  {
    std::ofstream kill(path + "/cgroup.kill");
    if (kill) {
      kill << "1";
    }
  }
  for (int attempt = 0; attempt < 100; ++attempt) {
    if (::rmdir(path.c_str()) == 0 || errno == ENOENT) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  spdlog::warn("cgroup {} could not be removed: {}", path, std::strerror(errno));
}

}  // namespace

ApiResponse SandboxManager::deleteSandbox(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = sandboxes_.find(id);
  if (it == sandboxes_.end()) {
    return unknownSandbox(id);
  }
  runtime_->removeSandbox(id);
  if (auto detached = enforcer_.detach(id); !detached.ok()) {
    spdlog::error("sandbox {}: detach: {}", id, detached.error().message());
  }
  if (it->second.createdCgroup) {
    removeCreatedCgroup(it->second.cgroupPath);
  }
  sandboxes_.erase(it);
  if (auto saved = saveState(); !saved.ok()) {
    spdlog::error("{}", saved.error().message());
  }
  spdlog::info("sandbox {} deleted", id);
  return ApiResponse{200, {{"deleted", id}}};
}

ApiResponse SandboxManager::listSandboxes() {
  std::lock_guard lock(mutex_);
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [id, record] : sandboxes_) {
    list.push_back({{"id", id},
                    {"policy", record.policyName},
                    {"cgroup", record.cgroupPath},
                    {"openConnections", runtime_->openConnections(id)}});
  }
  return ApiResponse{200, {{"sandboxes", list}}};
}

ApiResponse SandboxManager::showSandbox(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = sandboxes_.find(id);
  if (it == sandboxes_.end()) {
    return unknownSandbox(id);
  }
  return ApiResponse{200, detailJson(it->second)};
}

ApiResponse SandboxManager::spawnInfo(const std::string& id) {
  std::lock_guard lock(mutex_);
  auto it = sandboxes_.find(id);
  if (it == sandboxes_.end()) {
    return unknownSandbox(id);
  }
  const SandboxRecord& record = it->second;
  nlohmann::json files = nlohmann::json::array();
  nlohmann::json variables = nlohmann::json::array();
  if (const PolicyEntry* entry = policyFor(record); entry != nullptr) {
    for (const auto& [name, source] : entry->policy.secrets) {
      (source.kind == policy::SecretSource::Kind::kFile ? files : variables)
          .push_back(source.value);
    }
  }
  const SandboxCaFiles ca = runtime_->caFiles(record.id);
  return ApiResponse{200,
                     {{"id", record.id},
                      {"cgroup", record.cgroupPath},
                      {"netns", record.netns},
                      {"caCert", ca.certificate},
                      {"caBundle", ca.bundle},
                      {"secretFiles", files},
                      {"secretVariables", variables},
                      {"runDir", proxyOptions_.runDir},
                      {"stateDir", options_.stateDir}}};
}

namespace {

// Secret files that a process of a daemon sandbox could read: egressd does not start those
// processes, so it cannot hide the files or pick their user (as `egressd run` does); all it
// can do is say so. Readable by non-root = not owned by root, or group/other may read.
nlohmann::json secretFileWarnings(const policy::Policy& p, const std::string& sandboxId) {
  nlohmann::json warnings = nlohmann::json::array();
  for (const auto& [name, source] : p.secrets) {
    if (source.kind != policy::SecretSource::Kind::kFile) {
      continue;
    }
    std::string path = source.value;
    for (size_t pos = path.find("${sandbox}"); pos != std::string::npos;
         pos = path.find("${sandbox}", pos + sandboxId.size())) {
      path.replace(pos, std::strlen("${sandbox}"), sandboxId);
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      continue;
    }
    if (st.st_uid != 0 || (st.st_mode & 0044) != 0) {
      char mode[8];
      std::snprintf(mode, sizeof(mode), "%04o", static_cast<unsigned>(st.st_mode & 07777));
      warnings.push_back("secret " + name + ": file " + path + " (mode " + mode + ", owner uid " +
                         std::to_string(st.st_uid) +
                         ") is readable by non-root users: a process of this sandbox running as "
                         "such a user can read the secret egressd injects (make it root-owned "
                         "0600, or 0400)");
    }
  }
  return warnings;
}

}  // namespace

nlohmann::json SandboxManager::detailJson(const SandboxRecord& record) const {
  const PolicyEntry* entry = policyFor(record);
  nlohmann::json effective = nlohmann::json::object();
  if (entry != nullptr) {
    const policy::Policy& p = entry->policy;
    effective["enableInternet"] = p.enableInternet;
    if (p.interceptHttps.hosts.empty()) {
      effective["interceptHttps"] = p.interceptHttps.all;
    } else {
      nlohmann::json globs = nlohmann::json::array();
      for (const auto& g : p.interceptHttps.hosts) {
        globs.push_back(g.text);
      }
      effective["interceptHttps"] = globs;
    }
    const bool allowWritten = p.allowedHosts.present || record.overrides.allowedHosts.set ||
                              !record.overrides.allowedHosts.added.empty();
    effective["allowedHosts"] = allowWritten ? nlohmann::json(policy::effectiveHostList(
                                                   p.allowedHosts, record.overrides.allowedHosts))
                                             : nlohmann::json(nullptr);
    effective["deniedHosts"] =
        policy::effectiveHostList(p.deniedHosts, record.overrides.deniedHosts);
    nlohmann::json byHost = nlohmann::json::array();
    for (const auto& [host, ref] : record.overrides.outboundByHost) {
      nlohmann::json j = refJson(ref, "instance");
      j["host"] = host;
      byHost.push_back(j);
    }
    for (const auto& h : p.outboundByHost) {
      nlohmann::json j = refJson(h.ref, "policy");
      j["host"] = h.host.text;
      byHost.push_back(j);
    }
    effective["outboundByHost"] = byHost;
    effective["outbound"] = record.overrides.outbound
                                ? refJson(*record.overrides.outbound, "instance")
                            : p.outbound ? refJson(*p.outbound, "policy")
                                         : nlohmann::json(nullptr);
  }
  nlohmann::json kernel = nlohmann::json::object();
  if (auto maps = loader::PinnedMaps::open(options_.pinRoot); maps.ok()) {
    auto slot = maps->findSlot(record.id);
    if (slot.ok() && slot->has_value()) {
      if (auto counters = maps->counters(**slot); counters.ok()) {
        for (uint32_t r = 1; r < EGRESSD_REASON_MAX; ++r) {
          if (counters->by_reason[r] != 0) {
            kernel[loader::reasonName(r)] = counters->by_reason[r];
          }
        }
      }
    }
  }
  SandboxCaFiles ca = runtime_->caFiles(record.id);
  nlohmann::json overrides = record.overrides.toJson();
  for (auto& [host, ref] : overrides["outboundByHost"].items()) {
    (void)host;
    ref.erase("from");
  }
  // Name-based allow rules' live kernel entries (from the sandbox's DNS answers).
  nlohmann::json nameEntries = nlohmann::json::array();
  for (const proxy::NameRuleState& s : runtime_->nameRuleEntries(record.id)) {
    nameEntries.push_back({{"name", s.name},
                           {"address", s.entry.addr.toString()},
                           {"protocol", s.entry.proto == EGRESSD_PROTO_TCP   ? "tcp"
                                        : s.entry.proto == EGRESSD_PROTO_UDP ? "udp"
                                                                             : "any"},
                           {"port", s.entry.port},
                           {"rule", s.rule},
                           {"expiresInSeconds", s.expiresIn}});
  }
  return {{"id", record.id},
          {"policy", record.policyName},
          {"cgroup", record.cgroupPath},
          {"createdCgroup", record.createdCgroup},
          {"netns", record.netns},
          {"caCert", ca.certificate},
          {"caBundle", ca.bundle},
          {"proxyPort", record.proxy.port},
          {"dnsPort", record.proxy.dnsPort},
          {"nameRuleEntries", nameEntries},
          {"overrides", overrides},
          {"effective", effective},
          {"warnings", entry != nullptr ? secretFileWarnings(entry->policy, record.id)
                                        : nlohmann::json::array()},
          {"counters",
           {{"openConnections", runtime_->openConnections(record.id)},
            {"kernel", kernel},
            {"closedSockets", record.closedSockets}}}};
}

// --- the setters

namespace {

policy::HostListOverride& listOf(policy::InstanceOverrides& o, SandboxManager::HostListKind kind) {
  return kind == SandboxManager::HostListKind::kAllowed ? o.allowedHosts : o.deniedHosts;
}

const char* listName(SandboxManager::HostListKind kind) {
  return kind == SandboxManager::HostListKind::kAllowed ? "allowedHosts" : "deniedHosts";
}

Status validHostEntry(const std::string& host, const char* list) {
  auto key = policy::hostEntryKey(host);
  if (!key.ok()) {
    return Error(EINVAL, std::string(list) + " entry \"" + host + "\": " + key.error().message());
  }
  return okStatus();
}

bool sameEntry(const std::string& a, const std::string& b) {
  auto ka = policy::hostEntryKey(a);
  auto kb = policy::hostEntryKey(b);
  return ka.ok() && kb.ok() ? *ka == *kb : a == b;
}

void eraseEntry(std::vector<std::string>& list, const std::string& host) {
  list.erase(std::remove_if(list.begin(), list.end(),
                            [&](const std::string& e) { return sameEntry(e, host); }),
             list.end());
}

}  // namespace

ApiResponse SandboxManager::setHosts(const std::string& id, HostListKind kind,
                                     const std::vector<std::string>& hosts) {
  return changeSandbox(id, [&](SandboxRecord& r) -> Status {
    for (const std::string& h : hosts) {
      EGRESSD_TRY(validHostEntry(h, listName(kind)));
    }
    policy::HostListOverride& list = listOf(r.overrides, kind);
    list = policy::HostListOverride{};
    list.set = hosts;
    return okStatus();
  });
}

ApiResponse SandboxManager::addHost(const std::string& id, HostListKind kind,
                                    const std::string& host) {
  return changeSandbox(id, [&](SandboxRecord& r) -> Status {
    EGRESSD_TRY(validHostEntry(host, listName(kind)));
    policy::HostListOverride& list = listOf(r.overrides, kind);
    eraseEntry(list.removed, host);
    eraseEntry(list.added, host);
    list.added.push_back(host);
    return okStatus();
  });
}

ApiResponse SandboxManager::removeHost(const std::string& id, HostListKind kind,
                                       const std::string& host) {
  return changeSandbox(id, [&](SandboxRecord& r) -> Status {
    EGRESSD_TRY(validHostEntry(host, listName(kind)));
    const PolicyEntry* entry = policyFor(r);
    const policy::HostList& base =
        kind == HostListKind::kAllowed ? entry->policy.allowedHosts : entry->policy.deniedHosts;
    policy::HostListOverride& list = listOf(r.overrides, kind);
    const auto current = policy::effectiveHostList(base, list);
    if (std::none_of(current.begin(), current.end(),
                     [&](const std::string& e) { return sameEntry(e, host); })) {
      return Error(ENOENT, "\"" + host + "\" is not in sandbox " + id + "'s " + listName(kind));
    }
    eraseEntry(list.added, host);
    if (list.set) {
      eraseEntry(*list.set, host);
    }
    // Still there: it comes from the policy, so the instance removes it on top.
    if (!list.set) {
      eraseEntry(list.removed, host);
      list.removed.push_back(host);
    }
    return okStatus();
  });
}

namespace {

Result<std::string> handlerHostKey(const std::string& host) {
  auto glob = policy::normalizeHostGlob(host);
  if (!glob.ok()) {
    return Error(EINVAL, "outboundByHost host \"" + host + "\": " + glob.error().message());
  }
  return glob;
}

}  // namespace

ApiResponse SandboxManager::setOutboundByHost(const std::string& id, const std::string& host,
                                              const policy::HandlerRef& ref) {
  return changeSandbox(id, [&](SandboxRecord& r) -> Status {
    auto key = handlerHostKey(host);
    if (!key.ok()) {
      return std::move(key).error();
    }
    r.overrides.outboundByHost[*key] = ref;
    return okStatus();
  });
}

ApiResponse SandboxManager::removeOutboundByHost(const std::string& id, const std::string& host) {
  return changeSandbox(id, [&](SandboxRecord& r) -> Status {
    auto key = handlerHostKey(host);
    if (!key.ok()) {
      return std::move(key).error();
    }
    if (r.overrides.outboundByHost.erase(*key) == 0) {
      return Error(ENOENT, "sandbox " + id + " has no instance handler for " + host);
    }
    return okStatus();
  });
}

ApiResponse SandboxManager::setOutboundByHosts(
    const std::string& id, const std::map<std::string, policy::HandlerRef>& refs) {
  return changeSandbox(id, [&](SandboxRecord& r) -> Status {
    std::map<std::string, policy::HandlerRef> next;
    for (const auto& [host, ref] : refs) {
      auto key = handlerHostKey(host);
      if (!key.ok()) {
        return std::move(key).error();
      }
      next[*key] = ref;
    }
    r.overrides.outboundByHost = std::move(next);
    return okStatus();
  });
}

ApiResponse SandboxManager::setOutboundHandler(const std::string& id,
                                               const policy::HandlerRef& ref) {
  return changeSandbox(id, [&](SandboxRecord& r) -> Status {
    r.overrides.outbound = ref;
    return okStatus();
  });
}

ApiResponse SandboxManager::removeOutboundHandler(const std::string& id) {
  return changeSandbox(id, [&](SandboxRecord& r) -> Status {
    if (!r.overrides.outbound) {
      return Error(ENOENT, "sandbox " + id + " has no instance catch-all handler");
    }
    r.overrides.outbound.reset();
    return okStatus();
  });
}

// --- secrets

ApiResponse SandboxManager::setSecret(const std::string& name, std::string value) {
  std::lock_guard lock(mutex_);
  if (auto set = secrets_->set(name, std::move(value)); !set.ok()) {
    return apiError(400, "invalid_request", set.error().message());
  }
  missingSecretNames_.erase(
      std::remove(missingSecretNames_.begin(), missingSecretNames_.end(), name),
      missingSecretNames_.end());
  if (auto saved = saveState(); !saved.ok()) {
    spdlog::error("{}", saved.error().message());
  }
  return ApiResponse{200, {{"name", name}, {"persisted", options_.persistSecrets}}};
}

ApiResponse SandboxManager::removeSecret(const std::string& name) {
  std::lock_guard lock(mutex_);
  const auto missing = std::find(missingSecretNames_.begin(), missingSecretNames_.end(), name);
  const bool wasMissing = missing != missingSecretNames_.end();
  if (wasMissing) {
    missingSecretNames_.erase(missing);
  }
  if (!secrets_->remove(name) && !wasMissing) {
    return apiError(404, "not_found", "no secret '" + name + "' was set through the API");
  }
  if (auto saved = saveState(); !saved.ok()) {
    spdlog::error("{}", saved.error().message());
  }
  return ApiResponse{200, {{"removed", name}}};
}

ApiResponse SandboxManager::listSecrets() {
  std::lock_guard lock(mutex_);
  nlohmann::json list = nlohmann::json::array();
  for (const std::string& name : secrets_->apiNames()) {
    list.push_back({{"name", name}, {"source", "api"}});
  }
  for (const std::string& name : missingSecretNames_) {
    list.push_back({{"name", name},
                    {"source", "api"},
                    {"missing", true},
                    {"note", "value not kept across the restart: set it again"}});
  }
  for (const auto& [policyName, entry] : policies_) {
    for (const auto& [name, source] : entry.policy.secrets) {
      const bool file = source.kind == policy::SecretSource::Kind::kFile;
      list.push_back(
          {{"name", name},
           {"source", "policy " + policyName + ": " + (file ? "file " : "env ") + source.value}});
    }
  }
  return ApiResponse{200, {{"secrets", list}}};
}

// --- status, audit

ApiResponse SandboxManager::status() {
  std::lock_guard lock(mutex_);
  return ApiResponse{200,
                     {{"version", EGRESSD_VERSION},
                      {"pinRoot", options_.pinRoot},
                      {"stateDir", options_.stateDir},
                      {"policyDir", options_.policyDir},
                      {"socket", options_.socketPath},
                      {"persistSecrets", options_.persistSecrets},
                      {"sandboxes", sandboxes_.size()},
                      {"policies", policies_.size()}}};
}

ApiResponse SandboxManager::auditTail(const AuditQuery& query) {
  const std::string& path = proxyOptions_.auditLog;
  if (path.empty() || path == "-") {
    return apiError(409, "no_audit_file",
                    "the daemon writes no audit file (it was started with --audit-log - or "
                    "none)");
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    // Nothing decided yet: the log is created with its first record.
    if (errno == ENOENT) {
      return ApiResponse{200, {{"records", nlohmann::json::array()}, {"next", 0}}};
    }
    return apiError(500, "internal",
                    "cannot read the audit log " + path + ": " + std::strerror(errno));
  }
  // The tail only: the last 4 MiB hold far more lines than anyone asks for. A follower
  // reads from its offset, at most that much per call; a log that shrank was rotated or
  // truncated, and is read from its start.
  constexpr std::streamoff kWindow = 4 << 20;
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  std::streamoff from = size > kWindow ? size - kWindow : 0;
  bool partialFirst = from > 0;
  if (query.after) {
    from = static_cast<std::streamoff>(*query.after) <= size
               ? static_cast<std::streamoff>(*query.after)
               : 0;
    partialFirst = false;
  }
  const std::streamoff to = query.after ? std::min(size, from + kWindow) : size;
  in.seekg(from);
  std::string chunk(static_cast<size_t>(to - from), '\0');
  in.read(chunk.data(), static_cast<std::streamsize>(chunk.size()));
  chunk.resize(static_cast<size_t>(in.gcount()));
  // Only complete lines: a record being written is read by the next call.
  const size_t complete = chunk.rfind('\n') == std::string::npos ? 0 : chunk.rfind('\n') + 1;
  std::vector<nlohmann::json> records;
  size_t start = 0;
  if (partialFirst) {
    start = chunk.find('\n') == std::string::npos ? complete : chunk.find('\n') + 1;
  }
  while (start < complete) {
    const size_t end = chunk.find('\n', start);
    auto j = nlohmann::json::parse(chunk.substr(start, end - start), nullptr, false);
    start = end + 1;
    if (j.is_discarded() || !j.is_object() ||
        (!query.sandbox.empty() && j.value("sandbox", "") != query.sandbox) ||
        (!query.layer.empty() && j.value("layer", "") != query.layer) ||
        (!query.decision.empty() && j.value("decision", "") != query.decision)) {
      continue;
    }
    records.push_back(std::move(j));
  }
  const size_t first =
      !query.after && records.size() > query.lines ? records.size() - query.lines : 0;
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = first; i < records.size(); ++i) {
    out.push_back(std::move(records[i]));
  }
  return ApiResponse{
      200, {{"records", out}, {"next", static_cast<uint64_t>(from) + complete}, {"file", path}}};
}

// --- state

Status SandboxManager::saveState() const {
  nlohmann::json policies = nlohmann::json::object();
  for (const auto& [name, entry] : policies_) {
    if (entry.fromApi) {
      policies[name] = {{"yaml", entry.yaml}};
    }
  }
  nlohmann::json sandboxes = nlohmann::json::array();
  for (const auto& [id, r] : sandboxes_) {
    sandboxes.push_back({{"id", id},
                         {"policy", r.policyName},
                         {"cgroup", r.cgroupPath},
                         {"createdCgroup", r.createdCgroup},
                         {"netns", r.netns},
                         {"overrides", r.overrides.toJson()}});
  }
  std::vector<std::string> names = secrets_->apiNames();
  names.insert(names.end(), missingSecretNames_.begin(), missingSecretNames_.end());
  nlohmann::json secrets = {{"names", names}};
  if (options_.persistSecrets) {
    secrets["values"] = secrets_->apiValues();
  }
  nlohmann::json state = {{"version", kStateVersion},
                          {"policies", policies},
                          {"sandboxes", sandboxes},
                          {"secrets", secrets}};
  // 0600: with --persist-secrets it holds secret values.
  auto written = writeFileAtomic(options_.stateDir + "/" + kStateFile, state.dump(2) + "\n", 0600);
  if (!written.ok()) {
    return std::move(written).error().wrap("saving daemon state");
  }
  return okStatus();
}

Status SandboxManager::restore() {
  std::lock_guard lock(mutex_);
  auto files = loadPolicyDir();
  if (!files.ok()) {
    return std::move(files).error();
  }
  policies_ = std::move(*files);
  const std::string statePath = options_.stateDir + "/" + kStateFile;
  struct stat st {};
  if (::stat(statePath.c_str(), &st) != 0) {
    spdlog::info("no state in {}: starting empty", options_.stateDir);
    return saveState();
  }
  auto text = readFile(statePath);
  if (!text.ok()) {
    return std::move(text).error();
  }
  auto state = nlohmann::json::parse(*text, nullptr, false);
  if (state.is_discarded() || !state.is_object()) {
    return Error(EINVAL, statePath + ": not valid JSON; move it aside to start empty");
  }
  try {
    return restoreFrom(state, statePath);
  } catch (const nlohmann::json::exception& e) {
    return Error(EINVAL, statePath + ": unexpected content (" + e.what() +
                             "); move it aside to start empty");
  }
}

Status SandboxManager::restoreFrom(const nlohmann::json& state, const std::string& statePath) {
  // Named, not temporaries: items() iterates the object it was called on.
  const nlohmann::json storedPolicies = state.value("policies", nlohmann::json::object());
  for (const auto& [name, p] : storedPolicies.items()) {
    auto entry = parseEntry(p.value("yaml", ""), "api", true);
    if (!entry.ok()) {
      return Error(EINVAL, statePath + ": stored policy " + name + ": " + entry.error().message());
    }
    policies_[name] = std::move(*entry);
  }
  const nlohmann::json secrets = state.value("secrets", nlohmann::json::object());
  const nlohmann::json values = secrets.value("values", nlohmann::json::object());
  const nlohmann::json names = secrets.value("names", nlohmann::json::array());
  for (const auto& name : names) {
    const std::string n = name.get<std::string>();
    if (options_.persistSecrets && values.contains(n)) {
      if (auto set = secrets_->set(n, values[n].get<std::string>()); !set.ok()) {
        spdlog::warn("stored secret {}: {}", n, set.error().message());
      }
    } else {
      missingSecretNames_.push_back(n);
    }
  }
  if (!missingSecretNames_.empty()) {
    spdlog::warn(
        "secret values set through the API were not kept (--persist-secrets is off): "
        "{}; set them again",
        joined(missingSecretNames_));
  }
  const nlohmann::json storedSandboxes = state.value("sandboxes", nlohmann::json::array());
  for (const auto& s : storedSandboxes) {
    SandboxRecord record;
    record.id = s.value("id", "");
    record.policyName = s.value("policy", "");
    record.cgroupPath = s.value("cgroup", "");
    record.createdCgroup = s.value("createdCgroup", false);
    record.netns = s.value("netns", "");
    auto overrides =
        policy::InstanceOverrides::fromJson(s.value("overrides", nlohmann::json::object()));
    if (!overrides.ok()) {
      return Error(EINVAL,
                   statePath + ": sandbox " + record.id + ": " + overrides.error().message());
    }
    record.overrides = std::move(*overrides);
    struct stat cg {};
    if (::stat(record.cgroupPath.c_str(), &cg) != 0) {
      spdlog::warn("sandbox {}: its cgroup {} is gone; forgetting the sandbox", record.id,
                   record.cgroupPath);
      (void)enforcer_.detach(record.id);
      continue;
    }
    const PolicyEntry* entry = policyFor(record);
    if (entry == nullptr) {
      // Enforcement stays pinned as it was: never less strict because a file went missing.
      return Error(ENOENT, "sandbox " + record.id + " uses policy '" + record.policyName +
                               "', which is neither in " + options_.policyDir + " nor stored");
    }
    if (auto armed = armNew(record, *entry); !armed.ok()) {
      return std::move(armed).error().wrap("restoring sandbox " + record.id);
    }
    spdlog::info("sandbox {} restored (policy {})", record.id, record.policyName);
    sandboxes_.emplace(record.id, std::move(record));
  }
  return saveState();
}

}  // namespace egressd::daemon
