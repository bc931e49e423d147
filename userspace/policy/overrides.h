// Instance overrides: what the control API sets on one running sandbox on top of its policy
// (docs/design.md "instance before class"), and the effective policy they make together.
//
// Host lists keep their intent rather than a materialized copy: `set` replaces the policy's
// list, `added`/`removed` adjust whichever list is in force. A policy reload therefore still
// reaches a sandbox whose operator only added one host, and `sandbox show` can tell the
// operator exactly what they changed.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "policy/policy.h"

namespace egressd::policy {

struct HostListOverride {
  std::optional<std::vector<std::string>> set;  // setAllowedHosts / setDeniedHosts
  std::vector<std::string> added;               // allowHost / denyHost
  std::vector<std::string> removed;             // removeAllowedHost / removeDeniedHost

  bool empty() const { return !set && added.empty() && removed.empty(); }
};

struct InstanceOverrides {
  HostListOverride allowedHosts;
  HostListOverride deniedHosts;
  // setOutboundByHost: normalized host glob -> handler (+ params); instance before policy.
  std::map<std::string, HandlerRef> outboundByHost;
  std::optional<HandlerRef> outbound;  // setOutboundHandler

  nlohmann::json toJson() const;
  static Result<InstanceOverrides> fromJson(const nlohmann::json& j);
};

// The identity of a host list entry, so "GitHub.com." and "github.com" or "10.0.0.0/8" and
// "10.0.0.1/8" are one entry: the normalized glob, or the CIDR's canonical text.
// Fails with the reason a person can act on ("empty label in \"a..b\"").
Result<std::string> hostEntryKey(std::string_view text);

// The list in force: `base` (or `override.set`), plus `added`, minus `removed`, in that
// order, each entry once. Entries are texts as written.
std::vector<std::string> effectiveHostList(const HostList& base, const HostListOverride& o);

// `base` with the instance's host lists applied (handlers are the proxy's business and are
// not merged here). A list that is set, or has additions, counts as written (docs/design.md
// precedence 2: allowedHosts, once written, denies what it does not match).
Result<Policy> applyHostOverrides(const Policy& base, const InstanceOverrides& o);

// Texts of a HostList's entries, globs and CIDRs, in list order.
std::vector<std::string> hostListTexts(const HostList& list);

// Builds a HostList from texts (positions unknown); errors name the entry.
Result<HostList> makeHostList(const std::vector<std::string>& texts, const std::string& what);

}  // namespace egressd::policy
