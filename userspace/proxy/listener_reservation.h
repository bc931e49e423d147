// The sandbox's proxy target: a TCP port on loopback (127.0.0.1 and ::1, the same port),
// in the sandbox's network namespace, that the kernel rewrites proxied ports to.
// Until the proxy listens on it, the sockets are bound but not listening: the port is
// held so no other process can take it, and connections to it are refused (fail closed).
// Beside it, the sandbox's resolver target: a second port, UDP and TCP, on the same two
// loopback addresses, that the kernel rewrites every DNS query (port 53) to. Its sockets
// live only as long as egressd: with the daemon down, queries fail and never go direct.
#pragma once

#include <cstdint>
#include <string>

#include "bpf/abi.h"
#include "common/result.h"
#include "common/unique_fd.h"

namespace egressd::proxy {

// The resolver's sockets, handed to the DNS server (DnsServer::addSandbox). The TCP ones
// are bound, not listening; the UDP ones bound (datagrams wait until egressd reads).
struct DnsSockets {
  UniqueFd udp4;
  UniqueFd udp6;
  UniqueFd tcp4;
  UniqueFd tcp6;
  uint16_t port = 0;
};

class ListenerReservation {
 public:
  // netnsPath empty = the daemon's own namespace (host-namespace sandboxes).
  static Result<ListenerReservation> reserve(const std::string& netnsPath);

  uint16_t port() const { return port_; }
  uint64_t netnsCookie() const { return netnsCookie_; }
  egressd_addr addr4() const;  // ::ffff:127.0.0.1
  egressd_addr addr6() const;  // ::1
  int fd4() const { return fd4_.get(); }
  int fd6() const { return fd6_.get(); }
  // The resolver target's port (on addr4() and addr6()), 0 once the sockets were taken.
  uint16_t dnsPort() const { return dns_.port; }
  // Moves the resolver's sockets out (for the DNS server); dnsPort() keeps its value.
  DnsSockets takeDnsSockets() { return std::move(dns_); }

 private:
  DnsSockets dns_;
  UniqueFd fd4_;
  UniqueFd fd6_;
  uint16_t port_ = 0;
  uint64_t netnsCookie_ = 0;
};

}  // namespace egressd::proxy
