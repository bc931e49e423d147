// Where the kubelet puts a pod's cgroup (cgroup v2), from the pod's uid and QoS class, under
// both cgroup drivers. Pure: paths only; pod_watcher takes the first candidate that exists.
//
//   QoS          systemd driver                                   cgroupfs driver
//   Guaranteed   kubepods.slice/kubepods-pod<u>.slice             kubepods/pod<uid>
//   Burstable    kubepods.slice/kubepods-burstable.slice/         kubepods/burstable/pod<uid>
//                  kubepods-burstable-pod<u>.slice
//   BestEffort   kubepods.slice/kubepods-besteffort.slice/        kubepods/besteffort/pod<uid>
//                  kubepods-besteffort-pod<u>.slice
//
// <u> is the uid with '-' as '_' (systemd reserves '-' in unit names for nesting). The
// containers' cgroups (cri-containerd-<id>.scope, crio-<id>.scope, <id>) sit below the pod's;
// the sandbox is the pod's cgroup, so every container of the pod, the pause container
// included, is under one sandbox. `root` is the kubelet's --cgroup-root, normally the cgroup2
// mount (egressd's --kube-cgroup-root).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace egressd::kubernetes {

enum class QosClass { kGuaranteed, kBurstable, kBestEffort, kUnknown };
enum class CgroupDriver { kSystemd, kCgroupfs };

// status.qosClass; anything else (also "") is kUnknown.
QosClass qosClassFromStatus(std::string_view text);

// Whether `uid` can be a path component safely: a pod uid is a UUID (hex digits and '-').
bool plausiblePodUid(std::string_view uid);

// The pod's cgroup directory under `root` for one class and driver.
std::string podCgroupPath(const std::string& root, std::string_view uid, QosClass qos,
                          CgroupDriver driver);

// Where to look, most likely first: the class's path under the systemd driver, then under
// cgroupfs; for kUnknown every class's. Empty when the uid is not plausible.
std::vector<std::string> podCgroupCandidates(const std::string& root, std::string_view uid,
                                             QosClass qos);

}  // namespace egressd::kubernetes
