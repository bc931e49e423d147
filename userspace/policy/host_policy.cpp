// Matching is precompiled per list: exact names in a hash map, "*.suffix" globs in a hash
// map probed once per dot of the host, and only the remaining globs go through the segment
// matcher. Each compiled entry keeps its position in the YAML list so the first matching
// entry decides, as a reader of the policy would expect, whichever table found it.
#include "policy/host_policy.h"

#include "common/ascii.h"
#include "policy/compile.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <limits>
#include <unordered_map>
#include <utility>

namespace egressd::policy {

namespace {

// ---- glob matching -------------------------------------------------------------------

// Leftmost occurrence of `needle` in `hay` at or after `from`, case-insensitively.
size_t findFold(std::string_view hay, std::string_view needle, size_t from) {
  if (needle.size() > hay.size()) {
    return std::string_view::npos;
  }
  for (size_t i = from; i + needle.size() <= hay.size(); ++i) {
    if (equalsIgnoreCase(hay.substr(i, needle.size()), needle)) {
      return i;
    }
  }
  return std::string_view::npos;
}

// A glob split at its stars: "a*b*c" -> head "a", middle {"b"}, tail "c". Greedy leftmost
// placement of the middle parts is exact for '*'-only globs (if any placement works, the
// leftmost one leaves the most room for the rest), so there is never any backtracking.
struct GlobParts {
  bool hasStar = false;
  std::string_view head;
  std::vector<std::string_view> middle;  // non-empty parts only
  std::string_view tail;
};

GlobParts splitGlob(std::string_view pattern) {
  GlobParts parts;
  const size_t firstStar = pattern.find('*');
  if (firstStar == std::string_view::npos) {
    parts.head = pattern;
    return parts;
  }
  parts.hasStar = true;
  const size_t lastStar = pattern.rfind('*');
  parts.head = pattern.substr(0, firstStar);
  parts.tail = pattern.substr(lastStar + 1);
  size_t start = firstStar + 1;
  while (start <= lastStar) {
    const size_t star = pattern.find('*', start);
    if (star > start) {
      parts.middle.push_back(pattern.substr(start, star - start));
    }
    start = star + 1;
  }
  return parts;
}

bool partsMatch(const GlobParts& parts, std::string_view host) {
  if (!parts.hasStar) {
    return equalsIgnoreCase(parts.head, host);
  }
  if (host.size() < parts.head.size() + parts.tail.size() ||
      !equalsIgnoreCase(host.substr(0, parts.head.size()), parts.head) ||
      !equalsIgnoreCase(host.substr(host.size() - parts.tail.size()), parts.tail)) {
    return false;
  }
  const std::string_view window =
      host.substr(parts.head.size(), host.size() - parts.head.size() - parts.tail.size());
  size_t cursor = 0;
  for (std::string_view part : parts.middle) {
    const size_t found = findFold(window, part, cursor);
    if (found == std::string_view::npos) {
      return false;
    }
    cursor = found + part.size();
  }
  return true;
}

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
};

template <typename Value>
using StringMap = std::unordered_map<std::string, Value, StringHash, std::equal_to<>>;

// One host list's globs, compiled.
class GlobSet {
 public:
  struct Entry {
    std::string pattern;
    std::string rule;  // "deniedHosts[1] *.evil.example"
    GlobParts parts;   // views into `pattern` (stable: entries never move after build)
  };

  GlobSet() = default;
  GlobSet(const GlobSet&) = delete;
  GlobSet& operator=(const GlobSet&) = delete;

  void build(const HostList& list, std::string_view listName) {
    const std::vector<size_t> indices = listIndicesOfGlobs(list);
    entries_.reserve(list.globs.size());
    for (size_t i = 0; i < list.globs.size(); ++i) {
      entries_.push_back(Entry{
          list.globs[i].pattern,
          std::string(listName) + "[" + std::to_string(indices[i]) + "] " + list.globs[i].pattern,
          {}});
    }
    for (size_t i = 0; i < entries_.size(); ++i) {
      Entry& entry = entries_[i];
      entry.parts = splitGlob(entry.pattern);
      const auto position = static_cast<uint32_t>(i);
      const GlobParts& parts = entry.parts;
      if (!parts.hasStar) {
        exact_.try_emplace(entry.pattern, position);  // a later duplicate never wins
      } else if (parts.head.empty() && parts.middle.empty() && !parts.tail.empty() &&
                 parts.tail.front() == '.') {
        dotSuffix_.try_emplace(std::string(parts.tail), position);
      } else {
        general_.push_back(position);
      }
    }
  }

  // The first entry (in list order) matching a normalized (lowercase) host, or nullptr.
  const Entry* match(std::string_view host) const {
    uint32_t best = kNone;
    if (!exact_.empty()) {
      if (auto it = exact_.find(host); it != exact_.end()) {
        best = it->second;
      }
    }
    if (!dotSuffix_.empty()) {
      for (size_t dot = host.find('.'); dot != std::string_view::npos;
           dot = host.find('.', dot + 1)) {
        if (auto it = dotSuffix_.find(host.substr(dot)); it != dotSuffix_.end()) {
          best = std::min(best, it->second);
        }
      }
    }
    for (uint32_t position : general_) {
      if (position >= best) {
        break;
      }
      if (partsMatch(entries_[position].parts, host)) {
        best = position;
        break;
      }
    }
    return best == kNone ? nullptr : &entries_[best];
  }

 private:
  static constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();

  // HostGlob carries no list index, but every entry of the YAML list landed in exactly one
  // of globs/cidrs and the CIDRs know theirs: the globs hold the remaining indices in
  // order. A list assembled some other way (inconsistent indices) falls back to positions.
  static std::vector<size_t> listIndicesOfGlobs(const HostList& list) {
    const size_t total = list.globs.size() + list.cidrs.size();
    std::vector<bool> taken(total, false);
    bool consistent = true;
    for (const HostCidr& cidr : list.cidrs) {
      if (cidr.index >= total || taken[cidr.index]) {
        consistent = false;
        break;
      }
      taken[cidr.index] = true;
    }
    std::vector<size_t> indices;
    indices.reserve(list.globs.size());
    for (size_t index = 0; index < total && indices.size() < list.globs.size(); ++index) {
      if (!consistent || !taken[index]) {
        indices.push_back(index);
      }
    }
    return indices;
  }

  std::vector<Entry> entries_;
  StringMap<uint32_t> exact_;
  StringMap<uint32_t> dotSuffix_;
  std::vector<uint32_t> general_;  // ascending positions
};

// ---- addresses -----------------------------------------------------------------------

bool cidrContains(const Cidr& cidr, const IpAddress& addr) {
  if (cidr.family != addr.family) {
    return false;
  }
  const auto fullBytes = static_cast<size_t>(cidr.prefixLen / 8);
  if (std::memcmp(cidr.bytes.data(), addr.bytes.data(), fullBytes) != 0) {
    return false;
  }
  const int restBits = cidr.prefixLen % 8;
  if (restBits == 0) {
    return true;
  }
  const auto mask = static_cast<uint8_t>(0xff << (8 - restBits));
  return (cidr.bytes[fullBytes] & mask) == (addr.bytes[fullBytes] & mask);
}

bool isSpecialV4(const IpAddress& addr) {
  const uint8_t first = addr.bytes[0];
  return first == 0 || first == 127 || first >= 224 || (first == 169 && addr.bytes[1] == 254);
}

bool isSpecialV6(const IpAddress& addr) {
  const auto& b = addr.bytes;
  const bool upperZero = std::all_of(b.begin(), b.begin() + 15, [](uint8_t x) { return x == 0; });
  if (upperZero && (b[15] == 0 || b[15] == 1)) {
    return true;  // :: and ::1
  }
  if (b[0] == 0xfe && ((b[1] & 0xc0) == 0x80 || (b[1] & 0xc0) == 0xc0)) {
    return true;  // fe80::/10 link-local, fec0::/10 site-local
  }
  return b[0] == 0xff;
}

bool embedsV4(const IpAddress& addr) {
  const auto& b = addr.bytes;
  if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b) {
    return true;  // NAT64 64:ff9b::/32
  }
  if (b[0] == 0x20 && b[1] == 0x02) {
    return true;  // 6to4
  }
  if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x00 && b[3] == 0x00) {
    return true;  // Teredo
  }
  return std::all_of(b.begin(), b.begin() + 12, [](uint8_t x) { return x == 0; });  // ::/96
}

bool isPrivate(const IpAddress& addr) {
  const auto& b = addr.bytes;
  if (addr.family == AF_INET6) {
    return (b[0] & 0xfe) == 0xfc;  // fc00::/7 unique local
  }
  return b[0] == 10 || (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168) ||
         (b[0] == 100 && (b[1] & 0xc0) == 64);
}

struct DenyCidr {
  Cidr cidr;
  std::string rule;
};

struct AllowCidr {
  Cidr cidr;
  std::vector<PortRange> ports;  // empty = every port
  Protocol protocol = Protocol::kAny;
  std::string rule;
  bool fromAllowedHosts = false;  // an allowedHosts IP/CIDR entry (not an `allow` rule)

  bool covers(uint16_t port, Protocol wanted) const {
    if (protocol != Protocol::kAny && protocol != wanted) {
      return false;
    }
    if (ports.empty()) {
      return true;
    }
    return std::any_of(ports.begin(), ports.end(), [port](const PortRange& range) {
      return port >= range.first && port <= range.last;
    });
  }
  // The kernel tries (proto, port), (proto, *), (*, port), (*, *) in that order, each as a
  // longest-prefix match; ranking the same way names the rule the kernel would name.
  int kernelLookupRank() const {
    const bool anyProtocol = protocol == Protocol::kAny;
    return (anyProtocol ? 2 : 0) + (ports.empty() ? 1 : 0);
  }
};

HostDecision makeDecision(HostVerdict verdict, std::string_view reason, std::string rule,
                          bool byName) {
  HostDecision decision;
  decision.verdict = verdict;
  decision.reason = std::string(reason);
  decision.rule = std::move(rule);
  decision.byName = byName;
  return decision;
}

}  // namespace

bool hostGlobMatches(std::string_view pattern, std::string_view host) {
  return partsMatch(splitGlob(pattern), host);
}

AddressClass classifyAddress(const IpAddress& addr) {
  if (addr.family == AF_INET) {
    if (isSpecialV4(addr)) {
      return AddressClass::kSpecial;
    }
  } else if (addr.family == AF_INET6) {
    if (isSpecialV6(addr)) {
      return AddressClass::kSpecial;
    }
    if (embedsV4(addr)) {
      return AddressClass::kEmbeddedV4;
    }
  } else {
    return AddressClass::kSpecial;  // not an address: nothing may reach it by default
  }
  return isPrivate(addr) ? AddressClass::kPrivate : AddressClass::kOrdinary;
}

// ---- HostPolicy --------------------------------------------------------------------------

struct HostPolicy::Compiled {
  bool enableInternet = false;
  bool hasAllowList = false;
  GlobSet deniedGlobs;
  GlobSet allowedGlobs;
  std::vector<DenyCidr> denyCidrs;
  std::vector<AllowCidr> allowCidrs;  // `allow` rules, then allowedHosts CIDRs

  // The deny CIDR the kernel's LPM lookup would return: longest prefix, first written.
  const DenyCidr* matchDeny(const IpAddress& addr) const {
    const DenyCidr* best = nullptr;
    for (const DenyCidr& entry : denyCidrs) {
      if (cidrContains(entry.cidr, addr) &&
          (best == nullptr || entry.cidr.prefixLen > best->cidr.prefixLen)) {
        best = &entry;
      }
    }
    return best;
  }

  const AllowCidr* matchAllow(const IpAddress& addr, uint16_t port,
                              Protocol wanted = Protocol::kTcp) const {
    const AllowCidr* best = nullptr;
    for (const AllowCidr& entry : allowCidrs) {
      if (!cidrContains(entry.cidr, addr) || !entry.covers(port, wanted)) {
        continue;
      }
      if (best == nullptr || entry.kernelLookupRank() < best->kernelLookupRank() ||
          (entry.kernelLookupRank() == best->kernelLookupRank() &&
           entry.cidr.prefixLen > best->cidr.prefixLen)) {
        best = &entry;
      }
    }
    return best;
  }
};

HostPolicy::HostPolicy() : compiled_(std::make_shared<const Compiled>()) {}

HostPolicy HostPolicy::fromPolicy(const Policy& policy) {
  auto compiled = std::make_shared<Compiled>();
  compiled->enableInternet = policy.enableInternet;
  compiled->hasAllowList = policy.allowedHosts.present;
  compiled->deniedGlobs.build(policy.deniedHosts, "deniedHosts");
  compiled->allowedGlobs.build(policy.allowedHosts, "allowedHosts");
  for (const HostCidr& host : policy.deniedHosts.cidrs) {
    compiled->denyCidrs.push_back(DenyCidr{
        host.cidr, "deniedHosts[" + std::to_string(host.index) + "] " + host.cidr.toString()});
  }
  for (const AllowRule& rule : policy.allow) {
    if (rule.host) {
      continue;  // name-based: its addresses are in the kernel only while resolved
    }
    compiled->allowCidrs.push_back(
        AllowCidr{rule.cidr, rule.ports, rule.protocol, allowRuleName(rule)});
  }
  for (const HostCidr& host : policy.allowedHosts.cidrs) {
    compiled->allowCidrs.push_back(
        AllowCidr{host.cidr,
                  {},
                  Protocol::kAny,
                  "allowedHosts[" + std::to_string(host.index) + "] " + host.cidr.toString(),
                  true});
  }
  HostPolicy result;
  result.compiled_ = std::move(compiled);
  return result;
}

bool HostPolicy::enableInternet() const {
  return compiled_->enableInternet;
}

bool HostPolicy::hasAllowList() const {
  return compiled_->hasAllowList;
}

HostDecision HostPolicy::decide(const NormalizedHost& host, uint16_t port) const {
  if (host.ip) {
    return decideAddress(*host.ip, port);
  }
  return decideName(host.name);
}

HostDecision HostPolicy::decideName(std::string_view name) const {
  const Compiled& c = *compiled_;
  if (name.empty()) {
    return makeDecision(HostVerdict::kDeny, "invalid_host", "", true);
  }
  if (const auto* entry = c.deniedGlobs.match(name)) {
    return makeDecision(HostVerdict::kDeny, "denied_host", entry->rule, true);
  }
  if (const auto* entry = c.allowedGlobs.match(name)) {
    HostDecision decision = makeDecision(HostVerdict::kAllow, "allowed_host", entry->rule, true);
    decision.matchedAllowGlob = true;
    return decision;
  }
  if (c.hasAllowList) {
    return makeDecision(HostVerdict::kDeny, "not_in_allowed_hosts", "", true);
  }
  if (c.enableInternet) {
    return makeDecision(HostVerdict::kAllow, "enable_internet", "", true);
  }
  return makeDecision(HostVerdict::kDeny, "internet_disabled", "", true);
}

HostDecision HostPolicy::decideAddress(const IpAddress& addr, uint16_t port,
                                       Protocol protocol) const {
  const Compiled& c = *compiled_;
  if (addr.family != AF_INET && addr.family != AF_INET6) {
    return makeDecision(HostVerdict::kDeny, "invalid_host", "", false);
  }
  if (const DenyCidr* deny = c.matchDeny(addr)) {
    return makeDecision(HostVerdict::kDeny, "denied_cidr", deny->rule, false);
  }
  if (const AllowCidr* allow = c.matchAllow(addr, port, protocol)) {
    return makeDecision(HostVerdict::kAllow, "allowed_cidr", allow->rule, false);
  }
  switch (classifyAddress(addr)) {
    case AddressClass::kSpecial:
      return makeDecision(HostVerdict::kDeny, "special_destination", "", false);
    case AddressClass::kEmbeddedV4:
      return makeDecision(HostVerdict::kDeny, "embedded_v4_destination", "", false);
    case AddressClass::kPrivate:
    case AddressClass::kOrdinary:
      break;
  }
  if (c.hasAllowList) {
    return makeDecision(HostVerdict::kDeny, "not_in_allowed_hosts", "", false);
  }
  if (c.enableInternet) {
    return makeDecision(HostVerdict::kAllow, "enable_internet", "", false);
  }
  return makeDecision(HostVerdict::kDeny, "internet_disabled", "", false);
}

std::optional<std::string> HostPolicy::explicitAddressRule(const IpAddress& addr,
                                                           uint16_t port) const {
  const Compiled& c = *compiled_;
  if (c.matchDeny(addr) != nullptr) {
    return std::nullopt;
  }
  for (const AllowCidr& entry : c.allowCidrs) {
    if (!cidrContains(entry.cidr, addr) || !entry.covers(port, Protocol::kTcp)) {
      continue;
    }
    if (entry.fromAllowedHosts || !entry.ports.empty()) {
      return entry.rule;
    }
  }
  return std::nullopt;
}

HostDecision HostPolicy::judgeResolvedAddress(const IpAddress& addr, uint16_t port,
                                              const HostDecision& nameDecision) const {
  if (!nameDecision.allowed()) {
    return nameDecision;
  }
  const Compiled& c = *compiled_;
  auto refuse = [&](std::string_view reason, std::string rule) {
    HostDecision decision =
        makeDecision(HostVerdict::kDeny, reason, std::move(rule), nameDecision.byName);
    decision.matchedAllowGlob = nameDecision.matchedAllowGlob;
    return decision;
  };
  if (addr.family != AF_INET && addr.family != AF_INET6) {
    return refuse("invalid_host", "");
  }
  if (const DenyCidr* deny = c.matchDeny(addr)) {
    return refuse("denied_cidr", deny->rule);
  }
  const AddressClass addressClass = classifyAddress(addr);
  if (addressClass == AddressClass::kOrdinary) {
    return nameDecision;
  }
  // Private ranges are refused only to names nobody named: an operator who listed a host
  // in allowedHosts may mean an internal one, and IP literals were judged in decide().
  const bool onlyEnableInternet = nameDecision.byName && !nameDecision.matchedAllowGlob;
  if (addressClass == AddressClass::kPrivate && !onlyEnableInternet) {
    return nameDecision;
  }
  if (c.matchAllow(addr, port) != nullptr) {
    return nameDecision;
  }
  switch (addressClass) {
    case AddressClass::kSpecial:
      return refuse("special_destination", "");
    case AddressClass::kEmbeddedV4:
      return refuse("embedded_v4_destination", "");
    case AddressClass::kPrivate:
      return refuse("private_destination", "");
    case AddressClass::kOrdinary:
      break;
  }
  return nameDecision;
}

HostDecision HostPolicy::judgeAnswerAddress(const IpAddress& addr) const {
  const Compiled& c = *compiled_;
  if (addr.family != AF_INET && addr.family != AF_INET6) {
    return makeDecision(HostVerdict::kDeny, "invalid_host", "", false);
  }
  if (const DenyCidr* deny = c.matchDeny(addr)) {
    return makeDecision(HostVerdict::kDeny, "denied_cidr", deny->rule, false);
  }
  const AddressClass addressClass = classifyAddress(addr);
  if (addressClass == AddressClass::kSpecial || addressClass == AddressClass::kEmbeddedV4) {
    const bool covered =
        std::any_of(c.allowCidrs.begin(), c.allowCidrs.end(),
                    [&addr](const AllowCidr& a) { return cidrContains(a.cidr, addr); });
    if (!covered) {
      return makeDecision(HostVerdict::kDeny,
                          addressClass == AddressClass::kSpecial ? "special_destination"
                                                                 : "embedded_v4_destination",
                          "", false);
    }
  }
  return makeDecision(HostVerdict::kAllow, "allowed", "", false);
}

}  // namespace egressd::policy
