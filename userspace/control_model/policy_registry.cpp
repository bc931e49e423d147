#include "control_model/policy_registry.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <vector>

#include "common/fs.h"
#include "control_model/errors.h"

namespace egressd::control_model {

namespace {

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) {
    out += (out.empty() ? "" : ", ") + s;
  }
  return out;
}

// The policy files of `dir` in the order they load; errors for entries that look like
// policy files but cannot be read as one.
Result<std::vector<std::string>> policyFiles(const std::string& dir) {
  std::vector<std::string> files;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(dir, ec);
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
    return Error(kInvalidPolicy, "reading policy directory " + dir + ": " + ec.message());
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

Result<PolicyEntry> parsePolicyEntry(const std::string& yaml, const std::string& source,
                                     bool fromApi) {
  auto parsed = policy::parsePolicy(yaml, source);
  if (!parsed.ok()) {
    return Error(kInvalidPolicy, parsed.error().message());
  }
  if (parsed->name.empty()) {
    return Error(kInvalidPolicy, source + ": the policy needs a name (name: ...)");
  }
  auto compiled = handlers::HandlerSet::compile(*parsed);
  if (!compiled.ok()) {
    return Error(kInvalidPolicy, compiled.error().message());
  }
  // Handler actions that can never run (after an unconditional terminator, ...).
  parsed->warnings.insert(parsed->warnings.end(), (*compiled)->warnings().begin(),
                          (*compiled)->warnings().end());
  PolicyEntry entry;
  entry.policy = std::move(*parsed);
  entry.handlers = std::move(*compiled);
  entry.yaml = yaml;
  entry.source = fromApi ? "api" : "file:" + source;
  entry.fromApi = fromApi;
  return entry;
}

Result<PolicySet> loadPolicyDir(const std::string& dir) {
  PolicySet out;
  if (dir.empty()) {
    return out;
  }
  // Missing: no policy files (yet).
  std::error_code ec;
  const auto dirStatus = std::filesystem::status(dir, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return Error(kInvalidPolicy, "policy directory " + dir + ": " + ec.message());
  }
  if (!std::filesystem::exists(dirStatus)) {
    return out;
  }
  if (!std::filesystem::is_directory(dirStatus)) {
    return Error(kInvalidPolicy, "policy directory " + dir + ": " + std::strerror(ENOTDIR));
  }
  auto files = policyFiles(dir);
  if (!files.ok()) {
    return std::move(files).error();
  }
  for (const std::string& file : *files) {
    auto text = readFile(file);
    if (!text.ok()) {
      return Error(kInvalidPolicy, text.error().message());
    }
    auto entry = parsePolicyEntry(*text, file, false);
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

Status checkHandlerRef(const PolicyEntry& entry, const policy::HandlerRef& ref) {
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

const PolicyEntry* PolicyRegistry::find(const std::string& name) const {
  auto it = policies_.find(name);
  return it == policies_.end() ? nullptr : &it->second;
}

PolicySet PolicyRegistry::withFiles(PolicySet files) const {
  for (const auto& [name, entry] : policies_) {
    if (entry.fromApi) {
      files[name] = entry;  // applied through the API: kept over a file of the same name
    }
  }
  return files;
}

PolicySet PolicyRegistry::withEntry(PolicyEntry entry) const {
  PolicySet next = policies_;
  const std::string name = entry.policy.name;
  next[name] = std::move(entry);
  return next;
}

Status PolicyRegistry::replace(PolicySet next,
                               const std::function<Status(const PolicySet& next)>& check) {
  if (check) {
    EGRESSD_TRY(check(next));
  }
  policies_ = std::move(next);
  return okStatus();
}

void PolicyRegistry::put(const std::string& name, PolicyEntry entry) {
  policies_[name] = std::move(entry);
}

}  // namespace egressd::control_model
