// The child's side of spawnInCgroup(): entering the namespaces, hiding bpffs and directories,
// remounting cgroup2, dropping capabilities, switching user, Landlock, seccomp, stdio and
// execve, with async-signal-safe calls only (the parent may be multi-threaded).
#include "sandbox/spawn_child.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace egressd::sandbox {
namespace {

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

}  // namespace

void runChild(const ChildPlan& plan) noexcept {
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

}  // namespace egressd::sandbox
