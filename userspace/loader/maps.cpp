#include "loader/maps.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <cstring>

#include "common/fs.h"

namespace egressd::loader {

const std::vector<std::string>& PinnedMaps::names() {
  static const std::vector<std::string> kNames = {
      EGRESSD_MAP_ACTIVE,   EGRESSD_MAP_SANDBOXES, EGRESSD_MAP_ALLOW4,   EGRESSD_MAP_ALLOW6,
      EGRESSD_MAP_DENY4,    EGRESSD_MAP_DENY6,     EGRESSD_MAP_COUNTERS, EGRESSD_MAP_REVNAT,
      EGRESSD_MAP_ORIG_DST, EGRESSD_MAP_EVENTS,    EGRESSD_MAP_SK_STATE};
  return kNames;
}

bool PinnedMaps::exist(const std::string& pinRoot) {
  return pathExists(pinRoot + "/" + EGRESSD_MAP_SANDBOXES) &&
         pathExists(pinRoot + "/" + EGRESSD_MAP_ACTIVE);
}

Result<PinnedMaps> PinnedMaps::open(const std::string& pinRoot) {
  PinnedMaps maps;
  maps.pinRoot_ = pinRoot;
  for (const std::string& name : names()) {
    std::string path = pinRoot + "/" + name;
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) {
      return lastSystemError("open pinned map " + path);
    }
    maps.fds_.emplace_back(name, UniqueFd(fd));
  }
  return maps;
}

int PinnedMaps::fd(const std::string& name) const {
  for (const auto& [n, f] : fds_) {
    if (n == name) {
      return f.get();
    }
  }
  return -1;
}

Result<egressd_sandbox_config> PinnedMaps::configAt(uint32_t ruleset) const {
  egressd_sandbox_config config{};
  if (bpf_map_lookup_elem(fd(EGRESSD_MAP_SANDBOXES), &ruleset, &config) != 0) {
    return lastSystemError("read " + pinRoot_ + "/" EGRESSD_MAP_SANDBOXES "[" +
                           std::to_string(ruleset) + "]");
  }
  return config;
}

Status PinnedMaps::writeConfig(uint32_t ruleset, const egressd_sandbox_config& config) const {
  if (bpf_map_update_elem(fd(EGRESSD_MAP_SANDBOXES), &ruleset, &config, BPF_ANY) != 0) {
    return lastSystemError("write " + pinRoot_ + "/" EGRESSD_MAP_SANDBOXES "[" +
                           std::to_string(ruleset) + "]");
  }
  return okStatus();
}

Result<std::optional<uint32_t>> PinnedMaps::activeRuleset(uint32_t slot) const {
  egressd_active active{};
  if (bpf_map_lookup_elem(fd(EGRESSD_MAP_ACTIVE), &slot, &active) != 0) {
    return lastSystemError("read " + pinRoot_ + "/" EGRESSD_MAP_ACTIVE);
  }
  if (active.ruleset_plus_one == 0) {
    return std::optional<uint32_t>();
  }
  return std::optional<uint32_t>(active.ruleset_plus_one - 1);
}

Status PinnedMaps::setActive(uint32_t slot, std::optional<uint32_t> ruleset) const {
  egressd_active active{ruleset ? *ruleset + 1 : 0};
  if (bpf_map_update_elem(fd(EGRESSD_MAP_ACTIVE), &slot, &active, BPF_ANY) != 0) {
    return lastSystemError("write " + pinRoot_ + "/" EGRESSD_MAP_ACTIVE);
  }
  return okStatus();
}

Result<std::optional<egressd_sandbox_config>> PinnedMaps::liveConfig(uint32_t slot) const {
  auto active = activeRuleset(slot);
  if (!active.ok()) {
    return std::move(active).error();
  }
  if (!active->has_value()) {
    return std::optional<egressd_sandbox_config>();
  }
  auto config = configAt(**active);
  if (!config.ok()) {
    return std::move(config).error();
  }
  return std::optional<egressd_sandbox_config>(*config);
}

Result<std::optional<uint32_t>> PinnedMaps::findSlot(const std::string& id) const {
  for (uint32_t ruleset = 0; ruleset < 2 * EGRESSD_MAX_SANDBOXES; ++ruleset) {
    auto config = configAt(ruleset);
    if (!config.ok()) {
      return std::move(config).error();
    }
    if (strncmp(config->id, id.c_str(), sizeof(config->id)) == 0) {
      return std::optional<uint32_t>(ruleset / 2);
    }
  }
  return std::optional<uint32_t>();
}

Result<uint32_t> PinnedMaps::allocateSlot() const {
  for (uint32_t slot = 0; slot < EGRESSD_MAX_SANDBOXES; ++slot) {
    auto active = activeRuleset(slot);
    if (!active.ok()) {
      return std::move(active).error();
    }
    if (active->has_value()) {
      continue;
    }
    bool named = false;
    for (uint32_t gen = 0; gen < 2; ++gen) {
      auto config = configAt(slot * 2 + gen);
      if (!config.ok()) {
        return std::move(config).error();
      }
      named = named || config->id[0] != '\0';
    }
    if (!named) {
      return slot;
    }
  }
  return Error(ENOSPC, "all " + std::to_string(EGRESSD_MAX_SANDBOXES) + " sandbox slots under " +
                           pinRoot_ + " are in use");
}

namespace {

template <typename Key, typename Value>
Status insertAll(int mapFd, const std::string& what, uint32_t ruleset,
                 const std::vector<std::pair<Key, Value>>& entries) {
  for (const auto& [key, value] : entries) {
    Key k = key;
    k.ruleset = ruleset;
    if (bpf_map_update_elem(mapFd, &k, &value, BPF_ANY) != 0) {
      return lastSystemError("insert rule " + std::to_string(value.rule_id) + " into " + what);
    }
  }
  return okStatus();
}

// Visits every key of an LPM trie; `visit` returns true to delete that key.
template <typename Key, typename Fn>
Result<size_t> scanTrie(int mapFd, const std::string& what, Fn visit) {
  std::vector<Key> matched;
  Key key{};
  Key next{};
  void* prev = nullptr;
  while (bpf_map_get_next_key(mapFd, prev, &next) == 0) {
    if (visit(next)) {
      matched.push_back(next);
    }
    key = next;
    prev = &key;
  }
  if (errno != ENOENT) {
    return lastSystemError("iterate " + what);
  }
  return matched.size();
}

template <typename Key>
Result<size_t> deleteMatching(int mapFd, const std::string& what, uint32_t ruleset) {
  std::vector<Key> doomed;
  auto scanned = scanTrie<Key>(mapFd, what, [&](const Key& k) {
    if (k.ruleset == ruleset) {
      doomed.push_back(k);
    }
    return false;
  });
  if (!scanned.ok()) {
    return std::move(scanned).error();
  }
  for (const Key& k : doomed) {
    if (bpf_map_delete_elem(mapFd, &k) != 0 && errno != ENOENT) {
      return lastSystemError("delete a rule of ruleset " + std::to_string(ruleset) + " from " +
                             what);
    }
  }
  return doomed.size();
}

}  // namespace

Status PinnedMaps::insertRules(uint32_t ruleset, const RuleEntries& rules) const {
  EGRESSD_TRY(insertAll(fd(EGRESSD_MAP_ALLOW4), EGRESSD_MAP_ALLOW4, ruleset, rules.allow4));
  EGRESSD_TRY(insertAll(fd(EGRESSD_MAP_ALLOW6), EGRESSD_MAP_ALLOW6, ruleset, rules.allow6));
  EGRESSD_TRY(insertAll(fd(EGRESSD_MAP_DENY4), EGRESSD_MAP_DENY4, ruleset, rules.deny4));
  EGRESSD_TRY(insertAll(fd(EGRESSD_MAP_DENY6), EGRESSD_MAP_DENY6, ruleset, rules.deny6));
  return okStatus();
}

Result<size_t> PinnedMaps::deleteRuleset(uint32_t ruleset) const {
  size_t total = 0;
  for (const char* name : {EGRESSD_MAP_ALLOW4, EGRESSD_MAP_DENY4}) {
    auto n = deleteMatching<egressd_rule4_key>(fd(name), name, ruleset);
    if (!n.ok()) {
      return std::move(n).error();
    }
    total += *n;
  }
  for (const char* name : {EGRESSD_MAP_ALLOW6, EGRESSD_MAP_DENY6}) {
    auto n = deleteMatching<egressd_rule6_key>(fd(name), name, ruleset);
    if (!n.ok()) {
      return std::move(n).error();
    }
    total += *n;
  }
  return total;
}

Result<size_t> PinnedMaps::countRules(uint32_t ruleset) const {
  size_t total = 0;
  for (const char* name : {EGRESSD_MAP_ALLOW4, EGRESSD_MAP_DENY4}) {
    auto n = scanTrie<egressd_rule4_key>(
        fd(name), name, [&](const egressd_rule4_key& k) { return k.ruleset == ruleset; });
    if (!n.ok()) {
      return std::move(n).error();
    }
    total += *n;
  }
  for (const char* name : {EGRESSD_MAP_ALLOW6, EGRESSD_MAP_DENY6}) {
    auto n = scanTrie<egressd_rule6_key>(
        fd(name), name, [&](const egressd_rule6_key& k) { return k.ruleset == ruleset; });
    if (!n.ok()) {
      return std::move(n).error();
    }
    total += *n;
  }
  return total;
}

Result<egressd_counters> PinnedMaps::counters(uint32_t slot) const {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) {
    return systemError(-cpus, "count possible CPUs");
  }
  std::vector<egressd_counters> perCpu(static_cast<size_t>(cpus));
  if (bpf_map_lookup_elem(fd(EGRESSD_MAP_COUNTERS), &slot, perCpu.data()) != 0) {
    return lastSystemError("read " + pinRoot_ + "/" EGRESSD_MAP_COUNTERS);
  }
  egressd_counters sum{};
  for (const auto& c : perCpu) {
    for (int i = 0; i < EGRESSD_REASON_MAX; ++i) {
      sum.by_reason[i] += c.by_reason[i];
    }
  }
  return sum;
}

Status PinnedMaps::resetCounters(uint32_t slot) const {
  int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) {
    return systemError(-cpus, "count possible CPUs");
  }
  std::vector<egressd_counters> zero(static_cast<size_t>(cpus));
  if (bpf_map_update_elem(fd(EGRESSD_MAP_COUNTERS), &slot, zero.data(), BPF_ANY) != 0) {
    return lastSystemError("reset " + pinRoot_ + "/" EGRESSD_MAP_COUNTERS);
  }
  return okStatus();
}

Result<std::vector<SandboxState>> PinnedMaps::listSandboxes() const {
  std::vector<SandboxState> out;
  for (uint32_t slot = 0; slot < EGRESSD_MAX_SANDBOXES; ++slot) {
    auto config = liveConfig(slot);
    if (!config.ok()) {
      return std::move(config).error();
    }
    if (!config->has_value()) {
      continue;
    }
    SandboxState state;
    state.slot = slot;
    state.config = **config;
    auto c = counters(slot);
    if (!c.ok()) {
      return std::move(c).error();
    }
    state.counters = *c;
    out.push_back(state);
  }
  return out;
}

std::string formatAddr(const egressd_addr& addr) {
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  char buf[INET6_ADDRSTRLEN] = {};
  if (std::memcmp(addr.bytes, kMapped, sizeof(kMapped)) == 0) {
    inet_ntop(AF_INET, &addr.bytes[12], buf, sizeof(buf));
  } else {
    inet_ntop(AF_INET6, addr.bytes, buf, sizeof(buf));
  }
  return buf;
}

const char* reasonName(uint32_t reason) {
  switch (reason) {
#define EGRESSD_X_NAME(name, num, deny) \
  case num:                             \
    return #name;
    EGRESSD_REASONS(EGRESSD_X_NAME)
#undef EGRESSD_X_NAME
    default:
      return "unknown";
  }
}

bool reasonIsDeny(uint32_t reason) {
  switch (reason) {
#define EGRESSD_X_DENY(name, num, deny) \
  case num:                             \
    return (deny) != 0;
    EGRESSD_REASONS(EGRESSD_X_DENY)
#undef EGRESSD_X_DENY
    default:
      return true;
  }
}

}  // namespace egressd::loader
