#include "cgroup.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "common/fs.h"
#include "names.h"

namespace egressd::test {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string unescapeMountField(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      int v = (s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0');
      out += static_cast<char>(v);
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

Result<std::string> cgroup2Root() {
  static std::mutex mu;
  static std::string cached;
  std::lock_guard<std::mutex> lock(mu);
  if (!cached.empty()) {
    return cached;
  }
  std::ifstream in("/proc/self/mountinfo");
  if (!in) {
    return lastSystemError("open /proc/self/mountinfo");
  }
  std::string line;
  while (std::getline(in, line)) {
    // "<id> <parent> <maj:min> <root> <mountpoint> <opts> [optional...] - <fstype> <src> <sopts>"
    auto sep = line.find(" - ");
    if (sep == std::string::npos) {
      continue;
    }
    std::istringstream tail(line.substr(sep + 3));
    std::string fstype;
    tail >> fstype;
    if (fstype != "cgroup2") {
      continue;
    }
    std::istringstream head(line.substr(0, sep));
    std::string id, parent, dev, root, mountpoint;
    head >> id >> parent >> dev >> root >> mountpoint;
    if (root != "/") {
      continue;  // a bind mount of a sub-tree: not the hierarchy root
    }
    cached = unescapeMountField(mountpoint);
    return cached;
  }
  return Error(ENOENT, "no cgroup2 mount found in /proc/self/mountinfo");
}

Result<uint64_t> cgroupId(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return lastSystemError("stat " + path);
  }
  return static_cast<uint64_t>(st.st_ino);
}

std::vector<pid_t> cgroupProcs(const std::string& path) {
  std::vector<pid_t> pids;
  std::ifstream in(path + "/cgroup.procs");
  pid_t pid;
  while (in >> pid) {
    pids.push_back(pid);
  }
  return pids;
}

std::vector<std::string> cgroupChildren(const std::string& path) {
  std::vector<std::string> out;
  DIR* dir = ::opendir(path.c_str());
  if (!dir) {
    return out;
  }
  while (struct dirent* e = ::readdir(dir)) {
    std::string name = e->d_name;
    if (e->d_type == DT_DIR && name != "." && name != "..") {
      out.push_back(name);
    }
  }
  ::closedir(dir);
  return out;
}

Status removeCgroupTree(const std::string& path, std::chrono::milliseconds timeout) {
  if (!pathExists(path)) {
    return okStatus();
  }
  // cgroup.kill (5.14+) SIGKILLs the whole subtree at once, including processes that fork.
  if (pathExists(path + "/cgroup.kill")) {
    (void)writeFile(path + "/cgroup.kill", "1");
  } else {
    for (pid_t pid : cgroupProcs(path)) {
      ::kill(pid, SIGKILL);
    }
  }
  for (const auto& child : cgroupChildren(path)) {
    EGRESSD_TRY(removeCgroupTree(path + "/" + child, timeout));
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (::rmdir(path.c_str()) == 0 || errno == ENOENT) {
      return okStatus();
    }
    int err = errno;
    if (err != EBUSY || std::chrono::steady_clock::now() >= deadline) {
      std::string pids;
      for (pid_t p : cgroupProcs(path)) {
        pids += " " + std::to_string(p);
      }
      return systemError(err, "rmdir cgroup " + path + " (processes left:" + pids + ")");
    }
    // Killed tasks leave the cgroup asynchronously.
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Result<TestCgroup> TestCgroup::create() {
  auto root = cgroup2Root();
  if (!root.ok()) {
    return std::move(root).error().wrap("create test cgroup");
  }
  std::string path = *root + "/" + uniqueName();
  if (::mkdir(path.c_str(), 0755) != 0) {
    return lastSystemError("mkdir cgroup " + path);
  }
  return TestCgroup(path);
}

TestCgroup::TestCgroup(TestCgroup&& other) noexcept : path_(std::exchange(other.path_, "")) {}

TestCgroup& TestCgroup::operator=(TestCgroup&& other) noexcept {
  if (this != &other) {
    (void)destroy();
    path_ = std::exchange(other.path_, "");
  }
  return *this;
}

TestCgroup::~TestCgroup() {
  auto st = destroy();
  if (!st.ok()) {
    fprintf(stderr, "[egressd-test] cleanup: %s\n", st.error().message().c_str());
  }
}

std::string TestCgroup::name() const {
  auto slash = path_.rfind('/');
  return slash == std::string::npos ? path_ : path_.substr(slash + 1);
}

Result<std::string> TestCgroup::createChild(const std::string& rel) const {
  std::string path = path_ + "/" + rel;
  EGRESSD_TRY(makeDirs(path));
  return path;
}

Status TestCgroup::destroy() {
  if (path_.empty()) {
    return okStatus();
  }
  Status st = removeCgroupTree(path_);
  if (st.ok()) {
    path_.clear();
  }
  return st;
}

}  // namespace egressd::test
