// The policy model (docs/design.md "Policy file") and its YAML loader. Loading is
// all-or-nothing and never throws: the problems come back as one Error, one per line, each
// starting with "FILE:LINE:COL: " (1-based) and naming the field (checkPolicy() gives them
// apart, for egressd validate), so a rejected policy can be fixed from the message alone
// while the rules already in force stay untouched. Loading never reads secret files or
// environment variables; it only records where secrets come from.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "policy/cidr.h"
#include "yaml/diagnostic.h"

namespace egressd::policy {

// Where something was written, for messages about it after parsing (1-based; 0 = unknown).
using SourcePos = yaml::SourcePos;

inline constexpr int kDefaultDenyStatus = 403;
inline constexpr uint16_t kDnsPort = 53;
// A port range in `allow` expands to one map key per port; this bounds a single entry.
inline constexpr unsigned kMaxPortRangeWidth = 1024;

// A host glob as the proxy and DNS match it: lowercase, trailing dot removed.
struct HostGlob {
  std::string pattern;  // normalized
  std::string text;     // as written
  SourcePos pos;
};

// An allowedHosts/deniedHosts entry that is an IP or CIDR (enforced in the kernel).
struct HostCidr {
  Cidr cidr;
  std::string text;  // as written
  size_t index = 0;  // position in the YAML list, for rule names and messages
  SourcePos pos;
};

// allowedHosts / deniedHosts split by kind; each entry lands in exactly one vector.
struct HostList {
  bool present = false;  // the key was written (allowedHosts: [] still counts as set)
  std::vector<HostGlob> globs;
  std::vector<HostCidr> cidrs;

  bool empty() const { return globs.empty() && cidrs.empty(); }
};

enum class Protocol { kAny, kTcp, kUdp };
std::string_view protocolName(Protocol protocol);

struct PortRange {
  uint16_t first = 0;
  uint16_t last = 0;  // inclusive; equal to first for a single port
};

// One `allow` entry: non-HTTP traffic permitted in the kernel, to a CIDR or (`host`, a
// name-based rule, docs/dns.md) to the addresses egressd's resolver gives the sandbox for
// names the glob matches. Exactly one of cidr / host is set.
struct AllowRule {
  Cidr cidr;
  std::string cidrText;          // as written
  std::optional<HostGlob> host;  // name-based rule: no static kernel entry
  std::vector<PortRange> ports;  // empty = every port
  Protocol protocol = Protocol::kAny;
  size_t index = 0;
  SourcePos pos;
};

// interceptHttps: false (passthrough everywhere), true (intercept everything) or a list of
// host globs to intercept.
struct InterceptHttps {
  bool all = false;
  std::vector<HostGlob> hosts;
};

// Socket kinds the kernel refuses by default and a policy may re-enable.
struct SocketPermissions {
  bool ping = false;   // ICMP/ICMPv6 datagram sockets
  bool raw = false;    // SOCK_RAW
  bool other = false;  // MPTCP, SCTP, UDP-Lite
};

struct SecretSource {
  enum class Kind { kFile, kEnv };
  Kind kind = Kind::kFile;
  std::string value;  // the file path or the environment variable name
  SourcePos pos;
};

// A use of a handler: by name, with optional params.
struct HandlerRef {
  std::string handler;
  nlohmann::json params = nlohmann::json::object();
  SourcePos pos;  // of the handler name, for "unknown handler" messages
};

struct HostHandler {
  HostGlob host;
  HandlerRef ref;
};

// One action of a handler, e.g. {"setHeader": {"name": ..., "value": ...}}: a JSON object
// with exactly one key, the action's name. Its meaning is the proxy's business.
struct HandlerAction {
  nlohmann::json action;
  SourcePos pos;

  const std::string& kind() const { return action.begin().key(); }
  const nlohmann::json& args() const { return action.begin().value(); }
};

struct Handler {
  std::string name;
  std::vector<HandlerAction> actions;
  SourcePos pos;
};

// --- What the proxy lets a request carry upstream (docs/security.md): policy `http:` and
// `tls:`. Defaults are the safe choice; each field is a switch an author turns on.
enum class ForwardedMode {
  kStrip,    // drop the sandbox's Forwarded, X-Forwarded-*, X-Real-IP, ... (default)
  kSandbox,  // drop them and send egressd's own: Forwarded: for="_<sandbox>", X-Forwarded-For
};
struct HttpRules {
  // Upgrade protocols forwarded (lowercase names, no version); any other Upgrade is answered
  // 403 by egressd. h2c is never allowed.
  std::vector<std::string> allowUpgrades = {"websocket"};
  bool allowTrace = false;  // TRACE/TRACK are answered 405 unless true
  // Intercepted TLS offers ALPN h2 besides http/1.1; every stream is judged like an HTTP/1.1
  // request (docs/http2.md). False: http/1.1 only, and an h2-only client is refused.
  bool http2 = true;
  ForwardedMode forwarded = ForwardedMode::kStrip;
};
struct TlsRules {
  // Refuse a ClientHello without a usable server name (none, or hidden by ECH) unless an
  // explicit address rule covers the destination. Unset: true when allowedHosts is written.
  std::optional<bool> requireSni;
};

// ---- dns: the pinned resolver egressd runs for each sandbox (docs/dns.md) ----
// Per-sandbox exfiltration limits; the defaults are far above what a package manager or a
// browser does, and far below what a DNS tunnel needs.
struct DnsLimits {
  uint32_t qps = 100;                         // sustained queries per second
  uint32_t burst = 500;                       // queries above qps absorbed at once
  uint32_t maxNameLength = 200;               // characters, without the trailing dot
  uint32_t maxLabelLength = 63;               // characters of one label
  uint32_t uniqueNamesPerMinute = 200;        // distinct forwarded names per registered domain
  uint32_t queryBytesPerMinute = 128 * 1024;  // bytes of forwarded queries

  bool operator==(const DnsLimits&) const = default;
};

enum class DnsDeniedAnswer { kNxDomain, kRefused };

struct DnsPolicy {
  // dns.upstream (old spelling dns.resolver): where egressd forwards allowed queries, in
  // order. Empty: the daemon's --upstream-resolver, else /etc/resolv.conf.
  std::vector<Endpoint> upstream;
  DnsDeniedAnswer deniedAnswer = DnsDeniedAnswer::kNxDomain;  // dns.deniedAnswer
  DnsLimits limits;                                           // dns.limits
  // dns.nameRuleGrace: seconds a name-based allow rule's addresses stay in the kernel
  // after their answer's TTL ran out (unless the name is resolved again).
  uint32_t nameRuleGraceSeconds = 60;
  // dns.requireResolved: the proxy serves an IP-literal Host or a TLS connection without SNI
  // only to an address this sandbox's resolver answered it (for an allowed name) within
  // the answer's TTL + nameRuleGrace.
  bool requireResolved = false;
};
// ---- end dns ----

struct Policy {
  std::string sourceName;  // file path (or the name given to parsePolicy)
  std::string name;
  bool enableInternet = false;
  InterceptHttps interceptHttps;
  std::vector<uint16_t> proxyPorts = {80, 443};
  HostList allowedHosts;
  HostList deniedHosts;
  std::vector<AllowRule> allow;
  DnsPolicy dns;
  SocketPermissions sockets;
  int denyStatus = kDefaultDenyStatus;
  std::map<std::string, SecretSource> secrets;
  std::vector<HostHandler> outboundByHost;  // in file order
  std::optional<HandlerRef> outbound;
  std::map<std::string, Handler> outboundHandlers;
  HttpRules http;  // `http:`
  TlsRules tls;    // `tls:`
  // Valid but probably not what the author meant ("FILE:LINE:COL: ..."), for the caller
  // to log; e.g. an allow rule for a port that the proxy or DNS pinning always takes first.
  std::vector<std::string> warnings;
};

// tls.requireSni as written, else its default (true when allowedHosts is written).
bool requiresSni(const Policy& policy);

// One problem found in a policy file, with where it is; text() is "FILE:LINE:COL: PATH: MESSAGE".
using Diagnostic = yaml::Diagnostic;

// Every error of a policy, not only the first (`egressd validate`): each top-level key,
// each allow rule and each unknown key is checked on its own. `policy` is set only when
// there is no error; `unreadable` when the file could not be read at all.
struct PolicyCheck {
  std::optional<Policy> policy;
  std::vector<Diagnostic> errors;
  std::vector<std::string> warnings;
  bool unreadable = false;
};
PolicyCheck checkPolicy(std::string_view yamlText, const std::string& sourceName);
PolicyCheck checkPolicyFile(const std::string& path);

// The first error's text (and those of the others, one per line) as one Error.
Result<Policy> loadPolicyFile(const std::string& path);
// `sourceName` only labels messages ("FILE" above); nothing is read from it.
Result<Policy> parsePolicy(std::string_view yamlText, const std::string& sourceName);

// Host glob syntax shared with runtime overrides (allowHost, setOutboundByHost, ...):
// returns the normalized pattern or a reason such as "empty label in \"a..b\"".
Result<std::string> normalizeHostGlob(std::string_view text);

}  // namespace egressd::policy
