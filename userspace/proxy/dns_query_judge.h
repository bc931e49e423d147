// What egressd's resolver does with one query of a sandbox before any upstream is asked
// (docs/dns.md): the query's bytes and the sandbox's current policy view in, a judgement
// out. The name by the proxy's host rules, the type by a fixed list, the opcode, class and
// name shape, and the sandbox's rate by dns.limits (its QueryLimiter counts the query).
// Pure but for the limiter: no sockets, no upstream, no audit (dns_server.h does those).
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "dns/message.h"
#include "proxy/dns_limits.h"
#include "proxy/sandbox_context.h"

namespace egressd::proxy {

// Whether a sandbox's policy lets it resolve `name` (normalized, not an IP literal), with
// the proxy's precedence: deniedHosts, then allowedHosts / enableInternet, then a per-host
// handler binding (instance, then policy outboundByHost) for a name only the default denied.
// reason/rule as in policy::HostDecision ("handler" / "handler NAME" for the last case).
// A name-based `allow` rule's host is resolvable too unless deniedHosts names it
// ("allow_rule", rule "allow[i] GLOB tcp/5432").
struct DnsNameDecision {
  bool allowed = false;
  std::string reason;
  std::string rule;
};
DnsNameDecision decideDnsName(const SandboxPolicyView& view, std::string_view name);

// A reverse-lookup name (in-addr.arpa / ip6.arpa, readName form) inside loopback, private,
// link-local, CGNAT or ULA space: answered NXDOMAIN by egressd, never forwarded.
bool isPrivateReverseName(std::string_view name);

// Query types egressd forwards: A, AAAA, CNAME, HTTPS, SVCB, MX, TXT, SRV.
bool isForwardedType(uint16_t qtype);

// What one query came to, for its audit line and metric.
struct DnsOutcome {
  std::string decision;  // allow | deny | error
  std::string reason;
  std::string rule;
  std::string detail;
  int rcode = dns::kRcodeNoError;
  uint16_t answers = 0;
  bool limit = false;  // refused by dns.limits: audited once per burst
};

struct DnsQueryJudgement {
  enum class Action {
    kIgnore,   // no query header to answer to: no reply, no audit line
    kAnswer,   // answered by egressd with outcome.rcode, never forwarded
    kForward,  // allowed: egressd asks an upstream for (name, query->qtype)
  };
  Action action = Action::kIgnore;
  // The parsed query; absent when the message did not parse (kAnswer: FORMERR, or no reply
  // at all when outcome.limit says a flood is being refused).
  std::optional<dns::ParsedQuery> query;
  DnsOutcome outcome;        // kAnswer
  std::string name;          // kForward: the normalized question name
  DnsNameDecision decision;  // kForward: why the name is allowed
};

// Judges one message a sandbox sent to its resolver by `view`. Every message takes a token
// of `limiter`, well-formed or not; a query that would be forwarded is also counted against
// the per-domain name and byte limits.
DnsQueryJudgement judgeDnsQuery(std::span<const uint8_t> message, const SandboxPolicyView& view,
                                QueryLimiter& limiter);

}  // namespace egressd::proxy
