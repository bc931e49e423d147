// cgroup/connect4 + connect6 (and getpeername): CIDR deny/allow, the enableInternet default,
// v4-mapped and native IPv6, proxied ports, special destinations (loopback, 0.0.0.0, ::),
// and connects that do not go through connect(2): TCP Fast Open and io_uring.
// Every denial is paired with an allowed path of the same sandbox (a "deny everything" bug
// fails), and with the same destination from outside the sandbox (a broken server fails).
#include "host_features.h"
#include "world.h"

namespace egressd::e2e {
namespace {

const std::string kA = std::to_string(kTcpA);
const std::string kB = std::to_string(kTcpB);

class ConnectTest : public E2eTest {};

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

TEST_F(ConnectTest, DenyCidrGivesEpermAndWinsOverAllows) {
  // TRIGGER: enableInternet would pass everything; an allow rule covers the whole /24 too.
  PolicySpec spec;
  spec.enableInternet = true;
  spec.allow = {{.cidr = w().ip4(0) + "/24"}};
  spec.deniedHosts = {w().ip4(4) + "/32"};
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec));

  // ASSERT: every port of the denied host is refused with EPERM ...
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(4), kA}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(4), kB}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"udp", w().ip4(4), std::to_string(kUdp)}), "EPERM");
  // ... its neighbour is reachable and really talks to us ...
  auto r = sb->probe({"tcp", w().ip4(3), kB});
  ASSERT_PROBE_OK(r);
  EXPECT_TRUE(contains(r.out, "greeting=\"hello from " + w().ip4(3) + ":" + kB + "\"")) << r.out;
  // ... and a process outside the sandbox reaches the denied host.
  EXPECT_PROBE_OK(sb->probeOutside({"tcp", w().ip4(4), kA}));
  EXPECT_PROBE_OK(probeHost({"tcp", w().ip4(4), kA}));
}

TEST_F(ConnectTest, AllowCidrPortPassesAndOtherPortOfSameIpIsDenied) {
  PolicySpec spec;
  spec.allow = {{.cidr = w().ip4(3) + "/32", .ports = {kTcpA}, .protocol = "tcp"}};
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec));

  auto r = sb->probe({"tcp", w().ip4(3), kA, "--send", "ping"});
  ASSERT_PROBE_OK(r);
  EXPECT_TRUE(contains(r.out, "peer=" + w().ip4(3) + ":" + kA)) << r.out;
  EXPECT_TRUE(contains(r.out, "echo=\"ping\"")) << r.out;
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(3), kB}), "EPERM");
  EXPECT_PROBE_OK(sb->probeOutside({"tcp", w().ip4(3), kB}));
}

TEST_F(ConnectTest, EnableInternetFalseBlocksEverythingElse) {
  PolicySpec spec;
  spec.allow = {{.cidr = w().ip4(3) + "/32", .ports = {kTcpA}}};
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec));

  EXPECT_PROBE_OK(sb->probe({"tcp", w().ip4(3), kA}));
  for (const auto& host : {w().ip4(2), w().ip4(4)}) {
    EXPECT_PROBE_ERR(sb->probe({"tcp", host, kA}), "EPERM") << host;
    EXPECT_PROBE_ERR(sb->probe({"tcp", host, kB}), "EPERM") << host;
  }
  EXPECT_PROBE_ERR(sb->probe({"udp", w().ip4(4), std::to_string(kUdp)}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip6(4), kA}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"udp", w().ip6(4), std::to_string(kUdp)}), "EPERM");

  // The same policy with enableInternet: true lets the rest through.
  spec.enableInternet = true;
  ASSERT_OK_AND_ASSIGN(auto open, Sandbox::start(spec));
  EXPECT_PROBE_OK(open->probe({"tcp", w().ip4(4), kB}));
  EXPECT_PROBE_OK(open->probe({"tcp", w().ip6(4), kB}));
  EXPECT_PROBE_OK(open->probe({"udp", w().ip4(4), std::to_string(kUdp)}));
}

TEST_F(ConnectTest, Ipv6AndV4MappedCannotBypassIpv4Rules) {
  PolicySpec spec;
  spec.allow = {{.cidr = w().ip4(3) + "/32", .ports = {kTcpA}},
                {.cidr = w().ip6(3) + "/128", .ports = {kTcpB}}};
  spec.deniedHosts = {w().ip4(4) + "/32"};
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec));
  const std::string mapped3 = "::ffff:" + w().ip4(3);
  const std::string mapped4 = "::ffff:" + w().ip4(4);

  // v4-mapped is judged by the IPv4 rules: the deny holds, the v4 allow applies ...
  EXPECT_PROBE_ERR(sb->probe({"tcp", mapped4, kA}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"udp", mapped4, std::to_string(kUdp)}), "EPERM");
  auto r = sb->probe({"tcp", mapped3, kA});
  ASSERT_PROBE_OK(r);
  EXPECT_TRUE(contains(r.out, "peer=[" + mapped3 + "]:" + kA)) << r.out;
  // ... and the IPv6 allow does not leak onto the mapped IPv4 address.
  EXPECT_PROBE_ERR(sb->probe({"tcp", mapped3, kB}), "EPERM");

  // Native IPv6 follows the IPv6 rules only.
  EXPECT_PROBE_OK(sb->probe({"tcp", w().ip6(3), kB}));
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip6(3), kA}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip6(4), kA}), "EPERM");

  // Outside the sandbox all of these connect.
  EXPECT_PROBE_OK(sb->probeOutside({"tcp", mapped4, kA}));
  EXPECT_PROBE_OK(sb->probeOutside({"tcp", w().ip6(4), kA}));
}

// Kernel-only mode (egressd --no-proxy): proxied ports are redirected to a listener nobody
// serves. With the proxy running the same connections reach it (http_proxy_test.cpp).
TEST_F(ConnectTest, ProxiedPortWithoutProxyIsRefusedNeverDirect) {
  PolicySpec spec;
  spec.enableInternet = true;  // a direct connection would be allowed if it were not proxied
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec, SandboxOptions{.daemonArgs = {"--no-proxy"}}));
  const std::vector<std::pair<std::string, int>> targets = {{w().ip4(3), kHttp},
                                                            {w().ip4(3), kHttps},
                                                            {w().ip6(3), kHttps},
                                                            {"::ffff:" + w().ip4(4), kHttp}};
  auto local = [&](const std::string& host, int port) {
    std::string h = host.starts_with("::ffff:") ? host.substr(7) : host;
    return (contains(h, ":") ? "[" + h + "]" : h) + ":" + std::to_string(port);
  };
  std::vector<size_t> before;
  for (const auto& [host, port] : targets) {
    before.push_back(w().serverEventsFor(local(host, port)));
  }
  for (const auto& [host, port] : targets) {
    EXPECT_PROBE_ERR(sb->probe({"tcp", host, std::to_string(port)}), "ECONNREFUSED")
        << host << " port " << port;
  }
  // The origin servers saw nothing from the sandbox.
  for (size_t i = 0; i < targets.size(); ++i) {
    EXPECT_EQ(w().serverEventsFor(local(targets[i].first, targets[i].second)), before[i])
        << "origin " << local(targets[i].first, targets[i].second)
        << " was reached directly; server log:\n"
        << w().servers->log();
  }
  // Control: from outside the sandbox the origin answers and the log records it.
  EXPECT_PROBE_OK(sb->probeOutside({"tcp", w().ip4(3), std::to_string(kHttp)}));
  EXPECT_EQ(w().serverEventsFor(local(w().ip4(3), kHttp)), before[0] + 1);
  // Non-proxied ports of the same host are direct.
  EXPECT_PROBE_OK(sb->probe({"tcp", w().ip4(3), kA}));
}

TEST_F(ConnectTest, ProxyPortsAreConfigurable) {
  PolicySpec spec;
  spec.enableInternet = true;
  spec.proxyPorts = std::vector<int>{kTcpB};
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec, SandboxOptions{.daemonArgs = {"--no-proxy"}}));
  size_t before = w().serverEventsFor(w().ip4(3) + ":" + kB);
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(3), kB}), "ECONNREFUSED");
  EXPECT_EQ(w().serverEventsFor(w().ip4(3) + ":" + kB), before);
  // 80 is no longer proxied: direct (enableInternet: true).
  auto r = sb->probe({"tcp", w().ip4(3), std::to_string(kHttp)});
  ASSERT_PROBE_OK(r);
  EXPECT_TRUE(contains(r.out, "hello from " + w().ip4(3) + ":80")) << r.out;
}

TEST_F(ConnectTest, TfoConnectIsJudgedLikeConnect) {
  // The sandbox shares the host's netns, whose net.ipv4.tcp_fastopen decides whether a
  // client may send data in the SYN at all.
  EGRESSD_SKIP_UNLESS_HOST_FEATURE(host::kTcpFastOpen);
  PolicySpec spec;
  spec.allow = {{.cidr = w().ip4(3) + "/32", .ports = {kTcpA}}};
  spec.deniedHosts = {w().ip4(4) + "/32"};
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec));

  auto r = sb->probe({"tfo", w().ip4(3), kA});
  ASSERT_PROBE_OK(r);
  EXPECT_TRUE(contains(r.out, "echo=\"tfo\"")) << r.out;
  EXPECT_PROBE_ERR(sb->probe({"tfo", w().ip4(3), kB}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"tfo", w().ip4(4), kA}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"tfo", w().ip6(3), kA}), "EPERM");
  EXPECT_PROBE_OK(sb->probeOutside({"tfo", w().ip4(4), kA}));
}

TEST_F(ConnectTest, IoUringConnectIsJudgedLikeConnect) {
  EGRESSD_SKIP_UNLESS_HOST_FEATURE(host::kIoUring);  // kernel.io_uring_disabled=0
  PolicySpec spec;
  spec.allow = {{.cidr = w().ip4(3) + "/32", .ports = {kTcpA}}};
  spec.deniedHosts = {w().ip4(4) + "/32"};
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec));

  auto r = sb->probe({"uring-connect", w().ip4(3), kA});
  ASSERT_PROBE_OK(r);
  EXPECT_TRUE(contains(r.out, "hello from " + w().ip4(3) + ":" + kA)) << r.out;
  EXPECT_PROBE_ERR(sb->probe({"uring-connect", w().ip4(3), kB}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"uring-connect", w().ip4(4), kA}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"uring-connect", "::ffff:" + w().ip4(4), kA}), "EPERM");
  EXPECT_PROBE_OK(sb->probeOutside({"uring-connect", w().ip4(4), kA}));
}

// A same-namespace sandbox must not reach the host's loopback services, however it spells
// the address, even with enableInternet: true.
TEST_F(ConnectTest, HostLoopbackServicesAreDenied) {
  // Without ::1 on lo (net.ipv6.conf.lo.disable_ipv6=1) only the IPv4 spellings are tested,
  // and the test ends as skipped, naming the feature.
  const host::Feature& v6 = test::hostFeature(host::kIpv6Loopback);
  std::vector<std::string> listen{"127.0.0.1:0"};
  if (v6.ok()) {
    listen.push_back("[::1]:0");
  }
  ASSERT_OK_AND_ASSIGN(auto host, test::TestServers::start("", listen, {}));
  const std::string p4 = std::to_string(host.tcpPort(0));
  PolicySpec spec;
  spec.enableInternet = true;
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec));

  std::vector<std::pair<std::string, std::string>> targets = {
      {"127.0.0.1", p4}, {"0.0.0.0", p4}, {"::ffff:127.0.0.1", p4}, {"::ffff:0.0.0.0", p4}};
  if (v6.ok()) {
    const std::string p6 = std::to_string(host.tcpPort(1));
    targets.insert(targets.end(), {{"::1", p6}, {"::", p6}});
  }
  for (const auto& [addr, port] : targets) {
    EXPECT_PROBE_ERR(sb->probe({"tcp", addr, port}), "EPERM") << addr << " port " << port;
  }
  EXPECT_EQ(host.log(), "") << "a loopback service was reached from the sandbox";
  // Control: each spelling reaches the service from outside the sandbox.
  for (const auto& [addr, port] : targets) {
    EXPECT_PROBE_OK(probeHost({"tcp", addr, port})) << addr << " port " << port;
  }
  // And the sandbox still reaches the test internet (not a deny-everything policy).
  EXPECT_PROBE_OK(sb->probe({"tcp", w().ip4(3), kA}));
  if (!v6.ok()) {
    GTEST_SKIP() << "IPv4 spellings checked; ::1 and :: need host feature " << v6.describe();
  }
}

// A host-namespace sandbox with one loopback rule reaches exactly that address and port:
// not the next port, not the same port over ::1, not through "::" (which reaches ::1).
TEST_F(ConnectTest, LoopbackAllowedOnlyByExplicitRule) {
  EGRESSD_SKIP_UNLESS_HOST_FEATURE(host::kIpv6Loopback);  // the [::1]:P neighbour
  // Servers on 127.0.0.1:P, 127.0.0.1:P+1 and [::1]:P (P picked by the kernel, retried
  // until P+1 and [::1]:P are free too).
  std::optional<test::TestServers> first;
  std::optional<test::TestServers> second;
  int p = 0;
  for (int attempt = 0; attempt < 10 && !second; ++attempt) {
    ASSERT_OK_AND_ASSIGN(auto s1, test::TestServers::start("", {"127.0.0.1:0"}, {}));
    p = s1.tcpPort(0);
    if (p <= 0 || p >= 65535) {
      continue;
    }
    auto s2 = test::TestServers::start(
        "", {"127.0.0.1:" + std::to_string(p + 1), "[::1]:" + std::to_string(p)}, {});
    if (s2.ok()) {
      first.emplace(std::move(s1));
      second.emplace(std::move(s2).value());
    }
  }
  ASSERT_TRUE(second.has_value()) << "no port P with 127.0.0.1:P+1 and [::1]:P free";
  const std::string P = std::to_string(p);
  const std::string P1 = std::to_string(p + 1);

  PolicySpec spec;
  spec.allow = {{.cidr = "127.0.0.1/32", .ports = {p}}};
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec));

  auto r = sb->probe({"tcp", "127.0.0.1", P, "--send", "lo"});
  ASSERT_PROBE_OK(r);
  EXPECT_TRUE(contains(r.out, "greeting=\"hello from 127.0.0.1:" + P + "\"")) << r.out;
  EXPECT_TRUE(contains(r.out, "echo=\"lo\"")) << r.out;
  EXPECT_PROBE_ERR(sb->probe({"tcp", "127.0.0.1", P1}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"tcp", "::1", P}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"tcp", "::", P}), "EPERM");
  EXPECT_EQ(second->log(), "") << "a loopback service outside the rule was reached";
  // Control: outside the sandbox every one of them answers ("::" reaches the ::1 listener).
  EXPECT_PROBE_OK(probeHost({"tcp", "127.0.0.1", P1}));
  EXPECT_PROBE_OK(probeHost({"tcp", "::1", P}));
  r = probeHost({"tcp", "::", P});
  ASSERT_PROBE_OK(r);
  EXPECT_TRUE(contains(r.out, "hello from [::1]:" + P)) << r.out;
}

}  // namespace
}  // namespace egressd::e2e
