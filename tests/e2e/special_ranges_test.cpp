// Special destinations are denied even with enableInternet: true, unless a rule names them:
// link-local (incl. the cloud metadata address), multicast, limited broadcast, IPv6
// link-local and multicast, and the IPv6 forms that embed an IPv4 address (NAT64, 6to4,
// Teredo, IPv4-compatible) - here embedding the test server 198.18.N.3.
//
// Safety: everything is sent from the world's sandbox netns, which has routes to the test
// subnets only; each test first checks that it has no default route (IPv4 and IPv6).
#include <cstdio>

#include "world.h"

namespace egressd::e2e {
namespace {

const std::string kA = std::to_string(kTcpA);
const std::string kU = std::to_string(kUdp);

std::string hex(unsigned v) {
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%x", v);
  return buf;
}

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

// The probe failed (exit 1), but not with EPERM: the policy let it through and the network
// (nothing routes these prefixes) answered instead.
::testing::AssertionResult ProbeFailedButNotEperm(const RunResult& r) {
  if (r.exitCode == 1 && r.out.starts_with("ERR ") && !r.out.starts_with("ERR EPERM ")) {
    return ::testing::AssertionSuccess() << r.out;
  }
  return ::testing::AssertionFailure() << "expected a non-EPERM error, got " << r.describe();
}

class SpecialRangesTest : public RoutelessNetnsTest {
 protected:
  void SetUp() override {
    RoutelessNetnsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) {
      return;
    }
    const unsigned low = (static_cast<unsigned>(w().net->subnet()) << 8) | 3;  // .N.3
    embed_ = "c612:" + hex(low);                                               // 198.18.N.3
    ifname_ = w().net->sandboxIfName();
    ASSERT_FALSE(ifname_.empty());
  }
  std::string nat64() const { return "64:ff9b::" + embed_; }
  std::string sixToFour() const { return "2002:" + embed_ + "::1"; }
  // Teredo: 2001:0:<server v4>:<flags>:<port>:<client v4>, all of 2001::/32 counts.
  std::string teredo() const { return "2001:0:" + embed_ + "::1"; }
  std::string v4Compatible() const { return "::" + embed_; }

  std::string embed_;
  std::string ifname_;
};

TEST_F(SpecialRangesTest, DeniedEvenWithEnableInternet) {
  PolicySpec spec;
  spec.enableInternet = true;
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec, true));

  // Positive control: the open policy reaches the test internet over both families.
  auto r = sb->probe({"tcp", w().ip4(3), kA});
  ASSERT_PROBE_OK(r);
  EXPECT_TRUE(contains(r.out, "hello from " + w().ip4(3) + ":" + kA)) << r.out;
  EXPECT_PROBE_OK(sb->probe({"udp", w().ip4(3), kU}));
  EXPECT_PROBE_OK(sb->probe({"tcp", w().ip6(3), kA}));
  ASSERT_OK_AND_ASSIGN(auto before, sandboxStatus(*sb));

  struct Dest {
    std::string addr;
    std::string port;
    bool tcp;
    bool broadcast;
    const char* reason;
  };
  const std::vector<Dest> dests = {
      {"169.254.169.254", kA, true, false, "deny_special"},  // cloud metadata
      {"169.254.1.1", kA, true, false, "deny_special"},
      {"224.0.0.251", "5353", false, false, "deny_special"},  // mDNS multicast
      {"255.255.255.255", kU, false, true, "deny_special"},   // limited broadcast
      {"fe80::1%" + ifname_, kA, true, false, "deny_special"},
      {"ff02::1%" + ifname_, kU, false, false, "deny_special"},
      {"::ffff:169.254.169.254", kA, true, false, "deny_special"},
      {nat64(), kA, true, false, "deny_embedded_v4"},
      {sixToFour(), kA, true, false, "deny_embedded_v4"},
      {teredo(), kA, true, false, "deny_embedded_v4"},
      {v4Compatible(), kA, true, false, "deny_embedded_v4"},
  };
  std::map<std::string, uint64_t> expected;
  for (const auto& d : dests) {
    ASSERT_TRUE(SandboxNetnsHasNoDefaultRoute(w()));
    std::vector<std::string> udp{"--timeout-ms", "1000", "udp", d.addr, d.tcp ? kU : d.port};
    if (d.broadcast) {
      udp.push_back("--broadcast");
    }
    EXPECT_PROBE_ERR(sb->probe(udp), "EPERM") << "UDP to " << d.addr;
    ++expected[d.reason];
    if (d.tcp) {
      EXPECT_PROBE_ERR(sb->probe({"--timeout-ms", "1000", "tcp", d.addr, d.port}), "EPERM")
          << "TCP to " << d.addr;
      ++expected[d.reason];
    }
  }
  // Each denial was counted under its reason.
  ASSERT_OK_AND_ASSIGN(auto after, sandboxStatus(*sb));
  for (const auto& [reason, n] : expected) {
    EXPECT_EQ(counterOf(after, reason), counterOf(before, reason) + n) << reason << "\n"
                                                                       << after.dump(2);
  }
  // Control: outside the sandbox cgroup (same netns) the same sends are not refused with
  // EPERM; nothing routes them there, so they fail with ENETUNREACH instead.
  EXPECT_TRUE(ProbeFailedButNotEperm(sb->probeOutside({"udp", "169.254.169.254", kU})));
  EXPECT_TRUE(ProbeFailedButNotEperm(sb->probeOutside({"tcp", nat64(), kA})));
  EXPECT_TRUE(ProbeFailedButNotEperm(sb->probeOutside({"tcp", sixToFour(), kA})));
}

TEST_F(SpecialRangesTest, ExplicitAllowRuleOpensOnlyItsRange) {
  PolicySpec spec;
  spec.enableInternet = true;
  spec.allow = {{.cidr = "64:ff9b::/96"}};
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec, true));
  ASSERT_TRUE(SandboxNetnsHasNoDefaultRoute(w()));

  // Allowed: the kernel lets the connect/sendto through; nothing routes NAT64 here.
  EXPECT_TRUE(ProbeFailedButNotEperm(sb->probe({"--timeout-ms", "1000", "tcp", nat64(), kA})));
  EXPECT_TRUE(ProbeFailedButNotEperm(sb->probe({"--timeout-ms", "1000", "udp", nat64(), kU})));
  // The other embedding prefixes and the special ranges stay denied.
  EXPECT_PROBE_ERR(sb->probe({"tcp", sixToFour(), kA}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"tcp", teredo(), kA}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"tcp", "64:ff9b:1::" + embed_, kA}), "EPERM");  // RFC 8215
  EXPECT_PROBE_ERR(sb->probe({"tcp", "169.254.169.254", kA}), "EPERM");
  EXPECT_PROBE_OK(sb->probe({"tcp", w().ip4(3), kA}));
}

}  // namespace
}  // namespace egressd::e2e
