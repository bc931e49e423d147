// Rule expansion and de-duplication. A key's bytes are its identity (the LPM trie compares
// them bit for bit), so duplicates are found by comparing whole keys, which is only sound
// because the ABI keys have no padding; the static_asserts below keep it that way.
#include "policy/compile.h"

#include <cerrno>
#include <cstring>
#include <set>
#include <type_traits>

#include "policy/host_policy.h"

namespace egressd::policy {

namespace {

static_assert(std::has_unique_object_representations_v<egressd_rule4_key>);
static_assert(std::has_unique_object_representations_v<egressd_rule6_key>);
static_assert(std::has_unique_object_representations_v<egressd_rule_value>);

template <typename Key>
using Table = std::vector<std::pair<Key, egressd_rule_value>>;

// Collects one table's entries, dropping later duplicates of a key.
template <typename Key>
class TableBuilder {
 public:
  explicit TableBuilder(Table<Key>& out) : out_(out) {}

  void add(const Cidr& cidr, uint8_t proto, uint16_t port, uint32_t ruleId) {
    Key key{};
    key.prefixlen = EGRESSD_RULE_KEY_FIXED_BITS + static_cast<uint32_t>(cidr.prefixLen);
    key.ruleset = 0;
    key.proto = proto;
    key.port = port;
    std::memcpy(key.addr, cidr.bytes.data(), sizeof(key.addr));
    std::array<uint8_t, sizeof(Key)> identity;
    std::memcpy(identity.data(), &key, sizeof(Key));
    if (seen_.insert(identity).second) {
      out_.push_back({key, egressd_rule_value{ruleId, 0}});
    }
  }

 private:
  Table<Key>& out_;
  std::set<std::array<uint8_t, sizeof(Key)>> seen_;
};

uint8_t abiProto(Protocol protocol) {
  switch (protocol) {
    case Protocol::kTcp:
      return EGRESSD_PROTO_TCP;
    case Protocol::kUdp:
      return EGRESSD_PROTO_UDP;
    case Protocol::kAny:
      break;
  }
  return EGRESSD_PROTO_ANY;
}

}  // namespace

std::string allowRuleName(const AllowRule& rule) {
  std::string ports;
  for (const PortRange& range : rule.ports) {
    if (!ports.empty()) {
      ports += ",";
    }
    ports += std::to_string(range.first);
    if (range.last != range.first) {
      ports += "-" + std::to_string(range.last);
    }
  }
  if (ports.empty()) {
    ports = "*";
  }
  return "allow[" + std::to_string(rule.index) + "] " +
         (rule.host ? rule.host->pattern : rule.cidr.toString()) + " " +
         std::string(protocolName(rule.protocol)) + "/" + ports;
}

Result<KernelRules> compileKernelRules(const Policy& policy) {
  KernelRules rules;
  rules.ruleNames.push_back("");
  TableBuilder<egressd_rule4_key> allow4(rules.allow4);
  TableBuilder<egressd_rule6_key> allow6(rules.allow6);
  TableBuilder<egressd_rule4_key> deny4(rules.deny4);
  TableBuilder<egressd_rule6_key> deny6(rules.deny6);

  auto addAllow = [&](const Cidr& cidr, uint8_t proto, uint16_t port, uint32_t id) {
    if (cidr.family == AF_INET) {
      allow4.add(cidr, proto, port, id);
    } else {
      allow6.add(cidr, proto, port, id);
    }
  };

  for (const AllowRule& rule : policy.allow) {
    const auto id = static_cast<uint32_t>(rules.ruleNames.size());
    rules.ruleNames.push_back(allowRuleName(rule));
    if (rule.host) {
      continue;  // name-based: egressd's resolver adds its addresses (nameRuleEntries)
    }
    const uint8_t proto = abiProto(rule.protocol);
    if (rule.ports.empty()) {
      addAllow(rule.cidr, proto, 0, id);
      continue;
    }
    for (const PortRange& range : rule.ports) {
      // unsigned so that a range ending at 65535 terminates.
      for (unsigned port = range.first; port <= range.last; ++port) {
        addAllow(rule.cidr, proto, static_cast<uint16_t>(port), id);
      }
    }
  }
  // A host allowed by IP is reachable on every port and protocol, like one allowed by name.
  for (const HostCidr& host : policy.allowedHosts.cidrs) {
    const auto id = static_cast<uint32_t>(rules.ruleNames.size());
    rules.ruleNames.push_back("allowedHosts[" + std::to_string(host.index) + "] " +
                              host.cidr.toString());
    addAllow(host.cidr, EGRESSD_PROTO_ANY, 0, id);
  }
  for (const HostCidr& host : policy.deniedHosts.cidrs) {
    const auto id = static_cast<uint32_t>(rules.ruleNames.size());
    rules.ruleNames.push_back("deniedHosts[" + std::to_string(host.index) + "] " +
                              host.cidr.toString());
    if (host.cidr.family == AF_INET) {
      deny4.add(host.cidr, EGRESSD_PROTO_ANY, 0, id);
    } else {
      deny6.add(host.cidr, EGRESSD_PROTO_ANY, 0, id);
    }
  }

  const size_t v4 = rules.allow4.size() + rules.deny4.size();
  const size_t v6 = rules.allow6.size() + rules.deny6.size();
  if (rules.allow4.size() > EGRESSD_MAX_RULES || rules.deny4.size() > EGRESSD_MAX_RULES ||
      rules.allow6.size() > EGRESSD_MAX_RULES || rules.deny6.size() > EGRESSD_MAX_RULES) {
    // No file name here: callers wrap this as "compiling FILE: ...".
    return Error(E2BIG, "policy expands to " + std::to_string(v4) + " IPv4 and " +
                            std::to_string(v6) + " IPv6 kernel rules; a table holds at most " +
                            std::to_string(EGRESSD_MAX_RULES) + " (narrow the port ranges)");
  }
  return rules;
}

uint32_t SandboxKnobs::sandboxFlags() const {
  uint32_t flags = 0;
  if (enableInternet) {
    flags |= EGRESSD_SB_ENABLE_INTERNET;
  }
  if (allowPing) {
    flags |= EGRESSD_SB_ALLOW_PING;
  }
  if (allowRaw) {
    flags |= EGRESSD_SB_ALLOW_RAW;
  }
  if (allowOtherL4) {
    flags |= EGRESSD_SB_ALLOW_OTHER_L4;
  }
  return flags | nameRuleShapes;
}

SandboxKnobs kernelKnobs(const Policy& policy) {
  SandboxKnobs knobs;
  knobs.enableInternet = policy.enableInternet;
  knobs.proxyPorts = policy.proxyPorts;
  knobs.allowPing = policy.sockets.ping;
  knobs.allowRaw = policy.sockets.raw;
  knobs.allowOtherL4 = policy.sockets.other;
  for (const AllowRule& rule : policy.allow) {
    if (!rule.host) {
      continue;
    }
    const bool anyProto = rule.protocol == Protocol::kAny;
    const bool anyPort = rule.ports.empty();
    knobs.nameRuleShapes |=
        anyProto ? (anyPort ? EGRESSD_SB_HAS_ALLOW_ANY : EGRESSD_SB_HAS_ALLOW_PORT)
                 : (anyPort ? EGRESSD_SB_HAS_ALLOW_PROTO : EGRESSD_SB_HAS_ALLOW_PROTO_PORT);
  }
  return knobs;
}

std::vector<AllowRule> nameRules(const Policy& policy) {
  std::vector<AllowRule> out;
  for (const AllowRule& rule : policy.allow) {
    if (rule.host) {
      out.push_back(rule);
    }
  }
  return out;
}

const AllowRule* matchNameRule(const std::vector<AllowRule>& rules, std::string_view name) {
  for (const AllowRule& rule : rules) {
    if (rule.host && hostGlobMatches(rule.host->pattern, name)) {
      return &rule;
    }
  }
  return nullptr;
}

std::vector<NameRuleEntry> nameRuleEntries(const std::vector<AllowRule>& rules,
                                           std::string_view name, const IpAddress& addr) {
  std::vector<NameRuleEntry> out;
  for (const AllowRule& rule : rules) {
    if (!rule.host || !hostGlobMatches(rule.host->pattern, name)) {
      continue;
    }
    // compileKernelRules gives every `allow` entry one id, in order, before anything else.
    const auto id = static_cast<uint32_t>(rule.index + 1);
    const uint8_t proto = abiProto(rule.protocol);
    if (rule.ports.empty()) {
      out.push_back(NameRuleEntry{addr, proto, 0, id});
      continue;
    }
    for (const PortRange& range : rule.ports) {
      for (unsigned port = range.first; port <= range.last; ++port) {
        out.push_back(NameRuleEntry{addr, proto, static_cast<uint16_t>(port), id});
      }
    }
  }
  return out;
}

}  // namespace egressd::policy
