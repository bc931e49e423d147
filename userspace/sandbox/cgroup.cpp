#include "sandbox/cgroup.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <memory>
#include <sstream>
#include <thread>

#include "common/fs.h"
#include "common/unique_fd.h"
#include "sandbox/mountinfo.h"

namespace egressd::sandbox {
namespace {

using Clock = std::chrono::steady_clock;

// Lexically normalised components of `path`; false on "." or "..", which could walk out of
// the hierarchy after the under-the-mount check.
bool splitComponents(const std::string& path, std::vector<std::string>& out) {
  std::istringstream in(path);
  std::string part;
  while (std::getline(in, part, '/')) {
    if (part.empty()) {
      continue;
    }
    if (part == "." || part == "..") {
      return false;
    }
    out.push_back(part);
  }
  return true;
}

std::string joinComponents(const std::vector<std::string>& parts) {
  std::string out;
  for (const auto& p : parts) {
    out += "/" + p;
  }
  return out.empty() ? "/" : out;
}

struct DirCloser {
  void operator()(DIR* d) const { ::closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;

Result<std::vector<std::string>> childCgroups(const std::string& dir) {
  DirPtr d(::opendir(dir.c_str()));
  if (!d) {
    return lastSystemError("opendir " + dir);
  }
  std::vector<std::string> children;
  while (struct dirent* e = ::readdir(d.get())) {
    // Child cgroups are the only directories in a cgroup directory; kernfs fills d_type.
    if (e->d_type == DT_DIR && std::strcmp(e->d_name, ".") != 0 &&
        std::strcmp(e->d_name, "..") != 0) {
      children.push_back(dir + "/" + e->d_name);
    }
  }
  return children;
}

Status collectPids(const std::string& dir, bool recursive, std::vector<pid_t>& out) {
  auto procs = readFile(dir + "/cgroup.procs");
  if (!procs.ok()) {
    return std::move(procs).error();
  }
  std::istringstream in(*procs);
  std::string tok;
  while (in >> tok) {
    pid_t pid = 0;
    auto [ptr, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), pid);
    if (ec != std::errc() || ptr != tok.data() + tok.size() || pid <= 0) {
      return Error(EIO, "unexpected entry '" + tok + "' in " + dir + "/cgroup.procs");
    }
    out.push_back(pid);
  }
  if (!recursive) {
    return okStatus();
  }
  auto children = childCgroups(dir);
  if (!children.ok()) {
    return std::move(children).error();
  }
  for (const auto& child : *children) {
    auto st = collectPids(child, true, out);
    // A child cgroup removed while we walk is simply no longer part of the tree.
    if (!st.ok() && st.error().code() != ENOENT) {
      return st;
    }
  }
  return okStatus();
}

// "populated 1" in cgroup.events covers the whole subtree (cgroup v2 semantics).
Result<bool> isPopulated(const std::string& dir) {
  auto events = readFile(dir + "/cgroup.events");
  if (!events.ok()) {
    return std::move(events).error();
  }
  std::istringstream in(*events);
  std::string key;
  std::string value;
  while (in >> key >> value) {
    if (key == "populated") {
      return value != "0";
    }
  }
  return Error(EIO, "no 'populated' key in " + dir + "/cgroup.events");
}

// Depth-first rmdir; each cgroup gets until `deadline` for a transient EBUSY (a task that
// has exited but is not yet fully released) to clear.
Status removeDirsDepthFirst(const std::string& dir, Clock::time_point deadline) {
  auto children = childCgroups(dir);
  if (!children.ok()) {
    return children.error().code() == ENOENT ? okStatus() : std::move(children).error();
  }
  for (const auto& child : *children) {
    EGRESSD_TRY(removeDirsDepthFirst(child, deadline));
  }
  for (;;) {
    if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) {
      return okStatus();
    }
    if (errno != EBUSY || Clock::now() >= deadline) {
      return lastSystemError("rmdir " + dir);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string pidList(const std::vector<pid_t>& pids) {
  std::string out;
  for (pid_t p : pids) {
    out += (out.empty() ? "" : " ") + std::to_string(p);
  }
  return out;
}

struct ProcStatus {
  std::string name;
  bool rootUid = false;
  uint64_t capPrm = 0;
  uint64_t capBnd = 0;
  bool noNewPrivs = false;
};

ProcStatus parseProcStatus(const std::string& text) {
  ProcStatus st;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    auto colon = line.find(':');
    if (colon == std::string::npos) {
      continue;
    }
    std::string key = line.substr(0, colon);
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    if (key == "Name") {
      st.name = value;
    } else if (key == "Uid") {
      std::istringstream ids(value);
      long realUid = -1;
      long effUid = -1;
      ids >> realUid >> effUid;
      st.rootUid = realUid == 0 || effUid == 0;
    } else if (key == "CapPrm") {
      st.capPrm = std::strtoull(value.c_str(), nullptr, 16);
    } else if (key == "CapBnd") {
      st.capBnd = std::strtoull(value.c_str(), nullptr, 16);
    } else if (key == "NoNewPrivs") {
      st.noNewPrivs = value == "1";
    }
  }
  return st;
}

}  // namespace

Result<std::string> findCgroup2Mount() {
  auto mounts = readMountInfo();
  if (!mounts.ok()) {
    return std::move(mounts).error().wrap("finding the cgroup2 mount");
  }
  std::string fallback;
  for (const auto& m : *mounts) {
    if (m.fsType != "cgroup2") {
      continue;
    }
    if (m.root == "/") {
      return m.mountPoint;
    }
    if (fallback.empty()) {
      fallback = m.mountPoint;
    }
  }
  if (!fallback.empty()) {
    return fallback;
  }
  return Error(ENOENT, "no cgroup2 filesystem is mounted (checked /proc/self/mountinfo)");
}

Result<bool> cgroup2HasNsDelegate() {
  auto mounts = readMountInfo();
  if (!mounts.ok()) {
    return std::move(mounts).error();
  }
  for (const auto& m : *mounts) {
    if (m.fsType == "cgroup2") {
      // A superblock-wide flag: every cgroup2 mount shows the same options.
      return ("," + m.superOptions + ",").find(",nsdelegate,") != std::string::npos;
    }
  }
  return Error(ENOENT, "no cgroup2 filesystem is mounted (checked /proc/self/mountinfo)");
}

Result<std::string> resolveCgroupPath(const std::string& pathOrRelative) {
  auto mount = findCgroup2Mount();
  if (!mount.ok()) {
    return std::move(mount).error();
  }
  std::vector<std::string> mountParts;
  std::vector<std::string> parts;
  if (!splitComponents(*mount, mountParts) || !splitComponents(pathOrRelative, parts)) {
    return Error(EINVAL, "cgroup path '" + pathOrRelative + "' contains '.' or '..'");
  }
  if (pathOrRelative.empty() || pathOrRelative[0] != '/') {
    mountParts.insert(mountParts.end(), parts.begin(), parts.end());
    return joinComponents(mountParts);
  }
  if (parts.size() < mountParts.size() ||
      !std::equal(mountParts.begin(), mountParts.end(), parts.begin())) {
    return Error(EINVAL, "cgroup path '" + pathOrRelative + "' is not under the cgroup2 mount " +
                             *mount + " (give a path under it, or one relative to it)");
  }
  return joinComponents(parts);
}

Result<uint64_t> cgroupId(const std::string& path) {
  auto resolved = resolveCgroupPath(path);
  if (!resolved.ok()) {
    return std::move(resolved).error();
  }
  constexpr unsigned kHandleBytes = sizeof(uint64_t);
  alignas(struct file_handle) unsigned char storage[sizeof(struct file_handle) + kHandleBytes];
  auto* handle = reinterpret_cast<struct file_handle*>(storage);
  handle->handle_bytes = kHandleBytes;
  int mountId = 0;
  if (::name_to_handle_at(AT_FDCWD, resolved->c_str(), handle, &mountId, 0) != 0) {
    return lastSystemError("name_to_handle_at " + *resolved);
  }
  if (handle->handle_bytes != kHandleBytes) {
    return Error(EIO, "unexpected file handle size " + std::to_string(handle->handle_bytes) +
                          " for cgroup " + *resolved);
  }
  uint64_t id = 0;
  std::memcpy(&id, handle->f_handle, sizeof(id));
  return id;
}

Status createCgroup(const std::string& path, bool existOk) {
  auto resolved = resolveCgroupPath(path);
  if (!resolved.ok()) {
    return std::move(resolved).error();
  }
  if (::mkdir(resolved->c_str(), 0755) != 0) {
    if (errno == EEXIST && existOk) {
      return okStatus();
    }
    return lastSystemError("create cgroup " + *resolved);
  }
  return okStatus();
}

Status killCgroupProcessesBySignal(const std::string& path) {
  auto pids = cgroupPids(path, true);
  if (!pids.ok()) {
    return std::move(pids).error();
  }
  for (pid_t pid : *pids) {
    if (::kill(pid, SIGKILL) != 0 && errno != ESRCH) {
      return lastSystemError("kill pid " + std::to_string(pid) + " in cgroup " + path);
    }
  }
  return okStatus();
}

Status killCgroupProcesses(const std::string& path) {
  auto resolved = resolveCgroupPath(path);
  if (!resolved.ok()) {
    return std::move(resolved).error();
  }
  const std::string killFile = *resolved + "/cgroup.kill";
  if (pathExists(killFile)) {
    return writeFile(killFile, "1");
  }
  return killCgroupProcessesBySignal(*resolved);
}

Status removeCgroupTree(const std::string& path, std::chrono::milliseconds timeout) {
  auto resolved = resolveCgroupPath(path);
  if (!resolved.ok()) {
    return std::move(resolved).error();
  }
  auto mount = findCgroup2Mount();
  if (!mount.ok()) {
    return std::move(mount).error();
  }
  if (*resolved == *mount) {
    return Error(EINVAL, "refusing to remove the cgroup2 root " + *resolved);
  }
  struct statfs fs {};
  if (::statfs(resolved->c_str(), &fs) != 0) {
    return errno == ENOENT ? okStatus() : lastSystemError("statfs " + *resolved);
  }
  if (fs.f_type != CGROUP2_SUPER_MAGIC) {
    return Error(EINVAL, *resolved + " is not a cgroup2 directory");
  }

  const auto deadline = Clock::now() + timeout;
  for (;;) {
    auto populated = isPopulated(*resolved);
    if (!populated.ok()) {
      if (populated.error().code() == ENOENT) {
        return okStatus();  // removed concurrently
      }
      return std::move(populated).error().wrap("removing cgroup " + *resolved);
    }
    if (!*populated) {
      break;
    }
    if (Clock::now() >= deadline) {
      auto left = cgroupPids(*resolved, true);
      return Error(ETIMEDOUT, "cgroup " + *resolved + " still has processes after " +
                                  std::to_string(timeout.count()) +
                                  " ms: " + (left.ok() ? pidList(*left) : left.error().message()));
    }
    // Repeated on every round: a process may have forked (pre-cgroup.kill kernels) or been
    // moved in since the last kill.
    auto killed = killCgroupProcesses(*resolved);
    if (!killed.ok() && killed.error().code() != ENOENT) {
      return std::move(killed).error().wrap("removing cgroup " + *resolved);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  auto removed = removeDirsDepthFirst(*resolved, deadline);
  if (!removed.ok()) {
    return std::move(removed).error().wrap("removing cgroup " + *resolved);
  }
  return okStatus();
}

Result<std::vector<pid_t>> cgroupPids(const std::string& path, bool recursive) {
  auto resolved = resolveCgroupPath(path);
  if (!resolved.ok()) {
    return std::move(resolved).error();
  }
  std::vector<pid_t> pids;
  EGRESSD_TRY(collectPids(*resolved, recursive, pids));
  // Threaded subtrees list a process in every cgroup that holds one of its threads.
  std::sort(pids.begin(), pids.end());
  pids.erase(std::unique(pids.begin(), pids.end()), pids.end());
  return pids;
}

Status moveToCgroup(pid_t pid, const std::string& path) {
  auto resolved = resolveCgroupPath(path);
  if (!resolved.ok()) {
    return std::move(resolved).error().wrap("move pid " + std::to_string(pid));
  }
  auto st = writeFile(*resolved + "/cgroup.procs", std::to_string(pid));
  if (!st.ok()) {
    return std::move(st).error().wrap("move pid " + std::to_string(pid) + " into cgroup " +
                                      *resolved);
  }
  return okStatus();
}

Result<std::vector<CapableProcess>> findNetworkCapableProcesses(const std::string& cgroupPath) {
  auto pids = cgroupPids(cgroupPath, true);
  if (!pids.ok()) {
    return std::move(pids).error();
  }
  constexpr uint64_t kNetAdmin = 1ULL << 12;  // CAP_NET_ADMIN
  constexpr uint64_t kNetRaw = 1ULL << 13;    // CAP_NET_RAW
  std::vector<CapableProcess> found;
  for (pid_t pid : *pids) {
    auto text = readFile("/proc/" + std::to_string(pid) + "/status");
    if (!text.ok()) {
      if (text.error().code() == ENOENT || text.error().code() == ESRCH) {
        continue;  // exited since cgroup.procs was read
      }
      return std::move(text).error();
    }
    ProcStatus st = parseProcStatus(*text);
    // Permitted, not just effective: capset(2) raises effective to permitted at will. A root
    // process without no_new_privs also regains its bounding set on the next execve(2).
    uint64_t reachable = st.capPrm;
    if (st.rootUid && !st.noNewPrivs) {
      reachable |= st.capBnd;
    }
    if ((reachable & (kNetRaw | kNetAdmin)) != 0) {
      found.push_back(
          CapableProcess{pid, st.name, (reachable & kNetRaw) != 0, (reachable & kNetAdmin) != 0});
    }
  }
  return found;
}

}  // namespace egressd::sandbox
