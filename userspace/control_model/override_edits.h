// The control API's edits of one sandbox's instance overrides (host lists, per-host and
// catch-all handlers), each validated before it edits: on error the overrides are as they
// were. Pure: whether the handlers named exist is the policy's business, checked when the
// edited overrides are compiled against it (daemon/sandbox_lifecycle).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/result.h"
#include "policy/overrides.h"
#include "policy/policy.h"

namespace egressd::control_model {

enum class HostListKind { kAllowed, kDenied };

// "allowedHosts" / "deniedHosts", as errors and the API name them.
const char* hostListName(HostListKind kind);

// Replaces the list in force (the policy's, with any earlier additions and removals).
// EINVAL names the first entry that is no host glob or CIDR.
Status setHostList(policy::InstanceOverrides& overrides, HostListKind kind,
                   const std::vector<std::string>& hosts);
// Adds `host` to the list (once; an earlier removal of it is undone).
Status addHostEntry(policy::InstanceOverrides& overrides, HostListKind kind,
                    const std::string& host);
// Removes `host` from the list in force, `policyList` being the policy's list of that kind;
// ENOENT when it is not in the list in force (the message names `sandboxId`).
Status removeHostEntry(policy::InstanceOverrides& overrides, HostListKind kind,
                       const std::string& host, const policy::HostList& policyList,
                       const std::string& sandboxId);

// Hosts are normalized globs: "API.example.com." and "api.example.com" are one key.
Status setOutboundByHost(policy::InstanceOverrides& overrides, const std::string& host,
                         const policy::HandlerRef& ref);
Status removeOutboundByHost(policy::InstanceOverrides& overrides, const std::string& host,
                            const std::string& sandboxId);
// Replaces all per-host handlers.
Status setOutboundByHosts(policy::InstanceOverrides& overrides,
                          const std::map<std::string, policy::HandlerRef>& refs);
void setOutboundHandler(policy::InstanceOverrides& overrides, const policy::HandlerRef& ref);
Status removeOutboundHandler(policy::InstanceOverrides& overrides, const std::string& sandboxId);

}  // namespace egressd::control_model
