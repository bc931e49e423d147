// Typed access to egressd's pinned maps (layouts from bpf/abi.h), for the enforcer
// and for read-only tools (egressctl). Opening by pin path needs no skeleton.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bpf/abi.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "policy/compile.h"

namespace egressd::loader {

// Map entries as the policy compiler produces them (ruleset 0; the loader stamps it).
using RuleEntries = policy::KernelRules;
inline size_t ruleCount(const RuleEntries& r) {
  return r.allow4.size() + r.allow6.size() + r.deny4.size() + r.deny6.size();
}

struct SandboxState {
  uint32_t slot = 0;
  egressd_sandbox_config config{};
  egressd_counters counters{};  // summed over CPUs
};

class PinnedMaps {
 public:
  // Fails (ENOENT) when egressd has never loaded under this pin root.
  static Result<PinnedMaps> open(const std::string& pinRoot);
  static bool exist(const std::string& pinRoot);
  static const std::vector<std::string>& names();

  // The live configuration of a slot, if the slot is armed.
  Result<std::optional<egressd_sandbox_config>> liveConfig(uint32_t slot) const;
  Result<egressd_sandbox_config> configAt(uint32_t ruleset) const;
  Status writeConfig(uint32_t ruleset, const egressd_sandbox_config& config) const;
  Status setActive(uint32_t slot, std::optional<uint32_t> ruleset) const;
  Result<std::optional<uint32_t>> activeRuleset(uint32_t slot) const;

  // Slot holding this id (either generation), if any.
  Result<std::optional<uint32_t>> findSlot(const std::string& id) const;
  // A slot with no id in either generation and not active.
  Result<uint32_t> allocateSlot() const;

  Status insertRules(uint32_t ruleset, const RuleEntries& rules) const;
  // Deletes every rule of one ruleset from the four tries; returns how many.
  Result<size_t> deleteRuleset(uint32_t ruleset) const;
  Result<size_t> countRules(uint32_t ruleset) const;

  Result<egressd_counters> counters(uint32_t slot) const;
  Status resetCounters(uint32_t slot) const;

  Result<std::vector<SandboxState>> listSandboxes() const;

  int fd(const std::string& name) const;

 private:
  std::string pinRoot_;
  std::vector<std::pair<std::string, UniqueFd>> fds_;
};

// Human text for a 16-byte egressd address ("198.18.0.2" for v4-mapped, "2001:db8::1").
std::string formatAddr(const egressd_addr& addr);
const char* reasonName(uint32_t reason);
bool reasonIsDeny(uint32_t reason);

}  // namespace egressd::loader
