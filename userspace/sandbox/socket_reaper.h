// Ending a sandbox's sockets that tightened rules now deny.
//
// The cgroup sock_addr hooks judge a socket only at connect()/sendmsg(): a TCP connection
// or a connected UDP socket made while a rule allowed it keeps working after the operator
// denies its destination. When rules tighten at runtime, egressd lists the sandbox's
// sockets through sock_diag (NETLINK_SOCK_DIAG, inet_diag dumps carry each socket's cgroup
// id) and ends the denied ones with SOCK_DESTROY (CONFIG_INET_DIAG_DESTROY): the owner's
// next or pending call fails with ECONNABORTED, and a TCP peer gets a RST.
//
// This file is the mechanism only; which sockets are denied is the caller's decision
// (the `shouldDestroy` callback).
#pragma once

#include <netinet/in.h>

#include <cstdint>
#include <functional>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/ip_address.h"
#include "common/result.h"

namespace egressd::sandbox {

struct SocketInfo {
  int protocol = 0;  // IPPROTO_TCP or IPPROTO_UDP
  int family = 0;    // the socket's family as the kernel reports it: AF_INET or AF_INET6
  // As the kernel gives them: an AF_INET6 socket talking to IPv4 shows ::ffff:a.b.c.d
  // (family AF_INET6). Use unmappedRemote() to judge the destination.
  IpAddress local, remote;
  uint16_t localPort = 0, remotePort = 0;
  uint64_t cgroupId = 0;  // INET_DIAG_CGROUP_ID: the cgroup the socket was created in
  uint64_t cookie = 0;    // the kernel's socket cookie (SO_COOKIE, bpf_get_socket_cookie)
  uint8_t state = 0;      // TCP_ESTABLISHED ... (connected UDP reports TCP_ESTABLISHED)

  // `remote` with a v4-mapped address (::ffff:a.b.c.d) as plain IPv4: the kernel judges
  // such a connect() by the IPv4 rules, so a policy decision must see the IPv4 address.
  IpAddress unmappedRemote() const;
};

// Ids of `cgroupPath` (absolute under the cgroup2 mount, or relative to it) and of every
// cgroup below it: what INET_DIAG_CGROUP_ID and bpf_get_current_cgroup_id() report. A
// child removed during the walk is skipped; a missing `cgroupPath` is an error.
Result<std::unordered_set<uint64_t>> cgroupTreeIds(const std::string& cgroupPath);

// Dumps the TCP sockets (every state but LISTEN, TIME_WAIT and CLOSE; request sockets of
// listeners are not sockets of their own) and the connected UDP sockets (remote port != 0)
// of AF_INET and AF_INET6 in the network namespace `netnsPath` ("" = the caller's), keeps
// those whose cgroupId is in `cgroupIds`, and destroys (SOCK_DESTROY) each for which
// `shouldDestroy` returns true. Returns what it destroyed.
//
// A socket that vanished meanwhile (ENOENT; the cookie makes sure a reused 4-tuple is never
// mistaken for it) is neither an error nor listed. Any other SOCK_DESTROY failure does not
// stop the others from being destroyed (ending as many denied connections as possible is
// the point); the first failure is then returned, with context:
// "SOCK_DESTROY tcp 10.0.0.2:4000 -> 198.18.3.3:80: Operation not supported (3 other
// sockets destroyed, 1 more failed)".
//
// The netlink work (and `shouldDestroy`) runs on a short-lived thread that setns()es into
// `netnsPath`, so the caller's namespace never changes; this call waits for it. An
// exception thrown by `shouldDestroy` is rethrown here, after the thread ended; nothing is
// destroyed then, since every socket is judged before the first SOCK_DESTROY.
// `shouldDestroy` should only decide: a socket it opened would be opened in `netnsPath`.
// Needs CAP_NET_ADMIN in the namespace (SOCK_DESTROY), CAP_SYS_ADMIN (setns) for another.
Result<std::vector<SocketInfo>> destroySockets(
    const std::string& netnsPath, const std::unordered_set<uint64_t>& cgroupIds,
    const std::function<bool(const SocketInfo&)>& shouldDestroy);

// "tcp 10.0.0.2:4000 -> 198.18.3.3:80", "udp [::1]:5000 -> [::1]:53".
std::string describe(const SocketInfo& s);

}  // namespace egressd::sandbox
