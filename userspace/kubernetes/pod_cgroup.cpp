#include "kubernetes/pod_cgroup.h"

#include <algorithm>

namespace egressd::kubernetes {

QosClass qosClassFromStatus(std::string_view text) {
  if (text == "Guaranteed") {
    return QosClass::kGuaranteed;
  }
  if (text == "Burstable") {
    return QosClass::kBurstable;
  }
  if (text == "BestEffort") {
    return QosClass::kBestEffort;
  }
  return QosClass::kUnknown;
}

bool plausiblePodUid(std::string_view uid) {
  return !uid.empty() && uid.size() <= 64 && std::all_of(uid.begin(), uid.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '-';
  });
}

std::string podCgroupPath(const std::string& root, std::string_view uid, QosClass qos,
                          CgroupDriver driver) {
  std::string base = root;
  while (base.size() > 1 && base.back() == '/') {
    base.pop_back();
  }
  if (driver == CgroupDriver::kCgroupfs) {
    switch (qos) {
      case QosClass::kBurstable:
        return base + "/kubepods/burstable/pod" + std::string(uid);
      case QosClass::kBestEffort:
        return base + "/kubepods/besteffort/pod" + std::string(uid);
      case QosClass::kGuaranteed:
      case QosClass::kUnknown:
        return base + "/kubepods/pod" + std::string(uid);
    }
  }
  std::string unitUid(uid);
  std::replace(unitUid.begin(), unitUid.end(), '-', '_');
  switch (qos) {
    case QosClass::kBurstable:
      return base + "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + unitUid +
             ".slice";
    case QosClass::kBestEffort:
      return base + "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + unitUid +
             ".slice";
    case QosClass::kGuaranteed:
    case QosClass::kUnknown:
      break;
  }
  return base + "/kubepods.slice/kubepods-pod" + unitUid + ".slice";
}

std::vector<std::string> podCgroupCandidates(const std::string& root, std::string_view uid,
                                             QosClass qos) {
  std::vector<std::string> out;
  if (!plausiblePodUid(uid)) {
    return out;
  }
  const std::vector<QosClass> classes =
      qos == QosClass::kUnknown ? std::vector<QosClass>{QosClass::kBurstable, QosClass::kBestEffort,
                                                        QosClass::kGuaranteed}
                                : std::vector<QosClass>{qos};
  for (QosClass c : classes) {
    for (CgroupDriver d : {CgroupDriver::kSystemd, CgroupDriver::kCgroupfs}) {
      out.push_back(podCgroupPath(root, uid, c, d));
    }
  }
  return out;
}

}  // namespace egressd::kubernetes
