// Address parsing goes through inet_pton so that what the policy accepts is exactly what
// the C library accepts (no octal or short dotted forms, no zone ids); this file only adds
// brackets, prefix lengths, ports and the v4-mapped normalization around it.
#include "policy/cidr.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace egressd::policy {

namespace {

struct RawAddr {
  int family = AF_INET;
  AddrBytes bytes{};
};

std::string quote(std::string_view text) {
  return "\"" + std::string(text) + "\"";
}

Error invalid(std::string message) {
  return Error(EINVAL, std::move(message));
}

bool isV4Mapped(const AddrBytes& bytes) {
  for (int i = 0; i < 10; ++i) {
    if (bytes[i] != 0) {
      return false;
    }
  }
  return bytes[10] == 0xff && bytes[11] == 0xff;
}

// Parses a bare or bracketed address without touching v4-mapped forms; `whole` is what
// error messages quote (the full entry, prefix or port included).
Result<RawAddr> parseRaw(std::string_view text, std::string_view whole) {
  if (text.empty()) {
    return invalid(quote(whole) + " has no address");
  }
  if (text.front() == '[') {
    if (text.size() < 2 || text.back() != ']') {
      return invalid(quote(whole) + " has an unbalanced '['");
    }
    text = text.substr(1, text.size() - 2);
  }
  if (text.find('*') != std::string_view::npos) {
    return invalid(quote(whole) +
                   ": wildcards are not supported in IP addresses; use a CIDR such as "
                   "10.0.0.0/24");
  }
  if (text.find('%') != std::string_view::npos) {
    return invalid(quote(whole) + ": IPv6 zone ids (%iface) are not supported");
  }
  const std::string s(text);
  RawAddr raw;
  if (inet_pton(AF_INET, s.c_str(), raw.bytes.data()) == 1) {
    raw.family = AF_INET;
    return raw;
  }
  if (inet_pton(AF_INET6, s.c_str(), raw.bytes.data()) == 1) {
    raw.family = AF_INET6;
    return raw;
  }
  return invalid(quote(whole) + " is not a valid IP address");
}

// Moves ::ffff:a.b.c.d into the IPv4 layout.
RawAddr unmap(const RawAddr& raw) {
  if (raw.family != AF_INET6 || !isV4Mapped(raw.bytes)) {
    return raw;
  }
  RawAddr v4;
  v4.family = AF_INET;
  std::copy(raw.bytes.begin() + 12, raw.bytes.end(), v4.bytes.begin());
  return v4;
}

// Digits only: "+8", " 8" or "0x8" in a prefix or port is a typo, not a number.
bool parseDecimal(std::string_view text, unsigned maxValue, unsigned& out) {
  if (text.empty() || text.size() > 5) {
    return false;
  }
  unsigned value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return false;
    }
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > maxValue) {
    return false;
  }
  out = value;
  return true;
}

bool hasHostBits(const AddrBytes& bytes, int family, int prefixLen) {
  const int totalBits = family == AF_INET ? 32 : 128;
  for (int bit = prefixLen; bit < totalBits; ++bit) {
    if ((bytes[bit / 8] >> (7 - bit % 8)) & 1) {
      return true;
    }
  }
  return false;
}

AddrBytes maskTo(const AddrBytes& bytes, int prefixLen) {
  AddrBytes out{};
  for (int bit = 0; bit < prefixLen; ++bit) {
    out[bit / 8] |= bytes[bit / 8] & (0x80 >> (bit % 8));
  }
  return out;
}

std::string addrToString(int family, const AddrBytes& bytes) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(family, bytes.data(), buf, sizeof(buf)) == nullptr) {
    return "?";
  }
  return buf;
}

}  // namespace

std::string Cidr::toString() const {
  return addrToString(family, bytes) + "/" + std::to_string(prefixLen);
}

bool Cidr::contains(int addrFamily, const AddrBytes& addr) const {
  if (addrFamily != family) {
    return false;
  }
  return maskTo(addr, prefixLen) == maskTo(bytes, prefixLen);
}

std::string Endpoint::toString() const {
  const std::string addr = addrToString(family, bytes);
  if (family == AF_INET6) {
    return "[" + addr + "]:" + std::to_string(port);
  }
  return addr + ":" + std::to_string(port);
}

Result<Cidr> parseAddress(std::string_view text) {
  auto raw = parseRaw(text, text);
  if (!raw.ok()) {
    return std::move(raw).error();
  }
  const RawAddr addr = unmap(*raw);
  Cidr cidr;
  cidr.family = addr.family;
  cidr.bytes = addr.bytes;
  cidr.prefixLen = cidr.maxPrefixLen();
  return cidr;
}

Result<Cidr> parseCidr(std::string_view text) {
  const size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    return parseAddress(text);
  }
  auto raw = parseRaw(text.substr(0, slash), text);
  if (!raw.ok()) {
    return std::move(raw).error();
  }
  const int maxLen = raw->family == AF_INET ? 32 : 128;
  unsigned prefix = 0;
  if (!parseDecimal(text.substr(slash + 1), static_cast<unsigned>(maxLen), prefix)) {
    return invalid(quote(text) + " has an invalid prefix length (expected 0.." +
                   std::to_string(maxLen) + ")");
  }
  RawAddr addr = *raw;
  int prefixLen = static_cast<int>(prefix);
  if (addr.family == AF_INET6 && isV4Mapped(addr.bytes)) {
    // Shorter than /96 would also cover non-mapped IPv6, which the IPv4 tables cannot hold.
    if (prefixLen < 96) {
      return invalid(quote(text) + ": an IPv4-mapped prefix must be /96 or longer");
    }
    addr = unmap(addr);
    prefixLen -= 96;
  }
  if (hasHostBits(addr.bytes, addr.family, prefixLen)) {
    Cidr suggestion{addr.family, maskTo(addr.bytes, prefixLen), prefixLen};
    return invalid(quote(text) + " has host bits set (did you mean " + suggestion.toString() +
                   "?)");
  }
  return Cidr{addr.family, addr.bytes, prefixLen};
}

Result<Endpoint> parseEndpoint(std::string_view text, uint16_t defaultPort) {
  std::string_view addrText = text;
  std::string_view portText;
  bool hasPort = false;
  if (!text.empty() && text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return invalid(quote(text) + " has an unbalanced '['");
    }
    addrText = text.substr(0, close + 1);
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return invalid(quote(text) + ": expected ':PORT' after ']'");
      }
      portText = rest.substr(1);
      hasPort = true;
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    // Exactly one ':' can only be IPv4:port; bare IPv6 always has at least two.
    const size_t colon = text.find(':');
    addrText = text.substr(0, colon);
    portText = text.substr(colon + 1);
    hasPort = true;
  }
  if (addrText.find('/') != std::string_view::npos) {
    return invalid(quote(text) + ": expected an address, not a CIDR");
  }
  auto raw = parseRaw(addrText, text);
  if (!raw.ok()) {
    return std::move(raw).error();
  }
  Endpoint endpoint;
  const RawAddr addr = unmap(*raw);
  endpoint.family = addr.family;
  endpoint.bytes = addr.bytes;
  endpoint.port = defaultPort;
  if (hasPort) {
    unsigned port = 0;
    if (!parseDecimal(portText, 65535, port) || port == 0) {
      return invalid(quote(text) + " has an invalid port (expected 1..65535)");
    }
    endpoint.port = static_cast<uint16_t>(port);
  }
  return endpoint;
}

bool looksLikeIpOrCidr(std::string_view text) {
  if (text.find_first_of(":/[") != std::string_view::npos) {
    return true;
  }
  bool sawDigit = false;
  for (char c : text) {
    if (c >= '0' && c <= '9') {
      sawDigit = true;
    } else if (c != '.' && c != '*') {
      return false;
    }
  }
  return sawDigit;
}

egressd_addr toAbiAddr(int family, const AddrBytes& bytes) {
  egressd_addr out{};
  if (family == AF_INET) {
    out.bytes[10] = 0xff;
    out.bytes[11] = 0xff;
    std::memcpy(out.bytes + 12, bytes.data(), 4);
  } else {
    std::memcpy(out.bytes, bytes.data(), 16);
  }
  return out;
}

egressd_addr toAbiAddr(const Cidr& cidr) {
  return toAbiAddr(cidr.family, cidr.bytes);
}

egressd_addr toAbiAddr(const Endpoint& endpoint) {
  return toAbiAddr(endpoint.family, endpoint.bytes);
}

}  // namespace egressd::policy
