#include "sandbox/caps.h"

#include <sys/prctl.h>

#include <cerrno>
#include <utility>

namespace egressd::sandbox {

const std::vector<cap_value_t>& defaultDroppedCapabilities() {
  static const std::vector<cap_value_t> kCaps = {
      // AF_PACKET and raw IP sockets: no cgroup sock_addr hook sees what they send.
      CAP_NET_RAW,
      // Interfaces, routes, netfilter, tc and XDP; and, with bpf(2), attaching and detaching
      // cgroup programs: rewire the path out of the host or unhook the sandbox.
      CAP_NET_ADMIN,
      // A superset for our purposes: bpf(2) as if CAP_BPF, umount the tmpfs hiding bpffs,
      // setns into the init cgroup namespace, mount a full cgroup2 view and move out.
      CAP_SYS_ADMIN,
      // Load programs and open pinned maps and links by id, to rewrite or detach them.
      CAP_BPF,
      // With CAP_BPF, inspect and trace programs (and read kernel memory through perf).
      CAP_PERFMON,
      // Load a kernel module: game over for any in-kernel enforcement.
      CAP_SYS_MODULE,
      // Attach to the daemon (or `egressd run`) and read its memory: secrets, CA keys, fds.
      CAP_SYS_PTRACE,
      // /dev/mem, ioperm and raw device I/O: reach hardware and kernel state directly.
      CAP_SYS_RAWIO,
      // reboot(2) and kexec_load(2): replace the kernel the rules live in.
      CAP_SYS_BOOT,
  };
  return kCaps;
}

std::vector<cap_value_t> allCapabilities() {
  std::vector<cap_value_t> caps;
  for (cap_value_t cap = 0; cap <= CAP_LAST_CAP; ++cap) {
    caps.push_back(cap);
  }
  return caps;
}

std::string capabilityName(cap_value_t cap) {
  char* name = cap_to_name(cap);
  if (name == nullptr) {
    return "cap_" + std::to_string(cap);
  }
  std::string out(name);
  cap_free(name);
  return out;
}

Result<CapabilityDrop> CapabilityDrop::prepare(const std::vector<cap_value_t>& caps) {
  CapabilityDrop drop;
  // cap_max_bits() is what the running kernel supports (CAP_BPF and CAP_PERFMON are 5.8+).
  const auto maxBits = static_cast<cap_value_t>(cap_max_bits());
  for (cap_value_t cap : caps) {
    if (cap < 0 || cap > CAP_LAST_CAP) {
      return Error(EINVAL, "unknown capability number " + std::to_string(cap));
    }
    if (cap < maxBits) {
      drop.caps_.push_back(cap);
    }
  }
  drop.target_ = cap_get_proc();
  if (drop.target_ == nullptr) {
    return lastSystemError("cap_get_proc");
  }
  if (!drop.caps_.empty()) {
    for (cap_flag_t flag : {CAP_EFFECTIVE, CAP_PERMITTED, CAP_INHERITABLE}) {
      if (cap_set_flag(drop.target_, flag, static_cast<int>(drop.caps_.size()), drop.caps_.data(),
                       CAP_CLEAR) != 0) {
        return lastSystemError("cap_set_flag");
      }
    }
  }
  return drop;
}

CapabilityDrop::CapabilityDrop(CapabilityDrop&& other) noexcept
    : caps_(std::move(other.caps_)), target_(std::exchange(other.target_, nullptr)) {}

CapabilityDrop& CapabilityDrop::operator=(CapabilityDrop&& other) noexcept {
  if (this != &other) {
    if (target_ != nullptr) {
      cap_free(target_);
    }
    caps_ = std::move(other.caps_);
    target_ = std::exchange(other.target_, nullptr);
  }
  return *this;
}

CapabilityDrop::~CapabilityDrop() {
  if (target_ != nullptr) {
    cap_free(target_);
  }
}

int CapabilityDrop::apply(const char** failedStep) const noexcept {
  if (int err = dropBoundingAndAmbient(failedStep); err != 0) {
    return err;
  }
  return applySets(failedStep);
}

int CapabilityDrop::dropBoundingAndAmbient(const char** failedStep) const noexcept {
  // Bounding first, while CAP_SETPCAP is still effective: for root, execve(2) refills the
  // permitted set from the bounding set, so this is the drop that survives exec.
  for (cap_value_t cap : caps_) {
    if (cap_get_bound(cap) == 1 && cap_drop_bound(cap) != 0) {
      *failedStep = "prctl(PR_CAPBSET_DROP)";
      return errno;
    }
  }
  // Ambient capabilities survive execve(2) of unprivileged binaries; kernels before 4.3
  // have none (EINVAL), which is just as good.
  for (cap_value_t cap : caps_) {
    if (cap_set_ambient(cap, CAP_CLEAR) != 0 && errno != EINVAL) {
      *failedStep = "prctl(PR_CAP_AMBIENT_LOWER)";
      return errno;
    }
  }
  return 0;
}

int CapabilityDrop::applySets(const char** failedStep) const noexcept {
  if (cap_set_proc(target_) != 0) {
    *failedStep = "capset";
    return errno;
  }
  return 0;
}

Status dropCapabilities(const std::vector<cap_value_t>& caps) {
  auto drop = CapabilityDrop::prepare(caps);
  if (!drop.ok()) {
    return std::move(drop).error().wrap("dropping capabilities");
  }
  const char* step = "";
  if (int err = drop->apply(&step); err != 0) {
    return systemError(err, std::string("dropping capabilities: ") + step);
  }
  return okStatus();
}

}  // namespace egressd::sandbox
