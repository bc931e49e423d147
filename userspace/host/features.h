// Host feature probes: what this machine's kernel and configuration offer that egressd or
// its tests depend on (IA32/x32 syscall entry points, the cgroup2 mount and nsdelegate,
// bpffs, io_uring, user namespaces, IPv6, kernel BTF, the kernel version, ping sockets).
// One place for them: the daemon logs every result at startup, the tests skip on a missing
// feature with the probe's detail as the reason, and `egressd verify` reports them.
//
// BPF program types and helpers are not here: loader::probeKernelFeatures() checks them
// with libbpf right before loading (and refuses partial enforcement).
//
// Each probe has a stable name (snake_case; scripts may match on it), a status and a
// human detail. The parsing parts are separate pure functions so both branches of each
// are unit-tested on any host.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sandbox/mountinfo.h"

namespace egressd::host {

enum class FeatureStatus {
  kOk,       // present and usable
  kMissing,  // known to be absent, disabled or restricted
  kUnknown,  // could not be determined
};

// "ok", "missing", "unknown".
std::string_view statusName(FeatureStatus status);

struct Feature {
  std::string name;  // stable, e.g. "ia32_emulation"
  FeatureStatus status = FeatureStatus::kUnknown;
  std::string detail;

  bool ok() const { return status == FeatureStatus::kOk; }
  // "ia32_emulation: missing (int 0x80 faults …)", for logs and skip reasons.
  std::string describe() const;
};

// Stable probe names.
inline constexpr std::string_view kIa32Emulation = "ia32_emulation";
inline constexpr std::string_view kX32Abi = "x32_abi";
inline constexpr std::string_view kCgroup2 = "cgroup2";
inline constexpr std::string_view kCgroup2NsDelegate = "cgroup2_nsdelegate";
inline constexpr std::string_view kBpffs = "bpffs";
inline constexpr std::string_view kIoUring = "io_uring";
inline constexpr std::string_view kUnprivilegedUserns = "unprivileged_userns";
inline constexpr std::string_view kIpv6 = "ipv6";
inline constexpr std::string_view kIpv6Loopback = "ipv6_loopback";
inline constexpr std::string_view kTcpFastOpen = "tcp_fastopen";
inline constexpr std::string_view kBtfVmlinux = "btf_vmlinux";
inline constexpr std::string_view kKernelVersion = "kernel_version";
inline constexpr std::string_view kPingGroupRange = "ping_group_range";

// Every probe name, in the order probeAll() reports them.
const std::vector<std::string_view>& featureNames();

// Runs one probe by name (an unknown name is kUnknown, "no such probe"). The IA32 and x32
// probes fork a short-lived child that issues one foreign-ABI getpid (a kernel without the
// entry point kills that child, never the caller); every other probe only reads /proc, /sys
// and the mount table.
Feature probeFeature(std::string_view name);
std::vector<Feature> probeAll();

// ---- parsing parts (pure) -------------------------------------------------------------

// Outcome of the child that ran one foreign-ABI getpid (a wait status from waitpid):
// exit 0 = the syscall ran and returned the pid; exit kAbiProbeEnosys = ENOSYS;
// exit kAbiProbeFault or SIGSEGV = no such entry point (int 0x80 without IA32 emulation;
// the child catches the SIGSEGV so the kernel logs no "general protection fault" line for
// every daemon start); SIGSYS = a seccomp filter on the probing process itself.
inline constexpr int kAbiProbeEnosys = 2;
inline constexpr int kAbiProbeFault = 3;
Feature classifyAbiProbe(std::string_view name, int waitStatus);

// cgroup2 mount and hybrid/unified layout from the mount table.
Feature classifyCgroup2(const std::vector<sandbox::MountEntry>& mounts);
Feature classifyNsDelegate(const std::vector<sandbox::MountEntry>& mounts);
// bpffs at /sys/fs/bpf; `filesystems` is /proc/filesystems (nullopt: unreadable).
Feature classifyBpffs(const std::vector<sandbox::MountEntry>& mounts,
                      const std::optional<std::string>& filesystems);

// kernel.io_uring_disabled (nullopt: the sysctl does not exist, kernels before 6.6).
Feature classifyIoUringDisabled(const std::optional<std::string>& sysctl);

// user.max_user_namespaces, kernel.unprivileged_userns_clone (Debian),
// kernel.apparmor_restrict_unprivileged_userns (Ubuntu); nullopt: absent.
Feature classifyUserns(const std::optional<std::string>& maxUserNamespaces,
                       const std::optional<std::string>& unprivilegedClone,
                       const std::optional<std::string>& apparmorRestrict);

// IPv6 in the kernel (/proc/sys/net/ipv6 exists) and net.ipv6.conf.default.disable_ipv6.
Feature classifyIpv6(bool ipv6SysctlsExist, const std::optional<std::string>& defaultDisable);
// ::1 on lo: net.ipv6.conf.lo.disable_ipv6 (writing all.disable_ipv6=1 also sets it).
Feature classifyIpv6Loopback(bool ipv6SysctlsExist, const std::optional<std::string>& loDisable);

// net.ipv4.tcp_fastopen of this netns: bit 0 (1) enables the client side.
Feature classifyTcpFastOpen(const std::optional<std::string>& sysctl);

// net.ipv4.ping_group_range: "LOW HIGH"; closed when LOW > HIGH (the default "1 0").
Feature classifyPingGroupRange(const std::optional<std::string>& sysctl);

struct KernelVersion {
  int major = 0;
  int minor = 0;
  int patch = 0;
  auto operator<=>(const KernelVersion&) const = default;
};
// "6.18.44-fc-v1252" -> 6.18.44; "5.15" -> 5.15.0; nullopt when no "N.N" prefix.
std::optional<KernelVersion> parseKernelRelease(std::string_view release);
// egressd needs Linux 5.15 (docs/bpf.md).
inline constexpr KernelVersion kMinimumKernel{5, 15, 0};
Feature classifyKernelRelease(std::string_view release);

}  // namespace egressd::host
