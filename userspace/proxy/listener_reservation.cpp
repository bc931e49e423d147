#include "proxy/listener_reservation.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstring>

#include "common/netns.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace egressd::proxy {

namespace {

constexpr int kBindAttempts = 32;

Result<UniqueFd> boundSocket(int family, uint16_t port, int type = SOCK_STREAM) {
  UniqueFd fd(::socket(family, type | SOCK_CLOEXEC, 0));
  if (!fd) {
    return lastSystemError("create proxy reservation socket");
  }
  int on = 1;
  if (family == AF_INET6) {
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    sockaddr_in6 addr{};
    addr.sin6_family = AF_INET6;
    addr.sin6_addr = in6addr_loopback;
    addr.sin6_port = htons(port);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return lastSystemError("bind [::1]:" + std::to_string(port));
    }
  } else {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return lastSystemError("bind 127.0.0.1:" + std::to_string(port));
    }
  }
  return fd;
}

uint16_t boundPort(int fd) {
  sockaddr_in bound{};
  socklen_t len = sizeof(bound);
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) != 0) {
    return 0;
  }
  return ntohs(bound.sin_port);
}

// UDP and TCP on 127.0.0.1 and ::1, one port for all four.
Result<DnsSockets> reserveDns() {
  Error last(EADDRINUSE, "no attempt made");
  for (int attempt = 0; attempt < kBindAttempts; ++attempt) {
    auto udp4 = boundSocket(AF_INET, 0, SOCK_DGRAM);
    if (!udp4.ok()) {
      return std::move(udp4).error();
    }
    const uint16_t port = boundPort(udp4->get());
    if (port == 0) {
      return lastSystemError("getsockname of the resolver reservation");
    }
    auto udp6 = boundSocket(AF_INET6, port, SOCK_DGRAM);
    auto tcp4 = udp6.ok() ? boundSocket(AF_INET, port) : Result<UniqueFd>(udp6.error());
    auto tcp6 = tcp4.ok() ? boundSocket(AF_INET6, port) : Result<UniqueFd>(tcp4.error());
    if (!tcp6.ok()) {
      last = std::move(tcp6).error();
      continue;  // taken for one of them; try another port
    }
    DnsSockets dns;
    dns.udp4 = std::move(*udp4);
    dns.udp6 = std::move(*udp6);
    dns.tcp4 = std::move(*tcp4);
    dns.tcp6 = std::move(*tcp6);
    dns.port = port;
    return dns;
  }
  return last.wrap("reserving a loopback port free for UDP and TCP on 127.0.0.1 and ::1");
}

}  // namespace

Result<ListenerReservation> ListenerReservation::reserve(const std::string& netnsPath) {
  auto guard = NetnsGuard::enter(netnsPath);
  if (!guard.ok()) {
    return std::move(guard).error().wrap("reserving the proxy port");
  }
  Error last(EADDRINUSE, "no attempt made");
  for (int attempt = 0; attempt < kBindAttempts; ++attempt) {
    auto v4 = boundSocket(AF_INET, 0);
    if (!v4.ok()) {
      return std::move(v4).error();
    }
    sockaddr_in bound{};
    socklen_t len = sizeof(bound);
    if (::getsockname(v4->get(), reinterpret_cast<sockaddr*>(&bound), &len) != 0) {
      return lastSystemError("getsockname of the proxy reservation");
    }
    uint16_t port = ntohs(bound.sin_port);
    auto v6 = boundSocket(AF_INET6, port);
    if (!v6.ok()) {
      last = std::move(v6).error();
      continue;  // that port is taken on ::1; try another
    }
    ListenerReservation r;
    r.fd4_ = std::move(*v4);
    r.fd6_ = std::move(*v6);
    r.port_ = port;
    socklen_t cookieLen = sizeof(r.netnsCookie_);
    if (::getsockopt(r.fd4_.get(), SOL_SOCKET, SO_NETNS_COOKIE, &r.netnsCookie_, &cookieLen) != 0) {
      return lastSystemError("read the network namespace cookie (SO_NETNS_COOKIE, Linux 5.14+)");
    }
    auto dns = reserveDns();
    if (!dns.ok()) {
      return std::move(dns).error().wrap("reserving the resolver port");
    }
    r.dns_ = std::move(*dns);
    return r;
  }
  return last.wrap("reserving a loopback port free on both 127.0.0.1 and ::1");
}

egressd_addr ListenerReservation::addr4() const {
  egressd_addr a{};
  a.bytes[10] = 0xff;
  a.bytes[11] = 0xff;
  a.bytes[12] = 127;
  a.bytes[15] = 1;
  return a;
}

egressd_addr ListenerReservation::addr6() const {
  egressd_addr a{};
  a.bytes[15] = 1;
  return a;
}

}  // namespace egressd::proxy
