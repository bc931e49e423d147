// IP addresses, CIDRs and "ip:port" endpoints as policies write them. IPv4-mapped IPv6
// (::ffff:a.b.c.d) is normalized to plain IPv4 at parse time, because the kernel judges
// mapped destinations by the IPv4 rules: a mapped CIDR must land in the IPv4 tables or it
// would never match anything.
#pragma once

#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "bpf/abi.h"
#include "common/result.h"

namespace egressd::policy {

using AddrBytes = std::array<uint8_t, 16>;

struct Cidr {
  int family = AF_INET;  // AF_INET or AF_INET6
  AddrBytes bytes{};     // network order; IPv4 uses bytes[0..3], the rest stays zero
  int prefixLen = 0;     // 0..32 for IPv4, 0..128 for IPv6

  // "10.0.0.0/8", "2001:db8::/32"; always with the prefix length.
  std::string toString() const;
  // True when `addr` (same family, same byte layout as `bytes`) lies inside this CIDR.
  bool contains(int addrFamily, const AddrBytes& addr) const;
  int maxPrefixLen() const { return family == AF_INET ? 32 : 128; }

  bool operator==(const Cidr&) const = default;
};

struct Endpoint {
  int family = AF_INET;
  AddrBytes bytes{};  // same layout as Cidr::bytes
  uint16_t port = 0;  // host byte order

  // "127.0.0.53:53", "[::1]:53".
  std::string toString() const;

  bool operator==(const Endpoint&) const = default;
};

// One address: "10.0.0.5", "::1", "[::1]", "::ffff:10.0.0.5". Yields a /32 or /128.
Result<Cidr> parseAddress(std::string_view text);

// "10.0.0.0/8", "2001:db8::/32", "::ffff:10.0.0.0/104" (=> 10.0.0.0/8), or a bare address.
// Host bits past the prefix are an error rather than silently masked: "10.0.0.1/8" is
// far more often a typo for /32 or /24 than a deliberate /8.
Result<Cidr> parseCidr(std::string_view text);

// "127.0.0.53:53", "[::1]:53", "10.0.0.1" or "::1" (these two take `defaultPort`).
Result<Endpoint> parseEndpoint(std::string_view text, uint16_t defaultPort);

// Whether a host-list entry is meant as an IP/CIDR rather than a host glob. Deliberately
// broad (anything with ':', '/', '[' or made only of digits, dots and '*'): a
// malformed IP such as "10.0.0.300" or "10.0.*.*" must be reported as a bad address, not
// quietly become a host glob that the kernel never enforces. Real host names cannot be
// all-numeric in their last label (RFC 3696 section 2), so nothing legitimate is lost.
bool looksLikeIpOrCidr(std::string_view text);

// The 16-byte ABI form: IPv4 as ::ffff:a.b.c.d, IPv6 as is.
egressd_addr toAbiAddr(const Cidr& cidr);
egressd_addr toAbiAddr(const Endpoint& endpoint);
egressd_addr toAbiAddr(int family, const AddrBytes& bytes);

}  // namespace egressd::policy
