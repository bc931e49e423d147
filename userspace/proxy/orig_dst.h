// The original destination of an accepted proxy connection. The kernel (sockops, at SYN
// time) publishes it in the pinned egressd_orig_dst map keyed by what only the kernel
// writes and the proxy can observe: the listener's network-namespace cookie plus the
// client's address and port. Two containers may use the same client address and port;
// their namespaces' cookies differ, so the key is unique across namespaces, and a
// sandbox cannot forge an entry (it has no BPF access).
#pragma once

#include <cstdint>
#include <string>

#include "common/ip_address.h"
#include "common/result.h"

namespace egressd::proxy {

struct OrigDst {
  IpAddress addr;     // what the sandbox connected to (v4-mapped normalized to IPv4)
  uint16_t port = 0;  // host byte order
  uint32_t slot = 0;  // the sandbox that made the connection
  uint64_t socketCookie = 0;

  std::string toString() const;  // "198.18.3.3:80" / "[2001:db8::3]:80"
};

// Takes (looks up and deletes: an entry serves one connection) the original destination
// of `acceptedFd` from the map at `mapFd`. ENOENT when the kernel published nothing for
// it, which the proxy treats as a reason to close the connection (fail closed).
Result<OrigDst> takeOrigDst(int mapFd, int acceptedFd);

}  // namespace egressd::proxy
