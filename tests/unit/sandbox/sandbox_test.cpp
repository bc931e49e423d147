// Tests for userspace/sandbox against the real kernel, as root. They create cgroups named
// <cgroup2 mount>/egressd-test-sandbox-<pid>-<n> (removed in TearDown; leftovers of crashed
// runs, whose pid is gone, are removed in SetUp), and run commands in them. No network
// traffic: sockets are created and closed, never bound or connected. Processes are stopped
// by pid. The probe binary (sandbox_probe.cpp) turns one syscall into an exit code.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "common/fs.h"
#include "common/scope_guard.h"
#include "common/unique_fd.h"
#include "host/features.h"
#include "host_features.h"
#include "sandbox/caps.h"
#include "sandbox/cgroup.h"
#include "sandbox/mountinfo.h"
#include "sandbox/seccomp.h"
#include "sandbox/spawn.h"

namespace egressd::sandbox {
namespace {

using namespace std::chrono_literals;

constexpr const char* kProbe = EGRESSD_SANDBOX_PROBE;
constexpr const char* kCgroupPrefix = "egressd-test-sandbox-";
constexpr const char* kBpffsDirPrefix = "egressd-test-sandbox-bpffs-";
constexpr int kSigsysExit = 128 + SIGSYS;

#define ASSERT_OK(expr)                                                                          \
  do {                                                                                           \
    auto&& assert_ok_result_ = (expr);                                                           \
    ASSERT_TRUE(assert_ok_result_.ok()) << #expr << ": " << assert_ok_result_.error().message(); \
  } while (0)

std::string readFd(int fd) {
  std::string out;
  char buf[4096];
  off_t off = 0;
  for (;;) {
    ssize_t n = ::pread(fd, buf, sizeof(buf), off);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return out;
    }
    out.append(buf, static_cast<size_t>(n));
    off += n;
  }
}

// Value of "Key:" in /proc/PID/status text, "" when absent.
std::string statusField(const std::string& status, const std::string& key) {
  std::istringstream lines(status);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      std::string value = line.substr(key.size() + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      return value;
    }
  }
  return "";
}

bool hasCap(const std::string& hexMask, int cap) {
  return ((std::strtoull(hexMask.c_str(), nullptr, 16) >> cap) & 1) != 0;
}

// Entries of `dir` named "<prefix><pid>-…" whose pid no longer exists: left by a run that
// crashed or was SIGKILLed before its cleanup. A concurrently running suite's are kept.
std::vector<std::string> staleEntries(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> stale;
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) {
    ADD_FAILURE() << "opendir " << dir << ": " << std::strerror(errno);
    return stale;
  }
  while (struct dirent* e = ::readdir(d.get())) {
    std::string name = e->d_name;
    if (name.rfind(prefix, 0) != 0) {
      continue;
    }
    pid_t owner = static_cast<pid_t>(std::atol(name.c_str() + prefix.size()));
    if (owner > 0 && ::kill(owner, 0) != 0 && errno == ESRCH) {
      stale.push_back(dir + "/" + name);
    }
  }
  return stale;
}

void removeStaleLeftovers(const std::string& mount) {
  for (const auto& path : staleEntries(mount, kCgroupPrefix)) {
    auto st = removeCgroupTree(path);
    EXPECT_TRUE(st.ok()) << "stale " << path << ": " << st.error().message();
  }
  // Mount points of EveryBpffsMountIsHidden; the mount died with the crashed process's
  // private mount namespace, so only the empty directory is left.
  for (const auto& path : staleEntries("/tmp", kBpffsDirPrefix)) {
    EXPECT_EQ(::rmdir(path.c_str()), 0) << "stale " << path << ": " << std::strerror(errno);
  }
}

// A child we spawned: SIGKILLed and reaped on scope exit unless already waited for.
class Child {
 public:
  explicit Child(pid_t pid) : pid_(pid) {}
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  pid_t pid() const { return pid_; }
  // Reaped elsewhere: never signal the (possibly recycled) pid again.
  void markReaped() { reaped_ = true; }
  Result<int> wait() {
    auto status = waitForExit(pid_);
    reaped_ = status.ok();
    return status;
  }

 private:
  pid_t pid_;
  bool reaped_ = false;
};

struct Outcome {
  int status = -1;
  std::string out;
  std::string err;
};

class SandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(::geteuid(), 0u) << "these tests create cgroups and namespaces: run as root";
    EGRESSD_SKIP_UNLESS_HOST_FEATURE(host::kCgroup2);
    auto mount = findCgroup2Mount();
    ASSERT_TRUE(mount.ok()) << mount.error().message();
    mount_ = *mount;
    removeStaleLeftovers(mount_);
  }

  void TearDown() override {
    for (auto it = cgroups_.rbegin(); it != cgroups_.rend(); ++it) {
      auto st = removeCgroupTree(*it);
      EXPECT_TRUE(st.ok()) << st.error().message();
      EXPECT_FALSE(pathExists(*it)) << *it;
    }
  }

  // A fresh top-level test cgroup, removed in TearDown.
  std::string makeCgroup() {
    static int counter = 0;
    std::string path =
        mount_ + "/" + kCgroupPrefix + std::to_string(::getpid()) + "-" + std::to_string(++counter);
    auto st = createCgroup(path);
    EXPECT_TRUE(st.ok()) << st.error().message();
    cgroups_.push_back(path);
    return path;
  }

  SpawnOptions options(const std::string& cgroup, std::vector<std::string> argv) {
    SpawnOptions opts;
    opts.argv = std::move(argv);
    opts.cgroupPath = cgroup;
    return opts;
  }

  // Runs to completion with stdout/stderr captured in memfds.
  Outcome run(SpawnOptions opts) {
    Outcome outcome;
    UniqueFd out(::memfd_create("stdout", MFD_CLOEXEC));
    UniqueFd err(::memfd_create("stderr", MFD_CLOEXEC));
    EXPECT_TRUE(out && err);
    opts.stdoutFd = out.get();
    opts.stderrFd = err.get();
    auto pid = spawnInCgroup(opts);
    EXPECT_TRUE(pid.ok()) << pid.error().message();
    if (!pid.ok()) {
      return outcome;
    }
    Child child(*pid);
    auto status = child.wait();
    EXPECT_TRUE(status.ok()) << status.error().message();
    outcome.status = status.ok() ? *status : -1;
    outcome.out = readFd(out.get());
    outcome.err = readFd(err.get());
    return outcome;
  }

  // Starts a long-running command and waits until its stdout contains `needle`.
  std::pair<pid_t, std::string> startAndWaitFor(SpawnOptions opts, const std::string& needle) {
    UniqueFd out(::memfd_create("stdout", MFD_CLOEXEC));
    EXPECT_TRUE(out);
    opts.stdoutFd = out.get();
    auto pid = spawnInCgroup(opts);
    EXPECT_TRUE(pid.ok()) << pid.error().message();
    if (!pid.ok()) {
      return {-1, ""};
    }
    std::string seen;
    for (auto deadline = std::chrono::steady_clock::now() + 5s;
         std::chrono::steady_clock::now() < deadline && seen.find(needle) == std::string::npos;
         std::this_thread::sleep_for(10ms)) {
      seen = readFd(out.get());
    }
    return {*pid, seen};
  }

  // The cgroup of `pid` as this (init cgroup namespace) process sees it.
  std::string cgroupOf(pid_t pid) {
    auto text = readFile("/proc/" + std::to_string(pid) + "/cgroup");
    EXPECT_TRUE(text.ok()) << text.error().message();
    std::istringstream lines(text.ok() ? *text : "");
    std::string line;
    while (std::getline(lines, line)) {
      if (line.rfind("0::", 0) == 0) {
        return line.substr(3);
      }
    }
    return "";
  }

  int probe(const std::string& cgroup, std::vector<std::string> args,
            void (*tweak)(SpawnOptions&) = nullptr) {
    args.insert(args.begin(), kProbe);
    SpawnOptions opts = options(cgroup, args);
    if (tweak != nullptr) {
      tweak(opts);
    }
    Outcome o = run(opts);
    return o.status;
  }

  std::string mount_;
  std::vector<std::string> cgroups_;
};

// "/egressd-test-…" as /proc/PID/cgroup shows it.
std::string cgroupRelative(const std::string& mount, const std::string& path) {
  return path.substr(mount.size());
}
// "egressd-test-…": the relative form resolveCgroupPath() accepts.
std::string relativeToMount(const std::string& mount, const std::string& path) {
  return path.substr(mount.size() + 1);
}

void keepCapsNoSeccomp(SpawnOptions& o) {
  o.dropCapabilities = false;
  o.installSeccomp = false;
}
void keepCaps(SpawnOptions& o) {
  o.dropCapabilities = false;
}
void allowIoUring(SpawnOptions& o) {
  o.allowIoUring = true;
}

// ---------------------------------------------------------------------------------------
// cgroup plumbing

TEST(MountInfoTest, ParsesFieldsAndEscapes) {
  auto entries = parseMountInfo(
      "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n"
      "50 23 0:45 / /tmp/with\\040space rw - bpf bpf rw,mode=700\n"
      "garbage\n");
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_EQ(entries[0].mountPoint, "/sys/fs/cgroup/unified");
  EXPECT_EQ(entries[0].fsType, "cgroup2");
  EXPECT_EQ(entries[0].root, "/");
  EXPECT_EQ(entries[1].mountPoint, "/tmp/with space");
  EXPECT_EQ(entries[1].fsType, "bpf");
  EXPECT_EQ(entries[1].mountOptions, "rw");
}

TEST_F(SandboxTest, FindsTheCgroup2MountFromMountinfo) {
  struct statfs fs {};
  ASSERT_EQ(::statfs(mount_.c_str(), &fs), 0);
  EXPECT_EQ(fs.f_type, 0x63677270) << mount_ << " is not cgroup2 (CGROUP2_SUPER_MAGIC)";
}

TEST_F(SandboxTest, ResolvesPathsOnlyUnderTheMount) {
  auto rel = resolveCgroupPath("a//b/");
  ASSERT_OK(rel);
  EXPECT_EQ(*rel, mount_ + "/a/b");
  auto abs = resolveCgroupPath(mount_ + "/x/y/");
  ASSERT_OK(abs);
  EXPECT_EQ(*abs, mount_ + "/x/y");
  auto root = resolveCgroupPath("");
  ASSERT_OK(root);
  EXPECT_EQ(*root, mount_);

  auto outside = resolveCgroupPath("/etc");
  ASSERT_FALSE(outside.ok());
  EXPECT_EQ(outside.error().code(), EINVAL);
  EXPECT_NE(outside.error().message().find(mount_), std::string::npos);
  auto dotdot = resolveCgroupPath(mount_ + "/a/../../etc");
  ASSERT_FALSE(dotdot.ok());
  EXPECT_EQ(dotdot.error().code(), EINVAL);
  // A sibling whose name merely starts like the mount is not under it.
  EXPECT_FALSE(resolveCgroupPath(mount_ + "x/y").ok());
}

TEST_F(SandboxTest, CreatesIdentifiesAndRemovesCgroups) {
  std::string cg = makeCgroup();
  ASSERT_TRUE(pathExists(cg + "/cgroup.procs"));

  auto again = createCgroup(cg);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code(), EEXIST);
  EXPECT_NE(again.error().message().find(cg), std::string::npos);
  ASSERT_OK(createCgroup(cg, /*existOk=*/true));

  auto id = cgroupId(cg);
  ASSERT_OK(id);
  // On 64-bit kernels the kernfs node id is both the file handle and the inode number.
  struct stat st {};
  ASSERT_EQ(::stat(cg.c_str(), &st), 0);
  EXPECT_EQ(*id, static_cast<uint64_t>(st.st_ino));
  ASSERT_OK(createCgroup(cg + "/child"));
  auto childId = cgroupId(relativeToMount(mount_, cg) + "/child");
  ASSERT_OK(childId);
  EXPECT_NE(*childId, *id);

  ASSERT_OK(removeCgroupTree(cg));
  EXPECT_FALSE(pathExists(cg));
  ASSERT_OK(removeCgroupTree(cg));  // idempotent
  auto gone = cgroupId(cg);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code(), ENOENT);
}

TEST_F(SandboxTest, RemoveRefusesTheRootAndNonCgroups) {
  auto root = removeCgroupTree(mount_);
  ASSERT_FALSE(root.ok());
  EXPECT_EQ(root.error().code(), EINVAL);
  EXPECT_FALSE(removeCgroupTree("/tmp").ok());
}

TEST_F(SandboxTest, RemoveKillsEveryProcessInTheSubtree) {
  std::string cg = makeCgroup();
  ASSERT_OK(createCgroup(cg + "/nested"));
  ASSERT_OK(createCgroup(cg + "/nested/deeper"));
  auto top = spawnInCgroup(options(cg, {"sleep", "1000"}));
  ASSERT_OK(top);
  Child topChild(*top);
  auto deep = spawnInCgroup(options(cg + "/nested/deeper", {"sleep", "1000"}));
  ASSERT_OK(deep);
  Child deepChild(*deep);

  auto direct = cgroupPids(cg, false);
  ASSERT_OK(direct);
  EXPECT_EQ(*direct, std::vector<pid_t>{*top});
  auto all = cgroupPids(cg, true);
  ASSERT_OK(all);
  std::vector<pid_t> expected = {*top, *deep};
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(*all, expected);

  ASSERT_OK(removeCgroupTree(cg));
  EXPECT_FALSE(pathExists(cg));
  auto topStatus = topChild.wait();
  ASSERT_OK(topStatus);
  EXPECT_EQ(*topStatus, 128 + SIGKILL);
  auto deepStatus = deepChild.wait();
  ASSERT_OK(deepStatus);
  EXPECT_EQ(*deepStatus, 128 + SIGKILL);
}

TEST_F(SandboxTest, KillBySignalCoversKernelsWithoutCgroupKill) {
  std::string cg = makeCgroup();
  ASSERT_OK(createCgroup(cg + "/nested"));
  auto pid = spawnInCgroup(options(cg + "/nested", {"sleep", "1000"}));
  ASSERT_OK(pid);
  Child child(*pid);
  ASSERT_OK(killCgroupProcessesBySignal(cg));
  auto status = child.wait();
  ASSERT_OK(status);
  EXPECT_EQ(*status, 128 + SIGKILL);
}

TEST_F(SandboxTest, MovesAProcessBetweenCgroups) {
  std::string a = makeCgroup();
  std::string b = makeCgroup();
  auto pid = spawnInCgroup(options(a, {"sleep", "1000"}));
  ASSERT_OK(pid);
  Child child(*pid);
  ASSERT_OK(moveToCgroup(*pid, b));
  auto inB = cgroupPids(b, false);
  ASSERT_OK(inB);
  EXPECT_EQ(*inB, std::vector<pid_t>{*pid});
  auto inA = cgroupPids(a, false);
  ASSERT_OK(inA);
  EXPECT_TRUE(inA->empty());

  auto bad = moveToCgroup(*pid, relativeToMount(mount_, a) + "/missing");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message().find(std::to_string(*pid)), std::string::npos);
}

TEST_F(SandboxTest, FindsNetworkCapableProcesses) {
  std::string cg = makeCgroup();
  SpawnOptions capable = options(cg, {"sleep", "1000"});
  keepCapsNoSeccomp(capable);
  auto rootSleep = spawnInCgroup(capable);
  ASSERT_OK(rootSleep);
  Child capableChild(*rootSleep);
  auto confined = spawnInCgroup(options(cg, {"sleep", "1000"}));
  ASSERT_OK(confined);
  Child confinedChild(*confined);

  // comm changes a moment after the exec that released spawnInCgroup.
  std::vector<CapableProcess> found;
  for (auto deadline = std::chrono::steady_clock::now() + 5s;
       std::chrono::steady_clock::now() < deadline; std::this_thread::sleep_for(10ms)) {
    auto result = findNetworkCapableProcesses(cg);
    ASSERT_OK(result);
    found = *result;
    if (found.size() == 1 && found[0].comm == "sleep") {
      break;
    }
  }
  ASSERT_EQ(found.size(), 1u);
  EXPECT_EQ(found[0].pid, *rootSleep);
  EXPECT_EQ(found[0].comm, "sleep");
  EXPECT_TRUE(found[0].netRaw);
  EXPECT_TRUE(found[0].netAdmin);
}

// ---------------------------------------------------------------------------------------
// spawnInCgroup

class SpawnPathTest : public SandboxTest, public ::testing::WithParamInterface<bool> {};

TEST_P(SpawnPathTest, ChildStartsInsideTheCgroupWithItsOwnCgroupNamespace) {
  std::string cg = makeCgroup();
  SpawnOptions opts = options(cg, {"/bin/sh", "-c", "cat /proc/self/cgroup; exec sleep 1000"});
  opts.allowClone3 = GetParam();
  auto [pid, seen] = startAndWaitFor(opts, "0::");
  ASSERT_GT(pid, 0);
  Child child(pid);
  // Inside its cgroup namespace the sandbox's cgroup is the root.
  EXPECT_NE(("\n" + seen).find("\n0::/\n"), std::string::npos) << seen;
  // From outside, the process sits in the test cgroup.
  EXPECT_EQ(cgroupOf(pid), cgroupRelative(mount_, cg));
  auto pids = cgroupPids(cg, false);
  ASSERT_OK(pids);
  EXPECT_EQ(*pids, std::vector<pid_t>{pid});
}

INSTANTIATE_TEST_SUITE_P(Clone3AndForkFallback, SpawnPathTest, ::testing::Bool(),
                         [](const auto& param) { return param.param ? "clone3" : "fork"; });

TEST_F(SandboxTest, PassesExitCodesThrough) {
  std::string cg = makeCgroup();
  EXPECT_EQ(run(options(cg, {"/bin/sh", "-c", "exit 7"})).status, 7);
  EXPECT_EQ(run(options(cg, {"/bin/sh", "-c", "kill -TERM $$"})).status, 128 + SIGTERM);
  EXPECT_EQ(run(options(cg, {"true"})).status, 0);
}

TEST_F(SandboxTest, UsesTheGivenEnvironmentAndItsPath) {
  std::string cg = makeCgroup();
  SpawnOptions opts = options(cg, {"sh", "-c", "echo \"$FOO:$HOME\""});
  opts.env = {"FOO=bar", "PATH=/usr/bin:/bin"};
  Outcome o = run(opts);
  EXPECT_EQ(o.status, 0) << o.err;
  EXPECT_EQ(o.out, "bar:\n");
}

TEST_F(SandboxTest, ReportsSetupFailuresWithTheStep) {
  std::string cg = makeCgroup();
  auto dir = spawnInCgroup(options(cg, {"/"}));
  ASSERT_FALSE(dir.ok());
  EXPECT_EQ(dir.error().code(), EACCES);
  EXPECT_EQ(dir.error().message(), "sandbox setup: execve /: Permission denied");

  auto missing = spawnInCgroup(options(cg, {"egressd-no-such-command"}));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ENOENT);
  EXPECT_NE(missing.error().message().find("command not found"), std::string::npos);

  SpawnOptions badNetns = options(cg, {"true"});
  badNetns.netnsPath = "/nonexistent/netns";
  auto ns = spawnInCgroup(badNetns);
  ASSERT_FALSE(ns.ok());
  EXPECT_NE(ns.error().message().find("/nonexistent/netns"), std::string::npos);

  auto noCgroup = spawnInCgroup(options(relativeToMount(mount_, cg) + "/missing", {"true"}));
  ASSERT_FALSE(noCgroup.ok());
  EXPECT_EQ(noCgroup.error().code(), ENOENT);

  // Failed children were reaped, none left behind.
  EXPECT_EQ(::waitpid(-1, nullptr, WNOHANG), -1);
  EXPECT_EQ(errno, ECHILD);
}

TEST_F(SandboxTest, JoinsTheGivenNetworkNamespace) {
  std::string cg = makeCgroup();
  // Our own namespace: enough to run the setns step without creating anything.
  SpawnOptions opts = options(cg, {"readlink", "/proc/self/ns/net"});
  opts.netnsPath = "/proc/self/ns/net";
  Outcome o = run(opts);
  ASSERT_EQ(o.status, 0) << o.err;
  char own[128] = {};
  ASSERT_GT(::readlink("/proc/self/ns/net", own, sizeof(own) - 1), 0);
  EXPECT_EQ(o.out, std::string(own) + "\n");
}

TEST_F(SandboxTest, InheritedFdsDoNotReachTheCommand) {
  std::string cg = makeCgroup();
  UniqueFd leak(::open("/dev/null", O_RDONLY));  // deliberately without O_CLOEXEC
  ASSERT_TRUE(leak);
  Outcome o = run(options(cg, {kProbe, "fds"}));
  EXPECT_EQ(o.status, 0);
  EXPECT_EQ(o.out, "") << "fds open in the sandboxed command: " << o.out;
}

TEST_F(SandboxTest, CommandCannotMoveItselfOutOfItsCgroup) {
  std::string cg = makeCgroup();
  // A root shell writes its pid into the cgroup2 root it can see, then reports and stays.
  const std::string escape = "echo $$ > " + mount_ + "/cgroup.procs; echo done; exec sleep 1000";
  auto [pid, out] = startAndWaitFor(options(cg, {"/bin/sh", "-c", escape}), "done");
  ASSERT_GT(pid, 0);
  Child child(pid);
  EXPECT_EQ(cgroupOf(pid), cgroupRelative(mount_, cg));

  // Deeper stays possible: the sandbox's BPF rules cover its descendants.
  const std::string deeper = "mkdir " + mount_ + "/below && echo $$ > " + mount_ +
                             "/below/cgroup.procs; echo done; exec sleep 1000";
  auto [deepPid, deepOut] = startAndWaitFor(options(cg, {"/bin/sh", "-c", deeper}), "done");
  ASSERT_GT(deepPid, 0);
  Child deepChild(deepPid);
  EXPECT_EQ(cgroupOf(deepPid), cgroupRelative(mount_, cg) + "/below");

  // Control: with the host's cgroup2 view, only nsdelegate would stop the same write, so
  // the check above tests the sandbox and not some unrelated obstacle.
  auto nsdelegate = cgroup2HasNsDelegate();
  ASSERT_OK(nsdelegate);
  SpawnOptions hostView = options(cg, {"/bin/sh", "-c", escape});
  hostView.newMountNamespaceHidingBpffs = false;
  auto [hostPid, hostOut] = startAndWaitFor(hostView, "done");
  ASSERT_GT(hostPid, 0);
  Child hostChild(hostPid);
  EXPECT_EQ(cgroupOf(hostPid), *nsdelegate ? cgroupRelative(mount_, cg) : "/");
}

TEST_F(SandboxTest, CommandRunsWithoutDangerousCapabilities) {
  std::string cg = makeCgroup();
  Outcome o = run(options(cg, {"cat", "/proc/self/status"}));
  ASSERT_EQ(o.status, 0) << o.err;
  for (const char* set : {"CapEff", "CapPrm", "CapBnd", "CapInh", "CapAmb"}) {
    std::string mask = statusField(o.out, set);
    ASSERT_FALSE(mask.empty()) << set;
    for (cap_value_t cap : defaultDroppedCapabilities()) {
      EXPECT_FALSE(hasCap(mask, cap)) << set << " still has " << capabilityName(cap);
    }
  }
  EXPECT_EQ(statusField(o.out, "NoNewPrivs"), "1");
  EXPECT_EQ(statusField(o.out, "Seccomp"), "2");
  // Root keeps what it needs for ordinary work.
  EXPECT_TRUE(hasCap(statusField(o.out, "CapEff"), CAP_DAC_OVERRIDE));

  SpawnOptions control = options(cg, {"cat", "/proc/self/status"});
  control.dropCapabilities = false;
  Outcome c = run(control);
  ASSERT_EQ(c.status, 0) << c.err;
  EXPECT_TRUE(hasCap(statusField(c.out, "CapEff"), CAP_NET_RAW));
}

TEST_F(SandboxTest, SeccompRefusesSocketFamiliesNoHookSees) {
  std::string cg = makeCgroup();
  // Capabilities kept, so an EAFNOSUPPORT can only come from the filter.
  EXPECT_EQ(probe(cg, {"socket", "17", "3", "0"}, keepCaps), EAFNOSUPPORT);  // AF_PACKET
  EXPECT_EQ(probe(cg, {"socket", "17", "3", "0", "highbits"}, keepCaps), EAFNOSUPPORT);
  EXPECT_EQ(probe(cg, {"socket", "44", "3", "0"}, keepCaps), EAFNOSUPPORT);  // AF_XDP
  EXPECT_EQ(probe(cg, {"socket", "40", "1", "0"}, keepCaps), EAFNOSUPPORT);  // AF_VSOCK
  EXPECT_EQ(probe(cg, {"socket", "-1", "1", "0"}, keepCaps), EAFNOSUPPORT);
  EXPECT_EQ(probe(cg, {"socket", "100", "1", "0"}, keepCaps), EAFNOSUPPORT);
  // netlink: NETLINK_ROUTE only; NETLINK_SOCK_DIAG (4) and NETLINK_NETFILTER (12) refused.
  EXPECT_EQ(probe(cg, {"socket", "16", "3", "0"}, keepCaps), 0);
  EXPECT_EQ(probe(cg, {"socket", "16", "3", "4"}, keepCaps), EAFNOSUPPORT);
  EXPECT_EQ(probe(cg, {"socket", "16", "3", "12"}, keepCaps), EAFNOSUPPORT);
  EXPECT_EQ(probe(cg, {"socket", "16", "3", "0x100000000"}, keepCaps), 0);  // int truncates to 0
  // What programs need still works.
  EXPECT_EQ(probe(cg, {"socket", "1", "1", "0"}), 0);     // AF_UNIX stream
  EXPECT_EQ(probe(cg, {"socket", "2", "1", "0"}), 0);     // AF_INET TCP
  const bool ipv6 = test::hostFeature(host::kIpv6).ok();  // else the kernel says EAFNOSUPPORT
  if (ipv6) {
    EXPECT_EQ(probe(cg, {"socket", "10", "2", "0"}), 0);  // AF_INET6 UDP
  }
  EXPECT_EQ(probe(cg, {"socket", "2", "1", "0", "highbits"}), 0);
  EXPECT_EQ(probe(cg, {"socketpair", "1", "1"}), 0);
  EXPECT_EQ(probe(cg, {"socketpair", "2", "1"}), EAFNOSUPPORT);
  // The full sandbox refuses AF_PACKET as well (filter and missing CAP_NET_RAW).
  EXPECT_EQ(probe(cg, {"socket", "17", "3", "0"}), EAFNOSUPPORT);

  // Control: without the filter the kernel itself answers, so the expectations above can fail.
  EXPECT_EQ(probe(cg, {"socket", "17", "3", "0"}, keepCapsNoSeccomp), 0);
  EXPECT_EQ(probe(cg, {"socket", "16", "3", "4"}, keepCapsNoSeccomp), 0);
  EXPECT_EQ(probe(cg, {"socketpair", "2", "1"}, keepCapsNoSeccomp), EOPNOTSUPP);
  if (!ipv6) {
    GTEST_SKIP() << "AF_INET6 allowance untested: needs host feature "
                 << test::hostFeature(host::kIpv6).describe();
  }
}

TEST_F(SandboxTest, SeccompRefusesIoUringUnlessAllowed) {
  std::string cg = makeCgroup();
  EXPECT_EQ(probe(cg, {"io_uring"}), EPERM);
  // The control needs a kernel that lets a process without CAP_SYS_ADMIN create a ring
  // (kernel.io_uring_disabled=0); otherwise the kernel's EPERM hides the filter's.
  EGRESSD_SKIP_UNLESS_HOST_FEATURE(host::kIoUring);
  EXPECT_EQ(probe(cg, {"io_uring"}, allowIoUring), 0);
}

// Exit codes of `sandbox_probe int80-getpid`, by whether the kernel runs i386 syscalls
// from a 64-bit process at all (IA32 emulation). Without it int 0x80 is a #GP (SIGSEGV)
// before any syscall entry, so the filter never sees it; either way no syscall runs.
int int80ControlExit(bool ia32Emulation) {
  return ia32Emulation ? 0 : 128 + SIGSEGV;
}
std::vector<int> int80SandboxedExits(bool ia32Emulation) {
  if (ia32Emulation) {
    return {kSigsysExit};  // a working syscall: only the filter's kill stops it
  }
  return {kSigsysExit, 128 + SIGSEGV};
}
// x32 calls enter through the 64-bit entry, where seccomp runs before the dispatcher looks
// for an x32 table: the filter kills them whether or not the kernel has x32.
int x32ControlExit(bool x32Abi) {
  return x32Abi ? 0 : ENOSYS;
}

bool contains(const std::vector<int>& v, int x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

TEST(ForeignAbiExpectationTest, WithIa32EmulationOnlyTheFilterStopsInt80) {
  EXPECT_EQ(int80ControlExit(true), 0);
  EXPECT_EQ(int80SandboxedExits(true), std::vector<int>{kSigsysExit});
  EXPECT_FALSE(contains(int80SandboxedExits(true), 0));
  EXPECT_FALSE(contains(int80SandboxedExits(true), 128 + SIGSEGV));
}

TEST(ForeignAbiExpectationTest, WithoutIa32EmulationInt80RunsNoSyscall) {
  EXPECT_EQ(int80ControlExit(false), 128 + SIGSEGV);
  EXPECT_TRUE(contains(int80SandboxedExits(false), 128 + SIGSEGV));
  EXPECT_TRUE(contains(int80SandboxedExits(false), kSigsysExit));
  EXPECT_FALSE(contains(int80SandboxedExits(false), 0));  // a syscall ran
}

TEST(ForeignAbiExpectationTest, X32ControlFollowsTheKernel) {
  EXPECT_EQ(x32ControlExit(true), 0);
  EXPECT_EQ(x32ControlExit(false), ENOSYS);
}

TEST_F(SandboxTest, SeccompKillsSyscallsFromOtherAbis) {
  std::string cg = makeCgroup();
  const host::Feature& ia32 = test::hostFeature(host::kIa32Emulation);
  const host::Feature& x32 = test::hostFeature(host::kX32Abi);
  ASSERT_NE(ia32.status, host::FeatureStatus::kUnknown) << ia32.describe();
  ASSERT_NE(x32.status, host::FeatureStatus::kUnknown) << x32.describe();

  // Controls first, without the filter: they must agree with the host probes, or the
  // expectations below rest on a wrong premise.
  EXPECT_EQ(probe(cg, {"int80-getpid"}, keepCapsNoSeccomp), int80ControlExit(ia32.ok()))
      << ia32.describe();
  EXPECT_EQ(probe(cg, {"x32-getpid"}, keepCapsNoSeccomp), x32ControlExit(x32.ok()))
      << x32.describe();

  // Sandboxed: no foreign-ABI syscall runs.
  EXPECT_EQ(probe(cg, {"x32-getpid"}), kSigsysExit);
  int int80 = probe(cg, {"int80-getpid"});
  EXPECT_TRUE(contains(int80SandboxedExits(ia32.ok()), int80)) << "exit " << int80;
  if (!ia32.ok()) {
    GTEST_SKIP() << "needs host feature " << ia32.describe()
                 << ": the sandboxed int 0x80 ran no syscall (exit " << int80
                 << "), but the filter's kill of a working i386 syscall is not testable here";
  }
}

TEST_F(SandboxTest, BpffsIsHiddenUnderAReadOnlyTmpfs) {
  std::string cg = makeCgroup();
  Outcome o = run(options(cg, {"cat", "/proc/self/mountinfo"}));
  ASSERT_EQ(o.status, 0) << o.err;
  std::string bpfLine;
  for (const auto& m : parseMountInfo(o.out)) {
    if (m.mountPoint == "/sys/fs/bpf") {
      bpfLine = m.fsType + " " + m.mountOptions;  // the last one is the visible one
    }
  }
  if (!pathExists("/sys/fs/bpf")) {
    GTEST_SKIP() << "no /sys/fs/bpf on this host";
  }
  EXPECT_EQ(bpfLine.rfind("tmpfs ro,", 0), 0u) << bpfLine;
  EXPECT_EQ(probe(cg, {"mkdir", "/sys/fs/bpf/egressd-test"}), EROFS);
  Outcome listing = run(options(cg, {"ls", "-A", "/sys/fs/bpf"}));
  EXPECT_EQ(listing.status, 0) << listing.err;
  EXPECT_EQ(listing.out, "");
  // The tmpfs stayed inside the command's mount namespace.
  auto ours = readMountInfo();
  ASSERT_OK(ours);
  for (const auto& m : *ours) {
    EXPECT_FALSE(m.mountPoint == "/sys/fs/bpf" && m.fsType == "tmpfs")
        << "the hiding tmpfs leaked into the caller's mount namespace";
  }
}

TEST_F(SandboxTest, EveryBpffsMountIsHidden) {
  std::string cg = makeCgroup();
  // A bpffs with a marker directory, mounted in a private mount namespace of this test
  // process (and gone with it), so the host never sees it.
  std::string dirTemplate =
      std::string("/tmp/") + kBpffsDirPrefix + std::to_string(::getpid()) + "-XXXXXX";
  ASSERT_NE(::mkdtemp(dirTemplate.data()), nullptr);
  const std::string dir = dirTemplate;
  ScopeGuard removeDir([&] { ::rmdir(dir.c_str()); });
  UniqueFd hostNs(::open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(hostNs);
  ASSERT_EQ(::unshare(CLONE_NEWNS), 0) << std::strerror(errno);
  ScopeGuard backToHostNs([&] { EXPECT_EQ(::setns(hostNs.get(), CLONE_NEWNS), 0); });
  ASSERT_EQ(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), 0);
  ASSERT_EQ(::mount("bpf", dir.c_str(), "bpf", 0, "mode=0700"), 0) << std::strerror(errno);
  ScopeGuard unmount([&] { ::umount2(dir.c_str(), MNT_DETACH); });
  ASSERT_EQ(::mkdir((dir + "/marker").c_str(), 0700), 0) << std::strerror(errno);

  Outcome hidden = run(options(cg, {"ls", "-A", dir}));
  EXPECT_EQ(hidden.status, 0) << hidden.err;
  EXPECT_EQ(hidden.out, "");
  // Control: with the mount namespace step off the marker is visible.
  SpawnOptions control = options(cg, {"ls", "-A", dir});
  control.newMountNamespaceHidingBpffs = false;
  Outcome visible = run(control);
  EXPECT_EQ(visible.status, 0) << visible.err;
  EXPECT_NE(("\n" + visible.out).find("\nmarker\n"), std::string::npos) << visible.out;
}

TEST_F(SandboxTest, ForwardsSignalsToTheTarget) {
  std::string cg = makeCgroup();
  auto forwarder = SignalForwarder::create();
  ASSERT_OK(forwarder);
  auto second = SignalForwarder::create();
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), EBUSY);

  // A signal before the target is known is kept and delivered by setTarget().
  ASSERT_EQ(::kill(::getpid(), SIGINT), 0);
  auto pid = spawnInCgroup(options(cg, {"sleep", "1000"}));
  ASSERT_OK(pid);
  Child child(*pid);
  (*forwarder)->setTarget(*pid);
  auto status = child.wait();
  ASSERT_OK(status);
  EXPECT_EQ(*status, 128 + SIGINT);

  auto pid2 = spawnInCgroup(options(cg, {"sleep", "1000"}));
  ASSERT_OK(pid2);
  Child child2(*pid2);
  (*forwarder)->setTarget(*pid2);
  ASSERT_EQ(::kill(::getpid(), SIGTERM), 0);
  auto status2 = (*forwarder)->waitForTargetExit();
  ASSERT_OK(status2);
  child2.markReaped();
  EXPECT_EQ(*status2, 128 + SIGTERM);
  EXPECT_EQ((*forwarder)->lastSignal(), SIGTERM);
  EXPECT_EQ(::waitpid(*pid2, nullptr, WNOHANG), -1) << "waitForTargetExit did not reap";
  // After the wait nothing is forwarded any more (to what could be a recycled pid).
  ASSERT_EQ(::kill(::getpid(), SIGTERM), 0);

  forwarder->reset();
  struct sigaction now {};
  ASSERT_EQ(::sigaction(SIGTERM, nullptr, &now), 0);
  EXPECT_EQ(now.sa_handler, SIG_DFL) << "previous SIGTERM disposition not restored";
  auto again = SignalForwarder::create();
  EXPECT_TRUE(again.ok());
}

TEST_F(SandboxTest, SignalForwarderLeavesIgnoredSignalsIgnored) {
  struct sigaction ignore {};
  ignore.sa_handler = SIG_IGN;
  struct sigaction before {};
  ASSERT_EQ(::sigaction(SIGQUIT, &ignore, &before), 0);
  ScopeGuard restore([&] { ::sigaction(SIGQUIT, &before, nullptr); });
  {
    auto forwarder = SignalForwarder::create();
    ASSERT_OK(forwarder);
    struct sigaction now {};
    ASSERT_EQ(::sigaction(SIGQUIT, nullptr, &now), 0);
    EXPECT_EQ(now.sa_handler, SIG_IGN);
    ASSERT_EQ(::sigaction(SIGHUP, nullptr, &now), 0);
    EXPECT_NE(now.sa_handler, SIG_DFL) << "SIGHUP should be forwarded";
  }
  struct sigaction after {};
  ASSERT_EQ(::sigaction(SIGQUIT, nullptr, &after), 0);
  EXPECT_EQ(after.sa_handler, SIG_IGN);
}

// ---------------------------------------------------------------------------------------
// In-process APIs: irreversible, so each runs in a forked child of the test.

// Runs `body` in a fork and returns its exit status (128 + signal when killed).
int inFork(int (*body)()) {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::_exit(body());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(SeccompTest, ProgramFitsTheKernelLimit) {
  auto program = SeccompProgram::buildSocketFamilyFilter({});
  ASSERT_OK(program);
  EXPECT_GT(program->instructionCount(), 0u);
  EXPECT_LT(program->instructionCount(), 4096u);
}

TEST(SeccompTest, InstallsInTheCallingProcess) {
  int status = inFork([]() -> int {
    if (!installSocketFamilyFilter({}).ok()) {
      return 10;
    }
    if (::socket(AF_PACKET, SOCK_RAW, 0) >= 0 || errno != EAFNOSUPPORT) {
      return 11;
    }
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    return fd >= 0 ? 0 : 12;
  });
  EXPECT_EQ(status, 0);
}

TEST(CapsTest, DropsFromEverySetInTheCallingProcess) {
  int status = inFork([]() -> int {
    if (!dropCapabilities(defaultDroppedCapabilities()).ok()) {
      return 10;
    }
    auto text = readFile("/proc/self/status");
    if (!text.ok()) {
      return 11;
    }
    for (const char* set : {"CapEff", "CapPrm", "CapBnd"}) {
      for (int cap : {CAP_NET_RAW, CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_BPF}) {
        if (hasCap(statusField(*text, set), cap)) {
          return 20 + cap;
        }
      }
    }
    // The kernel agrees, not just /proc.
    return ::socket(AF_PACKET, SOCK_RAW, 0) < 0 && errno == EPERM ? 0 : 12;
  });
  EXPECT_EQ(status, 0);
}

TEST(CapsTest, NamesCapabilities) {
  EXPECT_EQ(capabilityName(CAP_NET_RAW), "cap_net_raw");
  EXPECT_EQ(defaultDroppedCapabilities().size(), 9u);
}

// A PATH match the command's user cannot reach (pyenv shims in root's 0700 home) must not hide
// the next one: the lookup is execvp's, done as that user.
TEST_F(SandboxTest, PathLookupFallsThroughEntriesTheUserCannotExecute) {
  std::string dir = "/tmp/egressd-test-path-XXXXXX";
  ASSERT_NE(::mkdtemp(dir.data()), nullptr);
  ScopeGuard removeFiles([&] {
    ::unlink((dir + "/id").c_str());
    ::rmdir(dir.c_str());
  });
  ASSERT_TRUE(writeFileAtomic(dir + "/id", "#!/bin/sh\necho shadow\n", 0755).ok());
  ASSERT_EQ(::chmod((dir + "/id").c_str(), 0755), 0);
  ASSERT_EQ(::chmod(dir.c_str(), 0700), 0);
  const std::string cg = makeCgroup();

  SpawnOptions asRoot = options(cg, {"id", "-u"});
  asRoot.env = {"PATH=" + dir + ":/usr/bin:/bin"};
  Outcome root = run(asRoot);
  EXPECT_EQ(root.status, 0) << root.err;
  EXPECT_EQ(root.out, "shadow\n") << "root reaches the first match";

  auto nobody = resolveRunAsUser("nobody", nullptr, nullptr);
  ASSERT_TRUE(nobody.ok()) << nobody.error().message();
  SpawnOptions asNobody = options(cg, {"id", "-u"});
  asNobody.env = asRoot.env;
  asNobody.user = *nobody;
  Outcome user = run(asNobody);
  EXPECT_EQ(user.status, 0) << user.err;
  EXPECT_EQ(user.out, std::to_string(nobody->uid) + "\n") << "nobody falls through to /usr/bin/id";

  SpawnOptions onlyHidden = options(cg, {"id"});
  onlyHidden.env = {"PATH=" + dir};
  onlyHidden.user = *nobody;
  auto refused = spawnInCgroup(onlyHidden);
  ASSERT_FALSE(refused.ok()) << "the only match is out of the user's reach";
  EXPECT_NE(refused.error().message().find("Permission denied"), std::string::npos)
      << refused.error().message();
}

}  // namespace
}  // namespace egressd::sandbox
