// egressd-probe: the test-only client that e2e tests run inside a sandbox cgroup.
//
// Each subcommand performs one kind of network operation and prints exactly one line:
//   OK <detail>                     exit 0
//   ERR <ERRNO_NAME> <strerror>     exit 1   (e.g. "ERR EPERM Operation not permitted")
// Usage errors exit 2. Some subcommands append notes to that line (tcp --show-local:
// " local_port=N"). Addresses are IPv4, IPv6 or v4-mapped IPv6 literals; printed
// addresses are "a.b.c.d:port" or "[v6]:port". Every blocking step is bounded by
// --timeout-ms, so a broken rule shows up as ERR ETIMEDOUT/EAGAIN, never as a hang.
//
// Global options (before the subcommand):
//   --timeout-ms N        bound for connect/recv (default 3000)
//   --join-cgroup DIR     mkdir DIR and move this process into it first (cgroup escape tests)
//   --resolv-conf FILE    private mount namespace with FILE bind-mounted on /etc/resolv.conf,
//                         so getaddrinfo never asks the host's real resolver
#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <linux/ipv6.h>
#include <linux/seg6.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <vector>

namespace {

int gTimeoutMs = 3000;
// Appended to the OK/ERR line when set (e.g. "local_port=41234" of tcp --show-local).
std::string gNote;

// ---- output ----

[[noreturn]] void ok(const std::string& detail) {
  std::printf("OK %s%s%s\n", detail.c_str(), gNote.empty() ? "" : " ", gNote.c_str());
  std::fflush(stdout);
  std::exit(0);
}

[[noreturn]] void fail(int err, const std::string& context = "") {
  const char* name = ::strerrorname_np(err);
  std::printf("ERR %s %s%s%s%s%s\n", name ? name : "E?", std::strerror(err),
              context.empty() ? "" : " during ", context.c_str(), gNote.empty() ? "" : " ",
              gNote.c_str());
  std::fflush(stdout);
  std::exit(1);
}

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "egressd-probe: %s\n"
               "usage: egressd-probe [--timeout-ms N] [--join-cgroup DIR] [--resolv-conf FILE]\n"
               "  tcp ADDR PORT [--send X] [--no-read] [--show-local] | tfo ADDR PORT\n"
               "  uring-connect ADDR PORT\n"
               "  udp ADDR PORT [--broadcast] | udp-connected ADDR PORT | sendmmsg ADDR PORT\n"
               "  raw-udp4 ADDR PORT [--src A] [--sport N] [--hdrincl] [--ip-options]\n"
               "  raw-udp6 ADDR PORT [--src A] [--sport N] [--hdrincl] [--rthdr] [--srh]\n"
               "  (ADDR may carry a scope: fe80::1%%IFNAME)\n"
               "  raw | raw6 | ping | ping6 | packet | socket DOMAIN TYPE PROTO\n"
               "  rthdr | rthdr2292 | ipoptions | tcprepair | nodelay | getaddrinfo NAME\n",
               why.c_str());
  std::exit(2);
}

// ---- addresses ----

struct ip6_hdr_probe {  // the fixed IPv6 header (netinet/ip6.h's names clash with linux/ipv6.h)
  uint32_t vtcflow;
  uint16_t plen;
  uint8_t nxt;
  uint8_t hlim;
  in6_addr src;
  in6_addr dst;
};
static_assert(sizeof(ip6_hdr_probe) == 40);

struct Addr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  int family() const { return ss.ss_family; }
  const sockaddr* sa() const { return reinterpret_cast<const sockaddr*>(&ss); }
};

Addr parseAddr(const std::string& host, const std::string& portText) {
  char* end = nullptr;
  long port = std::strtol(portText.c_str(), &end, 10);
  if (*end != '\0' || port < 0 || port > 65535) {
    usage("bad port " + portText);
  }
  Addr a;
  auto* in4 = reinterpret_cast<sockaddr_in*>(&a.ss);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.ss);
  // "fe80::1%IFNAME" (or "%INDEX"): the scope id of a link-local/multicast address, resolved
  // in the namespace the probe runs in.
  std::string literal = host;
  uint32_t scope = 0;
  if (size_t pct = host.find('%'); pct != std::string::npos) {
    literal = host.substr(0, pct);
    std::string ifname = host.substr(pct + 1);
    scope = ::if_nametoindex(ifname.c_str());
    if (scope == 0) {
      scope = static_cast<uint32_t>(std::strtoul(ifname.c_str(), &end, 10));
      if (*end != '\0' || scope == 0) {
        usage("unknown interface in " + host);
      }
    }
  }
  if (scope == 0 && ::inet_pton(AF_INET, literal.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(static_cast<uint16_t>(port));
    a.len = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, literal.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(static_cast<uint16_t>(port));
    in6->sin6_scope_id = scope;
    a.len = sizeof(sockaddr_in6);
  } else {
    usage("bad address " + host);
  }
  return a;
}

std::string fmtAddr(const sockaddr* sa) {
  char buf[INET6_ADDRSTRLEN] = "?";
  if (sa->sa_family == AF_INET) {
    auto* in4 = reinterpret_cast<const sockaddr_in*>(sa);
    ::inet_ntop(AF_INET, &in4->sin_addr, buf, sizeof(buf));
    return std::string(buf) + ":" + std::to_string(ntohs(in4->sin_port));
  }
  if (sa->sa_family == AF_INET6) {
    auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf));
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(in6->sin6_port));
  }
  return "family-" + std::to_string(sa->sa_family);
}

std::string peerOf(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    fail(errno, "getpeername");
  }
  return fmtAddr(reinterpret_cast<sockaddr*>(&ss));
}

// ---- socket helpers ----

int mustSocket(int domain, int type, int proto) {
  int fd = ::socket(domain, type | SOCK_CLOEXEC, proto);
  if (fd < 0) {
    fail(errno, "socket");
  }
  return fd;
}

void setTimeouts(int fd) {
  timeval tv{gTimeoutMs / 1000, (gTimeoutMs % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

// Non-blocking connect bounded by the timeout, then back to blocking mode.
void boundedConnect(int fd, const Addr& a) {
  int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  if (::connect(fd, a.sa(), a.len) != 0) {
    if (errno != EINPROGRESS) {
      fail(errno, "connect");
    }
    pollfd pfd{fd, POLLOUT, 0};
    int rc = ::poll(&pfd, 1, gTimeoutMs);
    if (rc == 0) {
      fail(ETIMEDOUT, "connect");
    }
    if (rc < 0) {
      fail(errno, "poll");
    }
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
    if (soerr != 0) {
      fail(soerr, "connect");
    }
  }
  ::fcntl(fd, F_SETFL, flags);
}

std::string trimNewline(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) {
    s.pop_back();
  }
  return s;
}

// Reads one line (the server greeting) within the timeout.
std::string readLine(int fd, const char* what) {
  std::string line;
  char c;
  while (line.size() < 4096) {
    ssize_t n = ::recv(fd, &c, 1, 0);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      fail(errno, what);
    }
    if (n == 0) {
      if (line.empty()) {
        fail(ECONNRESET, std::string(what) + " (closed before any data)");
      }
      break;
    }
    if (c == '\n') {
      break;
    }
    line += c;
  }
  return line;
}

std::string recvText(int fd, sockaddr_storage* from, const char* what) {
  char buf[2048];
  socklen_t len = sizeof(*from);
  ssize_t n =
      ::recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(from), from ? &len : nullptr);
  if (n < 0) {
    fail(errno, what);
  }
  return trimNewline(std::string(buf, static_cast<size_t>(n)));
}

// ---- TCP ----

[[noreturn]] void finishTcp(int fd, const std::string& sendText) {
  std::string peer = peerOf(fd);
  std::string greeting = readLine(fd, "reading greeting");
  std::string detail = "peer=" + peer + " greeting=\"" + greeting + "\"";
  if (!sendText.empty()) {
    std::string msg = sendText + "\n";
    if (::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL) < 0) {
      fail(errno, "send");
    }
    detail += " echo=\"" + readLine(fd, "reading echo") + "\"";
  }
  ok(detail);
}

// showLocal: bind to the wildcard address, port 0, first and report the local port the
// kernel picked on every outcome ("local_port=N"): a refused connect releases it again.
[[noreturn]] void cmdTcp(const Addr& a, const std::string& sendText, bool noRead, bool showLocal) {
  int fd = mustSocket(a.family(), SOCK_STREAM, 0);
  setTimeouts(fd);
  if (showLocal) {
    sockaddr_storage any{};
    any.ss_family = static_cast<sa_family_t>(a.family());
    socklen_t len = a.family() == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&any), len) != 0) {
      fail(errno, "bind");
    }
    len = sizeof(any);
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&any), &len) != 0) {
      fail(errno, "getsockname");
    }
    uint16_t port = any.ss_family == AF_INET
                        ? ntohs(reinterpret_cast<sockaddr_in*>(&any)->sin_port)
                        : ntohs(reinterpret_cast<sockaddr_in6*>(&any)->sin6_port);
    gNote = "local_port=" + std::to_string(port);
  }
  boundedConnect(fd, a);
  if (noRead) {
    ok("peer=" + peerOf(fd));  // servers that do not greet (e.g. DNS over TCP)
  }
  finishTcp(fd, sendText);
}

// sendto(MSG_FASTOPEN): the connect happens inside sendmsg (tcp_sendmsg_fastopen).
[[noreturn]] void cmdTfo(const Addr& a) {
  int fd = mustSocket(a.family(), SOCK_STREAM, 0);
  setTimeouts(fd);  // SO_SNDTIMEO bounds the implicit connect
  const char msg[] = "tfo\n";
  if (::sendto(fd, msg, sizeof(msg) - 1, MSG_FASTOPEN | MSG_NOSIGNAL, a.sa(), a.len) < 0) {
    fail(errno, "sendto(MSG_FASTOPEN)");
  }
  std::string peer = peerOf(fd);
  std::string greeting = readLine(fd, "reading greeting");
  std::string echo = readLine(fd, "reading echo");
  ok("peer=" + peer + " greeting=\"" + greeting + "\" echo=\"" + echo + "\"");
}

// ---- io_uring (raw syscalls: liburing is not a dependency) ----

struct Uring {
  int fd = -1;
  io_uring_params p{};
  uint8_t* sqRing = nullptr;
  uint8_t* cqRing = nullptr;
  io_uring_sqe* sqes = nullptr;
};

[[noreturn]] void cmdUringConnect(const Addr& a) {
  Uring r;
  r.fd = static_cast<int>(::syscall(__NR_io_uring_setup, 4, &r.p));
  if (r.fd < 0) {
    fail(errno, "io_uring_setup");
  }
  size_t sqSize = r.p.sq_off.array + r.p.sq_entries * sizeof(uint32_t);
  size_t cqSize = r.p.cq_off.cqes + r.p.cq_entries * sizeof(io_uring_cqe);
  bool single = (r.p.features & IORING_FEAT_SINGLE_MMAP) != 0;
  if (single) {
    sqSize = cqSize = std::max(sqSize, cqSize);
  }
  void* sq = ::mmap(nullptr, sqSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r.fd,
                    IORING_OFF_SQ_RING);
  if (sq == MAP_FAILED) {
    fail(errno, "mmap sq ring");
  }
  void* cq = sq;
  if (!single) {
    cq = ::mmap(nullptr, cqSize, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r.fd,
                IORING_OFF_CQ_RING);
    if (cq == MAP_FAILED) {
      fail(errno, "mmap cq ring");
    }
  }
  void* sqes = ::mmap(nullptr, r.p.sq_entries * sizeof(io_uring_sqe), PROT_READ | PROT_WRITE,
                      MAP_SHARED | MAP_POPULATE, r.fd, IORING_OFF_SQES);
  if (sqes == MAP_FAILED) {
    fail(errno, "mmap sqes");
  }
  r.sqRing = static_cast<uint8_t*>(sq);
  r.cqRing = static_cast<uint8_t*>(cq);
  r.sqes = static_cast<io_uring_sqe*>(sqes);

  int sock = mustSocket(a.family(), SOCK_STREAM, 0);
  setTimeouts(sock);
  __kernel_timespec ts{gTimeoutMs / 1000, (gTimeoutMs % 1000) * 1000000LL};

  // SQE 0: connect, linked to SQE 1: a timeout that cancels it (no unbounded SYN retries).
  std::memset(r.sqes, 0, 2 * sizeof(io_uring_sqe));
  r.sqes[0].opcode = IORING_OP_CONNECT;
  r.sqes[0].fd = sock;
  r.sqes[0].addr = reinterpret_cast<uint64_t>(a.sa());
  r.sqes[0].off = a.len;
  r.sqes[0].flags = IOSQE_IO_LINK;
  r.sqes[0].user_data = 1;
  r.sqes[1].opcode = IORING_OP_LINK_TIMEOUT;
  r.sqes[1].fd = -1;
  r.sqes[1].addr = reinterpret_cast<uint64_t>(&ts);
  r.sqes[1].len = 1;
  r.sqes[1].user_data = 2;

  auto* sqTail = reinterpret_cast<std::atomic<uint32_t>*>(r.sqRing + r.p.sq_off.tail);
  uint32_t mask = *reinterpret_cast<uint32_t*>(r.sqRing + r.p.sq_off.ring_mask);
  auto* array = reinterpret_cast<uint32_t*>(r.sqRing + r.p.sq_off.array);
  uint32_t tail = sqTail->load(std::memory_order_acquire);
  array[tail & mask] = 0;
  array[(tail + 1) & mask] = 1;
  sqTail->store(tail + 2, std::memory_order_release);

  if (::syscall(__NR_io_uring_enter, r.fd, 2, 2, IORING_ENTER_GETEVENTS, nullptr, 0) < 0) {
    fail(errno, "io_uring_enter");
  }
  auto* cqHead = reinterpret_cast<std::atomic<uint32_t>*>(r.cqRing + r.p.cq_off.head);
  auto* cqTail = reinterpret_cast<std::atomic<uint32_t>*>(r.cqRing + r.p.cq_off.tail);
  uint32_t cqMask = *reinterpret_cast<uint32_t*>(r.cqRing + r.p.cq_off.ring_mask);
  auto* cqes = reinterpret_cast<io_uring_cqe*>(r.cqRing + r.p.cq_off.cqes);
  int connectRes = 1;  // sentinel: not seen
  for (int spins = 0; spins < 1000 && connectRes == 1; ++spins) {
    uint32_t head = cqHead->load(std::memory_order_acquire);
    uint32_t end = cqTail->load(std::memory_order_acquire);
    for (; head != end; ++head) {
      const io_uring_cqe& c = cqes[head & cqMask];
      if (c.user_data == 1) {
        connectRes = c.res;
      }
    }
    cqHead->store(head, std::memory_order_release);
    if (connectRes == 1) {
      ::syscall(__NR_io_uring_enter, r.fd, 0, 1, IORING_ENTER_GETEVENTS, nullptr, 0);
    }
  }
  if (connectRes == 1) {
    fail(ETIMEDOUT, "io_uring connect (no completion)");
  }
  if (connectRes == -ECANCELED) {
    fail(ETIMEDOUT, "io_uring connect (cancelled by link timeout)");
  }
  if (connectRes < 0) {
    fail(-connectRes, "io_uring connect");
  }
  finishTcp(sock, "");
}

// ---- UDP ----

[[noreturn]] void cmdUdp(const Addr& a, bool broadcast) {
  int fd = mustSocket(a.family(), SOCK_DGRAM, 0);
  setTimeouts(fd);
  if (broadcast) {
    int one = 1;
    if (::setsockopt(fd, SOL_SOCKET, SO_BROADCAST, &one, sizeof(one)) != 0) {
      fail(errno, "setsockopt(SO_BROADCAST)");
    }
  }
  const char msg[] = "probe";
  if (::sendto(fd, msg, sizeof(msg) - 1, 0, a.sa(), a.len) < 0) {
    fail(errno, "sendto");
  }
  sockaddr_storage from{};
  std::string reply = recvText(fd, &from, "recvfrom");
  ok("from=" + fmtAddr(reinterpret_cast<sockaddr*>(&from)) + " reply=\"" + reply + "\"");
}

[[noreturn]] void cmdUdpConnected(const Addr& a) {
  int fd = mustSocket(a.family(), SOCK_DGRAM, 0);
  setTimeouts(fd);
  if (::connect(fd, a.sa(), a.len) != 0) {
    fail(errno, "connect");
  }
  const char msg[] = "probe";
  if (::send(fd, msg, sizeof(msg) - 1, 0) < 0) {
    fail(errno, "send");
  }
  sockaddr_storage from{};
  std::string reply = recvText(fd, &from, "recv");
  ok("peer=" + peerOf(fd) + " from=" + fmtAddr(reinterpret_cast<sockaddr*>(&from)) + " reply=\"" +
     reply + "\"");
}

[[noreturn]] void cmdSendmmsg(const Addr& a) {
  int fd = mustSocket(a.family(), SOCK_DGRAM, 0);
  setTimeouts(fd);
  char m1[] = "mmsg1";
  char m2[] = "mmsg2";
  iovec iov[2] = {{m1, sizeof(m1) - 1}, {m2, sizeof(m2) - 1}};
  mmsghdr msgs[2]{};
  for (int i = 0; i < 2; ++i) {
    msgs[i].msg_hdr.msg_name = const_cast<sockaddr*>(a.sa());
    msgs[i].msg_hdr.msg_namelen = a.len;
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  int sent = ::sendmmsg(fd, msgs, 2, 0);
  if (sent < 0) {
    fail(errno, "sendmmsg");
  }
  if (sent < 2) {
    // A partial batch: the second message's error is reported by a retry of it alone.
    if (::sendmmsg(fd, &msgs[sent], 2 - sent, 0) < 0) {
      fail(errno, "sendmmsg (message " + std::to_string(sent + 1) + ")");
    }
  }
  sockaddr_storage from{};
  std::string r1 = recvText(fd, &from, "recvfrom");
  std::string r2 = recvText(fd, &from, "recvfrom");
  ok("sent=2 from=" + fmtAddr(reinterpret_cast<sockaddr*>(&from)) + " reply=\"" + r1 +
     "\" reply2=\"" + r2 + "\"");
}

// ---- raw UDP (packets no connect/sendmsg hook judges: only the skb backstop sees them) ----

struct RawOptions {
  std::string src;    // source address (needed for IPv6 header-included packets)
  int sport = 40000;  // UDP source port: lets the test find this datagram in the server log
  bool hdrincl = false;
  bool ipOptions = false;  // IPv4: ihl=6 with NOP, NOP, NOP, EOL
  bool rthdr = false;      // IPv6: a type 0 routing header with segments_left 0
  bool srh = false;        // IPv6: a type 4 segment routing header with segments_left 0
};

uint32_t csumAdd(uint32_t sum, const void* data, size_t len) {
  const auto* p = static_cast<const uint8_t*>(data);
  for (size_t i = 0; i + 1 < len; i += 2) {
    sum += static_cast<uint32_t>(p[i] << 8 | p[i + 1]);
  }
  if (len % 2 != 0) {
    sum += static_cast<uint32_t>(p[len - 1] << 8);
  }
  return sum;
}

uint16_t csumFold(uint32_t sum) {
  while ((sum >> 16) != 0) {
    sum = (sum & 0xffff) + (sum >> 16);
  }
  auto c = static_cast<uint16_t>(~sum & 0xffff);
  return c == 0 ? 0xffff : c;
}

// UDP header + payload with the checksum over the pseudo header (src/dst of `addrLen` bytes).
std::vector<uint8_t> udpDatagram(const RawOptions& o, uint16_t dport, const std::string& payload,
                                 const void* src, const void* dst, size_t addrLen) {
  std::vector<uint8_t> d(8 + payload.size());
  auto len = static_cast<uint16_t>(d.size());
  d[0] = static_cast<uint8_t>(o.sport >> 8);
  d[1] = static_cast<uint8_t>(o.sport & 0xff);
  d[2] = static_cast<uint8_t>(dport >> 8);
  d[3] = static_cast<uint8_t>(dport & 0xff);
  d[4] = static_cast<uint8_t>(len >> 8);
  d[5] = static_cast<uint8_t>(len & 0xff);
  std::memcpy(d.data() + 8, payload.data(), payload.size());
  if (src != nullptr) {
    uint32_t sum = csumAdd(0, src, addrLen);
    sum = csumAdd(sum, dst, addrLen);
    sum += IPPROTO_UDP;
    sum += len;
    sum = csumAdd(sum, d.data(), d.size());
    uint16_t c = csumFold(sum);
    d[6] = static_cast<uint8_t>(c >> 8);
    d[7] = static_cast<uint8_t>(c & 0xff);
  }
  return d;
}

[[noreturn]] void rawSend(int fd, const std::vector<uint8_t>& pkt, const Addr& a,
                          const std::string& what) {
  Addr to = a;
  if (to.family() == AF_INET) {
    reinterpret_cast<sockaddr_in*>(&to.ss)->sin_port = 0;
  } else {
    reinterpret_cast<sockaddr_in6*>(&to.ss)->sin6_port = 0;
  }
  ssize_t n = ::sendto(fd, pkt.data(), pkt.size(), 0, to.sa(), to.len);
  if (n < 0) {
    fail(errno, "sendto(" + what + ")");
  }
  ok("sent=" + std::to_string(n) + " " + what + " to " + fmtAddr(a.sa()));
}

[[noreturn]] void cmdRawUdp4(const Addr& a, const RawOptions& o) {
  if (a.family() != AF_INET) {
    usage("raw-udp4 needs an IPv4 address");
  }
  const in_addr dst = reinterpret_cast<const sockaddr_in*>(&a.ss)->sin_addr;
  const uint16_t dport = ntohs(reinterpret_cast<const sockaddr_in*>(&a.ss)->sin_port);
  in_addr src{};
  if (!o.src.empty() && ::inet_pton(AF_INET, o.src.c_str(), &src) != 1) {
    usage("bad --src " + o.src);
  }
  const bool hdrincl = o.hdrincl || o.ipOptions;
  auto udp = udpDatagram(o, dport, hdrincl ? "raw4-hdrincl" : "raw4",
                         o.src.empty() ? nullptr : &src, &dst, 4);
  int fd = mustSocket(AF_INET, SOCK_RAW, IPPROTO_UDP);
  if (!hdrincl) {
    rawSend(fd, udp, a, "SOCK_RAW IPPROTO_UDP");  // the kernel builds the IP header
  }
  int one = 1;
  if (::setsockopt(fd, IPPROTO_IP, IP_HDRINCL, &one, sizeof(one)) != 0) {
    fail(errno, "setsockopt(IP_HDRINCL)");
  }
  const uint8_t options[4] = {IPOPT_NOP, IPOPT_NOP, IPOPT_NOP, IPOPT_END};
  const size_t ihl = o.ipOptions ? 6 : 5;
  std::vector<uint8_t> pkt(ihl * 4 + udp.size());
  auto* ip = reinterpret_cast<iphdr*>(pkt.data());
  ip->version = 4;
  ip->ihl = static_cast<unsigned>(ihl) & 0xf;
  ip->ttl = 64;
  ip->protocol = IPPROTO_UDP;
  ip->tot_len = htons(static_cast<uint16_t>(pkt.size()));
  ip->saddr = src.s_addr;  // 0: the kernel fills in the route's source
  ip->daddr = dst.s_addr;
  if (o.ipOptions) {
    std::memcpy(pkt.data() + 20, options, sizeof(options));
  }
  std::memcpy(pkt.data() + ihl * 4, udp.data(), udp.size());
  rawSend(fd, pkt, a, o.ipOptions ? "IP_HDRINCL ihl=6 NOP,NOP,NOP,EOL" : "IP_HDRINCL");
}

[[noreturn]] void cmdRawUdp6(const Addr& a, const RawOptions& o) {
  if (a.family() != AF_INET6) {
    usage("raw-udp6 needs an IPv6 address");
  }
  const in6_addr dst = reinterpret_cast<const sockaddr_in6*>(&a.ss)->sin6_addr;
  const uint16_t dport = ntohs(reinterpret_cast<const sockaddr_in6*>(&a.ss)->sin6_port);
  const bool hdrincl = o.hdrincl || o.rthdr || o.srh;
  if (!hdrincl) {
    // The kernel builds the IPv6 header and fills in the UDP checksum (offset 6).
    int fd = mustSocket(AF_INET6, SOCK_RAW, IPPROTO_UDP);
    int offset = 6;
    if (::setsockopt(fd, IPPROTO_IPV6, IPV6_CHECKSUM, &offset, sizeof(offset)) != 0) {
      fail(errno, "setsockopt(IPV6_CHECKSUM)");
    }
    rawSend(fd, udpDatagram(o, dport, "raw6", nullptr, nullptr, 16), a, "SOCK_RAW IPPROTO_UDP");
  }
  in6_addr src{};
  if (o.src.empty() || ::inet_pton(AF_INET6, o.src.c_str(), &src) != 1) {
    usage("raw-udp6 with a header needs --src IPV6");
  }
  auto udp = udpDatagram(o, dport, "raw6-hdrincl", &src, &dst, 16);
  std::vector<uint8_t> ext;
  std::string what = "IPV6_HDRINCL";
  if (o.rthdr) {
    // Type 0, no addresses, segments_left 0: a receiver skips it (RFC 5095 section 3).
    ext = {IPPROTO_UDP, 0, 0 /* type 0 */, 0 /* segments_left */, 0, 0, 0, 0};
    what += " rthdr type 0";
  } else if (o.srh) {
    // Type 4 (RFC 8754) with one segment, the destination itself, segments_left 0.
    ext.assign(8 + 16, 0);
    ext[0] = IPPROTO_UDP;
    ext[1] = 2;  // 8-octet units after the first 8
    ext[2] = IPV6_SRCRT_TYPE_4;
    ext[3] = 0;  // segments_left
    ext[4] = 0;  // last_entry
    std::memcpy(ext.data() + 8, &dst, 16);
    what += " rthdr type 4 (SRH)";
  }
  std::vector<uint8_t> pkt(sizeof(ip6_hdr_probe) + ext.size() + udp.size());
  auto* ip6 = reinterpret_cast<ip6_hdr_probe*>(pkt.data());
  ip6->vtcflow = htonl(6u << 28);
  ip6->plen = htons(static_cast<uint16_t>(ext.size() + udp.size()));
  ip6->nxt = static_cast<uint8_t>(ext.empty() ? int{IPPROTO_UDP} : int{IPPROTO_ROUTING});
  ip6->hlim = 64;
  ip6->src = src;
  ip6->dst = dst;
  if (!ext.empty()) {  // memcpy from an empty vector's null data() is UB
    std::memcpy(pkt.data() + sizeof(ip6_hdr_probe), ext.data(), ext.size());
  }
  std::memcpy(pkt.data() + sizeof(ip6_hdr_probe) + ext.size(), udp.data(), udp.size());
  int fd = mustSocket(AF_INET6, SOCK_RAW, IPPROTO_RAW);  // IPPROTO_RAW: header included
  rawSend(fd, pkt, a, what);
}

// ---- socket kinds ----

[[noreturn]] void cmdSocket(int domain, int type, int proto, const std::string& what) {
  int fd = ::socket(domain, type | SOCK_CLOEXEC, proto);
  if (fd < 0) {
    fail(errno, "socket(" + what + ")");
  }
  ::close(fd);
  ok("socket(" + what + ") created");
}

// ---- socket options ----

// A valid segment routing header (RFC 8754, type 4) with two segments: the kernel accepts
// it from an unprivileged socket, so only a policy can refuse it (type 0 is refused anyway).
[[noreturn]] void cmdRthdr() {
  int fd = mustSocket(AF_INET6, SOCK_STREAM, 0);
  alignas(8) uint8_t buf[sizeof(ipv6_sr_hdr) + 2 * sizeof(in6_addr)] = {};
  auto* srh = reinterpret_cast<ipv6_sr_hdr*>(buf);
  srh->nexthdr = 0;
  srh->hdrlen = static_cast<uint8_t>(sizeof(buf) / 8 - 1);
  srh->type = IPV6_SRCRT_TYPE_4;
  srh->segments_left = 1;
  srh->first_segment = 1;
  ::inet_pton(AF_INET6, "2001:db8:e9::a", &srh->segments[0]);
  ::inet_pton(AF_INET6, "2001:db8:e9::b", &srh->segments[1]);
  if (::setsockopt(fd, IPPROTO_IPV6, IPV6_RTHDR, buf, sizeof(buf)) != 0) {
    fail(errno, "setsockopt(IPV6_RTHDR)");
  }
  ok("setsockopt(IPV6_RTHDR, SRH type 4) accepted");
}

[[noreturn]] void cmdRthdr2292() {
  int fd = mustSocket(AF_INET6, SOCK_DGRAM, 0);
  int one = 1;
  if (::setsockopt(fd, IPPROTO_IPV6, IPV6_2292RTHDR, &one, sizeof(one)) != 0) {
    fail(errno, "setsockopt(IPV6_2292RTHDR)");
  }
  ok("setsockopt(IPV6_2292RTHDR) accepted");
}

// IPv4 loose source route (RFC 791 LSRR) through 198.18.0.1: only stored, never sent.
[[noreturn]] void cmdIpOptions() {
  int fd = mustSocket(AF_INET, SOCK_STREAM, 0);
  uint8_t opts[8] = {IPOPT_NOP, IPOPT_LSRR, 7, 4, 198, 18, 0, 1};
  if (::setsockopt(fd, IPPROTO_IP, IP_OPTIONS, opts, sizeof(opts)) != 0) {
    fail(errno, "setsockopt(IP_OPTIONS)");
  }
  ok("setsockopt(IP_OPTIONS, LSRR) accepted");
}

// A harmless option, to show the setsockopt hook does not refuse everything.
[[noreturn]] void cmdNodelay() {
  int fd = mustSocket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
    fail(errno, "setsockopt(TCP_NODELAY)");
  }
  ok("setsockopt(TCP_NODELAY) accepted");
}

[[noreturn]] void cmdTcpRepair() {
  int fd = mustSocket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  if (::setsockopt(fd, IPPROTO_TCP, TCP_REPAIR, &one, sizeof(one)) != 0) {
    fail(errno, "setsockopt(TCP_REPAIR)");
  }
  ok("setsockopt(TCP_REPAIR) accepted");
}

// ---- resolver ----

[[noreturn]] void cmdGetaddrinfo(const std::string& name) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    std::string eai = rc == EAI_NONAME  ? "EAI_NONAME"
                      : rc == EAI_AGAIN ? "EAI_AGAIN"
                      : rc == EAI_FAIL  ? "EAI_FAIL"
                      : rc == EAI_SYSTEM
                          ? std::string("EAI_SYSTEM/") +
                                (::strerrorname_np(errno) ? ::strerrorname_np(errno) : "?")
                          : "EAI_" + std::to_string(rc);
    std::printf("ERR %s %s\n", eai.c_str(), ::gai_strerror(rc));
    std::fflush(stdout);
    std::exit(1);
  }
  std::set<std::string> addrs;
  for (addrinfo* ai = res; ai; ai = ai->ai_next) {
    std::string s = fmtAddr(ai->ai_addr);
    addrs.insert(s.substr(0, s.rfind(':')));  // drop the (zero) port
  }
  ::freeaddrinfo(res);
  std::string detail;
  for (const auto& s : addrs) {
    detail += (detail.empty() ? "" : " ") + s;
  }
  ok(detail);
}

void useResolvConf(const std::string& file) {
  if (::unshare(CLONE_NEWNS) != 0) {
    fail(errno, "unshare(CLONE_NEWNS) for --resolv-conf");
  }
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    fail(errno, "make / private for --resolv-conf");
  }
  if (::mount(file.c_str(), "/etc/resolv.conf", nullptr, MS_BIND, nullptr) != 0) {
    fail(errno, "bind-mount " + file + " on /etc/resolv.conf");
  }
}

void joinCgroup(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) {
    fail(errno, "mkdir " + dir);
  }
  std::string procs = dir + "/cgroup.procs";
  int fd = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0 || ::write(fd, "0", 1) != 1) {
    fail(errno, "join cgroup " + dir);
  }
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  size_t i = 0;
  for (; i < args.size() && args[i].starts_with("--"); i += 2) {
    if (i + 1 >= args.size()) {
      usage("missing value for " + args[i]);
    }
    if (args[i] == "--timeout-ms") {
      gTimeoutMs = std::atoi(args[i + 1].c_str());
    } else if (args[i] == "--join-cgroup") {
      joinCgroup(args[i + 1]);
    } else if (args[i] == "--resolv-conf") {
      useResolvConf(args[i + 1]);
    } else {
      usage("unknown option " + args[i]);
    }
  }
  if (i >= args.size()) {
    usage("missing subcommand");
  }
  const std::string cmd = args[i];
  std::vector<std::string> rest(args.begin() + static_cast<long>(i) + 1, args.end());
  auto need = [&](size_t n) {
    if (rest.size() < n) {
      usage(cmd + ": missing arguments");
    }
  };

  if (cmd == "tcp") {
    need(2);
    std::string sendText;
    bool noRead = false;
    bool showLocal = false;
    for (size_t k = 2; k < rest.size(); ++k) {
      if (rest[k] == "--send" && k + 1 < rest.size()) {
        sendText = rest[++k];
      } else if (rest[k] == "--no-read") {
        noRead = true;
      } else if (rest[k] == "--show-local") {
        showLocal = true;
      } else {
        usage("tcp: unknown option " + rest[k]);
      }
    }
    cmdTcp(parseAddr(rest[0], rest[1]), sendText, noRead, showLocal);
  }
  if (cmd == "tfo") {
    need(2);
    cmdTfo(parseAddr(rest[0], rest[1]));
  }
  if (cmd == "uring-connect") {
    need(2);
    cmdUringConnect(parseAddr(rest[0], rest[1]));
  }
  if (cmd == "udp") {
    need(2);
    bool broadcast = false;
    for (size_t k = 2; k < rest.size(); ++k) {
      if (rest[k] == "--broadcast") {
        broadcast = true;
      } else {
        usage("udp: unknown option " + rest[k]);
      }
    }
    cmdUdp(parseAddr(rest[0], rest[1]), broadcast);
  }
  if (cmd == "raw-udp4" || cmd == "raw-udp6") {
    need(2);
    RawOptions o;
    for (size_t k = 2; k < rest.size(); ++k) {
      if (rest[k] == "--src" && k + 1 < rest.size()) {
        o.src = rest[++k];
      } else if (rest[k] == "--sport" && k + 1 < rest.size()) {
        o.sport = std::atoi(rest[++k].c_str());
      } else if (rest[k] == "--hdrincl") {
        o.hdrincl = true;
      } else if (rest[k] == "--ip-options" && cmd == "raw-udp4") {
        o.ipOptions = true;
      } else if (rest[k] == "--rthdr" && cmd == "raw-udp6") {
        o.rthdr = true;
      } else if (rest[k] == "--srh" && cmd == "raw-udp6") {
        o.srh = true;
      } else {
        usage(cmd + ": unknown option " + rest[k]);
      }
    }
    if (o.sport <= 0 || o.sport > 65535) {
      usage(cmd + ": bad --sport");
    }
    if (cmd == "raw-udp4") {
      cmdRawUdp4(parseAddr(rest[0], rest[1]), o);
    }
    cmdRawUdp6(parseAddr(rest[0], rest[1]), o);
  }
  if (cmd == "udp-connected") {
    need(2);
    cmdUdpConnected(parseAddr(rest[0], rest[1]));
  }
  if (cmd == "sendmmsg") {
    need(2);
    cmdSendmmsg(parseAddr(rest[0], rest[1]));
  }
  if (cmd == "raw") {
    cmdSocket(AF_INET, SOCK_RAW, IPPROTO_ICMP, "AF_INET, SOCK_RAW, IPPROTO_ICMP");
  }
  if (cmd == "raw6") {
    cmdSocket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6, "AF_INET6, SOCK_RAW, IPPROTO_ICMPV6");
  }
  if (cmd == "ping") {
    cmdSocket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP, "AF_INET, SOCK_DGRAM, IPPROTO_ICMP");
  }
  if (cmd == "ping6") {
    cmdSocket(AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6, "AF_INET6, SOCK_DGRAM, IPPROTO_ICMPV6");
  }
  if (cmd == "packet") {
    cmdSocket(AF_PACKET, SOCK_RAW, htons(0x0003 /* ETH_P_ALL */), "AF_PACKET, SOCK_RAW");
  }
  if (cmd == "socket") {
    need(3);
    cmdSocket(std::atoi(rest[0].c_str()), std::atoi(rest[1].c_str()), std::atoi(rest[2].c_str()),
              rest[0] + ", " + rest[1] + ", " + rest[2]);
  }
  if (cmd == "rthdr") {
    cmdRthdr();
  }
  if (cmd == "rthdr2292") {
    cmdRthdr2292();
  }
  if (cmd == "ipoptions") {
    cmdIpOptions();
  }
  if (cmd == "nodelay") {
    cmdNodelay();
  }
  if (cmd == "tcprepair") {
    cmdTcpRepair();
  }
  if (cmd == "getaddrinfo") {
    need(1);
    cmdGetaddrinfo(rest[0]);
  }
  usage("unknown subcommand " + cmd);
}
