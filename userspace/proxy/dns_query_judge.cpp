#include "proxy/dns_query_judge.h"

#include <algorithm>
#include <vector>

#include "handlers/host_binding.h"
#include "policy/host_policy.h"
#include "proxy/upstream_choice.h"

namespace egressd::proxy {

namespace {

std::vector<std::string> labelsOf(std::string_view name) {
  std::vector<std::string> labels;
  size_t start = 0;
  while (start <= name.size()) {
    size_t end = name.find('.', start);
    if (end == std::string_view::npos) {
      end = name.size();
    }
    labels.emplace_back(name.substr(start, end - start));
    start = end + 1;
  }
  return labels;
}

bool isDecimalOctet(const std::string& s, int& out) {
  if (s.empty() || s.size() > 3 ||
      !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return false;
  }
  out = std::stoi(s);
  return out <= 255;
}

int nibble(const std::string& s) {
  if (s.size() != 1) {
    return -1;
  }
  const char c = s[0];
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  return -1;
}

}  // namespace

DnsNameDecision decideDnsName(const SandboxPolicyView& view, std::string_view name) {
  const policy::HostDecision host = view.hosts.decideName(name);
  if (host.allowed()) {
    return {true, host.reason, host.rule};
  }
  // A name-based allow rule makes its host resolvable (that is how its addresses reach the
  // kernel), unless deniedHosts names it.
  if (host.reason != "denied_host") {
    if (const policy::AllowRule* rule = policy::matchNameRule(view.nameRules, name)) {
      return {true, "allow_rule", policy::allowRuleName(*rule)};
    }
  }
  // The proxy's precedence: a per-host handler binding lets a name through that only the
  // default (internet disabled) denied; deniedHosts and allowedHosts still win.
  if (handlerMayApply(host)) {
    const handlers::HostBinding* binding = handlers::pickByHost(view.handlers.instanceByHost, name);
    if (binding == nullptr) {
      binding = handlers::pickByHost(view.handlers.policyByHost, name);
    }
    if (binding != nullptr) {
      return {true, "handler", "handler " + binding->handler};
    }
  }
  return {false, host.reason, host.rule};
}

bool isPrivateReverseName(std::string_view name) {
  std::vector<std::string> labels = labelsOf(name);
  if (labels.size() >= 2 && labels[labels.size() - 1] == "arpa" &&
      labels[labels.size() - 2] == "in-addr") {
    // d.c.b.a.in-addr.arpa: octets reversed; a shorter name is a whole range.
    std::vector<int> octets;
    for (size_t i = labels.size() - 2; i-- > 0;) {
      int octet = 0;
      if (!isDecimalOctet(labels[i], octet)) {
        return false;
      }
      octets.push_back(octet);
    }
    if (octets.empty() || octets.size() > 4) {
      return false;
    }
    const int a = octets[0];
    const int b = octets.size() > 1 ? octets[1] : -1;
    if (a == 0 || a == 10 || a == 127) {
      return true;
    }
    if (b < 0) {
      return false;
    }
    return (a == 169 && b == 254) || (a == 172 && b >= 16 && b <= 31) || (a == 192 && b == 168) ||
           (a == 100 && b >= 64 && b <= 127);
  }
  if (labels.size() >= 2 && labels[labels.size() - 1] == "arpa" &&
      labels[labels.size() - 2] == "ip6") {
    std::vector<int> nibbles;
    for (size_t i = labels.size() - 2; i-- > 0;) {
      const int n = nibble(labels[i]);
      if (n < 0) {
        return false;
      }
      nibbles.push_back(n);
    }
    if (nibbles.empty() || nibbles.size() > 32) {
      return false;
    }
    if (nibbles[0] == 0xf && nibbles.size() >= 2) {
      const int second = nibbles[1];
      if (second == 0xc || second == 0xd) {
        return true;  // fc00::/7
      }
      if (second == 0xe && nibbles.size() >= 3 && nibbles[2] >= 8 && nibbles[2] <= 0xb) {
        return true;  // fe80::/10
      }
      return false;
    }
    // ::1 and :: (all nibbles given)
    if (nibbles.size() == 32) {
      return std::all_of(nibbles.begin(), nibbles.end() - 1, [](int n) { return n == 0; }) &&
             nibbles.back() <= 1;
    }
    return false;
  }
  return false;
}

bool isForwardedType(uint16_t qtype) {
  switch (qtype) {
    case dns::kTypeA:
    case dns::kTypeAaaa:
    case dns::kTypeCname:
    case dns::kTypeHttps:
    case dns::kTypeSvcb:
    case dns::kTypeMx:
    case dns::kTypeTxt:
    case dns::kTypeSrv:
      return true;
    default:
      return false;
  }
}

DnsQueryJudgement judgeDnsQuery(std::span<const uint8_t> message, const SandboxPolicyView& view,
                                QueryLimiter& limiter) {
  DnsQueryJudgement j;
  const policy::DnsLimits& limits = view.dns.limits;
  // Every message takes a token, well-formed or not: a flood is refused before it costs
  // more than that (and is audited once per burst).
  const std::string_view limited = limiter.admitQuery(limits);
  auto parsed = dns::parseQuery(message);
  if (!parsed.ok()) {
    if (!dns::headerUsable(message)) {
      return j;
    }
    j.action = DnsQueryJudgement::Action::kAnswer;
    j.outcome =
        DnsOutcome{"deny", "malformed_query", "", parsed.error().message(), dns::kRcodeFormErr};
    if (!limited.empty()) {
      j.outcome =
          DnsOutcome{"deny", std::string(limited), "dns.limits.qps", "", dns::kRcodeRefused};
      j.outcome.limit = true;
    }
    return j;
  }
  j.query = std::move(*parsed);
  const dns::ParsedQuery& q = *j.query;
  auto local = [&j](DnsOutcome o) {
    j.action = DnsQueryJudgement::Action::kAnswer;
    j.outcome = std::move(o);
    return j;
  };
  auto limit = [&local](DnsOutcome o) {
    o.limit = true;
    return local(std::move(o));
  };
  const int refusedRcode = dns::kRcodeRefused;
  const int deniedRcode = view.dns.deniedAnswer == policy::DnsDeniedAnswer::kRefused
                              ? dns::kRcodeRefused
                              : dns::kRcodeNxDomain;

  if (!limited.empty()) {
    return limit(DnsOutcome{"deny", std::string(limited), "dns.limits.qps", "", refusedRcode});
  }
  if (q.opcode != 0) {
    return local(DnsOutcome{"deny", "unsupported_opcode", "", "opcode " + std::to_string(q.opcode),
                            dns::kRcodeNotImp});
  }
  if (q.qclass != dns::kClassIn) {
    return local(DnsOutcome{"deny", "unsupported_class", "", "class " + std::to_string(q.qclass),
                            refusedRcode});
  }
  // Presentation length without the trailing dot: wire length minus the first length byte
  // and the root label.
  const size_t nameLength = q.nameWireLength >= 2 ? q.nameWireLength - 2 : 0;
  if (nameLength > limits.maxNameLength) {
    return limit(DnsOutcome{"deny", "name_too_long", "dns.limits.maxNameLength",
                            std::to_string(nameLength) + " characters", refusedRcode});
  }
  if (q.longestLabel > limits.maxLabelLength) {
    return limit(DnsOutcome{"deny", "label_too_long", "dns.limits.maxLabelLength",
                            "a label of " + std::to_string(q.longestLabel) + " characters",
                            refusedRcode});
  }
  if (q.qtype == dns::kTypeAny) {
    return local(DnsOutcome{"deny", "type_refused", "", "ANY", refusedRcode});
  }
  if (q.qtype == dns::kTypePtr) {
    if (isPrivateReverseName(q.name)) {
      return local(DnsOutcome{"allow", "private_ptr", "", "answered locally", dns::kRcodeNxDomain});
    }
    return local(DnsOutcome{"deny", "type_refused", "", "PTR", refusedRcode});
  }
  if (!isForwardedType(q.qtype)) {
    return local(DnsOutcome{"deny", "type_refused", "", dns::typeName(q.qtype), refusedRcode});
  }

  auto host = policy::normalizeHost(q.name);
  if (!host.ok() || host->ip || host->port) {
    return local(DnsOutcome{"deny", "invalid_host", "",
                            host.ok() ? "an address, not a name" : host.error().message(),
                            deniedRcode});
  }
  const DnsNameDecision decision = decideDnsName(view, host->name);
  if (!decision.allowed) {
    return local(DnsOutcome{"deny", decision.reason, decision.rule, "", deniedRcode});
  }
  const size_t queryBytes = dns::kHeaderSize + q.nameWireLength + 4;
  if (std::string_view over = limiter.admitForward(limits, host->name, queryBytes); !over.empty()) {
    return limit(DnsOutcome{"deny", std::string(over),
                            over == "unique_names_limited" ? "dns.limits.uniqueNamesPerMinute"
                                                           : "dns.limits.queryBytesPerMinute",
                            "registered domain " + registeredDomain(host->name), refusedRcode});
  }
  j.action = DnsQueryJudgement::Action::kForward;
  j.name = host->name;
  j.decision = decision;
  return j;
}

}  // namespace egressd::proxy
