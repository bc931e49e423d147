// Capability dropping for sandboxed commands. The drop is prepared in the parent (everything
// that allocates) and applied in the child between clone and exec with syscall wrappers only,
// because a child of a multi-threaded parent must not touch malloc before execve.
#pragma once

#include <sys/capability.h>

#include <string>
#include <vector>

#include "common/result.h"

namespace egressd::sandbox {

// What a sandboxed command loses unless the caller says otherwise. Each entry is a way
// around egressd's enforcement (reasons in caps.cpp).
const std::vector<cap_value_t>& defaultDroppedCapabilities();
// Every capability the headers know: what a command running as a non-root user loses.
std::vector<cap_value_t> allCapabilities();

// "cap_net_raw" for messages; "cap_<n>" for numbers libcap does not know.
std::string capabilityName(cap_value_t cap);

// A prepared drop from the bounding, ambient, inheritable, permitted and effective sets.
// Capabilities the running kernel does not know are skipped (nothing to drop).
class CapabilityDrop {
 public:
  static Result<CapabilityDrop> prepare(const std::vector<cap_value_t>& caps);

  CapabilityDrop(CapabilityDrop&& other) noexcept;
  CapabilityDrop& operator=(CapabilityDrop&& other) noexcept;
  CapabilityDrop(const CapabilityDrop&) = delete;
  CapabilityDrop& operator=(const CapabilityDrop&) = delete;
  ~CapabilityDrop();

  // Applies the drop to the calling thread. Async-signal-safe: no allocation. Returns 0, or
  // an errno value with *failedStep naming the step ("prctl(PR_CAPBSET_DROP)", …).
  int apply(const char** failedStep) const noexcept;
  // apply() in two halves, for a child that changes its uid in between: the bounding and
  // ambient drop needs CAP_SETPCAP (so comes first, as root); the capset of the remaining
  // sets comes after setresuid (which needs CAP_SETUID).
  int dropBoundingAndAmbient(const char** failedStep) const noexcept;
  int applySets(const char** failedStep) const noexcept;

 private:
  CapabilityDrop() = default;

  std::vector<cap_value_t> caps_;
  cap_t target_ = nullptr;  // the thread's current sets with caps_ cleared
};

// prepare() + apply() for the calling thread (single-threaded callers: capabilities are
// per thread). Needs CAP_SETPCAP to shrink the bounding set.
Status dropCapabilities(const std::vector<cap_value_t>& caps);

}  // namespace egressd::sandbox
