// YAML -> Policy. The walk is strict on purpose: unknown and duplicate keys, YAML 1.1
// booleans ("yes", "on"), empty values and a second YAML document are all errors, because a
// policy that silently means something other than what its author wrote is a security bug.
// Inside this file a check reports failure by throwing PolicyError: every check sits several
// levels deep in the YAML walk. The walk catches it per top-level key, per allow rule and
// per unknown key and goes on, so one pass reports every independent mistake (egressd
// validate); yaml-cpp's own exceptions end the walk. Nothing thrown here leaves the public API.
#include "policy/policy.h"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <exception>
#include <map>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "common/ascii.h"
#include "common/fs.h"
#include "policy/host_policy.h"

namespace egressd::policy {

namespace {

// Conversion of handler actions/params to JSON: limits for aliases that expand
// exponentially ("billion laughs") or refer to themselves, which yaml-cpp accepts.
constexpr int kMaxJsonDepth = 32;
constexpr size_t kMaxJsonNodes = 100000;

struct PolicyError {
  Diagnostic diagnostic;
};

// A YAML node with the path that names it in messages ("allow[0].cidr") and its position.
struct Field {
  YAML::Node node;
  std::string path;
  SourcePos pos;

  bool isNull() const { return node.IsNull(); }
};

SourcePos posOf(const YAML::Mark& mark) {
  if (mark.line < 0 || mark.column < 0) {
    return {};
  }
  return {mark.line + 1, mark.column + 1};
}

std::string quote(std::string_view text) {
  return "\"" + std::string(text) + "\"";
}

size_t editDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) {
    row[j] = j;
  }
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      const size_t substitute = diagonal + (a[i - 1] == b[j - 1] ? 0 : 1);
      row[j] = std::min({above + 1, row[j - 1] + 1, substitute});
      diagonal = above;
    }
  }
  return row[b.size()];
}

// " (did you mean 'enableInternet'?)" when one candidate is close enough, else "".
std::string suggestion(std::string_view word, const std::vector<std::string>& candidates) {
  const std::string lowered = toLowerAscii(word);
  const size_t allowed = word.size() >= 5 ? 2 : 1;
  std::string best;
  size_t bestDistance = allowed + 1;
  for (const auto& candidate : candidates) {
    const size_t distance = editDistance(lowered, toLowerAscii(candidate));
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best.empty() ? "" : " (did you mean '" + best + "'?)";
}

bool isNameChar(char c, bool allowDash) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || (allowDash && c == '-');
}

bool isName(std::string_view text, bool allowDash) {
  return !text.empty() &&
         std::all_of(text.begin(), text.end(), [&](char c) { return isNameChar(c, allowDash); });
}

// Sees each document's start and whether it holds anything, without building nodes.
class DocumentScan : public YAML::EventHandler {
 public:
  void OnDocumentStart(const YAML::Mark& mark) override {
    start = mark;
    content = false;
  }
  void OnDocumentEnd() override {}
  void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
  void OnAlias(const YAML::Mark&, YAML::anchor_t) override { content = true; }
  void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                const std::string&) override {
    content = true;
  }
  void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                       YAML::EmitterStyle::value) override {
    content = true;
  }
  void OnSequenceEnd() override {}
  void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  YAML::EmitterStyle::value) override {
    content = true;
  }
  void OnMapEnd() override {}

  YAML::Mark start;
  bool content = false;
};

class Parser {
 public:
  explicit Parser(std::string sourceName) : source_(std::move(sourceName)) {}

  // Never throws PolicyError; errors() then says whether the Policy means anything.
  Policy parse(std::string_view text);
  const std::vector<Diagnostic>& errors() const { return errors_; }

 private:
  // Runs one independent part of the walk; its failure is recorded, the walk goes on.
  template <typename F>
  void recovering(F&& part) const {
    try {
      part();
    } catch (const PolicyError& e) {
      errors_.push_back(e.diagnostic);
    }
  }
  Diagnostic diagnostic(const SourcePos& pos, const std::string& path,
                        const std::string& reason) const {
    return Diagnostic{source_, pos, path, reason};
  }
  [[noreturn]] void fail(const SourcePos& pos, const std::string& path,
                         const std::string& reason) const;
  [[noreturn]] void fail(const Field& field, const std::string& reason) const {
    fail(field.pos, field.path, reason);
  }
  void warn(const SourcePos& pos, const std::string& path, const std::string& reason);

  // Map entries in file order; rejects non-scalar and duplicate keys.
  std::vector<std::pair<Field, Field>> entries(const Field& map, bool hostKeys = false) const;
  void rejectUnknownKeys(const Field& map, const std::vector<std::pair<Field, Field>>& items,
                         const std::vector<std::string>& known) const;
  std::vector<Field> elements(const Field& seq, const std::string& what) const;

  std::string scalar(const Field& field, const std::string& what) const;
  bool boolean(const Field& field) const;
  long integer(const Field& field, long min, long max) const;
  uint16_t port(const Field& field) const;

  HostList hostList(const Field& field) const;
  HostGlob hostGlob(const Field& field) const;
  InterceptHttps interceptHttps(const Field& field) const;
  std::vector<uint16_t> proxyPorts(const Field& field) const;
  AllowRule allowRule(const Field& field, size_t index) const;
  std::vector<PortRange> portList(const Field& field) const;
  PortRange portRange(const Field& field) const;
  Protocol protocol(const Field& field) const;
  DnsPolicy dns(const Field& field) const;
  std::vector<Endpoint> dnsUpstream(const Field& field) const;
  DnsLimits dnsLimits(const Field& field) const;
  SocketPermissions sockets(const Field& field) const;
  std::map<std::string, SecretSource> secrets(const Field& field) const;
  std::vector<HostHandler> outboundByHost(const Field& field) const;
  HandlerRef handlerRef(const Field& field) const;
  std::map<std::string, Handler> outboundHandlers(const Field& field) const;
  nlohmann::json toJson(const Field& field, int depth, size_t& budget) const;

  void parseTopLevel(const Field& key, const Field& value, Policy& policy, bool& hasName);
  void checkSingleDocument(const std::string& yaml) const;
  void checkHandlerRefs(const Policy& policy) const;
  void addAllowWarnings(Policy& policy);
  // `http:` / `tls:` (docs/security.md) and the domain-fronting warning.
  HttpRules httpRules(const Field& field) const;
  TlsRules tlsRules(const Field& field) const;
  void addFrontingWarnings(const Policy& policy);

  std::string source_;
  std::vector<std::string> warnings_;
  mutable std::vector<Diagnostic> errors_;
};

void Parser::fail(const SourcePos& pos, const std::string& path, const std::string& reason) const {
  throw PolicyError{diagnostic(pos, path, reason)};
}

void Parser::warn(const SourcePos& pos, const std::string& path, const std::string& reason) {
  warnings_.push_back(source_ + ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column) +
                      ": " + path + ": " + reason);
}

std::vector<std::pair<Field, Field>> Parser::entries(const Field& map, bool hostKeys) const {
  if (!map.node.IsMap()) {
    fail(map, "expected a mapping (key: value)");
  }
  std::vector<std::pair<Field, Field>> out;
  std::map<std::string, SourcePos> seen;
  for (auto it = map.node.begin(); it != map.node.end(); ++it) {
    const SourcePos keyPos = posOf(it->first.Mark());
    if (!it->first.IsScalar()) {
      fail(keyPos, map.path, "keys must be plain strings");
    }
    const std::string key = it->first.Scalar();
    std::string childPath;
    if (hostKeys) {
      childPath = map.path + "[" + quote(key) + "]";
    } else {
      childPath = map.path.empty() ? key : map.path + "." + key;
    }
    if (auto [prev, inserted] = seen.emplace(key, keyPos); !inserted) {
      fail(keyPos, childPath,
           "duplicate key (first at line " + std::to_string(prev->second.line) + ")");
    }
    // A null value's own mark points at whatever token follows; the key is where it is.
    const SourcePos valuePos = it->second.IsNull() ? keyPos : posOf(it->second.Mark());
    out.push_back({Field{it->first, childPath, keyPos}, Field{it->second, childPath, valuePos}});
  }
  return out;
}

void Parser::rejectUnknownKeys(const Field& map, const std::vector<std::pair<Field, Field>>& items,
                               const std::vector<std::string>& known) const {
  for (const auto& [key, value] : items) {
    const std::string name = key.node.Scalar();
    if (std::find(known.begin(), known.end(), name) == known.end()) {
      // Recorded, not thrown: the walk skips the key and reports the rest of the map too.
      errors_.push_back(
          diagnostic(key.pos, map.path, "unknown key '" + name + "'" + suggestion(name, known)));
    }
  }
}

std::vector<Field> Parser::elements(const Field& seq, const std::string& what) const {
  if (!seq.node.IsSequence()) {
    fail(seq, "expected a list of " + what);
  }
  std::vector<Field> out;
  size_t index = 0;
  for (const auto& element : seq.node) {
    SourcePos pos = posOf(element.Mark());
    if (pos.line == 0) {
      pos = seq.pos;
    }
    out.push_back(Field{element, seq.path + "[" + std::to_string(index) + "]", pos});
    ++index;
  }
  return out;
}

std::string Parser::scalar(const Field& field, const std::string& what) const {
  if (field.isNull()) {
    fail(field, "missing value (expected " + what + ")");
  }
  if (!field.node.IsScalar()) {
    fail(field, "expected " + what);
  }
  return field.node.Scalar();
}

bool Parser::boolean(const Field& field) const {
  const std::string text = scalar(field, "true or false");
  // YAML 1.2 core schema only: "yes"/"on" are strings, and guessing would be a bug.
  if (text == "true" || text == "True" || text == "TRUE") {
    return true;
  }
  if (text == "false" || text == "False" || text == "FALSE") {
    return false;
  }
  fail(field, "expected true or false, got " + quote(text));
}

long Parser::integer(const Field& field, long min, long max) const {
  const std::string range = std::to_string(min) + ".." + std::to_string(max);
  const std::string text = scalar(field, "an integer in " + range);
  bool digits = !text.empty() && text.size() <= 9 &&
                std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
  const long value = digits ? std::stol(text) : -1;
  if (!digits || value < min || value > max) {
    fail(field, "expected an integer in " + range + ", got " + quote(text));
  }
  return value;
}

uint16_t Parser::port(const Field& field) const {
  return static_cast<uint16_t>(integer(field, 1, 65535));
}

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
  rejectUnknownKeys(field, items, {"cidr", "host", "ports", "protocol"});
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
  rejectUnknownKeys(
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
  rejectUnknownKeys(field, items,
                    {"qps", "burst", "maxNameLength", "maxLabelLength", "uniqueNamesPerMinute",
                     "queryBytesPerMinute"});
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
  rejectUnknownKeys(field, items, {"ping", "raw", "other"});
  SocketPermissions perms;
  for (const auto& [key, value] : items) {
    const std::string name = key.node.Scalar();
    bool& target = name == "ping" ? perms.ping : name == "raw" ? perms.raw : perms.other;
    target = boolean(value);
  }
  return perms;
}

std::map<std::string, SecretSource> Parser::secrets(const Field& field) const {
  std::map<std::string, SecretSource> out;
  for (const auto& [key, value] : entries(field)) {
    const std::string name = key.node.Scalar();
    if (!isName(name, false)) {
      fail(key, "secret names may contain only letters, digits and '_'");
    }
    const auto items = entries(value);
    rejectUnknownKeys(value, items, {"file", "env"});
    if (items.size() != 1) {
      fail(value, "expected exactly one of 'file' or 'env'");
    }
    const auto& [kindKey, source] = items.front();
    SecretSource secret;
    secret.pos = source.pos;
    secret.value = scalar(source, "a path or variable name");
    if (kindKey.node.Scalar() == "file") {
      secret.kind = SecretSource::Kind::kFile;
      // The daemon's working directory is arbitrary; a relative path would depend on it.
      if (secret.value.empty() || secret.value.front() != '/') {
        fail(source, "secret files need an absolute path, got " + quote(secret.value));
      }
    } else {
      secret.kind = SecretSource::Kind::kEnv;
      if (!isName(secret.value, false) ||
          std::isdigit(static_cast<unsigned char>(secret.value[0]))) {
        fail(source, "invalid environment variable name " + quote(secret.value));
      }
    }
    out.emplace(name, std::move(secret));
  }
  return out;
}

HandlerRef Parser::handlerRef(const Field& field) const {
  HandlerRef ref;
  if (field.node.IsScalar()) {
    ref.handler = field.node.Scalar();
    ref.pos = field.pos;
  } else {
    if (!field.node.IsMap()) {
      fail(field, "expected a handler name or {handler: NAME, params: {...}}");
    }
    const auto items = entries(field);
    rejectUnknownKeys(field, items, {"handler", "params"});
    bool hasHandler = false;
    for (const auto& [key, value] : items) {
      if (key.node.Scalar() == "handler") {
        ref.handler = scalar(value, "a handler name");
        ref.pos = value.pos;
        hasHandler = true;
      } else {
        if (!value.node.IsMap()) {
          fail(value, "expected a mapping of parameters");
        }
        size_t budget = kMaxJsonNodes;
        ref.params = toJson(value, 0, budget);
      }
    }
    if (!hasHandler) {
      fail(field, "missing required key 'handler'");
    }
  }
  if (!isName(ref.handler, true)) {
    fail(ref.pos, field.path, "invalid handler name " + quote(ref.handler));
  }
  return ref;
}

std::vector<HostHandler> Parser::outboundByHost(const Field& field) const {
  std::vector<HostHandler> out;
  std::map<std::string, SourcePos> seen;
  for (const auto& [key, value] : entries(field, true)) {
    HostGlob host = hostGlob(key);
    if (auto [prev, inserted] = seen.emplace(host.pattern, key.pos); !inserted) {
      fail(key, "same host as line " + std::to_string(prev->second.line));
    }
    out.push_back(HostHandler{std::move(host), handlerRef(value)});
  }
  return out;
}

std::map<std::string, Handler> Parser::outboundHandlers(const Field& field) const {
  std::map<std::string, Handler> out;
  for (const auto& [key, value] : entries(field)) {
    Handler handler;
    handler.name = key.node.Scalar();
    handler.pos = key.pos;
    if (!isName(handler.name, true)) {
      fail(key, "handler names may contain only letters, digits, '_' and '-'");
    }
    size_t budget = kMaxJsonNodes;
    for (const Field& step : elements(value, "actions")) {
      if (!step.node.IsMap() || step.node.size() != 1) {
        fail(step,
             "an action is a mapping with exactly one key, e.g. "
             "setHeader: { name: ..., value: ... }");
      }
      handler.actions.push_back(HandlerAction{toJson(step, 0, budget), step.pos});
    }
    out.emplace(handler.name, std::move(handler));
  }
  return out;
}

nlohmann::json Parser::toJson(const Field& field, int depth, size_t& budget) const {
  if (depth > kMaxJsonDepth) {
    fail(field, "nested more than " + std::to_string(kMaxJsonDepth) + " levels deep");
  }
  if (budget == 0) {
    fail(field, "too large (more than " + std::to_string(kMaxJsonNodes) + " values)");
  }
  --budget;
  const YAML::Node& node = field.node;
  if (node.IsNull()) {
    return nullptr;
  }
  if (node.IsSequence()) {
    nlohmann::json array = nlohmann::json::array();
    for (const Field& element : elements(field, "values")) {
      array.push_back(toJson(element, depth + 1, budget));
    }
    return array;
  }
  if (node.IsMap()) {
    nlohmann::json object = nlohmann::json::object();
    for (const auto& [key, value] : entries(field)) {
      object[key.node.Scalar()] = toJson(value, depth + 1, budget);
    }
    return object;
  }
  const std::string text = node.Scalar();
  // Quoted scalars ("!" tag) and explicit tags stay strings; plain ones resolve as in the
  // YAML 1.2 core schema, so `status: 405` is a number and `value: "405"` a string.
  if (node.Tag() != "?") {
    return text;
  }
  if (text == "null" || text == "Null" || text == "NULL" || text == "~") {
    return nullptr;
  }
  if (text == "true" || text == "True" || text == "TRUE") {
    return true;
  }
  if (text == "false" || text == "False" || text == "FALSE") {
    return false;
  }
  nlohmann::json number = nlohmann::json::parse(text, nullptr, false);
  if (!number.is_discarded() && number.is_number()) {
    return number;
  }
  return text;
}

void Parser::checkHandlerRefs(const Policy& policy) const {
  std::vector<std::string> names;
  for (const auto& [name, handler] : policy.outboundHandlers) {
    names.push_back(name);
  }
  auto check = [&](const HandlerRef& ref, const std::string& path) {
    if (policy.outboundHandlers.count(ref.handler) == 0) {
      fail(ref.pos, path,
           "unknown handler '" + ref.handler + "' (not in outboundHandlers)" +
               suggestion(ref.handler, names));
    }
  };
  for (const auto& entry : policy.outboundByHost) {
    check(entry.ref, "outboundByHost[" + quote(entry.host.text) + "]");
  }
  if (policy.outbound) {
    check(*policy.outbound, "outbound");
  }
}

void Parser::addAllowWarnings(Policy& policy) {
  for (const AllowRule& rule : policy.allow) {
    const std::string path = "allow[" + std::to_string(rule.index) + "]";
    for (const PortRange& range : rule.ports) {
      if (range.first <= kDnsPort && kDnsPort <= range.last) {
        warn(rule.pos, path,
             "port 53 always goes to the pinned DNS resolver; this rule never applies to it");
      }
      if (rule.protocol == Protocol::kUdp) {
        continue;
      }
      for (uint16_t proxied : policy.proxyPorts) {
        if (range.first <= proxied && proxied <= range.last) {
          warn(rule.pos, path,
               "TCP port " + std::to_string(proxied) +
                   " is in proxyPorts and always goes through the proxy, where this rule " +
                   "only opens requests to the address itself (an IP-literal Host, TLS " +
                   "without a server name)" +
                   (rule.protocol == Protocol::kTcp ? "" : "; for UDP it applies as written"));
        }
      }
    }
  }
}

// Not YAML::LoadAll: in yaml-cpp 0.7 a ',' at document level (",name: x") makes the parser
// yield an empty document without consuming anything, so LoadAll allocates documents until
// memory runs out. The event parser can be stopped, and a document that starts where the
// previous one did is exactly that stray token.
void Parser::checkSingleDocument(const std::string& yaml) const {
  std::istringstream in(yaml);
  YAML::Parser parser(in);
  DocumentScan scan;
  int previousStart = -1;
  for (int count = 0; parser.HandleNextDocument(scan); ++count) {
    if (scan.start.pos == previousStart) {
      const auto at = static_cast<size_t>(scan.start.pos);
      const char c = at < yaml.size() ? yaml[at] : '?';
      fail(posOf(scan.start), "", std::string("YAML syntax error: unexpected '") + c + "'");
    }
    // A trailing "---" or "..." with nothing after it is harmless; a second policy is not.
    if (count > 0 && scan.content) {
      fail(posOf(scan.start), "", "only one YAML document is allowed in a policy file");
    }
    previousStart = scan.start.pos;
  }
}

HttpRules Parser::httpRules(const Field& field) const {
  const auto items = entries(field);
  rejectUnknownKeys(field, items, {"allowUpgrades", "allowTrace", "forwarded"});
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
  rejectUnknownKeys(field, items, {"requireSni"});
  TlsRules rules;
  for (const auto& [key, value] : items) {
    rules.requireSni = boolean(value);
  }
  return rules;
}

// Names served by CDNs that route on the Host header inside TLS: a connection whose SNI is
// one of them may carry requests for any other customer of that CDN (domain fronting),
// which passthrough cannot see. Suffixes, lowercase.
constexpr std::string_view kFrontingCdnSuffixes[] = {
    "cloudfront.net",        "azureedge.net",      "azurefd.net",  "fastly.net",
    "fastlylb.net",          "akamaized.net",      "akamaihd.net", "edgekey.net",
    "edgesuite.net",         "googleapis.com",     "appspot.com",  "cdn.cloudflare.net",
    "workers.dev",           "pages.dev",          "b-cdn.net",    "cdn77.org",
    "stackpathcdn.com",      "herokuapp.com",      "vercel.app",   "netlify.app",
    "blob.core.windows.net", "trafficmanager.net", "msecnd.net",
};

void Parser::addFrontingWarnings(const Policy& policy) {
  if (policy.interceptHttps.all || policy.outbound) {
    return;  // every TLS connection is intercepted (a catch-all handler forces it)
  }
  // Whether interception (interceptHttps list or a handler bound by name) covers `name`.
  auto intercepted = [&policy](const std::string& name) {
    for (const HostGlob& glob : policy.interceptHttps.hosts) {
      if (hostGlobMatches(glob.pattern, name)) {
        return true;
      }
    }
    for (const HostHandler& h : policy.outboundByHost) {
      if (hostGlobMatches(h.host.pattern, name)) {
        return true;
      }
    }
    return false;
  };
  for (const HostGlob& glob : policy.allowedHosts.globs) {
    for (std::string_view suffix : kFrontingCdnSuffixes) {
      const std::string dotted = "." + std::string(suffix);
      const bool under = glob.pattern == suffix ||
                         (glob.pattern.size() > dotted.size() && glob.pattern.ends_with(dotted));
      // A name the glob allows under this CDN: the glob itself when it is one (its '*'
      // standing for one label), else a sample name under the suffix it matches.
      std::string sample;
      if (under) {
        sample = glob.pattern;
        for (size_t star = sample.find('*'); star != std::string::npos; star = sample.find('*')) {
          sample.replace(star, 1, "egressd-fronting-probe");
        }
      } else if (hostGlobMatches(glob.pattern, "egressd-fronting-probe" + dotted)) {
        sample = "egressd-fronting-probe" + dotted;
      } else {
        continue;
      }
      if (intercepted(sample)) {
        continue;
      }
      warn(glob.pos, "allowedHosts",
           quote(glob.text) + " allows names on " + std::string(suffix) +
               ", a CDN that routes on the Host header inside TLS: under passthrough a "
               "connection for an allowed name can carry requests for any other site on it "
               "(domain fronting); list it in interceptHttps if that matters "
               "(docs/https.md#domain-fronting)");
      break;  // one warning per entry
    }
  }
}

Policy Parser::parse(std::string_view text) {
  const std::string yaml(text);
  checkSingleDocument(yaml);
  const YAML::Node doc = YAML::Load(yaml);
  if (doc.IsNull()) {
    fail(SourcePos{}, "", "the policy is empty");
  }
  const Field root{doc, "", posOf(doc.Mark())};
  if (!root.node.IsMap()) {
    fail(root, "a policy must be a mapping of keys such as name, enableInternet, allow");
  }
  const auto items = entries(root);
  rejectUnknownKeys(root, items,
                    {"name", "enableInternet", "interceptHttps", "proxyPorts", "allowedHosts",
                     "deniedHosts", "allow", "dns", "sockets", "denyStatus", "secrets",
                     "outboundByHost", "outbound", "outboundHandlers", "http", "tls"});
  Policy policy;
  policy.sourceName = source_;
  bool hasName = false;
  for (const auto& [key, value] : items) {
    recovering([&, &key = key, &value = value] { parseTopLevel(key, value, policy, hasName); });
  }
  if (!hasName) {
    errors_.push_back(diagnostic(root.pos, "", "missing required key 'name'"));
  }
  if (!errors_.empty()) {
    // Cross-key checks would only repeat what is reported already.
    return policy;
  }
  recovering([&] { checkHandlerRefs(policy); });
  addAllowWarnings(policy);
  addFrontingWarnings(policy);
  policy.warnings = std::move(warnings_);
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
        recovering([&] { policy.allow.push_back(allowRule(entry, index)); });
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

}  // namespace

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

std::string Diagnostic::text() const {
  if (source.empty()) {
    return message;  // a message that names its place itself
  }
  std::string out = source;
  if (pos.line > 0) {
    out += ":" + std::to_string(pos.line) + ":" + std::to_string(pos.column);
  }
  out += ": ";
  if (!path.empty()) {
    out += path + ": ";
  }
  return out + message;
}

PolicyCheck checkPolicy(std::string_view yamlText, const std::string& sourceName) {
  PolicyCheck check;
  Parser parser(sourceName);
  try {
    Policy policy = parser.parse(yamlText);
    check.errors = parser.errors();
    if (check.errors.empty()) {
      check.warnings = policy.warnings;
      check.policy = std::move(policy);
    }
  } catch (const PolicyError& e) {
    check.errors = parser.errors();
    check.errors.push_back(e.diagnostic);
  } catch (const YAML::Exception& e) {
    check.errors = parser.errors();
    check.errors.push_back(
        Diagnostic{sourceName, posOf(e.mark), "", "YAML syntax error: " + e.msg});
  } catch (const std::bad_alloc&) {
    check.errors.push_back(
        Diagnostic{sourceName, {}, "", "out of memory while parsing the policy"});
  } catch (const std::exception& e) {
    check.errors.push_back(Diagnostic{sourceName, {}, "", e.what()});
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
