// The sandbox's proxy target: a TCP port on loopback (127.0.0.1 and ::1, the same port),
// in the sandbox's network namespace, that the kernel rewrites proxied ports to.
// Until the proxy listens on it, the sockets are bound but not listening: the port is
// held so no other process can take it, and connections to it are refused (fail closed).
#pragma once

#include <cstdint>
#include <string>

#include "bpf/abi.h"
#include "common/result.h"
#include "common/unique_fd.h"

namespace egressd::proxy {

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

 private:
  UniqueFd fd4_;
  UniqueFd fd6_;
  uint16_t port_ = 0;
  uint64_t netnsCookie_ = 0;
};

}  // namespace egressd::proxy
