#include "sandbox/container_cgroup.h"

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>

#include "common/fs.h"

namespace egressd::sandbox {
namespace {

namespace fs = std::filesystem;

bool isLowerHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

std::optional<std::string> fullId(std::string_view s) {
  if (s.size() == kContainerIdLength && isLowerHex(s)) {
    return std::string(s);
  }
  return std::nullopt;
}

bool consumePrefix(std::string_view& s, std::string_view prefix) {
  if (s.substr(0, prefix.size()) != prefix) {
    return false;
  }
  s.remove_prefix(prefix.size());
  return true;
}

std::string lowered(const std::string& s) {
  std::string out = s;
  std::transform(out.begin(), out.end(), out.begin(), [](char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
  });
  return out;
}

constexpr const char* kFormsLookedFor =
    "docker-ID.scope, docker/ID, cri-containerd-ID.scope, crio-ID.scope, libpod-ID.scope, "
    "libpod_parent/libpod-ID, kubepods/.../pod*/ID";

}  // namespace

std::optional<std::string> containerIdFromCgroupName(std::string_view name) {
  constexpr std::string_view kScope = ".scope";
  if (name.size() > kScope.size() && name.substr(name.size() - kScope.size()) == kScope) {
    std::string_view base = name.substr(0, name.size() - kScope.size());
    for (std::string_view prefix : {"docker-", "cri-containerd-", "crio-", "libpod-"}) {
      if (consumePrefix(base, prefix)) {
        return fullId(base);
      }
    }
    return std::nullopt;
  }
  if (consumePrefix(name, "libpod-")) {
    return fullId(name);  // podman, cgroupfs driver: libpod_parent/libpod-<id>
  }
  return fullId(name);  // docker/<id>, kubepods/.../pod<uid>/<id>, <namespace>/<id>
}

Result<std::vector<ContainerCgroup>> findContainerCgroups(const std::string& root,
                                                          const std::string& idOrPrefix) {
  const std::string prefix = lowered(idOrPrefix);
  if (prefix.size() < kMinContainerIdPrefix || prefix.size() > kContainerIdLength ||
      !isLowerHex(prefix)) {
    return Error(EINVAL, "container id '" + idOrPrefix + "': give the full id or at least " +
                             std::to_string(kMinContainerIdPrefix) + " of its hex digits");
  }
  std::vector<ContainerCgroup> found;
  // Depth-first over directories only. A directory that disappears or cannot be read while
  // the walk runs (containers come and go) is skipped, not an error.
  std::vector<fs::path> pending{fs::path(root)};
  while (!pending.empty()) {
    const fs::path dir = std::move(pending.back());
    pending.pop_back();
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::error_code typeEc;
      if (it->symlink_status(typeEc).type() != fs::file_type::directory) {
        continue;
      }
      const std::string name = it->path().filename().string();
      if (auto id = containerIdFromCgroupName(name)) {
        if (id->compare(0, prefix.size(), prefix) == 0) {
          found.push_back({*id, it->path().string()});
        }
        continue;  // a container's sub-cgroups belong to it
      }
      pending.push_back(it->path());
    }
  }
  std::sort(found.begin(), found.end(),
            [](const ContainerCgroup& a, const ContainerCgroup& b) { return a.id < b.id; });
  return found;
}

Result<ContainerCgroup> findContainerCgroup(const std::string& root,
                                            const std::string& idOrPrefix) {
  auto found = findContainerCgroups(root, idOrPrefix);
  if (!found.ok()) {
    return std::move(found).error();
  }
  if (found->empty()) {
    return Error(ENOENT, "no container " + idOrPrefix + " under " + root + " (looked for " +
                             kFormsLookedFor + "); is it running?");
  }
  if (found->size() > 1) {
    std::string list;
    for (const ContainerCgroup& c : *found) {
      list += "\n  " + c.id + "  " + c.path;
    }
    return Error(ENOTUNIQ, "container id prefix " + idOrPrefix + " matches " +
                               std::to_string(found->size()) +
                               " containers; give more digits:" + list);
  }
  return std::move(found->front());
}

Result<std::string> cgroupV2PathFromProcFile(std::string_view content) {
  while (!content.empty()) {
    const size_t eol = content.find('\n');
    std::string_view line = content.substr(0, eol);
    content.remove_prefix(eol == std::string_view::npos ? content.size() : eol + 1);
    if (!consumePrefix(line, "0::")) {
      continue;
    }
    constexpr std::string_view kDeleted = " (deleted)";
    if (line.size() >= kDeleted.size() && line.substr(line.size() - kDeleted.size()) == kDeleted) {
      return Error(ENOENT, "its cgroup " + std::string(line) + " has been removed");
    }
    if (line.empty() || line.front() != '/') {
      return Error(EINVAL, "unexpected cgroup v2 entry '0::" + std::string(line) + "'");
    }
    return std::string(line);
  }
  return Error(ENOENT, "no cgroup v2 entry (a \"0::\" line): the process is in no cgroup v2");
}

Result<std::string> cgroupDirOfPid(pid_t pid, const std::string& cgroup2Mount,
                                   const std::string& procRoot) {
  const std::string file = procRoot + "/" + std::to_string(pid) + "/cgroup";
  auto content = readFile(file);
  if (!content.ok()) {
    if (content.error().code() == ENOENT || content.error().code() == ESRCH) {
      return Error(ESRCH, "pid " + std::to_string(pid) + ": no such process");
    }
    return std::move(content).error().wrap("pid " + std::to_string(pid));
  }
  auto path = cgroupV2PathFromProcFile(*content);
  if (!path.ok()) {
    return std::move(path).error().wrap("pid " + std::to_string(pid) + " (" + file + ")");
  }
  return *path == "/" ? cgroup2Mount : cgroup2Mount + *path;
}

}  // namespace egressd::sandbox
