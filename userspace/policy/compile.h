// Policy -> the kernel's view of it: LPM-trie entries for egressd_allow4/6 and
// egressd_deny4/6 plus the per-sandbox knobs. Pure (no BPF, no I/O) so that what the
// kernel will enforce is unit-testable byte for byte; the loader only stamps the ruleset
// into each key and writes the entries.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bpf/abi.h"
#include "common/ip_address.h"
#include "common/result.h"
#include "policy/cidr.h"
#include "policy/policy.h"

namespace egressd::policy {

struct KernelRules {
  // Keys have ruleset 0; values carry the rule id (index into ruleNames).
  std::vector<std::pair<egressd_rule4_key, egressd_rule_value>> allow4;
  std::vector<std::pair<egressd_rule6_key, egressd_rule_value>> allow6;
  std::vector<std::pair<egressd_rule4_key, egressd_rule_value>> deny4;
  std::vector<std::pair<egressd_rule6_key, egressd_rule_value>> deny6;
  // ruleNames[rule_id], for audit lines: "allow[0] 10.0.5.0/24 tcp/5432",
  // "allowedHosts[2] 10.20.0.0/16", "deniedHosts[1] 141.101.64.0/18". ruleNames[0] = ""
  // because rule_id 0 means "no rule".
  std::vector<std::string> ruleNames;
};

// One rule id per policy entry (not per port): an `allow` entry with a port range expands
// to one key per port, all with the entry's id. When two entries produce the same key, the
// first one keeps it, so ids are deterministic. Fails only when a table would exceed
// EGRESSD_MAX_RULES.
Result<KernelRules> compileKernelRules(const Policy& policy);

// "allow[2] 10.0.5.0/24 tcp/5432": how audit lines and deny answers name an `allow` rule
// (the kernel's ruleNames and the proxy's decisions use this one format).
std::string allowRuleName(const AllowRule& rule);

// The non-rule part of a policy that the kernel needs.
struct SandboxKnobs {
  bool enableInternet = false;
  std::vector<uint16_t> proxyPorts;  // host byte order, at most EGRESSD_MAX_PROXY_PORTS
  bool allowPing = false;
  bool allowRaw = false;
  bool allowOtherL4 = false;
  // EGRESSD_SB_HAS_ALLOW_* shapes of the name-based allow rules: their entries come and go
  // at runtime, so the lookups they need are switched on with the policy.
  uint32_t nameRuleShapes = 0;

  // The EGRESSD_SB_* bits these knobs decide (ENABLE_INTERNET, ALLOW_*); ACTIVE,
  // HAS_RESOLVER, HAS_PROXY and CAPS_WARNING are the loader's to add.
  uint32_t sandboxFlags() const;
};

SandboxKnobs kernelKnobs(const Policy& policy);

// ---- name-based allow rules (docs/dns.md): kernel entries made from DNS answers ----
struct NameRuleEntry {
  IpAddress addr;
  uint8_t proto = EGRESSD_PROTO_ANY;
  uint16_t port = 0;    // 0 = every port
  uint32_t ruleId = 0;  // as compileKernelRules numbers the rule (allow[i] -> i + 1)

  bool operator==(const NameRuleEntry&) const = default;
  auto operator<=>(const NameRuleEntry&) const = default;
};
// The name-based rules among `allow` (those with a host), in order.
std::vector<AllowRule> nameRules(const Policy& policy);
// The entries `rules` (name-based) yield for `name` (normalized) resolving to `addr`: one
// per matching rule, protocol and port.
std::vector<NameRuleEntry> nameRuleEntries(const std::vector<AllowRule>& rules,
                                           std::string_view name, const IpAddress& addr);
// The first name-based rule whose glob matches `name`, or nullptr.
const AllowRule* matchNameRule(const std::vector<AllowRule>& rules, std::string_view name);

}  // namespace egressd::policy
