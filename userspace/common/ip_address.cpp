// Parsing goes through inet_pton for the same reason as policy/cidr.cpp: what egressd calls
// an address must be exactly what the C library calls one, with no lenient legacy forms.
#include "common/ip_address.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

namespace egressd {

namespace {

bool isV4MappedBytes(const std::array<uint8_t, 16>& bytes) {
  for (int i = 0; i < 10; ++i) {
    if (bytes[i] != 0) {
      return false;
    }
  }
  return bytes[10] == 0xff && bytes[11] == 0xff;
}

IpAddress fromV6Bytes(const uint8_t* raw) {
  IpAddress addr;
  std::memcpy(addr.bytes.data(), raw, 16);
  if (isV4MappedBytes(addr.bytes)) {
    IpAddress v4;
    std::copy(addr.bytes.begin() + 12, addr.bytes.end(), v4.bytes.begin());
    return v4;
  }
  addr.family = AF_INET6;
  return addr;
}

}  // namespace

std::optional<IpAddress> IpAddress::parse(std::string_view text) {
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') {
    text = text.substr(1, text.size() - 2);
    // Brackets belong to IPv6 only: "[1.2.3.4]" is not a valid URI host.
    if (text.find(':') == std::string_view::npos) {
      return std::nullopt;
    }
  }
  // Longer than any textual IPv6 address (with an embedded IPv4 tail): not worth a copy.
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) {
    return std::nullopt;
  }
  char buf[INET6_ADDRSTRLEN] = {};
  std::memcpy(buf, text.data(), text.size());
  IpAddress addr;
  if (inet_pton(AF_INET, buf, addr.bytes.data()) == 1) {
    return addr;
  }
  uint8_t raw[16];
  if (inet_pton(AF_INET6, buf, raw) == 1) {
    return fromV6Bytes(raw);
  }
  return std::nullopt;
}

IpAddress IpAddress::fromSockaddr(const sockaddr* sa) {
  IpAddress addr;
  if (sa != nullptr && sa->sa_family == AF_INET) {
    sockaddr_in in;
    std::memcpy(&in, sa, sizeof(in));
    std::memcpy(addr.bytes.data(), &in.sin_addr, 4);
    return addr;
  }
  if (sa != nullptr && sa->sa_family == AF_INET6) {
    sockaddr_in6 in6;
    std::memcpy(&in6, sa, sizeof(in6));
    return fromV6Bytes(in6.sin6_addr.s6_addr);
  }
  addr.family = AF_UNSPEC;
  return addr;
}

IpAddress IpAddress::v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  IpAddress addr;
  addr.bytes[0] = a;
  addr.bytes[1] = b;
  addr.bytes[2] = c;
  addr.bytes[3] = d;
  return addr;
}

std::string IpAddress::toString() const {
  if (family != AF_INET && family != AF_INET6) {
    return "?";
  }
  char buf[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(family, bytes.data(), buf, sizeof(buf)) == nullptr) {
    return "?";
  }
  return buf;
}

std::string IpAddress::toString(uint16_t port) const {
  if (family == AF_INET6) {
    return "[" + toString() + "]:" + std::to_string(port);
  }
  return toString() + ":" + std::to_string(port);
}

socklen_t IpAddress::toSockaddr(uint16_t port, sockaddr_storage& out) const {
  std::memset(&out, 0, sizeof(out));
  if (family == AF_INET) {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    in.sin_port = htons(port);
    std::memcpy(&in.sin_addr, bytes.data(), 4);
    std::memcpy(&out, &in, sizeof(in));
    return sizeof(in);
  }
  if (family == AF_INET6) {
    sockaddr_in6 in6{};
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(port);
    std::memcpy(in6.sin6_addr.s6_addr, bytes.data(), 16);
    std::memcpy(&out, &in6, sizeof(in6));
    return sizeof(in6);
  }
  return 0;
}

size_t IpAddressHash::operator()(const IpAddress& addr) const {
  // FNV-1a over family and bytes: addresses are short and this needs no allocation.
  uint64_t hash = 1469598103934665603ull ^ static_cast<uint64_t>(addr.family);
  for (uint8_t byte : addr.bytes) {
    hash = (hash ^ byte) * 1099511628211ull;
  }
  return static_cast<size_t>(hash);
}

}  // namespace egressd
