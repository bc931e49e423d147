#include "daemon/run_owner.h"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "common/fs.h"
#include "common/unique_fd.h"
#include "daemon/sandbox_files.h"
#include "loader/enforcer.h"
#include "sandbox/cgroup.h"

namespace egressd::daemon {
namespace {

std::string runsDir(const std::string& runDir) {
  return runDir + "/runs";
}

bool isRunId(const std::string& id) {
  if (!id.starts_with("run-") || id.size() == 4 || id.size() > 24) {
    return false;
  }
  return std::all_of(id.begin() + 4, id.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::optional<RunOwner> parseRecord(const std::string& text) {
  auto j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) {
    return std::nullopt;
  }
  try {
    RunOwner o;
    o.id = j.at("id").get<std::string>();
    o.pid = j.at("pid").get<pid_t>();
    o.startTime = j.at("startTime").get<uint64_t>();
    o.cgroup = j.at("cgroup").get<std::string>();
    o.pinRoot = j.at("pinRoot").get<std::string>();
    return o;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

bool ownerAlive(const RunOwner& o) {
  auto start = processStartTime(o.pid);
  return start.ok() && *start == o.startTime;
}

// Cleans up one orphan; true when nothing of it is left.
bool cleanUp(const std::string& runDir, const RunOwner& o) {
  bool ok = true;
  const size_t slash = o.cgroup.rfind('/');
  const bool ourCgroup =
      slash != std::string::npos && o.cgroup.substr(slash + 1) == "egressd-" + o.id;
  if (!ourCgroup) {
    spdlog::warn("run record {}: cgroup {} is not egressd-{}; not touching it", o.id, o.cgroup,
                 o.id);
  } else if (auto removed = sandbox::removeCgroupTree(o.cgroup); !removed.ok()) {
    spdlog::error("orphaned run {}: removing {}: {}", o.id, o.cgroup, removed.error().message());
    ok = false;
  }
  if (!o.pinRoot.empty() && pathExists(o.pinRoot)) {
    loader::Enforcer enforcer(o.pinRoot);
    if (auto detached = enforcer.detach(o.id); !detached.ok()) {
      spdlog::error("orphaned run {}: detaching: {}", o.id, detached.error().message());
      ok = false;
    }
  }
  removeSandboxFiles(runDir, o.id);
  return ok;
}

}  // namespace

Result<uint64_t> processStartTime(pid_t pid) {
  auto stat = readFile("/proc/" + std::to_string(pid) + "/stat");
  if (!stat.ok()) {
    return std::move(stat).error();
  }
  // "pid (comm) state ppid ...": comm may hold spaces and parentheses; the last ')' ends it.
  const size_t close = stat->rfind(')');
  if (close == std::string::npos) {
    return Error(EINVAL, "/proc/" + std::to_string(pid) + "/stat: unexpected format");
  }
  size_t pos = close + 2;  // field 3 (state)
  for (int field = 3; field < 22; ++field) {
    pos = stat->find(' ', pos);
    if (pos == std::string::npos) {
      return Error(EINVAL, "/proc/" + std::to_string(pid) + "/stat: too few fields");
    }
    ++pos;
  }
  uint64_t value = 0;
  const char* begin = stat->data() + pos;
  auto [ptr, ec] = std::from_chars(begin, stat->data() + stat->size(), value);
  if (ec != std::errc() || ptr == begin) {
    return Error(EINVAL, "/proc/" + std::to_string(pid) + "/stat: bad start time");
  }
  return value;
}

std::string runOwnerPath(const std::string& runDir, const std::string& id) {
  return runsDir(runDir) + "/" + id + ".json";
}

Status writeRunOwner(const std::string& runDir, const RunOwner& owner) {
  if (!isRunId(owner.id)) {
    return Error(EINVAL, "run record: bad id " + owner.id);
  }
  EGRESSD_TRY(makeDirs(runsDir(runDir), 0700));
  nlohmann::json j{{"id", owner.id},
                   {"pid", owner.pid},
                   {"startTime", owner.startTime},
                   {"cgroup", owner.cgroup},
                   {"pinRoot", owner.pinRoot}};
  return writeFileAtomic(runOwnerPath(runDir, owner.id), j.dump() + "\n", 0600);
}

void removeRunOwner(const std::string& runDir, const std::string& id) {
  const std::string path = runOwnerPath(runDir, id);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    spdlog::warn("removing {}: {}", path, std::strerror(errno));
  }
}

SweepResult sweepOrphanRuns(const std::string& runDir) {
  SweepResult result;
  const std::string dir = runsDir(runDir);
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) {
    if (errno != ENOENT) {
      spdlog::warn("sweeping orphaned runs: opendir {}: {}", dir, std::strerror(errno));
    }
    return result;
  }
  // One sweeper at a time: two runs starting together must not both tear down one orphan.
  UniqueFd lock(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!lock || ::flock(lock.get(), LOCK_EX) != 0) {
    spdlog::warn("sweeping orphaned runs: lock {}: {}", dir, std::strerror(errno));
    return result;
  }
  std::vector<std::string> names;
  while (dirent* e = ::readdir(d.get())) {
    const std::string name = e->d_name;
    if (name.size() > 5 && name.ends_with(".json")) {
      names.push_back(name);
    }
  }
  for (const std::string& name : names) {
    const std::string id = name.substr(0, name.size() - 5);
    const std::string path = dir + "/" + name;
    auto text = readFile(path);
    if (!text.ok()) {
      continue;  // removed by its owner meanwhile
    }
    auto owner = parseRecord(*text);
    if (!owner || owner->id != id || !isRunId(id)) {
      spdlog::warn("sweeping orphaned runs: {} is not a run record; left alone", path);
      continue;
    }
    if (ownerAlive(*owner)) {
      continue;
    }
    spdlog::info("run {}: owner pid {} is gone; removing its cgroup {}, enforcement and files", id,
                 owner->pid, owner->cgroup);
    if (cleanUp(runDir, *owner)) {
      removeRunOwner(runDir, id);
      ++result.removed;
    } else {
      ++result.failed;
    }
  }
  return result;
}

}  // namespace egressd::daemon
