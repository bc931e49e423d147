#include "verify/probe_actions.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/ipv6.h>
#include <linux/seg6.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

#include "common/unique_fd.h"

namespace egressd::verify {
namespace {

struct Addr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family() const { return ss.ss_family; }
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&ss); }
};

bool parseAddr(const std::string& host, uint16_t port, Addr* a) {
  auto* in4 = reinterpret_cast<sockaddr_in*>(&a->ss);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&a->ss);
  if (::inet_pton(AF_INET, host.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    a->len = sizeof(sockaddr_in);
    return true;
  }
  if (::inet_pton(AF_INET6, host.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    a->len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

std::string hostPort(const std::string& host, uint16_t port) {
  if (host.find(':') != std::string::npos) {
    return "[" + host + "]:" + std::to_string(port);
  }
  return host + ":" + std::to_string(port);
}

void setTimeouts(int fd, int timeoutMs) {
  timeval tv{timeoutMs / 1000, (timeoutMs % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// Non-blocking connect bounded by the timeout; 0 or an errno.
int boundedConnect(int fd, const Addr& a, int timeoutMs) {
  int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  int result = 0;
  if (::connect(fd, a.sa(), a.len) != 0) {
    if (errno != EINPROGRESS) {
      return errno;
    }
    pollfd pfd{fd, POLLOUT, 0};
    int rc = ::poll(&pfd, 1, timeoutMs);
    if (rc == 0) {
      return ETIMEDOUT;
    }
    if (rc < 0) {
      return errno;
    }
    socklen_t len = sizeof(result);
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &result, &len);
  }
  ::fcntl(fd, F_SETFL, flags);
  return result;
}

// Reads what arrives within the timeout (at most `max` bytes, until EOF).
std::string readSome(int fd, size_t max) {
  std::string out;
  char buf[2048];
  while (out.size() < max) {
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) {
      break;
    }
    out.append(buf, static_cast<size_t>(n));
    if (out.find("\r\n\r\n") != std::string::npos) {
      break;
    }
  }
  return out;
}

UniqueFd connectedTcp(const Addr& a, int timeoutMs, int* err) {
  UniqueFd fd(::socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    *err = errno;
    return fd;
  }
  setTimeouts(fd.get(), timeoutMs);
  *err = boundedConnect(fd.get(), a, timeoutMs);
  return fd;
}

// DNS query message for `name`, type A, recursion desired.
std::string dnsMessage(const std::string& name) {
  std::string m = {'\x12', '\x34', '\x01', '\x00', '\x00', '\x01',
                   '\x00', '\x00', '\x00', '\x00', '\x00', '\x00'};
  std::stringstream labels(name);
  std::string label;
  while (std::getline(labels, label, '.')) {
    if (!label.empty()) {
      m += static_cast<char>(label.size());
      m += label;
    }
  }
  m += std::string("\x00\x00\x01\x00\x01", 5);
  return m;
}

std::string cgroup2MountPoint() {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    // ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER
    auto dash = line.find(" - ");
    if (dash == std::string::npos || line.compare(dash + 3, 8, "cgroup2 ") != 0) {
      continue;
    }
    std::istringstream fields(line);
    std::string id, parent, dev, root, mountPoint;
    fields >> id >> parent >> dev >> root >> mountPoint;
    return mountPoint;
  }
  return "";
}

std::string ownCgroup() {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("0::")) {
      return line.substr(3);
    }
  }
  return "?";
}

bool writePid(const std::string& procsFile) {
  int fd = ::open(procsFile.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    return false;
  }
  std::string pid = std::to_string(::getpid());
  bool ok = ::write(fd, pid.data(), pid.size()) == static_cast<ssize_t>(pid.size());
  ::close(fd);
  return ok;
}

}  // namespace

ActionResult ActionResult::success(std::string detail) {
  ActionResult r;
  r.ok = true;
  r.detail = std::move(detail);
  return r;
}

ActionResult ActionResult::failure(int err, std::string step, std::string detail) {
  ActionResult r;
  r.ok = false;
  r.err = err;
  r.step = std::move(step);
  r.detail = std::move(detail);
  return r;
}

std::string ActionResult::serialize() const {
  std::string d = detail;
  for (char& c : d) {
    if (c == '\n' || c == '\r') {
      c = ' ';
    }
  }
  if (ok) {
    return "OK " + d;
  }
  const char* name = ::strerrorname_np(err);
  return "ERR " + std::string(name != nullptr ? name : "E?") + " " + std::to_string(err) + " " +
         (step.empty() ? "-" : step) + " " + d;
}

ActionResult ActionResult::parse(const std::string& line) {
  std::istringstream in(line);
  std::string word;
  in >> word;
  if (word == "OK") {
    std::string rest;
    std::getline(in, rest);
    return success(rest.empty() ? "" : rest.substr(1));
  }
  if (word == "ERR") {
    std::string name;
    int err = 0;
    std::string step;
    in >> name >> err >> step;
    std::string rest;
    std::getline(in, rest);
    return failure(err, step == "-" ? "" : step, rest.empty() ? "" : rest.substr(1));
  }
  return failure(EPROTO, "probe", "unreadable probe output: " + line);
}

std::string ActionResult::describe() const {
  if (ok) {
    return "ok" + (detail.empty() ? "" : ": " + detail);
  }
  const char* name = ::strerrorname_np(err);
  std::string out = std::string(name != nullptr ? name : "E?");
  if (!step.empty()) {
    out += " at " + step;
  }
  if (!detail.empty()) {
    out += " (" + detail + ")";
  }
  return out;
}

ActionResult openSocket(int domain, int type, int protocol, const std::string& what) {
  int fd = ::socket(domain, type | SOCK_CLOEXEC, protocol);
  if (fd < 0) {
    return ActionResult::failure(errno, "socket", what);
  }
  ::close(fd);
  return ActionResult::success("socket(" + what + ") created");
}

ActionResult tcpSend(const std::string& addr, uint16_t port, const std::string& payload,
                     const ActionOptions& o) {
  Addr a;
  if (!parseAddr(addr, port, &a)) {
    return ActionResult::failure(EINVAL, "address", addr);
  }
  int err = 0;
  UniqueFd fd = connectedTcp(a, o.timeoutMs, &err);
  if (err != 0) {
    return ActionResult::failure(err, fd ? "connect" : "socket", hostPort(addr, port));
  }
  if (::send(fd.get(), payload.data(), payload.size(), MSG_NOSIGNAL) < 0) {
    return ActionResult::failure(errno, "send", hostPort(addr, port));
  }
  return ActionResult::success("connected to " + hostPort(addr, port) + ", sent " +
                               std::to_string(payload.size()) + " bytes");
}

ActionResult tcpFastOpen(const std::string& addr, uint16_t port, const std::string& payload,
                         const ActionOptions& o) {
  Addr a;
  if (!parseAddr(addr, port, &a)) {
    return ActionResult::failure(EINVAL, "address", addr);
  }
  UniqueFd fd(::socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return ActionResult::failure(errno, "socket");
  }
  setTimeouts(fd.get(), o.timeoutMs);
  if (::sendto(fd.get(), payload.data(), payload.size(), MSG_FASTOPEN | MSG_NOSIGNAL, a.sa(),
               a.len) < 0) {
    return ActionResult::failure(errno, "sendto(MSG_FASTOPEN)", hostPort(addr, port));
  }
  return ActionResult::success("SYN with data to " + hostPort(addr, port));
}

ActionResult udpSend(const std::string& addr, uint16_t port, const std::string& payload,
                     bool connected) {
  Addr a;
  if (!parseAddr(addr, port, &a)) {
    return ActionResult::failure(EINVAL, "address", addr);
  }
  UniqueFd fd(::socket(a.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return ActionResult::failure(errno, "socket");
  }
  if (connected) {
    if (::connect(fd.get(), a.sa(), a.len) != 0) {
      return ActionResult::failure(errno, "connect", hostPort(addr, port));
    }
    if (::send(fd.get(), payload.data(), payload.size(), 0) < 0) {
      return ActionResult::failure(errno, "send", hostPort(addr, port));
    }
  } else if (::sendto(fd.get(), payload.data(), payload.size(), 0, a.sa(), a.len) < 0) {
    return ActionResult::failure(errno, "sendto", hostPort(addr, port));
  }
  return ActionResult::success("datagram sent to " + hostPort(addr, port));
}

ActionResult quicInitial(const std::string& addr, uint16_t port, const std::string& payload) {
  // Long header, type Initial, version 1, 8-byte DCID, empty SCID, no token, then the payload
  // where the (encrypted) CRYPTO frames would be. Enough for any middlebox to call it QUIC.
  std::string d = {'\xc3', '\x00', '\x00', '\x00', '\x01', '\x08'};
  d += std::string("\x11\x22\x33\x44\x55\x66\x77\x88", 8);
  d += std::string("\x00\x00", 2);
  d += payload;
  d.resize(1200, '\0');  // RFC 9000 14.1: client Initials are padded to 1200 bytes
  return udpSend(addr, port, d, false);
}

ActionResult dnsQuery(const std::string& server, uint16_t port, const std::string& name, bool tcp,
                      const ActionOptions& o) {
  Addr a;
  if (!parseAddr(server, port, &a)) {
    return ActionResult::failure(EINVAL, "address", server);
  }
  const std::string query = dnsMessage(name);
  std::string where = hostPort(server, port) + (tcp ? "/tcp" : "/udp");
  if (tcp) {
    int err = 0;
    UniqueFd fd = connectedTcp(a, o.timeoutMs, &err);
    if (err != 0) {
      return ActionResult::failure(err, "connect", where);
    }
    std::string framed;
    framed += static_cast<char>(query.size() >> 8);
    framed += static_cast<char>(query.size() & 0xff);
    framed += query;
    if (::send(fd.get(), framed.data(), framed.size(), MSG_NOSIGNAL) < 0) {
      return ActionResult::failure(errno, "send", where);
    }
    char buf[512];
    ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
    if (n <= 0) {
      return ActionResult::failure(n == 0 ? ECONNRESET : errno, "recv", where);
    }
    return ActionResult::success("answer from " + where);
  }
  UniqueFd fd(::socket(a.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return ActionResult::failure(errno, "socket");
  }
  setTimeouts(fd.get(), o.timeoutMs);
  if (::sendto(fd.get(), query.data(), query.size(), 0, a.sa(), a.len) < 0) {
    return ActionResult::failure(errno, "sendto", where);
  }
  char buf[512];
  ssize_t n = ::recv(fd.get(), buf, sizeof(buf), 0);
  if (n < 12) {
    return ActionResult::failure(n < 0 ? errno : EPROTO, "recv", where);
  }
  const int rcode = buf[3] & 0x0f;
  const int answers =
      (static_cast<unsigned char>(buf[6]) << 8) | static_cast<unsigned char>(buf[7]);
  return ActionResult::success("answer from " + where + ": rcode " + std::to_string(rcode) + ", " +
                               std::to_string(answers) + " records");
}

ActionResult httpGet(const std::string& addr, uint16_t port, const std::string& host,
                     const std::string& path, const ActionOptions& o) {
  Addr a;
  if (!parseAddr(addr, port, &a)) {
    return ActionResult::failure(EINVAL, "address", addr);
  }
  int err = 0;
  UniqueFd fd = connectedTcp(a, o.timeoutMs, &err);
  if (err != 0) {
    return ActionResult::failure(err, "connect", hostPort(addr, port));
  }
  std::string req = "GET /" + path + " HTTP/1.1\r\nHost: " + host +
                    "\r\nUser-Agent: egressd-verify\r\nConnection: close\r\n\r\n";
  if (::send(fd.get(), req.data(), req.size(), MSG_NOSIGNAL) < 0) {
    return ActionResult::failure(errno, "send", hostPort(addr, port));
  }
  std::string resp = readSome(fd.get(), 4096);
  std::string status = resp.substr(0, resp.find("\r\n"));
  if (status.empty()) {
    return ActionResult::failure(ECONNRESET, "response", "no HTTP response");
  }
  return ActionResult::success(status);
}

ActionResult tlsClientHello(const std::string& addr, uint16_t port, const std::string& sni,
                            const ActionOptions& o) {
  Addr a;
  if (!parseAddr(addr, port, &a)) {
    return ActionResult::failure(EINVAL, "address", addr);
  }
  int err = 0;
  UniqueFd fd = connectedTcp(a, o.timeoutMs, &err);
  if (err != 0) {
    return ActionResult::failure(err, "connect", hostPort(addr, port));
  }
  std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)> ctx(SSL_CTX_new(TLS_client_method()),
                                                        SSL_CTX_free);
  std::unique_ptr<SSL, decltype(&SSL_free)> ssl(ctx ? SSL_new(ctx.get()) : nullptr, SSL_free);
  if (!ssl) {
    return ActionResult::failure(ENOMEM, "SSL_new");
  }
  SSL_set_tlsext_host_name(ssl.get(), sni.c_str());
  SSL_set_fd(ssl.get(), fd.get());
  // The listener does not speak TLS: the handshake fails after the ClientHello went out.
  int rc = SSL_connect(ssl.get());
  return ActionResult::success(std::string("ClientHello with SNI sent to ") + hostPort(addr, port) +
                               (rc == 1 ? ", handshake completed" : ", no handshake"));
}

// setsockopt(level, name) on a new socket of `family`/`type`: the kernel's setsockopt hook
// decides. `accepted` names the option in the success text (default: `option`).
static ActionResult setOptionOnFreshSocket(int family, int type, int level, int name,
                                           const void* value, socklen_t size,
                                           const std::string& option,
                                           const std::string& accepted = {}) {
  UniqueFd fd(::socket(family, type | SOCK_CLOEXEC, 0));
  if (!fd) {
    return ActionResult::failure(errno, "socket");
  }
  if (::setsockopt(fd.get(), level, name, value, size) != 0) {
    return ActionResult::failure(errno, "setsockopt(" + option + ")");
  }
  return ActionResult::success((accepted.empty() ? option : accepted) + " accepted");
}

ActionResult setRoutingHeader() {
  alignas(8) uint8_t buf[sizeof(ipv6_sr_hdr) + 2 * sizeof(in6_addr)] = {};
  auto* srh = reinterpret_cast<ipv6_sr_hdr*>(buf);
  srh->hdrlen = static_cast<uint8_t>(sizeof(buf) / 8 - 1);
  srh->type = IPV6_SRCRT_TYPE_4;
  srh->segments_left = 1;
  srh->first_segment = 1;
  ::inet_pton(AF_INET6, "2001:db8:e9::a", &srh->segments[0]);
  ::inet_pton(AF_INET6, "2001:db8:e9::b", &srh->segments[1]);
  return setOptionOnFreshSocket(AF_INET6, SOCK_STREAM, IPPROTO_IPV6, IPV6_RTHDR, buf, sizeof(buf),
                                "IPV6_RTHDR", "IPV6_RTHDR (segment routing, type 4)");
}

ActionResult setRoutingHeader2292() {
  const int one = 1;
  return setOptionOnFreshSocket(AF_INET6, SOCK_DGRAM, IPPROTO_IPV6, IPV6_2292RTHDR, &one,
                                sizeof(one), "IPV6_2292RTHDR");
}

ActionResult setIpOptions() {
  // Record route (RFC 791): the kernel takes it from an unprivileged socket (source routes
  // need CAP_NET_RAW, which the sandbox lacks anyway), so only the policy can refuse it.
  const uint8_t opts[8] = {IPOPT_RR, 7, 4, 0, 0, 0, 0, IPOPT_END};
  return setOptionOnFreshSocket(AF_INET, SOCK_STREAM, IPPROTO_IP, IP_OPTIONS, opts, sizeof(opts),
                                "IP_OPTIONS", "IP_OPTIONS (record route)");
}

ActionResult setNoDelay() {
  const int one = 1;
  return setOptionOnFreshSocket(AF_INET, SOCK_STREAM, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one),
                                "TCP_NODELAY");
}

ActionResult ioUringSetup() {
  io_uring_params params;
  std::memset(&params, 0, sizeof(params));
  long fd = ::syscall(SYS_io_uring_setup, 4, &params);
  if (fd < 0) {
    return ActionResult::failure(errno, "io_uring_setup");
  }
  ::close(static_cast<int>(fd));
  return ActionResult::success("io_uring ring created (its socket ops bypass seccomp)");
}

ActionResult childCgroupConnect(const std::string& addr, uint16_t port, const std::string& payload,
                                const ActionOptions& o) {
  const std::string mount = cgroup2MountPoint();
  std::string where = "stayed in " + ownCgroup();
  if (!mount.empty()) {
    const std::string child = mount + ownCgroup() + "/verify-child-" + std::to_string(::getpid());
    if (::mkdir(child.c_str(), 0755) != 0) {
      where = "mkdir child cgroup: " + std::string(::strerrorname_np(errno));
    } else if (!writePid(child + "/cgroup.procs")) {
      where = "join child cgroup: " + std::string(::strerrorname_np(errno));
    } else {
      where = "moved to " + ownCgroup();
    }
  }
  ActionResult r = tcpSend(addr, port, payload, o);
  r.detail = where + "; " + r.detail;
  return r;
}

ActionResult leaveCgroupConnect(const std::string& addr, uint16_t port, const std::string& payload,
                                const ActionOptions& o) {
  const std::string before = ownCgroup();
  std::vector<std::string> tried;
  const std::string mount = cgroup2MountPoint();
  // The top of this process's cgroup view, the usual mount points, and pid 1's view.
  for (const std::string& procs :
       {mount + "/cgroup.procs", std::string("/sys/fs/cgroup/cgroup.procs"),
        std::string("/sys/fs/cgroup/unified/cgroup.procs"),
        std::string("/proc/1/root/sys/fs/cgroup/cgroup.procs"),
        std::string("/proc/1/root/sys/fs/cgroup/unified/cgroup.procs")}) {
    if (writePid(procs)) {
      tried.push_back(procs + " written");
    }
  }
  const std::string after = ownCgroup();
  std::string where =
      before == after ? "still in " + after : "moved from " + before + " to " + after;
  ActionResult r = tcpSend(addr, port, payload, o);
  r.detail = where + "; " + r.detail;
  return r;
}

}  // namespace egressd::verify
