#include "proxy/orig_dst.h"

#include <bpf/bpf.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "bpf/abi.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace egressd::proxy {

namespace {

// IPv4 as ::ffff:a.b.c.d, as the kernel writes every address into the maps.
egressd_addr toMapAddr(const IpAddress& ip) {
  egressd_addr a{};
  if (ip.family == AF_INET) {
    a.bytes[10] = 0xff;
    a.bytes[11] = 0xff;
    std::memcpy(&a.bytes[12], ip.bytes.data(), 4);
  } else {
    std::memcpy(a.bytes, ip.bytes.data(), 16);
  }
  return a;
}

IpAddress fromMapAddr(const egressd_addr& a) {
  static constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  IpAddress ip;
  if (std::memcmp(a.bytes, kMappedPrefix, sizeof(kMappedPrefix)) == 0) {
    ip.family = AF_INET;
    std::memcpy(ip.bytes.data(), &a.bytes[12], 4);
  } else {
    ip.family = AF_INET6;
    std::memcpy(ip.bytes.data(), a.bytes, 16);
  }
  return ip;
}

}  // namespace

std::string OrigDst::toString() const {
  return addr.toString(port);
}

Result<OrigDst> takeOrigDst(int mapFd, int acceptedFd) {
  sockaddr_storage peer{};
  socklen_t len = sizeof(peer);
  if (::getpeername(acceptedFd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) {
    return lastSystemError("getpeername of an accepted proxy connection");
  }
  egressd_orig_dst_key key{};
  socklen_t cookieLen = sizeof(key.netns_cookie);
  if (::getsockopt(acceptedFd, SOL_SOCKET, SO_NETNS_COOKIE, &key.netns_cookie, &cookieLen) != 0) {
    return lastSystemError("SO_NETNS_COOKIE of an accepted proxy connection");
  }
  const IpAddress client = IpAddress::fromSockaddr(reinterpret_cast<const sockaddr*>(&peer));
  key.client_addr = toMapAddr(client);
  key.client_port = peer.ss_family == AF_INET
                        ? ntohs(reinterpret_cast<const sockaddr_in*>(&peer)->sin_port)
                        : ntohs(reinterpret_cast<const sockaddr_in6*>(&peer)->sin6_port);
  egressd_orig_dst_value value{};
  if (bpf_map_lookup_and_delete_elem(mapFd, &key, &value) != 0) {
    const int err = errno;
    return systemError(err, "no original destination for client " + client.toString() + ":" +
                                std::to_string(key.client_port));
  }
  OrigDst out;
  out.addr = fromMapAddr(value.addr);
  out.port = value.port;
  out.slot = value.sandbox;
  out.socketCookie = value.cookie;
  return out;
}

}  // namespace egressd::proxy
