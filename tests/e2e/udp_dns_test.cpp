// cgroup/sendmsg4/6 + recvmsg4/6 (UDP) and TCP/53 in connect4/6: unconnected, connected and
// batched UDP judged alike; DNS to any address pinned to egressd's resolver (which forwards
// allowed names to the policy's dns.upstream) with replies that appear to come from the
// address asked; QUIC (UDP 443) denied unless allowed. The resolver's own policy (names,
// types, limits, fail closed): dns_resolver_test.cpp.
#include "temp_dir.h"
#include "world.h"

namespace egressd::e2e {
namespace {

const std::string kU = std::to_string(kUdp);

class UdpDnsTest : public E2eTest {};

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

TEST_F(UdpDnsTest, UnconnectedSendtoIsJudgedLikeConnectedUdp) {
  PolicySpec spec;
  spec.allow = {{.cidr = w().ip4(3) + "/32", .ports = {kUdp}, .protocol = "udp"}};
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec));

  for (const char* mode : {"udp", "udp-connected", "sendmmsg"}) {
    auto r = sb->probe({mode, w().ip4(3), kU});
    ASSERT_PROBE_OK(r) << mode;
    EXPECT_TRUE(contains(r.out, "from=" + w().ip4(3) + ":" + kU)) << r.out;
    EXPECT_TRUE(contains(r.out, "reply=\"udp " + w().ip4(3) + ":" + kU + " ")) << r.out;
    EXPECT_PROBE_ERR(sb->probe({mode, w().ip4(4), kU}), "EPERM") << mode;
    EXPECT_PROBE_ERR(sb->probe({mode, "::ffff:" + w().ip4(4), kU}), "EPERM") << mode;
    EXPECT_PROBE_ERR(sb->probe({mode, w().ip6(3), kU}), "EPERM") << mode;
    EXPECT_PROBE_OK(sb->probeOutside({mode, w().ip4(4), kU})) << mode;
  }
  // The rule is for UDP only: TCP to the same address and port is not allowed by it.
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(3), kU}), "EPERM");
}

// The "arbitrary resolver" 198.18.N.99 is inside the test subnet and served by nobody:
// only egressd (forwarding to dnsmasq on 198.18.N.2) can answer.
TEST_F(UdpDnsTest, DnsToAnyAddressIsAnsweredByThePinnedResolver) {
  PolicySpec spec;  // enableInternet: false, no allow rules: only DNS can get out
  spec.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec));
  const std::string nobody = w().ip4(99);

  for (bool tcp : {false, true}) {
    auto r = digIn(*sb, nobody, "allowed.test", tcp);
    ASSERT_EQ(r.exitCode, 0) << (tcp ? "+tcp " : "udp ") << r.describe();
    EXPECT_TRUE(contains(r.out, "status: NOERROR")) << r.out;
    EXPECT_TRUE(contains(r.out, "\t" + w().ip4(3) + "\n")) << r.out;
    // The reply appears to come from the address dig asked (no "unexpected source").
    EXPECT_TRUE(contains(r.out, ";; SERVER: " + nobody + "#53(" + nobody + ")")) << r.out;
    EXPECT_FALSE(contains(r.out + r.err, "unexpected source")) << r.out << r.err;
  }
  EXPECT_TRUE(contains(w().dns->log(), "query[A] allowed.test")) << w().dns->log();
  // TCP/53 is connected to the resolver, yet getpeername shows the address asked.
  auto peer = sb->probe({"tcp", nobody, "53", "--no-read"});
  ASSERT_PROBE_OK(peer);
  EXPECT_EQ(peer.out, "OK peer=" + nobody + ":53\n");
  peer = sb->probe({"tcp", "::ffff:" + nobody, "53", "--no-read"});
  ASSERT_PROBE_OK(peer);
  EXPECT_EQ(peer.out, "OK peer=[::ffff:" + nobody + "]:53\n");
  // Control: outside the sandbox nobody answers at that address.
  auto outside = runGuarded({"dig", "+time=1", "+tries=1", "@" + nobody, "allowed.test"}, "", "",
                            test::milliseconds(10000));
  EXPECT_NE(outside.exitCode, 0) << outside.describe();
  // Non-DNS traffic to the same address is still denied.
  EXPECT_PROBE_ERR(sb->probe({"udp", nobody, kU}), "EPERM");
}

// IPv6 DNS is pinned the same way (egressd's resolver listens on ::1 too), and egressd
// forwards to an IPv6 upstream.
TEST_F(UdpDnsTest, DnsOverIpv6IsPinnedToAnIpv6Resolver) {
  PolicySpec spec;
  spec.allowedHosts = {"other.test"};
  spec.resolver = "[" + w().ip6(2) + "]:53";
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec));
  const std::string nobody6 = w().ip6(0x99);
  for (bool tcp : {false, true}) {
    auto r = digIn(*sb, nobody6, "other.test", tcp);
    ASSERT_EQ(r.exitCode, 0) << (tcp ? "+tcp " : "udp ") << r.describe();
    EXPECT_TRUE(contains(r.out, "\t" + w().ip4(4) + "\n")) << r.out;
    EXPECT_FALSE(contains(r.out + r.err, "unexpected source")) << r.out << r.err;
  }
}

TEST_F(UdpDnsTest, GetaddrinfoWorksThroughThePinnedResolver) {
  PolicySpec spec;
  spec.allowedHosts = {"allowed.test", "other.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec));
  ASSERT_OK_AND_ASSIGN(test::TempDir dir, test::TempDir::create());
  ASSERT_OK_AND_ASSIGN(std::string conf,
                       dir.writeFile("resolv.conf", "nameserver " + w().ip4(99) +
                                                        "\noptions timeout:2 attempts:1\n"));
  auto r = sb->probe({"--resolv-conf", conf, "getaddrinfo", "allowed.test"});
  ASSERT_PROBE_OK(r);
  EXPECT_TRUE(contains(r.out, w().ip4(3))) << r.out;
  r = sb->probe({"--resolv-conf", conf, "getaddrinfo", "other.test"});
  ASSERT_PROBE_OK(r);
  EXPECT_TRUE(contains(r.out, w().ip4(4))) << r.out;
}

TEST_F(UdpDnsTest, QuicUdp443IsDeniedUnlessAllowed) {
  PolicySpec spec;
  spec.enableInternet = true;  // only the QUIC rule can deny here
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec));
  for (const char* mode : {"udp", "udp-connected", "sendmmsg"}) {
    EXPECT_PROBE_ERR(sb->probe({mode, w().ip4(3), "443"}), "EPERM") << mode;
    EXPECT_PROBE_ERR(sb->probe({mode, w().ip6(3), "443"}), "EPERM") << mode;
    EXPECT_PROBE_OK(sb->probe({mode, w().ip4(3), kU})) << mode;
  }
  EXPECT_PROBE_OK(sb->probeOutside({"udp", w().ip4(3), "443"}));

  spec.allow = {{.cidr = w().ip4(3) + "/32", .ports = {443}, .protocol = "udp"}};
  ASSERT_OK_AND_ASSIGN(auto quic, Sandbox::start(spec));
  auto r = quic->probe({"udp", w().ip4(3), "443"});
  ASSERT_PROBE_OK(r);
  EXPECT_TRUE(contains(r.out, "reply=\"udp " + w().ip4(3) + ":443 ")) << r.out;
  EXPECT_PROBE_ERR(quic->probe({"udp", w().ip4(4), "443"}), "EPERM");
}

}  // namespace
}  // namespace egressd::e2e
