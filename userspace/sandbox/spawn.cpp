#include "sandbox/spawn.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <linux/landlock.h>
#include <linux/sched.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
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

extern char** environ;

namespace egressd::sandbox {
namespace {

// A hidden directory's entry (hide.h), as C strings for the child.
struct ChildEntry {
  const char* relative;
  const char* absolute;
  const char* linkTarget;
  HiddenEntry::Kind kind;
  bool bind;
};

struct ChildHiddenDir {
  const char* dir;
  const char* tmpfsOptions;
  const ChildEntry* entries;
  size_t entryCount;
};

// Everything the child needs, prepared by the parent: the child only reads it.
struct ChildPlan {
  // Every PATH match, in order: the child tries them as the command's user, the way execvp
  // does, so a match that user cannot reach (a 0700 home's shims) falls through to the next.
  const char* const* paths = nullptr;
  size_t pathCount = 0;
  char* const* argv = nullptr;
  char* const* envp = nullptr;
  pid_t parentPid = 0;
  int errFd = -1;   // CLOEXEC write end: closed by a successful execve
  int syncFd = -1;  // fork fallback: wait for one byte (sent once we are in the cgroup)
  int netnsFd = -1;
  const char* netnsPath = "";
  bool newMountNs = false;
  const char* const* hidePaths = nullptr;
  size_t hideCount = 0;
  const ChildHiddenDir* hiddenDirs = nullptr;
  size_t hiddenDirCount = 0;
  bool changeUser = false;
  uid_t uid = 0;
  gid_t gid = 0;
  const gid_t* groups = nullptr;
  size_t groupCount = 0;
  const char* cwd = nullptr;   // entered after the mounts (nullptr: stay)
  const char* home = nullptr;  // fallback for cwd
  int landlockFd = -1;
  bool newCgroupNs = false;
  const char* const* cgroup2Mounts = nullptr;  // remounted from inside the cgroup namespace
  size_t cgroup2MountCount = 0;
  const CapabilityDrop* caps = nullptr;
  const SeccompProgram* seccomp = nullptr;
  int stdio[3] = {-1, -1, -1};
  int maxFd = 0;  // for the pre-5.11 close-on-exec loop
};

// One write(2) of at most PIPE_BUF bytes is atomic, so the parent reads all or nothing.
struct ChildReport {
  int err;
  char step[64];
  char detail[512];
};
static_assert(sizeof(ChildReport) <= PIPE_BUF);

void copyTruncated(char* dst, size_t cap, const char* src) {
  size_t i = 0;
  for (; src != nullptr && src[i] != '\0' && i + 1 < cap; ++i) {
    dst[i] = src[i];
  }
  dst[i] = '\0';
}

[[noreturn]] void childFail(const ChildPlan& plan, int err, const char* step,
                            const char* detail = "") noexcept {
  ChildReport report;
  std::memset(&report, 0, sizeof(report));
  report.err = err;
  copyTruncated(report.step, sizeof(report.step), step);
  copyTruncated(report.detail, sizeof(report.detail), detail);
  ssize_t ignored = ::write(plan.errFd, &report, sizeof(report));
  (void)ignored;
  ::_exit(127);
}

// Replaces `h.dir` by an empty tmpfs that shows only the planned entries: directories and
// files bound from the real directory (reached through the cwd, which stays on it while the
// tmpfs covers its path), symlinks re-created. A directory already out of sight (inside one
// hidden before) is skipped: there is nothing to show there.
void hideDirectory(const ChildPlan& plan, const ChildHiddenDir& h) noexcept {
  if (::chdir(h.dir) != 0) {
    if (errno == ENOENT) {
      return;
    }
    childFail(plan, errno, "chdir (hiding)", h.dir);
  }
  if (::mount("egressd-hide", h.dir, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, h.tmpfsOptions) !=
      0) {
    childFail(plan, errno, "mount tmpfs over", h.dir);
  }
  const mode_t oldUmask = ::umask(022);  // placeholders 0755/0644 whatever the caller's umask
  for (size_t i = 0; i < h.entryCount; ++i) {
    const ChildEntry& e = h.entries[i];
    int rc = 0;
    switch (e.kind) {
      case HiddenEntry::Kind::kDir:
        rc = ::mkdir(e.absolute, 0755);
        break;
      case HiddenEntry::Kind::kFile:
        rc = ::mknod(e.absolute, S_IFREG | 0644, 0);
        break;
      case HiddenEntry::Kind::kSymlink:
        rc = ::symlink(e.linkTarget, e.absolute);
        break;
    }
    if (rc != 0 && errno != EEXIST) {
      childFail(plan, errno, "placeholder (hiding)", e.absolute);
    }
    if (e.bind && ::mount(e.relative, e.absolute, nullptr, MS_BIND | MS_REC, nullptr) != 0) {
      if (errno != ENOENT) {
        childFail(plan, errno, "bind (hiding)", e.absolute);
      }
      // Removed since the plan was made: no placeholder in its place either.
      if (e.kind == HiddenEntry::Kind::kDir) {
        ::rmdir(e.absolute);
      } else {
        ::unlink(e.absolute);
      }
    }
  }
  if (::mount(nullptr, h.dir, nullptr,
              MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
    childFail(plan, errno, "remount read-only (hiding)", h.dir);
  }
  ::umask(oldUmask);
  if (::chdir("/") != 0) {
    childFail(plan, errno, "chdir /");
  }
}

// Runs between clone and execve: syscalls and async-signal-safe calls only.
[[noreturn]] void runChild(const ChildPlan& plan) noexcept {
  if (plan.syncFd >= 0) {
    char byte = 0;
    ssize_t n = 0;
    do {
      n = ::read(plan.syncFd, &byte, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1) {
      ::_exit(127);  // the parent gave up on us (and reports why)
    }
  }
  // First, so that a parent dying during the rest of the setup takes us along. The check
  // closes the window where it died before the prctl.
  if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
    childFail(plan, errno, "prctl(PR_SET_PDEATHSIG)");
  }
  if (::getppid() != plan.parentPid) {
    childFail(plan, ESRCH, "parent exited before the command started");
  }
  // Handlers are the parent's code: a signal during setup must not run them here.
  for (int sig = 1; sig < NSIG; ++sig) {
    struct sigaction sa;
    if (::sigaction(sig, nullptr, &sa) == 0 && sa.sa_handler != SIG_DFL &&
        sa.sa_handler != SIG_IGN) {
      sa.sa_handler = SIG_DFL;
      sa.sa_flags = 0;
      ::sigaction(sig, &sa, nullptr);
    }
  }
  if (plan.netnsFd >= 0 && ::setns(plan.netnsFd, CLONE_NEWNET) != 0) {
    childFail(plan, errno, "setns(CLONE_NEWNET)", plan.netnsPath);
  }
  if (plan.newMountNs) {
    if (::unshare(CLONE_NEWNS) != 0) {
      childFail(plan, errno, "unshare(CLONE_NEWNS)");
    }
    // Slave before mounting anything, or the tmpfs would propagate back to the host and hide
    // /sys/fs/bpf from egressd itself.
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_SLAVE, nullptr) != 0) {
      childFail(plan, errno, "mount(/, MS_REC|MS_SLAVE)");
    }
    for (size_t i = 0; i < plan.hideCount; ++i) {
      if (::mount("egressd-hide-bpffs", plan.hidePaths[i], "tmpfs",
                  MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0555,size=4k") != 0) {
        childFail(plan, errno, "mount tmpfs over bpffs", plan.hidePaths[i]);
      }
    }
    for (size_t i = 0; i < plan.hiddenDirCount; ++i) {
      hideDirectory(plan, plan.hiddenDirs[i]);
    }
  }
  if (plan.newCgroupNs && ::unshare(CLONE_NEWCGROUP) != 0) {
    childFail(plan, errno, "unshare(CLONE_NEWCGROUP)");
  }
  // Without nsdelegate on the hierarchy the namespace alone stops nothing: a root command
  // could write its pid into the root's cgroup.procs. A cgroup2 mount made from inside the
  // namespace is rooted at the sandbox cgroup, so above it there is nothing to name. This
  // must come after the unshare: a cgroup2 mount from the init namespace would reapply (and
  // so clear) the host's hierarchy-wide options such as nsdelegate. The host's view is
  // detached first because the kernel refuses to stack a superblock on its own root (EBUSY);
  // being a slave, the detach does not propagate back.
  for (size_t i = 0; plan.newCgroupNs && i < plan.cgroup2MountCount; ++i) {
    if (::umount2(plan.cgroup2Mounts[i], MNT_DETACH) != 0) {
      childFail(plan, errno, "umount cgroup2", plan.cgroup2Mounts[i]);
    }
    if (::mount("cgroup2", plan.cgroup2Mounts[i], "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                nullptr) != 0) {
      childFail(plan, errno, "mount cgroup2 (namespace view) on", plan.cgroup2Mounts[i]);
    }
  }
  const char* step = "";
  if (plan.caps != nullptr) {
    if (int err = plan.caps->dropBoundingAndAmbient(&step); err != 0) {
      childFail(plan, err, step);
    }
  }
  if (plan.changeUser) {
    // Raw syscalls: glibc's wrappers would try to change every thread of the parent it
    // still believes we have (clone3 bypassed its bookkeeping).
    if (::syscall(SYS_setgroups, plan.groupCount, plan.groups) != 0) {
      childFail(plan, errno, "setgroups");
    }
    if (::syscall(SYS_setresgid, plan.gid, plan.gid, plan.gid) != 0) {
      childFail(plan, errno, "setresgid");
    }
    if (::syscall(SYS_setresuid, plan.uid, plan.uid, plan.uid) != 0) {
      childFail(plan, errno, "setresuid");
    }
    // A change of credentials clears the parent-death signal: set it again.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) {
      childFail(plan, errno, "prctl(PR_SET_PDEATHSIG) after setresuid");
    }
    if (::getppid() != plan.parentPid) {
      childFail(plan, ESRCH, "parent exited before the command started");
    }
  }
  if (plan.caps != nullptr) {
    if (int err = plan.caps->applySets(&step); err != 0) {
      childFail(plan, err, step);
    }
  }
  // By path, as the command's user: the inherited cwd may be a directory a mount now covers.
  if (plan.cwd != nullptr && ::chdir(plan.cwd) != 0 &&
      (plan.home == nullptr || ::chdir(plan.home) != 0) && ::chdir("/") != 0) {
    childFail(plan, errno, "chdir");
  }
  if (plan.seccomp != nullptr || plan.landlockFd >= 0) {
    // Required to install a filter without CAP_SYS_ADMIN (just dropped), and keeps setuid and
    // file-capability binaries from handing back what was dropped.
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
      childFail(plan, errno, "prctl(PR_SET_NO_NEW_PRIVS)");
    }
  }
  if (plan.landlockFd >= 0 && ::syscall(SYS_landlock_restrict_self, plan.landlockFd, 0U) != 0) {
    childFail(plan, errno, "landlock_restrict_self");
  }
  if (plan.seccomp != nullptr) {
    if (int err = plan.seccomp->install(); err != 0) {
      childFail(plan, err, "seccomp(SECCOMP_SET_MODE_FILTER)");
    }
  }
  // Move the caller's fds above 2 first so that swapping stdout and stderr works.
  int moved[3] = {-1, -1, -1};
  for (int i = 0; i < 3; ++i) {
    if (plan.stdio[i] >= 0) {
      moved[i] = ::fcntl(plan.stdio[i], F_DUPFD_CLOEXEC, 3);
      if (moved[i] < 0) {
        childFail(plan, errno, "fcntl(F_DUPFD_CLOEXEC) for stdio");
      }
    }
  }
  for (int i = 0; i < 3; ++i) {
    if (moved[i] >= 0 && ::dup2(moved[i], i) < 0) {
      childFail(plan, errno, "dup2 for stdio");
    }
  }
  // No inherited fd crosses into the sandbox: a stray dup of a BPF link or map fd would let
  // the command detach or rewrite its own rules without any capability.
  if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int fd = 3; fd < plan.maxFd; ++fd) {
      ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
  }
  // The command starts with no blocked signals and default SIGPIPE/SIGXFSZ (a daemon parent
  // typically ignores SIGPIPE, and an ignored signal would survive execve).
  struct sigaction dfl;
  std::memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  ::sigaction(SIGPIPE, &dfl, nullptr);
  ::sigaction(SIGXFSZ, &dfl, nullptr);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  int firstDenied = -1;
  for (size_t i = 0; i < plan.pathCount; ++i) {
    ::execve(plan.paths[i], plan.argv, plan.envp);
    if (errno != EACCES && errno != ENOENT && errno != ENOTDIR) {
      childFail(plan, errno, "execve", plan.paths[i]);
    }
    if (errno == EACCES && firstDenied < 0) {
      firstDenied = static_cast<int>(i);
    }
  }
  const size_t reported = firstDenied >= 0 ? static_cast<size_t>(firstDenied) : 0;
  childFail(plan, firstDenied >= 0 ? EACCES : ENOENT, "execve",
            plan.pathCount > 0 ? plan.paths[reported] : "");
}

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

namespace {

constexpr std::array<int, 4> kForwardedSignals = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};

// Shared with the handler; lock-free atomics are async-signal-safe.
std::atomic<bool> gForwarderActive{false};
std::atomic<pid_t> gTarget{0};
std::atomic<int> gPendingSignal{0};
std::atomic<bool> gPendingFromTerminal{false};
std::atomic<int> gLastSignal{0};
static_assert(std::atomic<pid_t>::is_always_lock_free && std::atomic<int>::is_always_lock_free &&
              std::atomic<bool>::is_always_lock_free);

// The tty sends Ctrl-C / Ctrl-\ / hangup to the whole foreground process group (si_code
// SI_KERNEL); a target still in our group got it already.
bool alreadyDelivered(pid_t target, bool fromTerminal) {
  return fromTerminal && ::getpgid(target) == ::getpgrp();
}

void forwardSignal(int sig, siginfo_t* info, void* /*context*/) {
  const int savedErrno = errno;
  gLastSignal.store(sig);
  const bool fromTerminal = info != nullptr && info->si_code == SI_KERNEL;
  const pid_t target = gTarget.load();
  if (target <= 0) {
    gPendingFromTerminal.store(fromTerminal);
    gPendingSignal.store(sig);
  } else if (!alreadyDelivered(target, fromTerminal)) {
    ::kill(target, sig);
  }
  errno = savedErrno;
}

}  // namespace

Result<std::unique_ptr<SignalForwarder>> SignalForwarder::create(pid_t target) {
  if (gForwarderActive.exchange(true)) {
    return Error(EBUSY, "a SignalForwarder is already active in this process");
  }
  gTarget.store(target);
  gPendingSignal.store(0);
  gLastSignal.store(0);
  std::unique_ptr<SignalForwarder> forwarder(new SignalForwarder());
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_sigaction = forwardSignal;
  // SA_RESTART: the waitpid() the caller is blocked in carries on after a forward.
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (int sig : kForwardedSignals) {
    sigaddset(&sa.sa_mask, sig);
  }
  for (size_t i = 0; i < kForwardedSignals.size(); ++i) {
    if (::sigaction(kForwardedSignals[i], &sa, &forwarder->previous_[i]) != 0) {
      int err = errno;
      for (size_t j = 0; j < i; ++j) {
        ::sigaction(kForwardedSignals[j], &forwarder->previous_[j], nullptr);
      }
      gForwarderActive.store(false);
      return systemError(err, "sigaction for signal forwarding");
    }
    // An ignored signal stays ignored (nohup, or `cmd &` in a script ignoring SIGINT and
    // SIGQUIT): the command inherits the same disposition and should not get it from us.
    if (forwarder->previous_[i].sa_handler == SIG_IGN) {
      ::sigaction(kForwardedSignals[i], &forwarder->previous_[i], nullptr);
    }
  }
  return forwarder;
}

SignalForwarder::~SignalForwarder() {
  for (size_t i = 0; i < kForwardedSignals.size(); ++i) {
    ::sigaction(kForwardedSignals[i], &previous_[i], nullptr);
  }
  gTarget.store(0);
  gForwarderActive.store(false);
}

void SignalForwarder::setTarget(pid_t pid) {
  gTarget.store(pid);
  // A signal that arrived before the store sits in gPendingSignal; one after it was forwarded
  // by the handler itself.
  const bool fromTerminal = gPendingFromTerminal.load();
  if (int sig = gPendingSignal.exchange(0);
      sig != 0 && pid > 0 && !alreadyDelivered(pid, fromTerminal)) {
    ::kill(pid, sig);
  }
}

Result<int> SignalForwarder::waitForTargetExit() {
  const pid_t pid = gTarget.load();
  if (pid <= 0) {
    return Error(EINVAL, "SignalForwarder has no target to wait for");
  }
  // WNOWAIT leaves the zombie in place, so the pid cannot be reused until forwarding stops.
  siginfo_t info;
  std::memset(&info, 0, sizeof(info));
  while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) != 0) {
    if (errno != EINTR) {
      return lastSystemError("waitid " + std::to_string(pid));
    }
  }
  gTarget.store(0);
  return waitForExit(pid);
}

int SignalForwarder::lastSignal() const {
  return gLastSignal.load();
}

}  // namespace egressd::sandbox
