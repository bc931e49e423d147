#include "sandbox/socket_reaper.h"

#include <dirent.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <system_error>
#include <thread>
#include <utility>

#include "common/netns.h"
#include "common/unique_fd.h"
#include "sandbox/cgroup.h"

namespace egressd::sandbox {
namespace {

// TCP states worth ending: every connection that exists or is being made. LISTEN is not a
// connection (and may belong to a server the sandbox legitimately runs), TIME_WAIT and
// CLOSE are already over, NEW_SYN_RECV entries are a listener's request sockets, not
// sockets of their own, and BOUND_INACTIVE is a bound socket that never connected.
constexpr uint32_t kTcpStates =
    (1u << TCP_ESTABLISHED) | (1u << TCP_SYN_SENT) | (1u << TCP_SYN_RECV) | (1u << TCP_FIN_WAIT1) |
    (1u << TCP_FIN_WAIT2) | (1u << TCP_CLOSE_WAIT) | (1u << TCP_LAST_ACK) | (1u << TCP_CLOSING);
// A connected UDP socket reports TCP_ESTABLISHED; an unconnected one TCP_CLOSE.
constexpr uint32_t kUdpStates = 1u << TCP_ESTABLISHED;

// NLMSG_OK, spelled out: the macro compares the __u32 nlmsg_len with the int length, which
// clang reports (-Wsign-compare) where GCC stays silent. `len` stays signed: NLMSG_NEXT may
// take it below zero after the last, unpadded message, which must end the loop.
bool nlmsgOk(const nlmsghdr* h, int len) {
  return len >= static_cast<int>(sizeof(nlmsghdr)) && h->nlmsg_len >= sizeof(nlmsghdr) &&
         h->nlmsg_len <= static_cast<unsigned>(len);
}

// The kernel sizes a dump's messages by the reader's buffer, up to 32 KiB; twice that
// leaves no room for truncation.
constexpr size_t kReceiveBufferBytes = 64 * 1024;
// Netlink to the kernel answers at once; a bound wait keeps a kernel or logic bug from
// hanging the daemon's control path.
constexpr time_t kReceiveTimeoutSeconds = 5;

const char* protocolName(int protocol) {
  switch (protocol) {
    case IPPROTO_TCP:
      return "tcp";
    case IPPROTO_UDP:
      return "udp";
    default:
      return "ip";
  }
}

const char* familyName(int family) {
  return family == AF_INET6 ? "IPv6" : "IPv4";
}

std::string namespaceName(const std::string& netnsPath) {
  return netnsPath.empty() ? "the caller's network namespace" : "network namespace " + netnsPath;
}

// One listed socket: what the caller sees, plus the kernel's own id of it, sent back
// verbatim in SOCK_DESTROY (the interface index scopes link-local addresses and the cookie
// makes sure a socket that reused the same 4-tuple meanwhile is not the one destroyed).
struct Listed {
  SocketInfo info;
  inet_diag_sockid id{};
};

IpAddress addressFrom(int family, const __be32 (&words)[4]) {
  IpAddress addr;
  addr.family = family;
  std::memcpy(addr.bytes.data(), words, family == AF_INET6 ? 16 : 4);
  return addr;
}

class SockDiag {
 public:
  static Result<SockDiag> open(const std::string& netnsPath) {
    UniqueFd fd(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    if (!fd) {
      return lastSystemError("open NETLINK_SOCK_DIAG socket in " + namespaceName(netnsPath));
    }
    timeval timeout{};
    timeout.tv_sec = kReceiveTimeoutSeconds;
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) != 0) {
      return lastSystemError("set SO_RCVTIMEO on the NETLINK_SOCK_DIAG socket");
    }
    return SockDiag(std::move(fd), netnsPath);
  }

  // Appends the sockets of one family/protocol whose cgroup is in `cgroupIds`.
  Status dump(int family, int protocol, const std::unordered_set<uint64_t>& cgroupIds,
              std::vector<Listed>& out) {
    const std::string what = std::string("sock_diag dump of ") + protocolName(protocol) + "/" +
                             familyName(family) + " sockets in " + namespaceName(netnsPath_);
    inet_diag_req_v2 req{};
    req.sdiag_family = static_cast<uint8_t>(family);
    req.sdiag_protocol = static_cast<uint8_t>(protocol);
    req.idiag_states = protocol == IPPROTO_TCP ? kTcpStates : kUdpStates;
    const uint32_t seq = ++seq_;
    EGRESSD_TRY(send(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, req, what));

    bool missingCgroupId = false;
    for (;;) {
      auto n = receive(what);
      if (!n.ok()) {
        return std::move(n).error();
      }
      int len = static_cast<int>(*n);
      for (auto* h = reinterpret_cast<nlmsghdr*>(buffer_.get()); nlmsgOk(h, len);
           h = NLMSG_NEXT(h, len)) {
        if (h->nlmsg_seq != seq) {
          continue;  // a late answer to an earlier request
        }
        if (h->nlmsg_type == NLMSG_DONE) {
          if (missingCgroupId) {
            // Without the attribute no socket can be told apart by sandbox: refuse instead
            // of reporting "nothing to end" while denied connections keep running.
            return Error(EOPNOTSUPP, what +
                                         ": the kernel reports no INET_DIAG_CGROUP_ID "
                                         "(needs Linux 5.8+ with CONFIG_SOCK_CGROUP_DATA)");
          }
          return okStatus();
        }
        if (h->nlmsg_type == NLMSG_ERROR) {
          Error err = errorFrom(h, what);
          if (err.code() == 0) {
            continue;  // an acknowledgement, not a failure
          }
          return err;
        }
        if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY ||
            h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg))) {
          return Error(EPROTO, what + ": unexpected netlink message type " +
                                   std::to_string(h->nlmsg_type) + " of " +
                                   std::to_string(h->nlmsg_len) + " bytes");
        }
        std::optional<Listed> listed = parse(h, protocol, missingCgroupId);
        if (listed && cgroupIds.count(listed->info.cgroupId) != 0) {
          out.push_back(*listed);
        }
      }
    }
  }

  // SOCK_DESTROY of one listed socket; returns the kernel's errno (0 on success).
  Result<int> destroy(const Listed& s) {
    const std::string what = "SOCK_DESTROY " + describe(s.info);
    inet_diag_req_v2 req{};
    req.sdiag_family = static_cast<uint8_t>(s.info.family);
    req.sdiag_protocol = static_cast<uint8_t>(s.info.protocol);
    req.idiag_states = ~0u;
    req.id = s.id;
    const uint32_t seq = ++seq_;
    EGRESSD_TRY(send(SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK, seq, req, what));
    for (;;) {
      auto n = receive(what);
      if (!n.ok()) {
        return std::move(n).error();
      }
      int len = static_cast<int>(*n);
      for (auto* h = reinterpret_cast<nlmsghdr*>(buffer_.get()); nlmsgOk(h, len);
           h = NLMSG_NEXT(h, len)) {
        if (h->nlmsg_seq != seq || h->nlmsg_type != NLMSG_ERROR) {
          continue;
        }
        if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) {
          return Error(EPROTO, what + ": truncated netlink acknowledgement");
        }
        return -static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error;
      }
    }
  }

 private:
  SockDiag(UniqueFd fd, std::string netnsPath)
      : fd_(std::move(fd)),
        netnsPath_(std::move(netnsPath)),
        buffer_(new char[kReceiveBufferBytes]) {}

  Status send(uint16_t type, uint16_t flags, uint32_t seq, const inet_diag_req_v2& req,
              const std::string& what) {
    struct {
      nlmsghdr header;
      inet_diag_req_v2 body;
    } msg{};
    msg.header.nlmsg_len = sizeof(msg);
    msg.header.nlmsg_type = type;
    msg.header.nlmsg_flags = flags;
    msg.header.nlmsg_seq = seq;
    msg.body = req;
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    ssize_t n;
    do {
      n = ::sendto(fd_.get(), &msg, sizeof(msg), 0, reinterpret_cast<sockaddr*>(&kernel),
                   sizeof(kernel));
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      return lastSystemError(what + ": send");
    }
    return okStatus();
  }

  Result<size_t> receive(const std::string& what) {
    ssize_t n;
    do {
      n = ::recv(fd_.get(), buffer_.get(), kReceiveBufferBytes, 0);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        return Error(ETIMEDOUT, what + ": no answer from the kernel within " +
                                    std::to_string(kReceiveTimeoutSeconds) + " s");
      }
      return lastSystemError(what + ": receive");
    }
    if (n == 0) {
      return Error(EPROTO, what + ": empty netlink answer");
    }
    return static_cast<size_t>(n);
  }

  static Error errorFrom(const nlmsghdr* h, const std::string& what) {
    if (h->nlmsg_len < NLMSG_LENGTH(sizeof(nlmsgerr))) {
      return Error(EPROTO, what + ": truncated netlink error");
    }
    int err = -static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error;
    return systemError(err, what);
  }

  static std::optional<Listed> parse(const nlmsghdr* h, int protocol, bool& missingCgroupId) {
    const auto* msg = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
    if (msg->idiag_family != AF_INET && msg->idiag_family != AF_INET6) {
      return std::nullopt;
    }
    Listed out;
    out.id = msg->id;
    SocketInfo& info = out.info;
    info.protocol = protocol;
    info.family = msg->idiag_family;
    info.local = addressFrom(info.family, msg->id.idiag_src);
    info.remote = addressFrom(info.family, msg->id.idiag_dst);
    info.localPort = ntohs(msg->id.idiag_sport);
    info.remotePort = ntohs(msg->id.idiag_dport);
    info.cookie = static_cast<uint64_t>(msg->id.idiag_cookie[0]) |
                  (static_cast<uint64_t>(msg->id.idiag_cookie[1]) << 32);
    info.state = msg->idiag_state;
    if (protocol == IPPROTO_UDP && info.remotePort == 0) {
      return std::nullopt;  // not connected: each sendto() is judged by the hooks anyway
    }

    bool haveCgroupId = false;
    int attrLen = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof(inet_diag_msg)));
    for (auto* a = reinterpret_cast<const rtattr*>(reinterpret_cast<const char*>(msg) +
                                                   NLMSG_ALIGN(sizeof(inet_diag_msg)));
         RTA_OK(a, attrLen); a = RTA_NEXT(a, attrLen)) {
      if (a->rta_type == INET_DIAG_CGROUP_ID && RTA_PAYLOAD(a) >= sizeof(uint64_t)) {
        std::memcpy(&info.cgroupId, RTA_DATA(a), sizeof(uint64_t));
        haveCgroupId = true;
      }
    }
    if (!haveCgroupId) {
      // Minisocks carry no cgroup: a connection closed by its owner and waiting in
      // FIN_WAIT2 (a timewait sock; its FIN is sent, it sends no data) and a SYN_RECV
      // request sock (a listener's, not an outgoing connection). A busy host always has
      // some; they are nobody's to end. Only a full socket without the attribute means the
      // kernel cannot tell sandboxes apart.
      if (info.protocol != IPPROTO_TCP ||
          (info.state != TCP_FIN_WAIT2 && info.state != TCP_SYN_RECV)) {
        missingCgroupId = true;
      }
      return std::nullopt;
    }
    return out;
  }

  UniqueFd fd_;
  std::string netnsPath_;
  std::unique_ptr<char[]> buffer_;
  uint32_t seq_ = 0;
};

// The whole job, on the calling thread, which it moves into `netnsPath` for its duration.
Result<std::vector<SocketInfo>> reapInNamespace(
    const std::string& netnsPath, const std::unordered_set<uint64_t>& cgroupIds,
    const std::function<bool(const SocketInfo&)>& shouldDestroy) {
  auto guard = NetnsGuard::enter(netnsPath);
  if (!guard.ok()) {
    return std::move(guard).error();
  }
  auto diag = SockDiag::open(netnsPath);
  if (!diag.ok()) {
    return std::move(diag).error();
  }

  // List everything first, decide and destroy after: the dumps stay consistent and the
  // callback never runs while a dump is half read.
  std::vector<Listed> listed;
  for (int protocol : {IPPROTO_TCP, IPPROTO_UDP}) {
    for (int family : {AF_INET, AF_INET6}) {
      EGRESSD_TRY(diag->dump(family, protocol, cgroupIds, listed));
    }
  }

  // Every decision before the first destroy: a callback that throws leaves all intact.
  std::vector<const Listed*> chosen;
  for (const Listed& s : listed) {
    if (shouldDestroy(s.info)) {
      chosen.push_back(&s);
    }
  }

  std::vector<SocketInfo> destroyed;
  std::optional<Error> firstFailure;
  size_t failures = 0;
  for (const Listed* chosenSocket : chosen) {
    const Listed& s = *chosenSocket;
    auto err = diag->destroy(s);
    if (!err.ok()) {
      // The netlink socket itself failed: later requests would fail the same way.
      return std::move(err).error();
    }
    if (*err == 0) {
      destroyed.push_back(s.info);
    } else if (*err != ENOENT) {  // ENOENT: closed meanwhile, which is what we wanted
      if (!firstFailure) {
        firstFailure = systemError(*err, "SOCK_DESTROY " + describe(s.info));
      }
      ++failures;
    }
  }
  if (firstFailure) {
    return Error(firstFailure->code(),
                 firstFailure->message() + " (" + std::to_string(destroyed.size()) +
                     " other sockets destroyed, " + std::to_string(failures - 1) + " more failed)");
  }
  return destroyed;
}

}  // namespace

IpAddress SocketInfo::unmappedRemote() const {
  static constexpr uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (remote.family != AF_INET6 ||
      std::memcmp(remote.bytes.data(), kMappedPrefix, sizeof(kMappedPrefix)) != 0) {
    return remote;
  }
  return IpAddress::v4(remote.bytes[12], remote.bytes[13], remote.bytes[14], remote.bytes[15]);
}

Result<std::unordered_set<uint64_t>> cgroupTreeIds(const std::string& cgroupPath) {
  auto root = resolveCgroupPath(cgroupPath);
  if (!root.ok()) {
    return std::move(root).error();
  }
  auto rootId = cgroupId(*root);
  if (!rootId.ok()) {
    return std::move(rootId).error().wrap("cgroup ids of the tree " + *root);
  }
  std::unordered_set<uint64_t> ids{*rootId};
  std::vector<std::string> pending{*root};
  while (!pending.empty()) {
    std::string dir = std::move(pending.back());
    pending.pop_back();
    std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
    if (!d) {
      if (errno == ENOENT && dir != *root) {
        continue;  // removed while we walked: it holds no sockets any more
      }
      return lastSystemError("cgroup ids of the tree " + *root + ": opendir " + dir);
    }
    while (const dirent* e = ::readdir(d.get())) {
      // Child cgroups are the only directories in a cgroup directory; kernfs fills d_type.
      if (e->d_type != DT_DIR || std::strcmp(e->d_name, ".") == 0 ||
          std::strcmp(e->d_name, "..") == 0) {
        continue;
      }
      std::string child = dir + "/" + e->d_name;
      auto id = cgroupId(child);
      if (!id.ok()) {
        if (id.error().code() == ENOENT) {
          continue;
        }
        return std::move(id).error().wrap("cgroup ids of the tree " + *root);
      }
      ids.insert(*id);
      pending.push_back(std::move(child));
    }
  }
  return ids;
}

Result<std::vector<SocketInfo>> destroySockets(
    const std::string& netnsPath, const std::unordered_set<uint64_t>& cgroupIds,
    const std::function<bool(const SocketInfo&)>& shouldDestroy) {
  if (cgroupIds.empty()) {
    return std::vector<SocketInfo>{};
  }
  // setns() moves only the calling thread; a thread of our own keeps the caller (an Asio
  // thread of the daemon, say) in its namespace whatever happens in between.
  std::optional<Result<std::vector<SocketInfo>>> result;
  std::exception_ptr thrown;
  try {
    std::thread worker([&] {
      try {
        result.emplace(reapInNamespace(netnsPath, cgroupIds, shouldDestroy));
      } catch (...) {
        thrown = std::current_exception();
      }
    });
    worker.join();
  } catch (const std::system_error& e) {
    return Error(e.code().value(),
                 "start the sock_diag thread for " + namespaceName(netnsPath) + ": " + e.what());
  }
  if (thrown) {
    std::rethrow_exception(thrown);
  }
  return std::move(*result);
}

std::string describe(const SocketInfo& s) {
  return std::string(protocolName(s.protocol)) + " " + s.local.toString(s.localPort) + " -> " +
         s.remote.toString(s.remotePort);
}

}  // namespace egressd::sandbox
