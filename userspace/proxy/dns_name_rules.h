// The kernel entries that name-based `allow` rules (policy `allow: [{host: GLOB, ...}]`,
// docs/dns.md) derive from one sandbox's DNS answers: an answer's addresses go into the
// kernel before the answer reaches the sandbox, stay for the answer's TTL plus
// dns.nameRuleGrace (longer while a connection uses them), and leave when they expire or
// their rule does. egressd's resolver (dns_server.h) keeps one NameRuleTracker per sandbox.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "common/ip_address.h"
#include "common/result.h"
#include "policy/compile.h"
#include "proxy/sandbox_context.h"

namespace egressd::proxy {

// Where the entries of name-based `allow` rules go: the sandbox's kernel allow maps. The
// daemon implements it over the pinned maps.
class NameRuleSink {
 public:
  virtual ~NameRuleSink() = default;
  // Into the sandbox's live rule generation (an entry a static rule already covers for
  // the same protocol and port is left to that rule).
  virtual Status add(uint32_t slot, const std::vector<policy::NameRuleEntry>& entries) = 0;
  // From both of the sandbox's rule generations (only entries of those rule ids).
  virtual Status remove(uint32_t slot, const std::vector<policy::NameRuleEntry>& entries) = 0;
  // Which of `entries` an open connection (TCP or connected UDP) of the sandbox still uses:
  // those stay (the kernel's per-packet backstop would otherwise cut the connection). When
  // the sockets cannot be listed, all of them (retried at the next sweep).
  virtual std::vector<policy::NameRuleEntry> inUse(
      const SandboxContext& sandbox, const std::vector<policy::NameRuleEntry>& entries) = 0;
};

// A live name-derived kernel entry, for `egressctl sandbox show`.
struct NameRuleState {
  std::string name;  // the name resolved
  policy::NameRuleEntry entry;
  std::string rule;       // "allow[0] db.example tcp/5432"
  int64_t expiresIn = 0;  // seconds from now
};

// One sandbox's live name-derived entries. Thread-safe.
class NameRuleTracker {
 public:
  // The entries `view`'s name rules derive from `addresses`, the A/AAAA answer for `name`
  // (normalized) with `ttl`, into the kernel through `sink` and tracked until the TTL plus
  // the view's nameRuleGrace. Fails when the kernel refused them (the answer must not go out).
  Status install(NameRuleSink& sink, const SandboxContext& sandbox, const SandboxPolicyView& view,
                 const std::string& name, const std::vector<IpAddress>& addresses, uint32_t ttl);

  // Removes the entries whose rule is gone from the sandbox's current policy, and those
  // expired by `now` that no open connection uses; puts the others back into the live rule
  // generation (a policy swap starts the new one without them). Failures are logged: the
  // next sweep tries again.
  void sweep(NameRuleSink& sink, const SandboxContext& sandbox,
             std::chrono::steady_clock::time_point now);

  // The live entries, the rules of `view` that made them, and how long they have left.
  std::vector<NameRuleState> states(const SandboxPolicyView& view,
                                    std::chrono::steady_clock::time_point now) const;

 private:
  struct Tracked {
    std::string name;  // the name whose answer gave the address
    std::chrono::steady_clock::time_point expires;
  };
  mutable std::mutex mutex_;
  std::map<policy::NameRuleEntry, Tracked> entries_;
};

}  // namespace egressd::proxy
