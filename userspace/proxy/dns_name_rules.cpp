#include "proxy/dns_name_rules.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace egressd::proxy {

Status NameRuleTracker::install(NameRuleSink& sink, const SandboxContext& sandbox,
                                const SandboxPolicyView& view, const std::string& name,
                                const std::vector<IpAddress>& addresses, uint32_t ttl) {
  if (view.nameRules.empty()) {
    return okStatus();
  }
  const auto expires = std::chrono::steady_clock::now() +
                       std::chrono::seconds(uint64_t{ttl} + view.dns.nameRuleGraceSeconds);
  std::vector<policy::NameRuleEntry> entries;
  for (const IpAddress& addr : addresses) {
    for (policy::NameRuleEntry& e : policy::nameRuleEntries(view.nameRules, name, addr)) {
      entries.push_back(e);
    }
  }
  if (entries.empty()) {
    return okStatus();
  }
  {
    std::lock_guard lock(mutex_);
    for (const policy::NameRuleEntry& e : entries) {
      auto [it, inserted] = entries_.try_emplace(e, Tracked{name, expires});
      if (!inserted) {
        it->second.expires = std::max(it->second.expires, expires);
        it->second.name = name;
      }
    }
  }
  return sink.add(sandbox.slot, entries);
}

void NameRuleTracker::sweep(NameRuleSink& sink, const SandboxContext& sandbox,
                            std::chrono::steady_clock::time_point now) {
  const auto view = sandbox.currentPolicy();
  std::vector<policy::NameRuleEntry> expired;
  std::vector<policy::NameRuleEntry> timedOut;  // expired by time, rule still there
  std::vector<policy::NameRuleEntry> live;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [entry, tracked] : entries_) {
      const auto current = policy::nameRuleEntries(view->nameRules, tracked.name, entry.addr);
      if (std::find(current.begin(), current.end(), entry) == current.end()) {
        expired.push_back(entry);  // the rule is gone: so is the entry, in use or not
      } else if (tracked.expires <= now) {
        timedOut.push_back(entry);
      }
    }
  }
  // Established connections are left alone: an entry they use stays until they end.
  std::vector<policy::NameRuleEntry> used;
  if (!timedOut.empty()) {
    used = sink.inUse(sandbox, timedOut);
  }
  {
    std::lock_guard lock(mutex_);
    for (const policy::NameRuleEntry& e : timedOut) {
      if (std::find(used.begin(), used.end(), e) == used.end()) {
        expired.push_back(e);
      }
    }
    for (const policy::NameRuleEntry& e : expired) {
      entries_.erase(e);
    }
    for (const auto& [entry, tracked] : entries_) {
      live.push_back(entry);
    }
  }
  if (!expired.empty()) {
    if (Status st = sink.remove(sandbox.slot, expired); !st.ok()) {
      spdlog::warn("sandbox {}: removing expired name-rule entries: {}", sandbox.id,
                   st.error().message());
    }
  }
  if (!live.empty()) {
    if (Status st = sink.add(sandbox.slot, live); !st.ok()) {
      spdlog::warn("sandbox {}: re-asserting name-rule entries: {}", sandbox.id,
                   st.error().message());
    }
  }
}

std::vector<NameRuleState> NameRuleTracker::states(
    const SandboxPolicyView& view, std::chrono::steady_clock::time_point now) const {
  std::vector<NameRuleState> out;
  std::lock_guard lock(mutex_);
  for (const auto& [entry, tracked] : entries_) {
    NameRuleState state;
    state.name = tracked.name;
    state.entry = entry;
    for (const policy::AllowRule& rule : view.nameRules) {
      if (rule.index + 1 == entry.ruleId) {
        state.rule = policy::allowRuleName(rule);
      }
    }
    state.expiresIn =
        std::chrono::duration_cast<std::chrono::seconds>(tracked.expires - now).count();
    out.push_back(std::move(state));
  }
  return out;
}

}  // namespace egressd::proxy
