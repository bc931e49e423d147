// A container-like sandbox: cgroup + its own network namespace, joined to the test internet
// by a second veth (egressd --netns). Enforcement must be the same as in the host netns.
#include "world.h"

namespace egressd::e2e {
namespace {

const std::string kA = std::to_string(kTcpA);
const std::string kB = std::to_string(kTcpB);
const std::string kU = std::to_string(kUdp);

class NetnsSandboxTest : public E2eTest {
 protected:
  PolicySpec spec() {
    PolicySpec s;
    s.allow = {{.cidr = w().ip4(3) + "/32", .ports = {kTcpA}, .protocol = "tcp"},
               {.cidr = w().ip4(3) + "/32", .ports = {kUdp}, .protocol = "udp"}};
    s.deniedHosts = {w().ip4(4) + "/32"};
    return s;
  }
};

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

TEST_F(NetnsSandboxTest, CidrRulesAreEnforcedTheSameWay) {
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec(), true));
  auto r = sb->probe({"tcp", w().ip4(3), kA});
  ASSERT_PROBE_OK(r);
  EXPECT_TRUE(contains(r.out, "hello from " + w().ip4(3) + ":" + kA)) << r.out;
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(3), kB}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(4), kA}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(2), kA}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"tcp", "::ffff:" + w().ip4(4), kA}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip6(3), kA}), "EPERM");
  EXPECT_PROBE_OK(sb->probe({"udp", w().ip4(3), kU}));
  EXPECT_PROBE_ERR(sb->probe({"udp", w().ip4(4), kU}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"sendmmsg", w().ip4(4), kU}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"tfo", w().ip4(4), kA}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"uring-connect", w().ip4(4), kA}), "EPERM");
  // Same namespace, outside the cgroup: unaffected.
  EXPECT_PROBE_OK(sb->probeOutside({"tcp", w().ip4(4), kA}));
  EXPECT_PROBE_OK(sb->probeOutside({"tcp", w().ip4(2), kB}));
}

TEST_F(NetnsSandboxTest, DnsIsPinnedToTheResolver) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(s, true));
  // Nothing but DNS is allowed to the resolver host; DNS reaches it through the pinning.
  for (bool tcp : {false, true}) {
    auto r = digIn(*sb, w().ip4(99), "allowed.test", tcp);
    ASSERT_EQ(r.exitCode, 0) << r.describe();
    EXPECT_TRUE(contains(r.out, "\t" + w().ip4(3) + "\n")) << r.out;
    EXPECT_FALSE(contains(r.out + r.err, "unexpected source")) << r.out;
  }
}

// Kernel-only mode (--no-proxy): the redirect target is not served, so the connection is
// refused rather than sent direct.
TEST_F(NetnsSandboxTest, ProxiedPortFailsClosed) {
  PolicySpec s = spec();
  s.enableInternet = true;
  ASSERT_OK_AND_ASSIGN(
      auto sb, Sandbox::start(s, SandboxOptions{.ownNetns = true, .daemonArgs = {"--no-proxy"}}));
  const std::string origin = w().ip4(3) + ":443";
  size_t before = w().serverEventsFor(origin);
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(3), "443"}), "ECONNREFUSED");
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(3), "80"}), "ECONNREFUSED");
  EXPECT_EQ(w().serverEventsFor(origin), before) << w().servers->log();
  EXPECT_PROBE_ERR(sb->probe({"udp", w().ip4(3), "443"}), "EPERM");
  EXPECT_PROBE_OK(sb->probe({"tcp", w().ip4(3), kB}));
  // A deny CIDR wins over the proxy rewrite: EPERM, not a trip to the proxy.
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(4), "443"}), "EPERM");
}

TEST_F(NetnsSandboxTest, LoopbackOfItsOwnNamespaceIsDenied) {
  const std::string netns = (*world())->net->sandboxNetns()->path();
  ASSERT_OK_AND_ASSIGN(auto local, test::TestServers::start(netns, {"127.0.0.1:0", "[::1]:0"}, {}));
  const std::string p4 = std::to_string(local.tcpPort(0));
  const std::string p6 = std::to_string(local.tcpPort(1));
  PolicySpec s = spec();
  s.enableInternet = true;
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(s, true));
  EXPECT_PROBE_ERR(sb->probe({"tcp", "127.0.0.1", p4}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"tcp", "0.0.0.0", p4}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"tcp", "::1", p6}), "EPERM");
  EXPECT_EQ(local.log(), "");
  EXPECT_PROBE_OK(sb->probeOutside({"tcp", "127.0.0.1", p4}));
  EXPECT_PROBE_OK(sb->probeOutside({"tcp", "::1", p6}));
}

}  // namespace
}  // namespace egressd::e2e
