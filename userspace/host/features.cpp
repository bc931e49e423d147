#include "host/features.h"

#include <linux/io_uring.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <sstream>

#include "common/fs.h"

namespace egressd::host {
namespace {

Feature make(std::string_view name, FeatureStatus status, std::string detail) {
  return Feature{std::string(name), status, std::move(detail)};
}

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) {
    return "";
  }
  size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

std::optional<long long> parseInteger(std::string_view text) {
  std::string t = trim(text);
  long long v = 0;
  auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (ec != std::errc() || end != t.data() + t.size() || t.empty()) {
    return std::nullopt;
  }
  return v;
}

std::optional<std::string> readOptional(const std::string& path) {
  auto text = readFile(path);
  if (!text.ok()) {
    return std::nullopt;
  }
  return trim(*text);
}

const sandbox::MountEntry* cgroup2Entry(const std::vector<sandbox::MountEntry>& mounts) {
  const sandbox::MountEntry* fallback = nullptr;
  for (const auto& m : mounts) {
    if (m.fsType != "cgroup2") {
      continue;
    }
    if (m.root == "/") {
      return &m;
    }
    if (fallback == nullptr) {
      fallback = &m;
    }
  }
  return fallback;
}

#if defined(__x86_64__)
// Child: one foreign-ABI getpid, reported through the exit code (see classifyAbiProbe).
// Only async-signal-safe calls: the caller may be multi-threaded.
void exitOnFault(int) {
  ::_exit(kAbiProbeFault);
}

[[noreturn]] void abiProbeChild(bool int80) {
  struct sigaction fault {};
  fault.sa_handler = exitOnFault;
  ::sigaction(SIGSEGV, &fault, nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  ::sigaction(SIGSYS, &dfl, nullptr);
  struct rlimit noCore {};
  ::setrlimit(RLIMIT_CORE, &noCore);
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  const long self = ::syscall(SYS_getpid);
  long rc = 0;
  if (int80) {
    rc = 20;  // getpid in the i386 table
    asm volatile("int $0x80" : "+a"(rc) : : "memory", "r8", "r9", "r10", "r11");
    if (rc == -ENOSYS) {
      ::_exit(kAbiProbeEnosys);
    }
  } else {
    rc = ::syscall(0x40000000L | SYS_getpid);  // __X32_SYSCALL_BIT | getpid
    if (rc < 0 && errno == ENOSYS) {
      ::_exit(kAbiProbeEnosys);
    }
  }
  ::_exit(rc == self ? 0 : 1);
}

Feature runAbiProbe(std::string_view name, bool int80) {
  pid_t pid = ::fork();
  if (pid < 0) {
    return make(name, FeatureStatus::kUnknown,
                std::string("fork for the probe failed: ") + std::strerror(errno));
  }
  if (pid == 0) {
    abiProbeChild(int80);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) {
      return make(name, FeatureStatus::kUnknown,
                  std::string("waitpid for the probe failed: ") + std::strerror(errno));
    }
  }
  return classifyAbiProbe(name, status);
}
#endif

Feature probeIa32() {
#if defined(__x86_64__)
  return runAbiProbe(kIa32Emulation, true);
#else
  return make(kIa32Emulation, FeatureStatus::kUnknown, "not an x86-64 build");
#endif
}

Feature probeX32() {
#if defined(__x86_64__)
  return runAbiProbe(kX32Abi, false);
#else
  return make(kX32Abi, FeatureStatus::kUnknown, "not an x86-64 build");
#endif
}

Feature fromMounts(std::string_view name,
                   Feature (*classify)(const std::vector<sandbox::MountEntry>&)) {
  auto mounts = sandbox::readMountInfo();
  if (!mounts.ok()) {
    return make(name, FeatureStatus::kUnknown, mounts.error().message());
  }
  return classify(*mounts);
}

Feature probeBpffs() {
  auto mounts = sandbox::readMountInfo();
  if (!mounts.ok()) {
    return make(kBpffs, FeatureStatus::kUnknown, mounts.error().message());
  }
  return classifyBpffs(*mounts, readOptional("/proc/filesystems"));
}

Feature probeIoUring() {
  Feature f = classifyIoUringDisabled(readOptional("/proc/sys/kernel/io_uring_disabled"));
  if (!f.ok()) {
    return f;
  }
  // The sysctl allows it; the kernel may still be built without io_uring.
  io_uring_params params;
  std::memset(&params, 0, sizeof(params));
  long fd = ::syscall(SYS_io_uring_setup, 1, &params);
  if (fd < 0) {
    int err = errno;
    return make(kIoUring, FeatureStatus::kMissing,
                std::string("io_uring_setup fails: ") + std::strerror(err) +
                    (err == ENOSYS ? " (kernel built without CONFIG_IO_URING)" : ""));
  }
  ::close(static_cast<int>(fd));
  return f;
}

Feature probeBtf() {
  struct stat st {};
  if (::stat("/sys/kernel/btf/vmlinux", &st) != 0) {
    return make(kBtfVmlinux, FeatureStatus::kMissing,
                "no /sys/kernel/btf/vmlinux (kernel without CONFIG_DEBUG_INFO_BTF): "
                "libbpf cannot CO-RE-relocate the BPF programs");
  }
  return make(kBtfVmlinux, FeatureStatus::kOk,
              "/sys/kernel/btf/vmlinux, " + std::to_string(st.st_size) + " bytes");
}

Feature probeKernel() {
  struct utsname u {};
  if (::uname(&u) != 0) {
    return make(kKernelVersion, FeatureStatus::kUnknown,
                std::string("uname: ") + std::strerror(errno));
  }
  return classifyKernelRelease(u.release);
}

}  // namespace

std::string_view statusName(FeatureStatus status) {
  switch (status) {
    case FeatureStatus::kOk:
      return "ok";
    case FeatureStatus::kMissing:
      return "missing";
    case FeatureStatus::kUnknown:
      break;
  }
  return "unknown";
}

std::string Feature::describe() const {
  std::string out = name;
  out += ": ";
  out += statusName(status);
  out += " (";
  out += detail;
  out += ")";
  return out;
}

const std::vector<std::string_view>& featureNames() {
  static const std::vector<std::string_view> names = {kKernelVersion,
                                                      kCgroup2,
                                                      kCgroup2NsDelegate,
                                                      kBpffs,
                                                      kBtfVmlinux,
                                                      kIoUring,
                                                      kIa32Emulation,
                                                      kX32Abi,
                                                      kIpv6,
                                                      kIpv6Loopback,
                                                      kTcpFastOpen,
                                                      kPingGroupRange,
                                                      kUnprivilegedUserns};
  return names;
}

Feature probeFeature(std::string_view name) {
  if (name == kIa32Emulation) {
    return probeIa32();
  }
  if (name == kX32Abi) {
    return probeX32();
  }
  if (name == kCgroup2) {
    return fromMounts(name, classifyCgroup2);
  }
  if (name == kCgroup2NsDelegate) {
    return fromMounts(name, classifyNsDelegate);
  }
  if (name == kBpffs) {
    return probeBpffs();
  }
  if (name == kIoUring) {
    return probeIoUring();
  }
  if (name == kUnprivilegedUserns) {
    return classifyUserns(readOptional("/proc/sys/user/max_user_namespaces"),
                          readOptional("/proc/sys/kernel/unprivileged_userns_clone"),
                          readOptional("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"));
  }
  if (name == kIpv6) {
    return classifyIpv6(pathExists("/proc/sys/net/ipv6"),
                        readOptional("/proc/sys/net/ipv6/conf/default/disable_ipv6"));
  }
  if (name == kIpv6Loopback) {
    return classifyIpv6Loopback(pathExists("/proc/sys/net/ipv6"),
                                readOptional("/proc/sys/net/ipv6/conf/lo/disable_ipv6"));
  }
  if (name == kTcpFastOpen) {
    return classifyTcpFastOpen(readOptional("/proc/sys/net/ipv4/tcp_fastopen"));
  }
  if (name == kBtfVmlinux) {
    return probeBtf();
  }
  if (name == kKernelVersion) {
    return probeKernel();
  }
  if (name == kPingGroupRange) {
    return classifyPingGroupRange(readOptional("/proc/sys/net/ipv4/ping_group_range"));
  }
  return make(name, FeatureStatus::kUnknown, "no such probe");
}

std::vector<Feature> probeAll() {
  std::vector<Feature> out;
  for (std::string_view name : featureNames()) {
    out.push_back(probeFeature(name));
  }
  return out;
}

// ---- parsing parts ----------------------------------------------------------------------

Feature classifyAbiProbe(std::string_view name, int waitStatus) {
  const bool ia32 = name == kIa32Emulation;
  const char* what = ia32 ? "int 0x80 (i386 getpid)" : "x32 getpid (nr | 0x40000000)";
  if (WIFEXITED(waitStatus)) {
    int code = WEXITSTATUS(waitStatus);
    if (code == 0) {
      return make(name, FeatureStatus::kOk, std::string(what) + " runs a syscall");
    }
    if (code == kAbiProbeEnosys) {
      return make(
          name, FeatureStatus::kMissing,
          std::string(what) + " returns ENOSYS" +
              (ia32 ? "" : ": kernel without x32 (CONFIG_X86_X32_ABI off or syscall.x32=n)"));
    }
    if (code != kAbiProbeFault) {
      return make(name, FeatureStatus::kUnknown,
                  std::string(what) + ": probe exited with " + std::to_string(code));
    }
  }
  const bool fault =
      WIFEXITED(waitStatus) || (WIFSIGNALED(waitStatus) && WTERMSIG(waitStatus) == SIGSEGV);
  if (fault) {
    return make(name, FeatureStatus::kMissing,
                std::string(what) + (ia32 ? " faults (SIGSEGV): kernel without IA32 emulation "
                                            "(CONFIG_IA32_EMULATION off, or ia32_emulation=0)"
                                          : " faults (SIGSEGV)"));
  }
  if (WIFSIGNALED(waitStatus)) {
    int sig = WTERMSIG(waitStatus);
    if (sig == SIGSYS) {
      return make(name, FeatureStatus::kMissing,
                  std::string(what) + " is killed by a seccomp filter on this process (SIGSYS)");
    }
    return make(name, FeatureStatus::kUnknown,
                std::string(what) + ": probe killed by signal " + std::to_string(sig));
  }
  return make(name, FeatureStatus::kUnknown,
              std::string(what) + ": wait status " + std::to_string(waitStatus));
}

Feature classifyCgroup2(const std::vector<sandbox::MountEntry>& mounts) {
  const sandbox::MountEntry* cg2 = cgroup2Entry(mounts);
  if (cg2 == nullptr) {
    return make(kCgroup2, FeatureStatus::kMissing, "no cgroup2 filesystem is mounted");
  }
  bool v1 = false;
  for (const auto& m : mounts) {
    v1 = v1 || m.fsType == "cgroup";
  }
  if (v1) {
    return make(kCgroup2, FeatureStatus::kOk,
                "hybrid: cgroup2 at " + cg2->mountPoint + ", v1 controllers mounted beside it");
  }
  return make(kCgroup2, FeatureStatus::kOk, "unified: cgroup2 at " + cg2->mountPoint);
}

Feature classifyNsDelegate(const std::vector<sandbox::MountEntry>& mounts) {
  const sandbox::MountEntry* cg2 = cgroup2Entry(mounts);
  if (cg2 == nullptr) {
    return make(kCgroup2NsDelegate, FeatureStatus::kUnknown, "no cgroup2 filesystem is mounted");
  }
  if (("," + cg2->superOptions + ",").find(",nsdelegate,") != std::string::npos) {
    return make(kCgroup2NsDelegate, FeatureStatus::kOk,
                cg2->mountPoint + " is mounted with nsdelegate");
  }
  return make(kCgroup2NsDelegate, FeatureStatus::kMissing,
              cg2->mountPoint +
                  " lacks nsdelegate (egressd run confines its command's cgroup "
                  "view itself)");
}

Feature classifyBpffs(const std::vector<sandbox::MountEntry>& mounts,
                      const std::optional<std::string>& filesystems) {
  for (const auto& m : mounts) {
    if (m.fsType == "bpf" && m.mountPoint == "/sys/fs/bpf") {
      return make(kBpffs, FeatureStatus::kOk, "mounted at /sys/fs/bpf");
    }
  }
  if (filesystems.has_value()) {
    std::istringstream lines(*filesystems);
    std::string line;
    bool supported = false;
    while (std::getline(lines, line)) {
      supported = supported || trim(line) == "nodev\tbpf" || trim(line) == "bpf" ||
                  (line.size() >= 4 && line.compare(line.size() - 4, 4, "\tbpf") == 0);
    }
    if (!supported) {
      return make(kBpffs, FeatureStatus::kMissing,
                  "kernel has no bpf filesystem (not in /proc/filesystems)");
    }
  }
  return make(kBpffs, FeatureStatus::kMissing,
              "not mounted at /sys/fs/bpf (egressd and the e2e tests mount it on first use)");
}

Feature classifyIoUringDisabled(const std::optional<std::string>& sysctl) {
  if (!sysctl.has_value()) {
    return make(kIoUring, FeatureStatus::kOk,
                "kernel.io_uring_disabled absent (kernel before 6.6): io_uring enabled");
  }
  auto v = parseInteger(*sysctl);
  if (v == 0) {
    return make(kIoUring, FeatureStatus::kOk, "kernel.io_uring_disabled=0");
  }
  if (v == 1) {
    return make(kIoUring, FeatureStatus::kMissing,
                "kernel.io_uring_disabled=1: only CAP_SYS_ADMIN and kernel.io_uring_group "
                "members may create rings (sandboxed commands drop CAP_SYS_ADMIN)");
  }
  if (v == 2) {
    return make(kIoUring, FeatureStatus::kMissing,
                "kernel.io_uring_disabled=2: io_uring is off for every process");
  }
  return make(kIoUring, FeatureStatus::kUnknown,
              "kernel.io_uring_disabled has an unexpected value '" + *sysctl + "'");
}

Feature classifyUserns(const std::optional<std::string>& maxUserNamespaces,
                       const std::optional<std::string>& unprivilegedClone,
                       const std::optional<std::string>& apparmorRestrict) {
  if (!maxUserNamespaces.has_value()) {
    return make(kUnprivilegedUserns, FeatureStatus::kMissing,
                "no user.max_user_namespaces (kernel without CONFIG_USER_NS)");
  }
  auto max = parseInteger(*maxUserNamespaces);
  if (!max.has_value()) {
    return make(kUnprivilegedUserns, FeatureStatus::kUnknown,
                "user.max_user_namespaces='" + *maxUserNamespaces + "'");
  }
  if (*max == 0) {
    return make(kUnprivilegedUserns, FeatureStatus::kMissing, "user.max_user_namespaces=0");
  }
  if (unprivilegedClone.has_value() && parseInteger(*unprivilegedClone) == 0) {
    return make(kUnprivilegedUserns, FeatureStatus::kMissing, "kernel.unprivileged_userns_clone=0");
  }
  if (apparmorRestrict.has_value() && parseInteger(*apparmorRestrict) == 1) {
    return make(kUnprivilegedUserns, FeatureStatus::kMissing,
                "kernel.apparmor_restrict_unprivileged_userns=1");
  }
  return make(kUnprivilegedUserns, FeatureStatus::kOk,
              "user.max_user_namespaces=" + std::to_string(*max));
}

Feature classifyIpv6(bool ipv6SysctlsExist, const std::optional<std::string>& defaultDisable) {
  if (!ipv6SysctlsExist) {
    return make(kIpv6, FeatureStatus::kMissing,
                "no /proc/sys/net/ipv6: IPv6 disabled at boot (ipv6.disable=1) or not built");
  }
  if (defaultDisable.has_value() && parseInteger(*defaultDisable) == 1) {
    return make(kIpv6, FeatureStatus::kOk,
                "in the kernel; net.ipv6.conf.default.disable_ipv6=1, so new interfaces start "
                "without IPv6 (the e2e tests enable it on their own veths)");
  }
  return make(kIpv6, FeatureStatus::kOk, "in the kernel, on for new interfaces");
}

Feature classifyIpv6Loopback(bool ipv6SysctlsExist, const std::optional<std::string>& loDisable) {
  if (!ipv6SysctlsExist) {
    return make(kIpv6Loopback, FeatureStatus::kMissing,
                "no IPv6 in the kernel (ipv6.disable=1 or not built): no ::1");
  }
  if (!loDisable.has_value()) {
    return make(kIpv6Loopback, FeatureStatus::kUnknown, "net.ipv6.conf.lo.disable_ipv6 unreadable");
  }
  if (parseInteger(*loDisable) == 1) {
    return make(kIpv6Loopback, FeatureStatus::kMissing,
                "net.ipv6.conf.lo.disable_ipv6=1 (e.g. net.ipv6.conf.all.disable_ipv6=1): no ::1");
  }
  return make(kIpv6Loopback, FeatureStatus::kOk, "::1 on lo");
}

Feature classifyTcpFastOpen(const std::optional<std::string>& sysctl) {
  if (!sysctl.has_value()) {
    return make(kTcpFastOpen, FeatureStatus::kUnknown, "net.ipv4.tcp_fastopen unreadable");
  }
  auto v = parseInteger(*sysctl);
  if (!v.has_value()) {
    return make(kTcpFastOpen, FeatureStatus::kUnknown, "net.ipv4.tcp_fastopen='" + *sysctl + "'");
  }
  std::string setting = "net.ipv4.tcp_fastopen=" + std::to_string(*v);
  if ((*v & 1) == 0) {
    return make(kTcpFastOpen, FeatureStatus::kMissing,
                setting + ": client TCP Fast Open off (sendto MSG_FASTOPEN fails EOPNOTSUPP)");
  }
  return make(kTcpFastOpen, FeatureStatus::kOk, setting + " (client on)");
}

Feature classifyPingGroupRange(const std::optional<std::string>& sysctl) {
  if (!sysctl.has_value()) {
    return make(kPingGroupRange, FeatureStatus::kUnknown, "net.ipv4.ping_group_range unreadable");
  }
  std::istringstream in(*sysctl);
  long long low = 0;
  long long high = 0;
  if (!(in >> low >> high)) {
    return make(kPingGroupRange, FeatureStatus::kUnknown,
                "net.ipv4.ping_group_range='" + *sysctl + "'");
  }
  std::string range = std::to_string(low) + " " + std::to_string(high);
  if (low > high) {
    return make(kPingGroupRange, FeatureStatus::kMissing,
                "net.ipv4.ping_group_range=\"" + range +
                    "\": ping sockets closed in this netns (the e2e tests open them in their "
                    "own netns)");
  }
  return make(kPingGroupRange, FeatureStatus::kOk, "net.ipv4.ping_group_range=\"" + range + "\"");
}

std::optional<KernelVersion> parseKernelRelease(std::string_view release) {
  KernelVersion v;
  int* parts[] = {&v.major, &v.minor, &v.patch};
  const char* p = release.data();
  const char* end = release.data() + release.size();
  for (int i = 0; i < 3; ++i) {
    auto [next, ec] = std::from_chars(p, end, *parts[i]);
    if (ec != std::errc()) {
      if (i < 2) {
        return std::nullopt;
      }
      break;
    }
    p = next;
    if (i < 2) {
      if (p == end || *p != '.') {
        if (i == 0) {
          return std::nullopt;
        }
        break;
      }
      ++p;
    }
  }
  return v;
}

Feature classifyKernelRelease(std::string_view release) {
  auto v = parseKernelRelease(release);
  if (!v.has_value()) {
    return make(kKernelVersion, FeatureStatus::kUnknown,
                "cannot parse kernel release '" + std::string(release) + "'");
  }
  std::string minimum =
      std::to_string(kMinimumKernel.major) + "." + std::to_string(kMinimumKernel.minor);
  if (*v < kMinimumKernel) {
    return make(kKernelVersion, FeatureStatus::kMissing,
                "Linux " + std::string(release) + " is older than " + minimum +
                    ", which egressd needs (docs/bpf.md)");
  }
  return make(kKernelVersion, FeatureStatus::kOk,
              "Linux " + std::string(release) + " (needs " + minimum + ")");
}

}  // namespace egressd::host
