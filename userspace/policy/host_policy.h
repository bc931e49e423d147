// The proxy's view of a policy: decides on a request's host name (Host header, TLS SNI,
// CONNECT authority) and judges the addresses egressd itself resolves that name to.
//
// Names are matched by the allowedHosts/deniedHosts globs; IP-literal hosts are judged by
// the CIDR rules exactly as the kernel judges a connect() (bpf/lib/decide.h), so that
// reaching an address through the proxy is never easier than reaching it directly.
// Everything here is pure and cheap: a HostPolicy is rebuilt on every policy reload and
// decide() runs once per request.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ip_address.h"
#include "common/result.h"
#include "policy/cidr.h"
#include "policy/policy.h"

namespace egressd::policy {

struct NormalizedHost {
  std::string name;              // lowercase, no trailing dot, IDN as punycode (xn--...),
                                 // no port, no brackets; an IP literal in inet_ntop form
  std::optional<IpAddress> ip;   // set when the host is an IP literal ("10.0.0.1", "[::1]")
  std::optional<uint16_t> port;  // from "host:port"
};

// The one host-name syntax check, for request hosts (kName: letters, digits, '-', '.', '_')
// and policy globs (kGlob: letters, digits, '-', '.', '*'; a starred label has no length
// limit): lowercases, drops one trailing dot, checks characters, labels and lengths. `whole`
// is what errors quote.
enum class HostSyntax { kName, kGlob };
Result<std::string> checkHostSyntax(std::string name, std::string_view whole, HostSyntax syntax);

// Host header / SNI / authority -> normalized. Fails (EINVAL; the proxy answers 400) on:
// empty input, a bad port, characters outside letters, digits, '-', '.', '_' (after IDN
// conversion), an empty label, a label over 63 or a name over 253 characters, unbalanced
// brackets, a bracketed non-IPv6, and names whose last label is a number ("127.1",
// "0x7f.1", "2130706433"): URL parsers and inet_aton read those as IPv4 addresses, so
// accepting them as names would let a sandbox dress an address up as a host name.
// UTF-8 names go through libidn2 (UTS #46 non-transitional, then transitional); names
// already in xn-- form are kept as written, lowercased.
Result<NormalizedHost> normalizeHost(std::string_view text);

// Glob match: '*' matches any sequence (also across dots and the empty one), every other
// character itself, ASCII case-insensitively. `pattern` is normalized (normalizeHostGlob).
// Iterative, O(|pattern| * |host|) at worst: no backtracking blowup.
bool hostGlobMatches(std::string_view pattern, std::string_view host);

// Where an address sits among the ranges the policy treats specially.
enum class AddressClass {
  kOrdinary,
  kSpecial,     // loopback, 0/8, link-local (169.254.169.254 metadata), multicast, 240/4 and
                // broadcast, ::, ::1, fe80::/10, fec0::/10, ff00::/8: need an allow rule
  kEmbeddedV4,  // NAT64 64:ff9b::/32, 6to4 2002::/16, Teredo 2001::/32, ::/96: need an
                // allow rule (they reach an IPv4 address through a translator)
  kPrivate,     // 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7: refused to names that
                // only enableInternet allowed (DNS rebinding), unless an allow rule covers
};
AddressClass classifyAddress(const IpAddress& addr);

enum class HostVerdict { kAllow, kDeny };

struct HostDecision {
  HostVerdict verdict = HostVerdict::kDeny;
  // Stable snake_case id for audit lines and metrics labels:
  //   allow: "allowed_host", "enable_internet", "allowed_cidr"
  //   deny:  "denied_host", "not_in_allowed_hosts", "internet_disabled", "denied_cidr",
  //          "special_destination", "embedded_v4_destination", "private_destination",
  //          "invalid_host"
  std::string reason;
  // The rule that decided, named like the kernel's rule names (compile.h):
  // "deniedHosts[1] *.evil.example", "allowedHosts[0] github.com",
  // "allowedHosts[2] 10.20.0.0/16", "allow[0] 10.0.5.0/24 tcp/5432"; "" for the defaults
  // (enableInternet, internet disabled, special ranges).
  std::string rule;
  bool byName = false;            // decided for a name: the proxy must resolve it itself
  bool matchedAllowGlob = false;  // an allowedHosts glob named it (may resolve to private)

  bool allowed() const { return verdict == HostVerdict::kAllow; }
};

class HostPolicy {
 public:
  // Precompiles the globs and CIDR tables; cheap enough to rebuild on every reload.
  // Copies are cheap (the compiled tables are shared and immutable).
  static HostPolicy fromPolicy(const Policy& policy);

  // Denies every name and applies the kernel defaults to IP literals (enableInternet off).
  HostPolicy();

  // Names: deniedHosts globs (first in list order wins), then allowedHosts globs; when
  // allowedHosts is written (docs/design.md precedence 2) anything it does not match is denied,
  // whatever enableInternet says; otherwise enableInternet decides. Globs never match IP
  // literals: those are judged by the CIDR rules as the kernel would judge a connection to
  // them on `port` over TCP (deny CIDRs, allow rules, special ranges, then
  // allowedHosts-written ? deny : enableInternet).
  HostDecision decide(const NormalizedHost& host, uint16_t port) const;
  // decide() for a normalized name that is not an IP literal (e.g. a DNS question).
  HostDecision decideName(std::string_view name) const;
  // decide() for an IP-literal host; `protocol` kUdp judges a UDP socket's destination (the
  // kernel's allow rules may name a protocol).
  HostDecision decideAddress(const IpAddress& addr, uint16_t port,
                             Protocol protocol = Protocol::kTcp) const;

  // For each address egressd's own resolution of an allowed name returned, before
  // connecting to it. Refuses an address in a deniedHosts CIDR, a special or embedded-IPv4
  // address not covered by an allow CIDR (allowedHosts CIDR, or an `allow` rule for
  // `port`/tcp), and — when the name was allowed only by enableInternet — a private address
  // not so covered. Otherwise returns `nameDecision` unchanged, so the audit names the rule
  // that allowed the name. A denied `nameDecision` is returned as is.
  HostDecision judgeResolvedAddress(const IpAddress& addr, uint16_t port,
                                    const HostDecision& nameDecision) const;

  // The rule that names `addr` and `port` explicitly, for a TLS hello without a usable
  // server name (tls.requireSni): an allowedHosts IP/CIDR entry, or an `allow` rule that
  // lists the port (TCP or any protocol). A rule for every port does not name the port.
  // nullopt also when a deniedHosts CIDR covers the address.
  std::optional<std::string> explicitAddressRule(const IpAddress& addr, uint16_t port) const;
  // For each address in a DNS answer egressd's resolver relays to a sandbox (docs/dns.md):
  // refuses ("denied_cidr", "special_destination", "embedded_v4_destination") an address in
  // a deniedHosts CIDR, and a special or embedded-IPv4 one that no allow CIDR covers (for
  // any port or protocol); private addresses pass (the kernel judges connects to them).
  // Allowed: reason "allowed".
  HostDecision judgeAnswerAddress(const IpAddress& addr) const;

  bool enableInternet() const;
  // Whether allowedHosts was written, which makes names it does not match denied.
  bool hasAllowList() const;

 private:
  struct Compiled;
  // Immutable once built, so copies share it and any thread may read it.
  std::shared_ptr<const Compiled> compiled_;
};

}  // namespace egressd::policy
