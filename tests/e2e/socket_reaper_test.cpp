// sandbox::destroySockets against the real kernel (sock_diag dump + SOCK_DESTROY): python3
// clients in test cgroups hold TCP connections and UDP sockets to servers this test owns on
// loopback (or inside a netns it created) and block in recv(); the reaper must end exactly
// the sockets of the cgroup tree that the callback picks, in the namespace it is given, and
// leave every other socket working. No egressd daemon and no BPF are involved.
#include "sandbox/socket_reaper.h"

#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <chrono>
#include <stdexcept>
#include <thread>

#include "cgroup.h"
#include "common/netns.h"
#include "common/unique_fd.h"
#include "netns.h"
#include "process.h"
#include "servers.h"
#include "test_util.h"

namespace egressd::sandbox {
namespace {

using std::chrono::milliseconds;
using test::Process;
using test::TestCgroup;
using test::TestNetns;

constexpr milliseconds kWait(5000);

// Connects (or, "udp-unconnected", only binds and sends), says "ready <local port>", then
// echoes whatever arrives while blocked in recv(). A failing recv() prints its errno name:
// that is how the test sees what the kernel made of a destroyed socket.
constexpr const char* kClientScript = R"py(
import errno, socket, sys
mode, fam, host, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
family = socket.AF_INET6 if fam == "6" else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM if mode == "tcp" else socket.SOCK_DGRAM)
try:
    if mode == "udp-unconnected":
        s.bind(("::1" if fam == "6" else "127.0.0.1", 0))
        s.sendto(b"hello", (host, port))
    else:
        s.connect((host, port))
        if mode == "udp":
            s.send(b"hello")
    print("ready", s.getsockname()[1], flush=True)
    while True:
        data, peer = s.recvfrom(4096)
        if not data and mode == "tcp":
            print("eof", flush=True)
            sys.exit(2)
        s.sendto(data, peer) if mode == "udp-unconnected" else s.send(data)
except OSError as e:
    print("error", errno.errorcode.get(e.errno, str(e.errno)), flush=True)
    sys.exit(3)
)py";

struct Client {
  Process proc;
  uint16_t localPort = 0;
};

// Starts the client and waits for its "ready" line.
Result<Client> startClient(const std::string& mode, const std::string& host, uint16_t port,
                           const std::string& cgroup, const std::string& netnsPath = "") {
  const bool v6 = host.find(':') != std::string::npos;
  test::SpawnOptions opts;
  opts.argv = {test::python3Bin(), "-c", kClientScript,       mode,
               v6 ? "6" : "4",     host, std::to_string(port)};
  opts.cgroup = cgroup;
  opts.netnsPath = netnsPath;
  auto proc = Process::spawn(opts);
  if (!proc.ok()) {
    return std::move(proc).error();
  }
  auto deadline = std::chrono::steady_clock::now() + kWait;
  for (;;) {
    std::string out = proc->stdoutText();
    auto at = out.find("ready ");
    auto eol = at == std::string::npos ? std::string::npos : out.find('\n', at);
    if (eol != std::string::npos) {
      Client c{std::move(*proc), 0};
      c.localPort = static_cast<uint16_t>(std::stoi(out.substr(at + 6, eol - at - 6)));
      return c;
    }
    if (!proc->running() || std::chrono::steady_clock::now() >= deadline) {
      return Error(ETIMEDOUT, "client " + mode + " to " + host + " port " + std::to_string(port) +
                                  " not ready: out=" + out + " err=" + proc->stderrText());
    }
    std::this_thread::sleep_for(milliseconds(20));
  }
}

// A TCP or UDP server socket on `host` (an ephemeral port), opened in `netnsPath` if given.
struct Server {
  UniqueFd fd;
  uint16_t port = 0;
};

Result<Server> openServer(int type, const std::string& host, const std::string& netnsPath = "") {
  auto addr = IpAddress::parse(host);
  if (!addr) {
    return Error(EINVAL, "bad address " + host);
  }
  // The socket belongs to the namespace it was created in, also after the guard left it.
  auto guard = NetnsGuard::enter(netnsPath);
  if (!guard.ok()) {
    return std::move(guard).error();
  }
  Server s;
  s.fd.reset(::socket(addr->family, type | SOCK_CLOEXEC, 0));
  if (!s.fd) {
    return lastSystemError("socket for " + host);
  }
  int one = 1;
  if (addr->family == AF_INET6) {
    ::setsockopt(s.fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  }
  sockaddr_storage ss{};
  socklen_t len = addr->toSockaddr(0, ss);
  if (::bind(s.fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    return lastSystemError("bind " + host);
  }
  if (type == SOCK_STREAM && ::listen(s.fd.get(), 16) != 0) {
    return lastSystemError("listen " + host);
  }
  len = sizeof(ss);
  ::getsockname(s.fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
  s.port = ntohs(addr->family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port
                                          : reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  return s;
}

bool readable(int fd, milliseconds timeout) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(timeout.count())) == 1;
}

Result<UniqueFd> acceptOne(const Server& server) {
  if (!readable(server.fd.get(), kWait)) {
    return Error(ETIMEDOUT, "no connection on port " + std::to_string(server.port));
  }
  UniqueFd conn(::accept4(server.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!conn) {
    return lastSystemError("accept");
  }
  return conn;
}

// Sends `msg` on the accepted connection and expects the client to echo it.
::testing::AssertionResult tcpEchoes(int conn, const std::string& msg) {
  if (::send(conn, msg.data(), msg.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(msg.size())) {
    return ::testing::AssertionFailure() << "send: " << std::strerror(errno);
  }
  std::string got;
  while (got.size() < msg.size()) {
    if (!readable(conn, kWait)) {
      return ::testing::AssertionFailure() << "no echo of " << msg << " (got '" << got << "')";
    }
    char buf[256];
    ssize_t n = ::recv(conn, buf, sizeof(buf), 0);
    if (n <= 0) {
      return ::testing::AssertionFailure()
             << "recv: " << (n == 0 ? "EOF" : std::strerror(errno)) << " (got '" << got << "')";
    }
    got.append(buf, static_cast<size_t>(n));
  }
  if (got != msg) {
    return ::testing::AssertionFailure() << "echo '" << got << "' != '" << msg << "'";
  }
  return ::testing::AssertionSuccess();
}

// UDP: the address the client's "hello" came from.
Result<sockaddr_storage> udpHello(const Server& server) {
  if (!readable(server.fd.get(), kWait)) {
    return Error(ETIMEDOUT, "no datagram on port " + std::to_string(server.port));
  }
  sockaddr_storage from{};
  socklen_t len = sizeof(from);
  char buf[64];
  ssize_t n =
      ::recvfrom(server.fd.get(), buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len);
  if (n != 5 || std::string(buf, 5) != "hello") {
    return Error(EPROTO, "unexpected datagram");
  }
  return from;
}

uint16_t portOf(const sockaddr_storage& ss) {
  return ntohs(ss.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_port
                                        : reinterpret_cast<const sockaddr_in*>(&ss)->sin_port);
}

::testing::AssertionResult udpEchoes(const Server& server, const sockaddr_storage& to,
                                     const std::string& msg) {
  socklen_t len = to.ss_family == AF_INET6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (::sendto(server.fd.get(), msg.data(), msg.size(), 0, reinterpret_cast<const sockaddr*>(&to),
               len) != static_cast<ssize_t>(msg.size())) {
    return ::testing::AssertionFailure() << "sendto: " << std::strerror(errno);
  }
  if (!readable(server.fd.get(), kWait)) {
    return ::testing::AssertionFailure() << "no echo of " << msg;
  }
  char buf[256];
  ssize_t n = ::recv(server.fd.get(), buf, sizeof(buf), 0);
  if (n < 0 || std::string(buf, static_cast<size_t>(n)) != msg) {
    return ::testing::AssertionFailure() << "bad echo of " << msg;
  }
  return ::testing::AssertionSuccess();
}

// The client ended because its blocked recv() failed with `errnoName`.
::testing::AssertionResult endedWith(Client& c, const std::string& errnoName) {
  if (!c.proc.waitForOutput("error " + errnoName, kWait)) {
    return ::testing::AssertionFailure()
           << "client did not report " << errnoName << ": out=" << c.proc.stdoutText()
           << " err=" << c.proc.stderrText();
  }
  auto r = c.proc.wait(kWait);
  if (!r.ok() || r->exitCode != 3) {
    return ::testing::AssertionFailure()
           << "client did not exit 3: " << (r.ok() ? r->describe() : r.error().message());
  }
  return ::testing::AssertionSuccess();
}

std::function<bool(const SocketInfo&)> toPort(uint16_t port, std::vector<SocketInfo>* seen) {
  return [port, seen](const SocketInfo& s) {
    if (seen != nullptr) {
      seen->push_back(s);
    }
    return s.remotePort == port;
  };
}

bool listsLocalPort(const std::vector<SocketInfo>& v, uint16_t port) {
  for (const auto& s : v) {
    if (s.localPort == port) {
      return true;
    }
  }
  return false;
}

TEST(SocketReaperTest, DestroysTcpConnectionOfProcessInCgroup) {
  ASSERT_OK_AND_ASSIGN(TestCgroup cg, TestCgroup::create());
  ASSERT_OK_AND_ASSIGN(uint64_t cgId, test::cgroupId(cg.path()));
  ASSERT_OK_AND_ASSIGN(Server server, openServer(SOCK_STREAM, "127.0.0.1"));
  ASSERT_OK_AND_ASSIGN(Client client, startClient("tcp", "127.0.0.1", server.port, cg.path()));
  ASSERT_OK_AND_ASSIGN(UniqueFd conn, acceptOne(server));
  ASSERT_TRUE(tcpEchoes(conn.get(), "before"));

  ASSERT_OK_AND_ASSIGN(auto ids, cgroupTreeIds(cg.path()));
  ASSERT_OK_AND_ASSIGN(auto destroyed, destroySockets("", ids, toPort(server.port, nullptr)));

  ASSERT_EQ(destroyed.size(), 1u);
  const SocketInfo& s = destroyed[0];
  EXPECT_EQ(s.protocol, IPPROTO_TCP);
  EXPECT_EQ(s.family, AF_INET);
  EXPECT_EQ(s.local, IpAddress::v4(127, 0, 0, 1));
  EXPECT_EQ(s.remote, IpAddress::v4(127, 0, 0, 1));
  EXPECT_EQ(s.unmappedRemote(), s.remote);
  EXPECT_EQ(s.localPort, client.localPort);
  EXPECT_EQ(s.remotePort, server.port);
  EXPECT_EQ(s.cgroupId, cgId);
  EXPECT_EQ(s.state, TCP_ESTABLISHED);
  EXPECT_NE(s.cookie, 0u);
  EXPECT_EQ(describe(s), "tcp 127.0.0.1:" + std::to_string(client.localPort) +
                             " -> 127.0.0.1:" + std::to_string(server.port));

  // tcp_abort(): the owner's blocked recv() fails with ECONNABORTED, the peer gets a RST.
  EXPECT_TRUE(endedWith(client, "ECONNABORTED"));
  ASSERT_TRUE(readable(conn.get(), kWait));
  char buf[16];
  EXPECT_EQ(::recv(conn.get(), buf, sizeof(buf), 0), -1);
  EXPECT_EQ(errno, ECONNRESET);

  // Gone for good: a second pass finds nothing in the cgroup.
  std::vector<SocketInfo> seen;
  ASSERT_OK_AND_ASSIGN(auto again, destroySockets("", ids, toPort(server.port, &seen)));
  EXPECT_TRUE(again.empty());
  EXPECT_TRUE(seen.empty());
}

TEST(SocketReaperTest, LeavesConnectionOfProcessOutsideCgroup) {
  ASSERT_OK_AND_ASSIGN(TestCgroup cg, TestCgroup::create());
  ASSERT_OK_AND_ASSIGN(Server server, openServer(SOCK_STREAM, "127.0.0.1"));
  ASSERT_OK_AND_ASSIGN(Client outside, startClient("tcp", "127.0.0.1", server.port, ""));
  ASSERT_OK_AND_ASSIGN(UniqueFd outsideConn, acceptOne(server));
  ASSERT_OK_AND_ASSIGN(Client inside, startClient("tcp", "127.0.0.1", server.port, cg.path()));
  ASSERT_OK_AND_ASSIGN(UniqueFd insideConn, acceptOne(server));

  ASSERT_OK_AND_ASSIGN(auto ids, cgroupTreeIds(cg.path()));
  std::vector<SocketInfo> seen;
  ASSERT_OK_AND_ASSIGN(auto destroyed, destroySockets("", ids, toPort(server.port, &seen)));

  ASSERT_EQ(destroyed.size(), 1u);
  EXPECT_EQ(destroyed[0].localPort, inside.localPort);
  EXPECT_FALSE(listsLocalPort(seen, outside.localPort)) << "the callback saw a foreign socket";
  EXPECT_TRUE(endedWith(inside, "ECONNABORTED"));
  EXPECT_TRUE(tcpEchoes(outsideConn.get(), "still here"));
  EXPECT_TRUE(outside.proc.running());
}

TEST(SocketReaperTest, FindsSocketInChildCgroup) {
  ASSERT_OK_AND_ASSIGN(TestCgroup cg, TestCgroup::create());
  ASSERT_OK_AND_ASSIGN(std::string child, cg.createChild("a/b"));
  ASSERT_OK_AND_ASSIGN(uint64_t parentId, test::cgroupId(cg.path()));
  ASSERT_OK_AND_ASSIGN(uint64_t childId, test::cgroupId(child));
  ASSERT_OK_AND_ASSIGN(Server server, openServer(SOCK_STREAM, "127.0.0.1"));
  ASSERT_OK_AND_ASSIGN(Client client, startClient("tcp", "127.0.0.1", server.port, child));
  ASSERT_OK_AND_ASSIGN(UniqueFd conn, acceptOne(server));

  // The parent's id alone does not cover the child's sockets...
  std::vector<SocketInfo> seen;
  ASSERT_OK_AND_ASSIGN(auto none, destroySockets("", {parentId}, toPort(server.port, &seen)));
  EXPECT_TRUE(none.empty());
  EXPECT_TRUE(seen.empty());
  EXPECT_TRUE(tcpEchoes(conn.get(), "alive"));

  // ...the tree's ids do.
  ASSERT_OK_AND_ASSIGN(auto ids, cgroupTreeIds(cg.path()));
  EXPECT_TRUE(ids.count(parentId));
  EXPECT_TRUE(ids.count(childId));
  ASSERT_OK_AND_ASSIGN(auto destroyed, destroySockets("", ids, toPort(server.port, nullptr)));
  ASSERT_EQ(destroyed.size(), 1u);
  EXPECT_EQ(destroyed[0].cgroupId, childId);
  EXPECT_EQ(destroyed[0].localPort, client.localPort);
  EXPECT_TRUE(endedWith(client, "ECONNABORTED"));
}

TEST(SocketReaperTest, CallbackReturningFalseDestroysNothing) {
  ASSERT_OK_AND_ASSIGN(TestCgroup cg, TestCgroup::create());
  ASSERT_OK_AND_ASSIGN(Server tcp, openServer(SOCK_STREAM, "127.0.0.1"));
  ASSERT_OK_AND_ASSIGN(Server udp, openServer(SOCK_DGRAM, "127.0.0.1"));
  ASSERT_OK_AND_ASSIGN(Client tcpClient, startClient("tcp", "127.0.0.1", tcp.port, cg.path()));
  ASSERT_OK_AND_ASSIGN(UniqueFd conn, acceptOne(tcp));
  ASSERT_OK_AND_ASSIGN(Client udpClient, startClient("udp", "127.0.0.1", udp.port, cg.path()));
  ASSERT_OK_AND_ASSIGN(sockaddr_storage udpPeer, udpHello(udp));

  ASSERT_OK_AND_ASSIGN(auto ids, cgroupTreeIds(cg.path()));
  std::vector<SocketInfo> seen;
  ASSERT_OK_AND_ASSIGN(auto destroyed, destroySockets("", ids, [&](const SocketInfo& s) {
                         seen.push_back(s);
                         return false;
                       }));
  EXPECT_TRUE(destroyed.empty());
  // The callback was asked about both sockets (so "nothing" is its answer, not a miss).
  EXPECT_EQ(seen.size(), 2u);
  EXPECT_TRUE(listsLocalPort(seen, tcpClient.localPort));
  EXPECT_TRUE(listsLocalPort(seen, udpClient.localPort));
  EXPECT_TRUE(tcpEchoes(conn.get(), "tcp alive"));
  EXPECT_TRUE(udpEchoes(udp, udpPeer, "udp alive"));
}

TEST(SocketReaperTest, DestroysConnectedUdpButDoesNotListUnconnected) {
  ASSERT_OK_AND_ASSIGN(TestCgroup cg, TestCgroup::create());
  ASSERT_OK_AND_ASSIGN(uint64_t cgId, test::cgroupId(cg.path()));
  ASSERT_OK_AND_ASSIGN(Server udp, openServer(SOCK_DGRAM, "127.0.0.1"));
  ASSERT_OK_AND_ASSIGN(Client connected, startClient("udp", "127.0.0.1", udp.port, cg.path()));
  ASSERT_OK_AND_ASSIGN(sockaddr_storage connectedPeer, udpHello(udp));
  ASSERT_OK_AND_ASSIGN(Client unconnected,
                       startClient("udp-unconnected", "127.0.0.1", udp.port, cg.path()));
  ASSERT_OK_AND_ASSIGN(sockaddr_storage unconnectedPeer, udpHello(udp));
  ASSERT_EQ(portOf(connectedPeer), connected.localPort);
  ASSERT_EQ(portOf(unconnectedPeer), unconnected.localPort);
  ASSERT_TRUE(udpEchoes(udp, connectedPeer, "c1"));
  ASSERT_TRUE(udpEchoes(udp, unconnectedPeer, "u1"));

  ASSERT_OK_AND_ASSIGN(auto ids, cgroupTreeIds(cg.path()));
  std::vector<SocketInfo> seen;
  ASSERT_OK_AND_ASSIGN(auto destroyed, destroySockets("", ids, [&](const SocketInfo& s) {
                         seen.push_back(s);
                         return true;  // everything the reaper offers
                       }));

  ASSERT_EQ(destroyed.size(), 1u);
  const SocketInfo& s = destroyed[0];
  EXPECT_EQ(s.protocol, IPPROTO_UDP);
  EXPECT_EQ(s.family, AF_INET);
  EXPECT_EQ(s.localPort, connected.localPort);
  EXPECT_EQ(s.remotePort, udp.port);
  EXPECT_EQ(s.remote, IpAddress::v4(127, 0, 0, 1));
  EXPECT_EQ(s.cgroupId, cgId);
  EXPECT_EQ(s.state, TCP_ESTABLISHED);
  EXPECT_EQ(describe(s), "udp 127.0.0.1:" + std::to_string(connected.localPort) +
                             " -> 127.0.0.1:" + std::to_string(udp.port));
  EXPECT_FALSE(listsLocalPort(seen, unconnected.localPort)) << "unconnected UDP was listed";

  // udp_abort(): the blocked recv() fails with ECONNABORTED.
  EXPECT_TRUE(endedWith(connected, "ECONNABORTED"));
  EXPECT_TRUE(udpEchoes(udp, unconnectedPeer, "u2"));
}

TEST(SocketReaperTest, DestroysIpv6Connection) {
  ASSERT_OK_AND_ASSIGN(TestCgroup cg, TestCgroup::create());
  ASSERT_OK_AND_ASSIGN(Server server, openServer(SOCK_STREAM, "::1"));
  ASSERT_OK_AND_ASSIGN(Client client, startClient("tcp", "::1", server.port, cg.path()));
  ASSERT_OK_AND_ASSIGN(UniqueFd conn, acceptOne(server));
  ASSERT_OK_AND_ASSIGN(Server udp, openServer(SOCK_DGRAM, "::1"));
  ASSERT_OK_AND_ASSIGN(Client udpClient, startClient("udp", "::1", udp.port, cg.path()));
  ASSERT_OK_AND_ASSIGN(sockaddr_storage udpPeer, udpHello(udp));
  (void)udpPeer;

  ASSERT_OK_AND_ASSIGN(auto ids, cgroupTreeIds(cg.path()));
  ASSERT_OK_AND_ASSIGN(auto destroyed, destroySockets("", ids, [&](const SocketInfo& s) {
                         return s.remotePort == server.port || s.remotePort == udp.port;
                       }));

  ASSERT_EQ(destroyed.size(), 2u);
  auto loopback6 = IpAddress::parse("::1");
  for (const SocketInfo& s : destroyed) {
    EXPECT_EQ(s.family, AF_INET6);
    EXPECT_EQ(s.local, *loopback6);
    EXPECT_EQ(s.remote, *loopback6);
    EXPECT_EQ(s.unmappedRemote(), *loopback6);
    if (s.protocol == IPPROTO_TCP) {
      EXPECT_EQ(s.localPort, client.localPort);
      EXPECT_EQ(describe(s), "tcp [::1]:" + std::to_string(client.localPort) +
                                 " -> [::1]:" + std::to_string(server.port));
    } else {
      EXPECT_EQ(s.protocol, IPPROTO_UDP);
      EXPECT_EQ(s.localPort, udpClient.localPort);
    }
  }
  EXPECT_TRUE(endedWith(client, "ECONNABORTED"));
  EXPECT_TRUE(endedWith(udpClient, "ECONNABORTED"));
}

TEST(SocketReaperTest, DestroysV4MappedConnections) {
  ASSERT_OK_AND_ASSIGN(TestCgroup cg, TestCgroup::create());
  ASSERT_OK_AND_ASSIGN(Server server, openServer(SOCK_STREAM, "127.0.0.1"));
  ASSERT_OK_AND_ASSIGN(Server udp, openServer(SOCK_DGRAM, "127.0.0.1"));
  // AF_INET6 sockets talking to 127.0.0.1 through ::ffff:127.0.0.1.
  ASSERT_OK_AND_ASSIGN(Client client,
                       startClient("tcp", "::ffff:127.0.0.1", server.port, cg.path()));
  ASSERT_OK_AND_ASSIGN(UniqueFd conn, acceptOne(server));
  ASSERT_OK_AND_ASSIGN(Client udpClient,
                       startClient("udp", "::ffff:127.0.0.1", udp.port, cg.path()));
  ASSERT_OK_AND_ASSIGN(sockaddr_storage udpPeer, udpHello(udp));
  (void)udpPeer;

  ASSERT_OK_AND_ASSIGN(auto ids, cgroupTreeIds(cg.path()));
  ASSERT_OK_AND_ASSIGN(auto destroyed, destroySockets("", ids, [&](const SocketInfo& s) {
                         // Judged by the plain IPv4 address, as a policy would.
                         return s.unmappedRemote() == IpAddress::v4(127, 0, 0, 1);
                       }));

  ASSERT_EQ(destroyed.size(), 2u);
  for (const SocketInfo& s : destroyed) {
    EXPECT_EQ(s.family, AF_INET6);
    // As the kernel reports them...
    EXPECT_EQ(s.remote.family, AF_INET6);
    EXPECT_EQ(s.remote.toString(), "::ffff:127.0.0.1");
    EXPECT_EQ(s.local.toString(), "::ffff:127.0.0.1");
    // ...and as plain IPv4 for policy.
    EXPECT_EQ(s.unmappedRemote(), IpAddress::v4(127, 0, 0, 1));
    if (s.protocol == IPPROTO_TCP) {
      EXPECT_EQ(s.localPort, client.localPort);
      EXPECT_EQ(s.remotePort, server.port);
      EXPECT_EQ(describe(s), "tcp [::ffff:127.0.0.1]:" + std::to_string(client.localPort) +
                                 " -> [::ffff:127.0.0.1]:" + std::to_string(server.port));
    } else {
      EXPECT_EQ(s.protocol, IPPROTO_UDP);
      EXPECT_EQ(s.localPort, udpClient.localPort);
      EXPECT_EQ(s.remotePort, udp.port);
    }
  }
  EXPECT_TRUE(endedWith(client, "ECONNABORTED"));
  EXPECT_TRUE(endedWith(udpClient, "ECONNABORTED"));
}

uint64_t threadNetnsInode() {
  struct stat st {};
  ::stat("/proc/thread-self/ns/net", &st);
  return st.st_ino;
}

TEST(SocketReaperTest, FindsSocketOnlyInTheGivenNetns) {
  ASSERT_OK_AND_ASSIGN(TestCgroup cg, TestCgroup::create());
  ASSERT_OK_AND_ASSIGN(TestNetns ns, TestNetns::create());
  ASSERT_OK(ns.exec({"ip", "link", "set", "lo", "up"}));
  ASSERT_TRUE(ns.exists());
  ASSERT_OK_AND_ASSIGN(Server server, openServer(SOCK_STREAM, "127.0.0.1", ns.path()));
  ASSERT_OK_AND_ASSIGN(Client client,
                       startClient("tcp", "127.0.0.1", server.port, cg.path(), ns.path()));
  ASSERT_OK_AND_ASSIGN(UniqueFd conn, acceptOne(server));
  ASSERT_TRUE(tcpEchoes(conn.get(), "in netns"));
  ASSERT_OK_AND_ASSIGN(auto ids, cgroupTreeIds(cg.path()));
  const uint64_t ourNetns = threadNetnsInode();

  // The caller's namespace does not hold it.
  std::vector<SocketInfo> seen;
  ASSERT_OK_AND_ASSIGN(auto none, destroySockets("", ids, toPort(server.port, &seen)));
  EXPECT_TRUE(none.empty());
  EXPECT_TRUE(seen.empty());
  EXPECT_TRUE(tcpEchoes(conn.get(), "still in netns"));

  ASSERT_OK_AND_ASSIGN(auto destroyed, destroySockets(ns.path(), ids, toPort(server.port, &seen)));
  ASSERT_EQ(destroyed.size(), 1u);
  EXPECT_EQ(destroyed[0].localPort, client.localPort);
  EXPECT_EQ(destroyed[0].remotePort, server.port);
  EXPECT_TRUE(endedWith(client, "ECONNABORTED"));
  EXPECT_EQ(threadNetnsInode(), ourNetns) << "the caller's thread changed namespace";
}

// An orphaned FIN_WAIT2 connection (closed by its owner, the peer has not closed) is a
// timewait minisock that sock_diag lists without INET_DIAG_CGROUP_ID: it is skipped, not
// taken for a kernel that cannot report cgroups (after a load test the host netns holds
// thousands of them, which made every deny-host fail).
TEST(SocketReaperTest, OrphanedFinWait2SocketsAreSkippedNotAnError) {
  ASSERT_OK_AND_ASSIGN(TestCgroup cg, TestCgroup::create());
  ASSERT_OK_AND_ASSIGN(TestNetns ns, TestNetns::create());
  ASSERT_OK(ns.exec({"ip", "link", "set", "lo", "up"}));
  ASSERT_TRUE(ns.exists());
  ASSERT_OK_AND_ASSIGN(Server server, openServer(SOCK_STREAM, "127.0.0.1", ns.path()));
  ASSERT_OK_AND_ASSIGN(Client client,
                       startClient("tcp", "127.0.0.1", server.port, cg.path(), ns.path()));
  ASSERT_OK_AND_ASSIGN(UniqueFd conn, acceptOne(server));
  ASSERT_TRUE(tcpEchoes(conn.get(), "before"));
  // The client process ends: its socket is closed with the server's end still open, so it
  // sits in FIN_WAIT2 without an owner.
  (void)client.proc.stop(milliseconds(0));
  ASSERT_OK_AND_ASSIGN(auto ids, cgroupTreeIds(cg.path()));
  bool sawFinWait2 = false;
  for (int i = 0; i < 50 && !sawFinWait2; ++i) {
    auto ss = test::run(
        test::SpawnOptions{.argv = {"ss", "-tanH", "state", "fin-wait-2"}, .netnsPath = ns.path()},
        milliseconds(5000));
    sawFinWait2 = ss.ok() && ss->out.find(":" + std::to_string(server.port)) != std::string::npos;
    if (!sawFinWait2) {
      std::this_thread::sleep_for(milliseconds(50));
    }
  }
  ASSERT_TRUE(sawFinWait2) << "no FIN_WAIT2 socket to the server port";
  std::vector<SocketInfo> seen;
  auto r = destroySockets(ns.path(), ids, toPort(server.port, &seen));
  ASSERT_TRUE(r.ok()) << r.error().message();
  EXPECT_TRUE(r->empty());
}

TEST(SocketReaperTest, BadNetnsPathIsAnErrorNamingIt) {
  ASSERT_OK_AND_ASSIGN(TestCgroup cg, TestCgroup::create());
  ASSERT_OK_AND_ASSIGN(auto ids, cgroupTreeIds(cg.path()));
  bool called = false;
  auto r = destroySockets("/nonexistent/egressd-test-netns", ids, [&](const SocketInfo&) {
    called = true;
    return true;
  });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ENOENT);
  EXPECT_NE(r.error().message().find("/nonexistent/egressd-test-netns"), std::string::npos)
      << r.error().message();
  EXPECT_FALSE(called);
}

TEST(SocketReaperTest, CallbackExceptionReachesTheCallerAndDestroysNothing) {
  ASSERT_OK_AND_ASSIGN(TestCgroup cg, TestCgroup::create());
  ASSERT_OK_AND_ASSIGN(Server server, openServer(SOCK_STREAM, "127.0.0.1"));
  ASSERT_OK_AND_ASSIGN(Client first, startClient("tcp", "127.0.0.1", server.port, cg.path()));
  ASSERT_OK_AND_ASSIGN(UniqueFd firstConn, acceptOne(server));
  ASSERT_OK_AND_ASSIGN(Client second, startClient("tcp", "127.0.0.1", server.port, cg.path()));
  ASSERT_OK_AND_ASSIGN(UniqueFd secondConn, acceptOne(server));
  ASSERT_OK_AND_ASSIGN(auto ids, cgroupTreeIds(cg.path()));
  // Says "destroy" to the first socket, then fails on the second: neither may be ended.
  int calls = 0;
  EXPECT_THROW((void)destroySockets("", ids,
                                    [&](const SocketInfo&) -> bool {
                                      if (++calls == 2) {
                                        throw std::runtime_error("policy lookup failed");
                                      }
                                      return true;
                                    }),
               std::runtime_error);
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(tcpEchoes(firstConn.get(), "alive"));
  EXPECT_TRUE(tcpEchoes(secondConn.get(), "alive"));
  EXPECT_TRUE(first.proc.running());
  EXPECT_TRUE(second.proc.running());
}

TEST(SocketReaperTest, CgroupTreeIdsCoversEveryDescendant) {
  ASSERT_OK_AND_ASSIGN(TestCgroup cg, TestCgroup::create());
  ASSERT_OK_AND_ASSIGN(std::string ab, cg.createChild("a/b"));
  ASSERT_OK_AND_ASSIGN(std::string c, cg.createChild("c"));
  std::unordered_set<uint64_t> expected;
  for (const std::string& p : {cg.path(), cg.path() + "/a", ab, c}) {
    // The directory inode: what INET_DIAG_CGROUP_ID and bpf_get_current_cgroup_id report.
    ASSERT_OK_AND_ASSIGN(uint64_t id, test::cgroupId(p));
    expected.insert(id);
  }
  ASSERT_OK_AND_ASSIGN(auto ids, cgroupTreeIds(cg.path()));
  EXPECT_EQ(ids, expected);
  ASSERT_OK_AND_ASSIGN(auto leaf, cgroupTreeIds(ab));
  ASSERT_OK_AND_ASSIGN(uint64_t abId, test::cgroupId(ab));
  EXPECT_EQ(leaf, std::unordered_set<uint64_t>{abId});

  auto missing = cgroupTreeIds(cg.path() + "/nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ENOENT);
  EXPECT_NE(missing.error().message().find(cg.path() + "/nope"), std::string::npos)
      << missing.error().message();
  EXPECT_FALSE(cgroupTreeIds("/etc").ok());  // not under the cgroup2 mount
}

TEST(SocketReaperTest, EmptyIdSetListsNothing) {
  ASSERT_OK_AND_ASSIGN(TestCgroup cg, TestCgroup::create());
  ASSERT_OK_AND_ASSIGN(Server server, openServer(SOCK_STREAM, "127.0.0.1"));
  ASSERT_OK_AND_ASSIGN(Client client, startClient("tcp", "127.0.0.1", server.port, cg.path()));
  ASSERT_OK_AND_ASSIGN(UniqueFd conn, acceptOne(server));
  bool called = false;
  ASSERT_OK_AND_ASSIGN(auto destroyed, destroySockets("", {}, [&](const SocketInfo&) {
                         called = true;
                         return true;
                       }));
  EXPECT_TRUE(destroyed.empty());
  EXPECT_FALSE(called);
  EXPECT_TRUE(tcpEchoes(conn.get(), "alive"));
}

}  // namespace
}  // namespace egressd::sandbox
