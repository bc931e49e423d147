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

Result<UniqueFd> boundSocket(int family, uint16_t port) {
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0));
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
