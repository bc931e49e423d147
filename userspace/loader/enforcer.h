// The enforcer arms sandboxes: it loads one program instance per sandbox, writes its
// rules and configuration into the shared pinned maps, and attaches the programs to
// the sandbox cgroup with pinned bpf_links (so enforcement outlives this process).
//
// Restarts adopt instead of re-attaching: when a link is already pinned for a hook of
// this sandbox, its program is replaced in place (bpf_link_update), never attached a
// second time. A pinned link whose cgroup is gone (ENOLINK) or that belongs to another
// cgroup is detached, unpinned and created anew (cilium's socketlb repair, same idea).
//
// Policy changes are double-buffered: the sandbox's other generation gets the new
// rules and configuration, then one __u32 store flips egressd_active, then the old
// generation is deleted (see bpf/abi.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "bpf/abi.h"
#include "common/result.h"
#include "loader/maps.h"

namespace egressd::loader {

struct SandboxRequest {
  std::string id;
  std::string cgroupPath;
  // Filled by the caller: flags (EGRESSD_SB_ACTIVE is added here), proxy/resolver targets,
  // proxied ports, netns cookie. ruleset/cgroup_id/id/generation_counter are set here.
  egressd_sandbox_config config{};
  RuleEntries rules;
};

struct ArmResult {
  uint32_t slot = 0;
  uint32_t ruleset = 0;
  int linksCreated = 0;
  int linksUpdated = 0;
  size_t rules = 0;
};

class Enforcer {
 public:
  explicit Enforcer(std::string pinRoot = EGRESSD_PIN_ROOT_DEFAULT);

  // Creates the shared pinned maps (no sandbox yet) so a daemon can open them before its
  // first sandbox; a no-op when they exist.
  Status ensureMaps();
  // Creates or updates the sandbox's enforcement: programs, links, rules, config.
  Result<ArmResult> arm(const SandboxRequest& request);
  // Swaps rules and configuration of an armed sandbox (no program reload).
  Result<ArmResult> updatePolicy(const SandboxRequest& request);
  // Detaches the sandbox's links and forgets its rules and slot. Missing = ok. The last
  // sandbox's detach also unpins the shared maps, unless keepMapsWhenEmpty() was called.
  Status detach(const std::string& id);

  // For a daemon that holds the shared maps open across sandboxes (the proxy reads the
  // original-destination map by fd): a new map set under the same pins would split them.
  void keepMapsWhenEmpty() { keepMaps_ = true; }
  // Unpins the shared maps when no sandbox uses them (a daemon's exit).
  void removeMapsIfUnused();

  const std::string& pinRoot() const { return pinRoot_; }

 private:
  Result<ArmResult> swapPolicy(const PinnedMaps& maps, uint32_t slot, const SandboxRequest& req,
                               uint64_t cgroupId);
  std::string pinRoot_;
  bool keepMaps_ = false;
};

// The cgroup v2 id (inode number of the cgroup directory), as bpf_get_current_cgroup_id.
Result<uint64_t> cgroupIdOf(const std::string& cgroupPath);

// Pinned link pins of a sandbox (program name -> path), for status output.
std::vector<std::string> pinnedLinks(const std::string& pinRoot, const std::string& id);

}  // namespace egressd::loader
