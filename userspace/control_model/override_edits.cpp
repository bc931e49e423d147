#include "control_model/override_edits.h"

#include <algorithm>
#include <cerrno>

namespace egressd::control_model {

namespace {

policy::HostListOverride& listOf(policy::InstanceOverrides& o, HostListKind kind) {
  return kind == HostListKind::kAllowed ? o.allowedHosts : o.deniedHosts;
}

Status validHostEntry(const std::string& host, const char* list) {
  auto key = policy::hostEntryKey(host);
  if (!key.ok()) {
    return Error(EINVAL, std::string(list) + " entry \"" + host + "\": " + key.error().message());
  }
  return okStatus();
}

bool sameEntry(const std::string& a, const std::string& b) {
  auto ka = policy::hostEntryKey(a);
  auto kb = policy::hostEntryKey(b);
  return ka.ok() && kb.ok() ? *ka == *kb : a == b;
}

void eraseEntry(std::vector<std::string>& list, const std::string& host) {
  list.erase(std::remove_if(list.begin(), list.end(),
                            [&](const std::string& e) { return sameEntry(e, host); }),
             list.end());
}

Result<std::string> handlerHostKey(const std::string& host) {
  auto glob = policy::normalizeHostGlob(host);
  if (!glob.ok()) {
    return Error(EINVAL, "outboundByHost host \"" + host + "\": " + glob.error().message());
  }
  return glob;
}

}  // namespace

const char* hostListName(HostListKind kind) {
  return kind == HostListKind::kAllowed ? "allowedHosts" : "deniedHosts";
}

Status setHostList(policy::InstanceOverrides& overrides, HostListKind kind,
                   const std::vector<std::string>& hosts) {
  for (const std::string& h : hosts) {
    EGRESSD_TRY(validHostEntry(h, hostListName(kind)));
  }
  policy::HostListOverride& list = listOf(overrides, kind);
  list = policy::HostListOverride{};
  list.set = hosts;
  return okStatus();
}

Status addHostEntry(policy::InstanceOverrides& overrides, HostListKind kind,
                    const std::string& host) {
  EGRESSD_TRY(validHostEntry(host, hostListName(kind)));
  policy::HostListOverride& list = listOf(overrides, kind);
  eraseEntry(list.removed, host);
  eraseEntry(list.added, host);
  list.added.push_back(host);
  return okStatus();
}

Status removeHostEntry(policy::InstanceOverrides& overrides, HostListKind kind,
                       const std::string& host, const policy::HostList& policyList,
                       const std::string& sandboxId) {
  EGRESSD_TRY(validHostEntry(host, hostListName(kind)));
  policy::HostListOverride& list = listOf(overrides, kind);
  const auto current = policy::effectiveHostList(policyList, list);
  if (std::none_of(current.begin(), current.end(),
                   [&](const std::string& e) { return sameEntry(e, host); })) {
    return Error(ENOENT,
                 "\"" + host + "\" is not in sandbox " + sandboxId + "'s " + hostListName(kind));
  }
  eraseEntry(list.added, host);
  if (list.set) {
    eraseEntry(*list.set, host);
  }
  // Still there: it comes from the policy, so the instance removes it on top.
  if (!list.set) {
    eraseEntry(list.removed, host);
    list.removed.push_back(host);
  }
  return okStatus();
}

Status setOutboundByHost(policy::InstanceOverrides& overrides, const std::string& host,
                         const policy::HandlerRef& ref) {
  auto key = handlerHostKey(host);
  if (!key.ok()) {
    return std::move(key).error();
  }
  overrides.outboundByHost[*key] = ref;
  return okStatus();
}

Status removeOutboundByHost(policy::InstanceOverrides& overrides, const std::string& host,
                            const std::string& sandboxId) {
  auto key = handlerHostKey(host);
  if (!key.ok()) {
    return std::move(key).error();
  }
  if (overrides.outboundByHost.erase(*key) == 0) {
    return Error(ENOENT, "sandbox " + sandboxId + " has no instance handler for " + host);
  }
  return okStatus();
}

Status setOutboundByHosts(policy::InstanceOverrides& overrides,
                          const std::map<std::string, policy::HandlerRef>& refs) {
  std::map<std::string, policy::HandlerRef> next;
  for (const auto& [host, ref] : refs) {
    auto key = handlerHostKey(host);
    if (!key.ok()) {
      return std::move(key).error();
    }
    next[*key] = ref;
  }
  overrides.outboundByHost = std::move(next);
  return okStatus();
}

void setOutboundHandler(policy::InstanceOverrides& overrides, const policy::HandlerRef& ref) {
  overrides.outbound = ref;
}

Status removeOutboundHandler(policy::InstanceOverrides& overrides, const std::string& sandboxId) {
  if (!overrides.outbound) {
    return Error(ENOENT, "sandbox " + sandboxId + " has no instance catch-all handler");
  }
  overrides.outbound.reset();
  return okStatus();
}

}  // namespace egressd::control_model
