// One IP address as the proxy and the resolver handle it: the destination a sandbox asked
// for, an address a DNS answer returned, a peer. IPv4-mapped IPv6 (::ffff:a.b.c.d) is
// normalized to plain IPv4 everywhere an address enters, because the kernel judges mapped
// destinations by the IPv4 rules and the proxy must judge them the same way.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace egressd {

struct IpAddress {
  int family = AF_INET;             // AF_INET / AF_INET6
  std::array<uint8_t, 16> bytes{};  // network order; IPv4 in bytes[0..3], the rest zero

  // "1.2.3.4", "::1", "[::1]" (no port, no zone id, no prefix). Only the forms inet_pton
  // accepts: "127.1", "0x7f.0.0.1" or "2130706433" are not addresses here.
  static std::optional<IpAddress> parse(std::string_view text);
  // sockaddr_in / sockaddr_in6 (a v4-mapped sockaddr_in6 becomes IPv4). Any other family
  // yields family AF_UNSPEC with zero bytes, which no rule matches.
  static IpAddress fromSockaddr(const sockaddr* sa);
  static IpAddress v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d);

  bool isV4() const { return family == AF_INET; }
  // "1.2.3.4" / "2001:db8::1" (RFC 5952 form, as inet_ntop writes it).
  std::string toString() const;
  // "1.2.3.4:80" / "[2001:db8::1]:443".
  std::string toString(uint16_t port) const;
  // A sockaddr_in / sockaddr_in6 for connect(); returns its length (0 for AF_UNSPEC).
  socklen_t toSockaddr(uint16_t port, sockaddr_storage& out) const;

  bool operator==(const IpAddress&) const = default;
  auto operator<=>(const IpAddress&) const = default;
};

struct IpAddressHash {
  size_t operator()(const IpAddress& addr) const;
};

}  // namespace egressd
