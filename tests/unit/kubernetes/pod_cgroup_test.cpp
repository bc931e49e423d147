// The kubelet's pod cgroup paths: three QoS classes under both cgroup drivers.
#include "kubernetes/pod_cgroup.h"

#include <gtest/gtest.h>

namespace egressd::kubernetes {
namespace {

constexpr const char* kUid = "6f1c2d3e-8a9b-4c5d-9e0f-1a2b3c4d5e6f";
constexpr const char* kRoot = "/sys/fs/cgroup";

TEST(PodCgroupTest, SystemdDriver) {
  EXPECT_EQ(podCgroupPath(kRoot, kUid, QosClass::kGuaranteed, CgroupDriver::kSystemd),
            "/sys/fs/cgroup/kubepods.slice/kubepods-pod6f1c2d3e_8a9b_4c5d_9e0f_1a2b3c4d5e6f.slice");
  EXPECT_EQ(podCgroupPath(kRoot, kUid, QosClass::kBurstable, CgroupDriver::kSystemd),
            "/sys/fs/cgroup/kubepods.slice/kubepods-burstable.slice/"
            "kubepods-burstable-pod6f1c2d3e_8a9b_4c5d_9e0f_1a2b3c4d5e6f.slice");
  EXPECT_EQ(podCgroupPath(kRoot, kUid, QosClass::kBestEffort, CgroupDriver::kSystemd),
            "/sys/fs/cgroup/kubepods.slice/kubepods-besteffort.slice/"
            "kubepods-besteffort-pod6f1c2d3e_8a9b_4c5d_9e0f_1a2b3c4d5e6f.slice");
}

TEST(PodCgroupTest, CgroupfsDriverKeepsTheUidAsItIs) {
  EXPECT_EQ(podCgroupPath(kRoot, kUid, QosClass::kGuaranteed, CgroupDriver::kCgroupfs),
            "/sys/fs/cgroup/kubepods/pod6f1c2d3e-8a9b-4c5d-9e0f-1a2b3c4d5e6f");
  EXPECT_EQ(podCgroupPath(kRoot, kUid, QosClass::kBurstable, CgroupDriver::kCgroupfs),
            "/sys/fs/cgroup/kubepods/burstable/pod6f1c2d3e-8a9b-4c5d-9e0f-1a2b3c4d5e6f");
  EXPECT_EQ(podCgroupPath(kRoot, kUid, QosClass::kBestEffort, CgroupDriver::kCgroupfs),
            "/sys/fs/cgroup/kubepods/besteffort/pod6f1c2d3e-8a9b-4c5d-9e0f-1a2b3c4d5e6f");
}

TEST(PodCgroupTest, CandidatesPutTheClassFirstAndCoverEveryClassWhenUnknown) {
  auto burstable = podCgroupCandidates("/x/", kUid, qosClassFromStatus("Burstable"));
  ASSERT_EQ(burstable.size(), 2U);
  EXPECT_EQ(burstable[0], podCgroupPath("/x", kUid, QosClass::kBurstable, CgroupDriver::kSystemd));
  EXPECT_EQ(burstable[1], podCgroupPath("/x", kUid, QosClass::kBurstable, CgroupDriver::kCgroupfs));
  auto unknown = podCgroupCandidates("/x", kUid, qosClassFromStatus(""));
  EXPECT_EQ(unknown.size(), 6U);
  for (QosClass q : {QosClass::kGuaranteed, QosClass::kBurstable, QosClass::kBestEffort}) {
    for (CgroupDriver d : {CgroupDriver::kSystemd, CgroupDriver::kCgroupfs}) {
      EXPECT_NE(std::find(unknown.begin(), unknown.end(), podCgroupPath("/x", kUid, q, d)),
                unknown.end());
    }
  }
  EXPECT_EQ(qosClassFromStatus("guaranteed"), QosClass::kUnknown);  // the API writes it capitalised
}

TEST(PodCgroupTest, AUidThatIsNotAUuidGivesNoPath) {
  EXPECT_TRUE(podCgroupCandidates(kRoot, "../../etc", QosClass::kBurstable).empty());
  EXPECT_TRUE(podCgroupCandidates(kRoot, "", QosClass::kBurstable).empty());
  EXPECT_TRUE(podCgroupCandidates(kRoot, "abc/def", QosClass::kBurstable).empty());
  EXPECT_TRUE(plausiblePodUid(kUid));
}

}  // namespace
}  // namespace egressd::kubernetes
