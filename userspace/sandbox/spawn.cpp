#include "sandbox/spawn.h"

#include <fcntl.h>
#include <linux/landlock.h>
#include <linux/sched.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <optional>
#include <sstream>

#include "common/unique_fd.h"
#include "sandbox/caps.h"
#include "sandbox/cgroup.h"
#include "sandbox/mountinfo.h"
#include "sandbox/seccomp.h"
#include "sandbox/spawn_child.h"

extern char** environ;

namespace egressd::sandbox {
namespace {

// PATH lookup in the parent (execvp may allocate, and its errors would come too late): every
// match, since which one the command's user may execute is only known after the switch.
Result<std::vector<std::string>> resolveExecutable(const std::string& name,
                                                   const std::vector<std::string>& env) {
  if (name.find('/') != std::string::npos) {
    return std::vector<std::string>{name};  // execve reports what is wrong with it
  }
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  if (!env.empty()) {
    for (const auto& kv : env) {
      if (kv.rfind("PATH=", 0) == 0) {
        path = kv.substr(5);
      }
    }
  } else if (const char* inherited = ::getenv("PATH"); inherited != nullptr) {
    path = inherited;
  }
  std::istringstream dirs(path);
  std::string dir;
  std::vector<std::string> matches;
  while (std::getline(dirs, dir, ':')) {
    std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      matches.push_back(std::move(candidate));
    }
  }
  if (matches.empty()) {
    return Error(ENOENT, "command not found: " + name + " (PATH=" + path + ")");
  }
  return matches;
}

// Mount points of `fsType` (plus `extra`), minus those below another one: covering the upper
// one hides them, and their mount point would not exist on what covers it.
std::vector<std::string> topMountPoints(const std::vector<MountEntry>& mounts,
                                        const std::string& fsType,
                                        std::vector<std::string> paths = {}) {
  for (const auto& m : mounts) {
    if (m.fsType == fsType) {
      paths.push_back(m.mountPoint);
    }
  }
  std::sort(paths.begin(), paths.end());
  paths.erase(std::unique(paths.begin(), paths.end()), paths.end());
  std::vector<std::string> top;
  for (const auto& p : paths) {
    bool covered = std::any_of(top.begin(), top.end(), [&](const std::string& t) {
      return t == "/" || p.rfind(t + "/", 0) == 0;
    });
    if (!covered) {
      top.push_back(p);
    }
  }
  return top;
}

std::vector<char*> cStrings(const std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (const auto& s : strings) {
    out.push_back(const_cast<char*>(s.c_str()));
  }
  out.push_back(nullptr);
  return out;
}

// Blocks every signal for the lifetime of the object (around clone, so that no handler can
// run in the child before it has reset them).
class BlockAllSignals {
 public:
  BlockAllSignals() {
    sigset_t all;
    sigfillset(&all);
    ::pthread_sigmask(SIG_SETMASK, &all, &old_);
  }
  ~BlockAllSignals() { ::pthread_sigmask(SIG_SETMASK, &old_, nullptr); }
  BlockAllSignals(const BlockAllSignals&) = delete;
  BlockAllSignals& operator=(const BlockAllSignals&) = delete;

 private:
  sigset_t old_;
};

Status reap(pid_t pid) {
  for (;;) {
    if (::waitpid(pid, nullptr, 0) == pid) {
      return okStatus();
    }
    if (errno != EINTR) {
      return lastSystemError("waitpid " + std::to_string(pid));
    }
  }
}

}  // namespace

Result<pid_t> spawnInCgroup(const SpawnOptions& options) {
  if (options.argv.empty()) {
    return Error(EINVAL, "spawn: empty argv");
  }
  const std::string& name = options.argv[0];
  if (options.cgroupPath.empty()) {
    return Error(EINVAL, "spawn " + name + ": no cgroup given");
  }
  auto cgroup = resolveCgroupPath(options.cgroupPath);
  if (!cgroup.ok()) {
    return std::move(cgroup).error();
  }
  UniqueFd cgroupFd(::open(cgroup->c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cgroupFd) {
    return lastSystemError("open cgroup " + *cgroup);
  }
  UniqueFd netnsFd;
  if (!options.netnsPath.empty()) {
    netnsFd.reset(::open(options.netnsPath.c_str(), O_RDONLY | O_CLOEXEC));
    if (!netnsFd) {
      return lastSystemError("open network namespace " + options.netnsPath);
    }
  }
  auto exe = resolveExecutable(name, options.env);
  if (!exe.ok()) {
    return std::move(exe).error();
  }
  std::vector<char*> argv = cStrings(options.argv);
  std::vector<char*> envp = cStrings(options.env);

  std::vector<std::string> hidePaths;
  std::vector<std::string> cgroup2Paths;
  if (options.newMountNamespaceHidingBpffs) {
    auto mounts = readMountInfo();
    if (!mounts.ok()) {
      return std::move(mounts).error().wrap("sandbox setup");
    }
    std::vector<std::string> always;
    struct stat st {};
    if (::stat("/sys/fs/bpf", &st) == 0 && S_ISDIR(st.st_mode)) {
      always.push_back("/sys/fs/bpf");
    }
    hidePaths = topMountPoints(*mounts, "bpf", always);
    if (options.newCgroupNamespace) {
      cgroup2Paths = topMountPoints(*mounts, "cgroup2");
    }
  }
  std::vector<const char*> hidePtrs;
  hidePtrs.reserve(hidePaths.size());
  for (const auto& p : hidePaths) {
    hidePtrs.push_back(p.c_str());
  }
  std::vector<const char*> cgroup2Ptrs;
  cgroup2Ptrs.reserve(cgroup2Paths.size());
  for (const auto& p : cgroup2Paths) {
    cgroup2Ptrs.push_back(p.c_str());
  }
  std::vector<ChildHiddenDir> hiddenDirs;
  std::vector<std::vector<ChildEntry>> hiddenEntries;
  if (!options.hiddenDirs.empty() && !options.newMountNamespaceHidingBpffs) {
    return Error(EINVAL, "spawn " + name + ": hiding directories needs a mount namespace");
  }
  hiddenEntries.reserve(options.hiddenDirs.size());
  for (const HiddenDir& h : options.hiddenDirs) {
    std::vector<ChildEntry>& entries = hiddenEntries.emplace_back();
    for (const HiddenEntry& e : h.entries) {
      entries.push_back(
          ChildEntry{e.relative.c_str(), e.absolute.c_str(), e.linkTarget.c_str(), e.kind, e.bind});
    }
    hiddenDirs.push_back(
        ChildHiddenDir{h.dir.c_str(), h.tmpfsOptions.c_str(), entries.data(), entries.size()});
  }
  std::string cwd = options.cwd;
  if (cwd.empty() && options.newMountNamespaceHidingBpffs) {
    char buf[PATH_MAX];
    if (::getcwd(buf, sizeof(buf)) != nullptr) {
      cwd = buf;
    }
  }
  const bool nonRoot = options.user.has_value() && !options.user->isRoot();
  std::optional<CapabilityDrop> caps;
  if (options.dropCapabilities || nonRoot) {
    auto prepared =
        CapabilityDrop::prepare(nonRoot ? allCapabilities() : defaultDroppedCapabilities());
    if (!prepared.ok()) {
      return std::move(prepared).error().wrap("sandbox setup");
    }
    caps.emplace(std::move(*prepared));
  }
  std::optional<SeccompProgram> seccomp;
  if (options.installSeccomp) {
    auto built = SeccompProgram::buildSocketFamilyFilter(
        SeccompOptions{.allowIoUring = options.allowIoUring});
    if (!built.ok()) {
      return std::move(built).error().wrap("sandbox setup");
    }
    seccomp.emplace(std::move(*built));
  }

  int errPipe[2];
  if (::pipe2(errPipe, O_CLOEXEC) != 0) {
    return lastSystemError("sandbox setup: pipe2");
  }
  UniqueFd errRead(errPipe[0]);
  UniqueFd errWrite(errPipe[1]);

  struct rlimit nofile {};
  ::getrlimit(RLIMIT_NOFILE, &nofile);

  std::vector<const char*> exePaths;
  for (const auto& candidate : *exe) {
    exePaths.push_back(candidate.c_str());
  }
  ChildPlan plan;
  plan.paths = exePaths.data();
  plan.pathCount = exePaths.size();
  plan.argv = argv.data();
  plan.envp = options.env.empty() ? environ : envp.data();
  plan.parentPid = ::getpid();
  plan.errFd = errWrite.get();
  plan.netnsFd = netnsFd.get();
  plan.netnsPath = options.netnsPath.c_str();
  plan.newMountNs = options.newMountNamespaceHidingBpffs;
  plan.hidePaths = hidePtrs.data();
  plan.hideCount = hidePtrs.size();
  plan.hiddenDirs = hiddenDirs.data();
  plan.hiddenDirCount = hiddenDirs.size();
  if (options.user) {
    plan.changeUser = true;
    plan.uid = options.user->uid;
    plan.gid = options.user->gid;
    plan.groups = options.user->groups.data();
    plan.groupCount = options.user->groups.size();
    plan.home = options.user->home.empty() ? nullptr : options.user->home.c_str();
  }
  plan.cwd = cwd.empty() ? nullptr : cwd.c_str();
  plan.landlockFd = options.landlockRulesetFd;
  plan.newCgroupNs = options.newCgroupNamespace;
  plan.cgroup2Mounts = cgroup2Ptrs.data();
  plan.cgroup2MountCount = cgroup2Ptrs.size();
  plan.caps = caps ? &*caps : nullptr;
  plan.seccomp = seccomp ? &*seccomp : nullptr;
  plan.stdio[0] = options.stdinFd;
  plan.stdio[1] = options.stdoutFd;
  plan.stdio[2] = options.stderrFd;
  plan.maxFd = nofile.rlim_cur == RLIM_INFINITY || nofile.rlim_cur > (1 << 20)
                   ? (1 << 20)
                   : static_cast<int>(nofile.rlim_cur);

  pid_t pid = -1;
  bool inCgroup = false;
  if (options.allowClone3) {
    struct clone_args args;
    std::memset(&args, 0, sizeof(args));
    args.flags = CLONE_INTO_CGROUP;
    args.exit_signal = SIGCHLD;
    args.cgroup = static_cast<uint64_t>(cgroupFd.get());
    long rc = 0;
    int cloneErr = 0;
    {
      BlockAllSignals blocked;
      rc = ::syscall(SYS_clone3, &args, sizeof(args));
      if (rc == 0) {
        runChild(plan);
      }
      cloneErr = errno;
    }
    if (rc > 0) {
      pid = static_cast<pid_t>(rc);
      inCgroup = true;
    } else if (cloneErr != ENOSYS && cloneErr != E2BIG && cloneErr != EPERM) {
      // ENOSYS: before 5.3, or a container seccomp profile hiding clone3; E2BIG: 5.3-5.6,
      // which lack the cgroup field; EPERM: older profiles that answered so. Anything else
      // (EBUSY: the cgroup has controllers enabled for its children) fails the same way the
      // fallback would.
      return systemError(cloneErr, "sandbox setup: clone3(CLONE_INTO_CGROUP) into " + *cgroup);
    }
  }
  if (!inCgroup) {
    int syncPipe[2];
    if (::pipe2(syncPipe, O_CLOEXEC) != 0) {
      return lastSystemError("sandbox setup: pipe2");
    }
    UniqueFd syncRead(syncPipe[0]);
    UniqueFd syncWrite(syncPipe[1]);
    plan.syncFd = syncRead.get();
    int forkErr = 0;
    {
      BlockAllSignals blocked;
      pid = ::fork();
      if (pid == 0) {
        runChild(plan);
      }
      forkErr = errno;
    }
    if (pid < 0) {
      return systemError(forkErr, "sandbox setup: fork");
    }
    syncRead.reset();
    auto moved = moveToCgroup(pid, *cgroup);
    if (!moved.ok()) {
      ::kill(pid, SIGKILL);
      (void)reap(pid);
      return std::move(moved).error().wrap("sandbox setup");
    }
    if (::write(syncWrite.get(), "x", 1) != 1) {
      int err = errno;
      ::kill(pid, SIGKILL);
      (void)reap(pid);
      return systemError(err, "sandbox setup: releasing the child");
    }
  }

  errWrite.reset();
  ChildReport report;
  std::memset(&report, 0, sizeof(report));
  ssize_t n = 0;
  do {
    n = ::read(errRead.get(), &report, sizeof(report));
  } while (n < 0 && errno == EINTR);
  if (n == 0) {
    return pid;  // the pipe closed on execve
  }
  int readErr = errno;
  ::kill(pid, SIGKILL);  // already exiting when it reported; harmless then
  (void)reap(pid);
  if (n != static_cast<ssize_t>(sizeof(report))) {
    return n < 0 ? systemError(readErr, "sandbox setup: reading the child's report")
                 : Error(EIO, "sandbox setup: truncated report from the child");
  }
  report.step[sizeof(report.step) - 1] = '\0';
  report.detail[sizeof(report.detail) - 1] = '\0';
  std::string what = std::string("sandbox setup: ") + report.step;
  if (report.detail[0] != '\0') {
    what += std::string(" ") + report.detail;
  }
  return systemError(report.err, what);
}

Result<UniqueFd> createLandlockIsolation() {
  const long abi =
      ::syscall(SYS_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
  if (abi < 0) {
    return lastSystemError("landlock");
  }
  struct {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
  } attr{};
  // Handling only the creation of device nodes, with no rule allowing it anywhere: the
  // domain exists (that is what isolates ptrace), and nothing ordinary is refused.
  attr.handled_access_fs = LANDLOCK_ACCESS_FS_MAKE_CHAR | LANDLOCK_ACCESS_FS_MAKE_BLOCK;
  size_t size = sizeof(uint64_t);
  if (abi >= 4) {
    size = 2 * sizeof(uint64_t);
  }
  if (abi >= 6) {
    attr.scoped = 2;  // LANDLOCK_SCOPE_SIGNAL (not in Debian 12's headers)
    size = sizeof(attr);
  }
  UniqueFd fd(static_cast<int>(::syscall(SYS_landlock_create_ruleset, &attr, size, 0U)));
  if (!fd) {
    return lastSystemError("landlock_create_ruleset");
  }
  return fd;
}

Result<int> waitForExit(pid_t pid) {
  int status = 0;
  for (;;) {
    if (::waitpid(pid, &status, 0) == pid) {
      break;
    }
    if (errno != EINTR) {
      return lastSystemError("waitpid " + std::to_string(pid));
    }
  }
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  if (WIFSIGNALED(status)) {
    return 128 + WTERMSIG(status);
  }
  return Error(EINVAL, "unexpected wait status " + std::to_string(status) + " for pid " +
                           std::to_string(pid));
}

}  // namespace egressd::sandbox
