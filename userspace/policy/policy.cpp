// YAML -> Policy: the policy schema (which keys exist, their types and what they mean) over
// yaml/strict_reader.h, which checks well-formedness and places every error. A check reports
// failure by throwing yaml::FieldError; the walk catches it per top-level key, per allow rule
// and per unknown key and goes on, so one pass reports every independent mistake (egressd
// validate); yaml-cpp's own exceptions end the walk. Nothing thrown here leaves the public API.
// The handlers part of the schema (secrets, outboundHandlers, outbound, outboundByHost) is in
// policy_handlers_schema.cpp.
#include "policy/policy.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common/ascii.h"
#include "common/fs.h"
#include "policy/host_policy.h"
#include "policy/policy_parser.h"
#include "policy/policy_warnings.h"
#include "yaml/strict_reader.h"

namespace egressd::policy {
namespace schema {

bool isNameChar(char c, bool allowDash) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || (allowDash && c == '-');
}

namespace {

using yaml::boolean;
using yaml::elements;
using yaml::entries;
using yaml::fail;
using yaml::integer;
using yaml::quote;
using yaml::scalar;

uint16_t port(const Field& field) {
  return static_cast<uint16_t>(integer(field, 1, 65535));
}

}  // namespace

HostGlob Parser::hostGlob(const Field& field) const {
  const std::string text = scalar(field, "a host name or glob");
  auto normalized = normalizeHostGlob(text);
  if (!normalized.ok()) {
    fail(field, normalized.error().message());
  }
  return HostGlob{*normalized, text, field.pos};
}

HostList Parser::hostList(const Field& field) const {
  HostList list;
  list.present = true;
  size_t index = 0;
  for (const Field& entry : elements(field, "hosts, IPs or CIDRs")) {
    const std::string text = scalar(entry, "a host glob, IP or CIDR");
    if (looksLikeIpOrCidr(text)) {
      auto cidr = parseCidr(text);
      if (!cidr.ok()) {
        fail(entry, cidr.error().message());
      }
      list.cidrs.push_back(HostCidr{*cidr, text, index, entry.pos});
    } else {
      list.globs.push_back(hostGlob(entry));
    }
    ++index;
  }
  return list;
}

InterceptHttps Parser::interceptHttps(const Field& field) const {
  InterceptHttps intercept;
  if (field.node.IsSequence()) {
    for (const Field& entry : elements(field, "host globs")) {
      intercept.hosts.push_back(hostGlob(entry));
    }
    return intercept;
  }
  if (!field.node.IsScalar()) {
    fail(field, "expected true, false or a list of host globs");
  }
  intercept.all = boolean(field);
  return intercept;
}

std::vector<uint16_t> Parser::proxyPorts(const Field& field) const {
  const std::vector<Field> items = elements(field, "ports");
  if (items.size() > EGRESSD_MAX_PROXY_PORTS) {
    fail(field, std::to_string(items.size()) + " ports listed; at most " +
                    std::to_string(EGRESSD_MAX_PROXY_PORTS) + " are supported");
  }
  std::vector<uint16_t> ports;
  for (const Field& item : items) {
    const uint16_t value = port(item);
    if (value == kDnsPort) {
      fail(item, "port 53 cannot be proxied: DNS always goes to the pinned resolver");
    }
    if (std::find(ports.begin(), ports.end(), value) != ports.end()) {
      fail(item, "port " + std::to_string(value) + " is listed twice");
    }
    ports.push_back(value);
  }
  return ports;
}

PortRange Parser::portRange(const Field& field) const {
  const std::string text = scalar(field, "a port or a range \"N-M\"");
  const size_t dash = text.find('-');
  if (dash == std::string::npos) {
    const uint16_t value = port(field);
    return PortRange{value, value};
  }
  auto trim = [](std::string s) {
    const auto notSpace = [](unsigned char c) { return !std::isspace(c); };
    s.erase(s.begin(), std::find_if(s.begin(), s.end(), notSpace));
    s.erase(std::find_if(s.rbegin(), s.rend(), notSpace).base(), s.end());
    return s;
  };
  const auto bound = [&](const std::string& part) {
    const bool digits =
        !part.empty() && part.size() <= 5 &&
        std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    const long value = digits ? std::stol(part) : 0;
    if (value < 1 || value > 65535) {
      fail(field, "invalid port range " + quote(text) + " (ports are 1..65535)");
    }
    return static_cast<uint16_t>(value);
  };
  const uint16_t first = bound(trim(text.substr(0, dash)));
  const uint16_t last = bound(trim(text.substr(dash + 1)));
  if (first > last) {
    fail(field, "port range " + quote(text) + " is reversed");
  }
  const unsigned width = static_cast<unsigned>(last) - first + 1;
  if (width > kMaxPortRangeWidth) {
    fail(field, "port range " + quote(text) + " spans " + std::to_string(width) +
                    " ports; at most " + std::to_string(kMaxPortRangeWidth) +
                    " per entry (omit 'ports' to allow every port)");
  }
  return PortRange{first, last};
}

std::vector<PortRange> Parser::portList(const Field& field) const {
  if (field.node.IsScalar()) {
    return {portRange(field)};
  }
  const std::vector<Field> items = elements(field, "ports or ranges \"N-M\"");
  if (items.empty()) {
    fail(field, "empty list; omit 'ports' to allow every port");
  }
  std::vector<PortRange> ranges;
  ranges.reserve(items.size());
  for (const Field& item : items) {
    ranges.push_back(portRange(item));
  }
  return ranges;
}

Protocol Parser::protocol(const Field& field) const {
  const std::string text = toLowerAscii(scalar(field, "tcp, udp or any"));
  if (text == "tcp") {
    return Protocol::kTcp;
  }
  if (text == "udp") {
    return Protocol::kUdp;
  }
  if (text == "any") {
    return Protocol::kAny;
  }
  fail(field, "expected tcp, udp or any, got " + quote(text));
}

AllowRule Parser::allowRule(const Field& field, size_t index) const {
  const auto items = entries(field);
  diagnostics_.rejectUnknownKeys(field, items, {"cidr", "host", "ports", "protocol"});
  AllowRule rule;
  rule.index = index;
  rule.pos = field.pos;
  bool hasCidr = false;
  bool hasHost = false;
  for (const auto& [key, value] : items) {
    const std::string name = key.node.Scalar();
    if (name == "cidr") {
      rule.cidrText = scalar(value, "an IP or CIDR");
      auto cidr = parseCidr(rule.cidrText);
      if (!cidr.ok()) {
        fail(value, cidr.error().message());
      }
      rule.cidr = *cidr;
      hasCidr = true;
    } else if (name == "host") {
      // A name-based rule (docs/dns.md): the addresses egressd's resolver answers for it.
      if (looksLikeIpOrCidr(scalar(value, "a host name or glob"))) {
        fail(value, "an address belongs in 'cidr'; 'host' takes a host name or glob");
      }
      rule.host = hostGlob(value);
      hasHost = true;
    } else if (name == "ports") {
      rule.ports = portList(value);
    } else if (name == "protocol") {
      rule.protocol = protocol(value);
    }
  }
  if (hasCidr && hasHost) {
    fail(field, "write either 'cidr' or 'host', not both");
  }
  if (!hasCidr && !hasHost) {
    fail(field, "missing required key 'cidr' (or 'host' for a name-based rule)");
  }
  return rule;
}

// dns: {upstream, deniedAnswer, limits}; `resolver` is the old spelling of `upstream`.
DnsPolicy Parser::dns(const Field& field) const {
  const auto items = entries(field);
  diagnostics_.rejectUnknownKeys(
      field, items,
      {"upstream", "resolver", "deniedAnswer", "limits", "nameRuleGrace", "requireResolved"});
  DnsPolicy dns;
  bool hasUpstream = false;
  for (const auto& [key, value] : items) {
    const std::string name = key.node.Scalar();
    if (name == "upstream" || name == "resolver") {
      if (hasUpstream) {
        fail(key.pos, field.path,
             "'resolver' is the old spelling of 'upstream': write only one of them");
      }
      hasUpstream = true;
      dns.upstream = dnsUpstream(value);
    } else if (name == "deniedAnswer") {
      const std::string answer = toLowerAscii(scalar(value, "nxdomain or refused"));
      if (answer == "nxdomain") {
        dns.deniedAnswer = DnsDeniedAnswer::kNxDomain;
      } else if (answer == "refused") {
        dns.deniedAnswer = DnsDeniedAnswer::kRefused;
      } else {
        fail(value, "expected nxdomain or refused, got " + quote(answer));
      }
    } else if (name == "limits") {
      dns.limits = dnsLimits(value);
    } else if (name == "requireResolved") {
      dns.requireResolved = boolean(value);
    } else if (name == "nameRuleGrace") {
      dns.nameRuleGraceSeconds = static_cast<uint32_t>(integer(value, 0, 86400));
    }
  }
  return dns;
}

// One address ("127.0.0.53:53", "[::1]", "10.0.0.2") or a list of them.
std::vector<Endpoint> Parser::dnsUpstream(const Field& field) const {
  std::vector<Field> items;
  if (field.node.IsSequence()) {
    items = elements(field, "addresses like 127.0.0.53:53");
    if (items.empty()) {
      fail(field, "expected at least one address like 127.0.0.53:53");
    }
  } else {
    items.push_back(field);
  }
  std::vector<Endpoint> upstream;
  for (const Field& item : items) {
    const std::string text = scalar(item, "an address like 127.0.0.53:53");
    auto endpoint = parseEndpoint(text, kDnsPort);
    if (!endpoint.ok()) {
      fail(item, endpoint.error().message());
    }
    upstream.push_back(*endpoint);
  }
  return upstream;
}

DnsLimits Parser::dnsLimits(const Field& field) const {
  const auto items = entries(field);
  diagnostics_.rejectUnknownKeys(field, items,
                                 {"qps", "burst", "maxNameLength", "maxLabelLength",
                                  "uniqueNamesPerMinute", "queryBytesPerMinute"});
  DnsLimits limits;
  for (const auto& [key, value] : items) {
    const std::string name = key.node.Scalar();
    if (name == "qps") {
      limits.qps = static_cast<uint32_t>(integer(value, 1, 1000000));
    } else if (name == "burst") {
      limits.burst = static_cast<uint32_t>(integer(value, 1, 1000000));
    } else if (name == "maxNameLength") {
      limits.maxNameLength = static_cast<uint32_t>(integer(value, 1, 253));
    } else if (name == "maxLabelLength") {
      limits.maxLabelLength = static_cast<uint32_t>(integer(value, 1, 63));
    } else if (name == "uniqueNamesPerMinute") {
      limits.uniqueNamesPerMinute = static_cast<uint32_t>(integer(value, 1, 1000000));
    } else if (name == "queryBytesPerMinute") {
      limits.queryBytesPerMinute = static_cast<uint32_t>(integer(value, 64, 100000000));
    }
  }
  return limits;
}

SocketPermissions Parser::sockets(const Field& field) const {
  const auto items = entries(field);
  diagnostics_.rejectUnknownKeys(field, items, {"ping", "raw", "other"});
  SocketPermissions perms;
  for (const auto& [key, value] : items) {
    const std::string name = key.node.Scalar();
    bool& target = name == "ping" ? perms.ping : name == "raw" ? perms.raw : perms.other;
    target = boolean(value);
  }
  return perms;
}

HttpRules Parser::httpRules(const Field& field) const {
  const auto items = entries(field);
  diagnostics_.rejectUnknownKeys(field, items,
                                 {"allowUpgrades", "allowTrace", "forwarded", "http2"});
  HttpRules rules;
  for (const auto& [key, value] : items) {
    const std::string name = key.node.Scalar();
    if (name == "allowUpgrades") {
      rules.allowUpgrades.clear();
      for (const Field& entry : elements(value, "protocol names such as websocket")) {
        const std::string text = toLowerAscii(scalar(entry, "a protocol name such as websocket"));
        // RFC 9110 7.8: protocol-name is a token; the version part is not judged.
        const bool token = !text.empty() && std::all_of(text.begin(), text.end(), [](char c) {
          return std::isalnum(static_cast<unsigned char>(c)) ||
                 std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
        });
        if (!token) {
          fail(entry, "expected a protocol name such as websocket (a token, without /version)");
        }
        if (text == "h2c") {
          fail(entry, "h2c cannot be allowed: HTTP/2 over cleartext is never forwarded");
        }
        if (std::find(rules.allowUpgrades.begin(), rules.allowUpgrades.end(), text) ==
            rules.allowUpgrades.end()) {
          rules.allowUpgrades.push_back(text);
        }
      }
    } else if (name == "allowTrace") {
      rules.allowTrace = boolean(value);
    } else if (name == "http2") {
      rules.http2 = boolean(value);
    } else if (name == "forwarded") {
      const std::string text = scalar(value, "strip or sandbox");
      if (text == "strip") {
        rules.forwarded = ForwardedMode::kStrip;
      } else if (text == "sandbox") {
        rules.forwarded = ForwardedMode::kSandbox;
      } else {
        fail(value, "expected strip or sandbox, got " + quote(text));
      }
    }
  }
  return rules;
}

TlsRules Parser::tlsRules(const Field& field) const {
  const auto items = entries(field);
  diagnostics_.rejectUnknownKeys(field, items, {"requireSni"});
  TlsRules rules;
  for (const auto& [key, value] : items) {
    rules.requireSni = boolean(value);
  }
  return rules;
}

Policy Parser::parse(std::string_view text) {
  const YAML::Node doc = yaml::loadSingleDocument(std::string(text), "a policy file");
  if (doc.IsNull()) {
    fail(SourcePos{}, "", "the policy is empty");
  }
  const Field root{doc, "", yaml::positionOf(doc.Mark())};
  if (!root.node.IsMap()) {
    fail(root, "a policy must be a mapping of keys such as name, enableInternet, allow");
  }
  const auto items = entries(root);
  diagnostics_.rejectUnknownKeys(
      root, items,
      {"name", "enableInternet", "interceptHttps", "proxyPorts", "allowedHosts", "deniedHosts",
       "allow", "dns", "sockets", "denyStatus", "secrets", "outboundByHost", "outbound",
       "outboundHandlers", "http", "tls"});
  Policy policy;
  policy.sourceName = diagnostics_.source();
  bool hasName = false;
  for (const auto& [key, value] : items) {
    diagnostics_.recovering(
        [&, &key = key, &value = value] { parseTopLevel(key, value, policy, hasName); });
  }
  if (!hasName) {
    diagnostics_.error(root.pos, "", "missing required key 'name'");
  }
  if (!diagnostics_.errors().empty()) {
    // Cross-key checks would only repeat what is reported already.
    return policy;
  }
  diagnostics_.recovering([&] { checkHandlerRefs(policy); });
  addPolicyWarnings(policy, diagnostics_);
  policy.warnings = diagnostics_.takeWarnings();
  return policy;
}

void Parser::parseTopLevel(const Field& key, const Field& value, Policy& policy, bool& hasName) {
  {
    const std::string name = key.node.Scalar();
    if (name == "name") {
      hasName = true;  // written, if wrongly: reported as that, not as missing
      policy.name = scalar(value, "a name");
      // Names show up in paths, logs and the control API.
      if (policy.name.empty() || policy.name.size() > 64 ||
          !std::all_of(policy.name.begin(), policy.name.end(),
                       [](char c) { return isNameChar(c, true) || c == '.'; })) {
        fail(value, "policy names are 1-64 letters, digits, '_', '-' or '.'");
      }
    } else if (name == "enableInternet") {
      policy.enableInternet = boolean(value);
    } else if (name == "interceptHttps") {
      policy.interceptHttps = interceptHttps(value);
    } else if (name == "proxyPorts") {
      policy.proxyPorts = proxyPorts(value);
    } else if (name == "allowedHosts") {
      policy.allowedHosts = hostList(value);
    } else if (name == "deniedHosts") {
      policy.deniedHosts = hostList(value);
    } else if (name == "allow") {
      size_t index = 0;
      for (const Field& entry : elements(value, "rules {cidr, ports, protocol}")) {
        diagnostics_.recovering([&] { policy.allow.push_back(allowRule(entry, index)); });
        ++index;
      }
    } else if (name == "dns") {
      policy.dns = dns(value);
    } else if (name == "sockets") {
      policy.sockets = sockets(value);
    } else if (name == "denyStatus") {
      policy.denyStatus = static_cast<int>(integer(value, 400, 599));
    } else if (name == "secrets") {
      policy.secrets = secrets(value);
    } else if (name == "outboundByHost") {
      policy.outboundByHost = outboundByHost(value);
    } else if (name == "outbound") {
      policy.outbound = handlerRef(value);
    } else if (name == "outboundHandlers") {
      policy.outboundHandlers = outboundHandlers(value);
    } else if (name == "http") {
      policy.http = httpRules(value);
    } else if (name == "tls") {
      policy.tls = tlsRules(value);
    }
  }
}

}  // namespace schema

std::string_view protocolName(Protocol protocol) {
  switch (protocol) {
    case Protocol::kTcp:
      return "tcp";
    case Protocol::kUdp:
      return "udp";
    case Protocol::kAny:
      break;
  }
  return "any";
}

Result<std::string> normalizeHostGlob(std::string_view text) {
  return checkHostSyntax(std::string(text), text, HostSyntax::kGlob);
}

bool requiresSni(const Policy& policy) {
  return policy.tls.requireSni.value_or(policy.allowedHosts.present);
}

PolicyCheck checkPolicy(std::string_view yamlText, const std::string& sourceName) {
  yaml::Diagnostics diagnostics(sourceName);
  std::optional<Policy> policy;
  diagnostics.run("policy", [&] { policy = schema::Parser(diagnostics).parse(yamlText); });
  PolicyCheck check;
  check.errors = diagnostics.errors();
  if (check.errors.empty() && policy) {
    check.warnings = policy->warnings;
    check.policy = std::move(policy);
  }
  return check;
}

PolicyCheck checkPolicyFile(const std::string& path) {
  auto text = readFile(path);
  if (!text.ok()) {
    PolicyCheck check;
    check.errors.push_back(Diagnostic{path, {}, "", text.error().message()});
    check.unreadable = true;
    return check;
  }
  return checkPolicy(*text, path);
}

Result<Policy> parsePolicy(std::string_view yamlText, const std::string& sourceName) {
  PolicyCheck check = checkPolicy(yamlText, sourceName);
  if (check.policy) {
    return std::move(*check.policy);
  }
  // Every error, one per line: the first line alone reads as before.
  std::string message;
  for (const Diagnostic& d : check.errors) {
    message += (message.empty() ? "" : "\n") + d.text();
  }
  return Error(EINVAL, message);
}

Result<Policy> loadPolicyFile(const std::string& path) {
  auto text = readFile(path);
  if (!text.ok()) {
    return std::move(text).error();
  }
  return parsePolicy(*text, path);
}

}  // namespace egressd::policy
