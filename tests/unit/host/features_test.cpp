// Host feature probes: each classifier on fixed inputs for every outcome, so the branches
// this host does not take are tested too; then the live probes on this host.
#include "host/features.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <set>

#include "sandbox/cgroup.h"
#include "sandbox/mountinfo.h"

namespace egressd::host {
namespace {

constexpr int exited(int code) {
  return code << 8;  // the Linux wait-status encoding of a normal exit
}
constexpr int killedBy(int sig) {
  return sig;
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// This machine's layout: v1 controllers under a tmpfs, cgroup2 at .../unified.
constexpr const char* kHybrid =
    "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
    "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"
    "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
// systemd's unified layout, with nsdelegate, and bpffs mounted.
constexpr const char* kUnified =
    "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n"
    "31 23 0:27 / /sys/fs/bpf rw,nosuid,nodev,noexec,relatime shared:5 - bpf bpf rw,mode=700\n";
// A container's view: only a sub-tree of the hierarchy bind-mounted.
constexpr const char* kSubtreeOnly =
    "30 23 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";

TEST(HostFeaturesTest, StatusNamesAndDescribe) {
  EXPECT_EQ(statusName(FeatureStatus::kOk), "ok");
  EXPECT_EQ(statusName(FeatureStatus::kMissing), "missing");
  EXPECT_EQ(statusName(FeatureStatus::kUnknown), "unknown");
  Feature f{"x", FeatureStatus::kMissing, "why"};
  EXPECT_EQ(f.describe(), "x: missing (why)");
  EXPECT_FALSE(f.ok());
}

TEST(HostFeaturesTest, Ia32ProbeOutcomes) {
  Feature ok = classifyAbiProbe(kIa32Emulation, exited(0));
  EXPECT_EQ(ok.status, FeatureStatus::kOk);
  EXPECT_EQ(ok.name, "ia32_emulation");
  // The machine kind of issue 11: IA32 emulation off, int 0x80 is a #GP.
  Feature off = classifyAbiProbe(kIa32Emulation, killedBy(SIGSEGV));
  EXPECT_EQ(off.status, FeatureStatus::kMissing);
  EXPECT_TRUE(contains(off.detail, "IA32 emulation")) << off.detail;
  // The child catches the fault itself (no kernel log line per probe).
  Feature caught = classifyAbiProbe(kIa32Emulation, exited(kAbiProbeFault));
  EXPECT_EQ(caught.status, FeatureStatus::kMissing);
  EXPECT_EQ(caught.detail, off.detail);
  Feature filtered = classifyAbiProbe(kIa32Emulation, killedBy(SIGSYS));
  EXPECT_EQ(filtered.status, FeatureStatus::kMissing);
  EXPECT_TRUE(contains(filtered.detail, "seccomp")) << filtered.detail;
  EXPECT_EQ(classifyAbiProbe(kIa32Emulation, exited(1)).status, FeatureStatus::kUnknown);
  EXPECT_EQ(classifyAbiProbe(kIa32Emulation, killedBy(SIGKILL)).status, FeatureStatus::kUnknown);
}

TEST(HostFeaturesTest, X32ProbeOutcomes) {
  EXPECT_EQ(classifyAbiProbe(kX32Abi, exited(0)).status, FeatureStatus::kOk);
  Feature off = classifyAbiProbe(kX32Abi, exited(kAbiProbeEnosys));
  EXPECT_EQ(off.status, FeatureStatus::kMissing);
  EXPECT_TRUE(contains(off.detail, "ENOSYS")) << off.detail;
  EXPECT_EQ(classifyAbiProbe(kX32Abi, killedBy(SIGSYS)).status, FeatureStatus::kMissing);
}

TEST(HostFeaturesTest, Cgroup2HybridUnifiedAndAbsent) {
  Feature hybrid = classifyCgroup2(sandbox::parseMountInfo(kHybrid));
  EXPECT_EQ(hybrid.status, FeatureStatus::kOk);
  EXPECT_EQ(hybrid.detail,
            "hybrid: cgroup2 at /sys/fs/cgroup/unified, v1 controllers mounted beside it");
  Feature unified = classifyCgroup2(sandbox::parseMountInfo(kUnified));
  EXPECT_EQ(unified.status, FeatureStatus::kOk);
  EXPECT_EQ(unified.detail, "unified: cgroup2 at /sys/fs/cgroup");
  Feature subtree = classifyCgroup2(sandbox::parseMountInfo(kSubtreeOnly));
  EXPECT_EQ(subtree.status, FeatureStatus::kOk);
  Feature none = classifyCgroup2(sandbox::parseMountInfo(
      "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu\n"));
  EXPECT_EQ(none.status, FeatureStatus::kMissing);
}

TEST(HostFeaturesTest, NsDelegate) {
  EXPECT_EQ(classifyNsDelegate(sandbox::parseMountInfo(kUnified)).status, FeatureStatus::kOk);
  Feature without = classifyNsDelegate(sandbox::parseMountInfo(kHybrid));
  EXPECT_EQ(without.status, FeatureStatus::kMissing);
  EXPECT_TRUE(contains(without.detail, "/sys/fs/cgroup/unified lacks nsdelegate"))
      << without.detail;
  EXPECT_EQ(classifyNsDelegate({}).status, FeatureStatus::kUnknown);
  // "nsdelegate" only as a whole option, not as part of another one.
  EXPECT_EQ(
      classifyNsDelegate(sandbox::parseMountInfo("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 "
                                                 "rw,nsdelegatex\n"))
          .status,
      FeatureStatus::kMissing);
}

TEST(HostFeaturesTest, Bpffs) {
  const std::string filesystems = "nodev\tsysfs\nnodev\tbpf\n\text4\n";
  EXPECT_EQ(classifyBpffs(sandbox::parseMountInfo(kUnified), filesystems).status,
            FeatureStatus::kOk);
  Feature unmounted = classifyBpffs(sandbox::parseMountInfo(kHybrid), filesystems);
  EXPECT_EQ(unmounted.status, FeatureStatus::kMissing);
  EXPECT_TRUE(contains(unmounted.detail, "mount it on first use")) << unmounted.detail;
  Feature unsupported = classifyBpffs({}, std::string("nodev\tsysfs\n\text4\n"));
  EXPECT_EQ(unsupported.status, FeatureStatus::kMissing);
  EXPECT_TRUE(contains(unsupported.detail, "no bpf filesystem")) << unsupported.detail;
  // bpffs mounted elsewhere only does not count as /sys/fs/bpf.
  EXPECT_EQ(
      classifyBpffs(sandbox::parseMountInfo("50 23 0:45 / /tmp/b rw - bpf bpf rw\n"), filesystems)
          .status,
      FeatureStatus::kMissing);
}

TEST(HostFeaturesTest, IoUringDisabledSysctl) {
  EXPECT_EQ(classifyIoUringDisabled(std::nullopt).status, FeatureStatus::kOk);
  EXPECT_EQ(classifyIoUringDisabled(std::string("0")).status, FeatureStatus::kOk);
  Feature restricted = classifyIoUringDisabled(std::string("1"));
  EXPECT_EQ(restricted.status, FeatureStatus::kMissing);
  EXPECT_TRUE(contains(restricted.detail, "kernel.io_uring_disabled=1")) << restricted.detail;
  Feature off = classifyIoUringDisabled(std::string("2\n"));
  EXPECT_EQ(off.status, FeatureStatus::kMissing);
  EXPECT_TRUE(contains(off.detail, "kernel.io_uring_disabled=2")) << off.detail;
  EXPECT_EQ(classifyIoUringDisabled(std::string("3")).status, FeatureStatus::kUnknown);
  EXPECT_EQ(classifyIoUringDisabled(std::string("x")).status, FeatureStatus::kUnknown);
}

TEST(HostFeaturesTest, UnprivilegedUserNamespaces) {
  const std::optional<std::string> none;
  EXPECT_EQ(classifyUserns(std::string("96369"), none, none).status, FeatureStatus::kOk);
  EXPECT_EQ(classifyUserns(std::string("96369"), std::string("1"), std::string("0")).status,
            FeatureStatus::kOk);
  EXPECT_EQ(classifyUserns(std::string("0"), none, none).status, FeatureStatus::kMissing);
  EXPECT_EQ(classifyUserns(none, none, none).status, FeatureStatus::kMissing);
  Feature debian = classifyUserns(std::string("100"), std::string("0"), none);
  EXPECT_EQ(debian.status, FeatureStatus::kMissing);
  EXPECT_EQ(debian.detail, "kernel.unprivileged_userns_clone=0");
  EXPECT_EQ(classifyUserns(std::string("100"), none, std::string("1")).status,
            FeatureStatus::kMissing);
  EXPECT_EQ(classifyUserns(std::string("lots"), none, none).status, FeatureStatus::kUnknown);
}

TEST(HostFeaturesTest, Ipv6) {
  Feature on = classifyIpv6(true, std::string("0"));
  EXPECT_EQ(on.status, FeatureStatus::kOk);
  Feature bootOff = classifyIpv6(false, std::nullopt);
  EXPECT_EQ(bootOff.status, FeatureStatus::kMissing);
  EXPECT_TRUE(contains(bootOff.detail, "ipv6.disable=1")) << bootOff.detail;
  Feature defaultOff = classifyIpv6(true, std::string("1"));
  EXPECT_EQ(defaultOff.status, FeatureStatus::kOk);
  EXPECT_TRUE(contains(defaultOff.detail, "default.disable_ipv6=1")) << defaultOff.detail;
}

TEST(HostFeaturesTest, Ipv6Loopback) {
  EXPECT_EQ(classifyIpv6Loopback(true, std::string("0")).status, FeatureStatus::kOk);
  Feature allOff = classifyIpv6Loopback(true, std::string("1"));
  EXPECT_EQ(allOff.status, FeatureStatus::kMissing);
  EXPECT_TRUE(contains(allOff.detail, "no ::1")) << allOff.detail;
  EXPECT_EQ(classifyIpv6Loopback(false, std::nullopt).status, FeatureStatus::kMissing);
  EXPECT_EQ(classifyIpv6Loopback(true, std::nullopt).status, FeatureStatus::kUnknown);
}

TEST(HostFeaturesTest, TcpFastOpen) {
  EXPECT_EQ(classifyTcpFastOpen(std::string("1")).status, FeatureStatus::kOk);
  EXPECT_EQ(classifyTcpFastOpen(std::string("3")).status, FeatureStatus::kOk);
  Feature serverOnly = classifyTcpFastOpen(std::string("2"));
  EXPECT_EQ(serverOnly.status, FeatureStatus::kMissing);
  EXPECT_TRUE(contains(serverOnly.detail, "net.ipv4.tcp_fastopen=2")) << serverOnly.detail;
  EXPECT_EQ(classifyTcpFastOpen(std::string("0")).status, FeatureStatus::kMissing);
  EXPECT_EQ(classifyTcpFastOpen(std::string("on")).status, FeatureStatus::kUnknown);
}

TEST(HostFeaturesTest, PingGroupRange) {
  Feature closed = classifyPingGroupRange(std::string("1\t0"));
  EXPECT_EQ(closed.status, FeatureStatus::kMissing);
  EXPECT_TRUE(contains(closed.detail, "\"1 0\"")) << closed.detail;
  EXPECT_EQ(classifyPingGroupRange(std::string("0\t2147483647")).status, FeatureStatus::kOk);
  EXPECT_EQ(classifyPingGroupRange(std::string("100 100")).status, FeatureStatus::kOk);
  EXPECT_EQ(classifyPingGroupRange(std::string("")).status, FeatureStatus::kUnknown);
  EXPECT_EQ(classifyPingGroupRange(std::nullopt).status, FeatureStatus::kUnknown);
}

TEST(HostFeaturesTest, KernelRelease) {
  auto v = parseKernelRelease("6.18.44-fc-v1252");
  ASSERT_TRUE(v.has_value());
  EXPECT_EQ(*v, (KernelVersion{6, 18, 44}));
  EXPECT_EQ(parseKernelRelease("5.15"), (KernelVersion{5, 15, 0}));
  EXPECT_EQ(parseKernelRelease("6.8-rc1"), (KernelVersion{6, 8, 0}));
  EXPECT_EQ(parseKernelRelease("6.1.0-21-amd64"), (KernelVersion{6, 1, 0}));
  EXPECT_FALSE(parseKernelRelease("6").has_value());
  EXPECT_FALSE(parseKernelRelease("linux").has_value());
  EXPECT_FALSE(parseKernelRelease("").has_value());

  EXPECT_EQ(classifyKernelRelease("6.18.44-fc-v1252").status, FeatureStatus::kOk);
  EXPECT_EQ(classifyKernelRelease("5.15.0").status, FeatureStatus::kOk);
  Feature old = classifyKernelRelease("5.10.209-1");
  EXPECT_EQ(old.status, FeatureStatus::kMissing);
  EXPECT_TRUE(contains(old.detail, "older than 5.15")) << old.detail;
  EXPECT_EQ(classifyKernelRelease("weird").status, FeatureStatus::kUnknown);
}

TEST(HostFeaturesTest, LiveProbesReportEveryNameOnce) {
  std::vector<Feature> all = probeAll();
  ASSERT_EQ(all.size(), featureNames().size());
  std::set<std::string> seen;
  for (size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(all[i].name, featureNames()[i]);
    EXPECT_TRUE(seen.insert(all[i].name).second) << all[i].name << " twice";
    EXPECT_FALSE(all[i].detail.empty()) << all[i].name;
    std::printf("%s\n", all[i].describe().c_str());
  }
  EXPECT_EQ(probeFeature("no_such_feature").status, FeatureStatus::kUnknown);
}

TEST(HostFeaturesTest, LiveCgroup2ProbeAgreesWithTheSandboxLookup) {
  Feature cg2 = probeFeature(kCgroup2);
  auto mount = sandbox::findCgroup2Mount();
  ASSERT_EQ(cg2.ok(), mount.ok()) << cg2.describe();
  if (mount.ok()) {
    EXPECT_TRUE(cg2.detail == "unified: cgroup2 at " + *mount ||
                cg2.detail.starts_with("hybrid: cgroup2 at " + *mount + ","))
        << cg2.detail;
  }
  auto nsdelegate = sandbox::cgroup2HasNsDelegate();
  if (nsdelegate.ok()) {
    EXPECT_EQ(probeFeature(kCgroup2NsDelegate).ok(), *nsdelegate);
  }
}

}  // namespace
}  // namespace egressd::host
