// Host syntax (host_policy.h): checking a host name or glob, and normalizing a request's host
// (IDN to xn--, IP literals, ports) before any policy looks at it. Messages quote the input
// escaped, since it may be hostile.
#include <idn2.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <string>
#include <utility>

#include "common/ascii.h"
#include "policy/host_policy.h"

namespace egressd::policy {

namespace {

constexpr size_t kMaxNameLength = 253;
constexpr size_t kMaxLabelLength = 63;

std::string quote(std::string_view text) {
  // Hostile input ends up in error messages and from there in logs: keep it printable.
  std::string out = "\"";
  for (char c : text.substr(0, 300)) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7f || c == '"' || c == '\\') {
      static constexpr char kHex[] = "0123456789abcdef";
      out += "\\x";
      out += kHex[byte >> 4];
      out += kHex[byte & 0xf];
    } else {
      out += c;
    }
  }
  if (text.size() > 300) {
    out += "...";
  }
  return out + "\"";
}

Error invalidHost(std::string message) {
  return Error(EINVAL, std::move(message));
}

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

bool isHexDigit(char c) {
  return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

std::string_view trimWhitespace(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
    text.remove_suffix(1);
  }
  return text;
}

// RFC 3986 allows an empty port ("host:"), which means the scheme's default.
Result<std::optional<uint16_t>> parsePort(std::string_view portText, std::string_view whole) {
  if (portText.empty()) {
    return std::optional<uint16_t>();
  }
  unsigned value = 0;
  if (portText.size() > 5 || !std::all_of(portText.begin(), portText.end(), isDigit)) {
    return invalidHost("invalid port in host " + quote(whole));
  }
  for (char c : portText) {
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value == 0 || value > 65535) {
    return invalidHost("invalid port in host " + quote(whole) + " (expected 1..65535)");
  }
  return std::optional<uint16_t>(static_cast<uint16_t>(value));
}

// WHATWG URL "ends in a number": such a host is an IPv4 address to a browser or inet_aton.
bool endsInNumber(std::string_view name) {
  const size_t dot = name.rfind('.');
  const std::string_view last = dot == std::string_view::npos ? name : name.substr(dot + 1);
  if (last.empty()) {
    return false;
  }
  if (std::all_of(last.begin(), last.end(), isDigit)) {
    return true;
  }
  return last.size() >= 2 && last[0] == '0' && (last[1] == 'x' || last[1] == 'X') &&
         std::all_of(last.begin() + 2, last.end(), isHexDigit);
}

Result<std::string> toAsciiName(std::string_view text, std::string_view whole) {
  const std::string input(text);
  if (input.find('\0') != std::string::npos) {
    return invalidHost("invalid character in host " + quote(whole));
  }
  char* output = nullptr;
  int rc = idn2_to_ascii_8z(input.c_str(), &output, IDN2_NONTRANSITIONAL);
  if (rc != IDN2_OK) {
    // Some names valid under IDNA 2003 (e.g. with symbols) only convert transitionally.
    rc = idn2_to_ascii_8z(input.c_str(), &output, IDN2_TRANSITIONAL);
  }
  if (rc != IDN2_OK) {
    return invalidHost("invalid internationalized host name " + quote(whole) + ": " +
                       idn2_strerror(rc));
  }
  std::string ascii(output);
  idn2_free(output);
  return ascii;
}

}  // namespace

Result<std::string> checkHostSyntax(std::string name, std::string_view whole, HostSyntax syntax) {
  const bool glob = syntax == HostSyntax::kGlob;
  const std::string what = glob ? "host glob " : "host ";
  for (char& c : name) {
    c = lowerAscii(c);
  }
  if (!name.empty() && name.back() == '.') {
    name.pop_back();
  }
  if (name.empty()) {
    return invalidHost(glob ? std::string("empty host name")
                            : "empty host name in " + quote(whole));
  }
  if (name.size() > kMaxNameLength) {
    return invalidHost("host name " + quote(whole) + " is longer than 253 characters");
  }
  size_t labelStart = 0;
  for (size_t i = 0; i <= name.size(); ++i) {
    if (i == name.size() || name[i] == '.') {
      const std::string_view label(name.data() + labelStart, i - labelStart);
      if (label.empty()) {
        return invalidHost("empty label in " + what + quote(whole));
      }
      // A glob label with a star stands for labels of any length.
      const bool starred = glob && label.find('*') != std::string_view::npos;
      if (label.size() > kMaxLabelLength && !starred) {
        return invalidHost("a label of " + what + quote(whole) + " is longer than 63 characters");
      }
      labelStart = i + 1;
      continue;
    }
    const char c = name[i];
    const bool ldh = (c >= 'a' && c <= 'z') || isDigit(c) || c == '-';
    if (ldh || (glob ? c == '*' : c == '_')) {
      continue;
    }
    std::string reason = "invalid character in " + what + quote(whole) +
                         (glob ? " (allowed: letters, digits, '-', '.', '*')"
                               : " (allowed: letters, digits, '-', '.', '_')");
    if (glob && static_cast<unsigned char>(c) >= 0x80) {
      reason += "; write internationalized names in their xn-- form";
    }
    return invalidHost(reason);
  }
  return name;
}

Result<NormalizedHost> normalizeHost(std::string_view text) {
  const std::string_view whole = text;
  text = trimWhitespace(text);
  if (text.empty()) {
    return invalidHost("empty host");
  }
  NormalizedHost host;
  std::string_view hostPart = text;
  std::string_view portPart;

  if (text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return invalidHost("unbalanced '[' in host " + quote(whole));
    }
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') {
      return invalidHost("unexpected characters after ']' in host " + quote(whole));
    }
    if (!rest.empty()) {
      portPart = rest.substr(1);
    }
    hostPart = text.substr(0, close + 1);
    auto ip = IpAddress::parse(hostPart);
    if (!ip) {
      return invalidHost(quote(hostPart) + " in host " + quote(whole) +
                         " is not a valid IPv6 address");
    }
    host.ip = *ip;
    host.name = ip->toString();
  } else {
    if (text.find(']') != std::string_view::npos) {
      return invalidHost("unbalanced ']' in host " + quote(whole));
    }
    const size_t colons = static_cast<size_t>(std::count(text.begin(), text.end(), ':'));
    if (colons > 1) {
      // Not valid in a Host header, but unambiguous: a bare IPv6 address, never a name.
      auto ip = IpAddress::parse(text);
      if (!ip) {
        return invalidHost("invalid host " + quote(whole) +
                           " (IPv6 addresses must be written in brackets)");
      }
      host.ip = *ip;
      host.name = ip->toString();
      return host;
    }
    if (colons == 1) {
      const size_t colon = text.find(':');
      hostPart = text.substr(0, colon);
      portPart = text.substr(colon + 1);
    }
  }

  auto port = parsePort(portPart, whole);
  if (!port.ok()) {
    return std::move(port).error();
  }
  host.port = *port;
  if (host.ip) {
    return host;
  }
  if (hostPart.empty()) {
    return invalidHost("empty host name in " + quote(whole));
  }

  std::string name;
  const bool ascii = std::all_of(hostPart.begin(), hostPart.end(),
                                 [](char c) { return static_cast<unsigned char>(c) < 0x80; });
  if (ascii) {
    name = std::string(hostPart);
  } else {
    auto converted = toAsciiName(hostPart, whole);
    if (!converted.ok()) {
      return std::move(converted).error();
    }
    name = std::move(converted).value();
  }
  // Checked after IDN mapping too: fullwidth digits and dots map to an ASCII address.
  std::string_view withoutDot = name;
  if (!withoutDot.empty() && withoutDot.back() == '.') {
    withoutDot.remove_suffix(1);
  }
  if (withoutDot.find(':') == std::string_view::npos) {
    if (auto ip = IpAddress::parse(withoutDot)) {
      host.ip = *ip;
      host.name = ip->toString();
      return host;
    }
  }
  auto checked = checkHostSyntax(std::move(name), whole, HostSyntax::kName);
  if (!checked.ok()) {
    return std::move(checked).error();
  }
  if (endsInNumber(*checked)) {
    return invalidHost("host " + quote(whole) +
                       " is neither a host name nor a valid IP address (its last label is a "
                       "number)");
  }
  host.name = std::move(checked).value();
  return host;
}

}  // namespace egressd::policy
