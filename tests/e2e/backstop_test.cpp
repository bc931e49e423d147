// cgroup_skb/egress, the backstop: a policy with `sockets: { raw: true }` lets the sandbox
// create raw sockets, whose packets no connect/sendmsg hook judges. The backstop must still
// drop a packet to a destination the policy does not allow, an IPv4 packet with options and
// an IPv6 packet with a routing header - and pass the same packet to an allowed destination.
//
// Every packet is built by egressd-probe (raw-udp4/raw-udp6) with its own UDP source port,
// so the server log shows exactly which ones arrived. Packets with options or a routing
// header are also sent from outside the sandbox cgroup: they arrive there, so only the
// backstop can have stopped them. Everything runs in the world's sandbox netns (no default
// route: checked first).
#include "world.h"

namespace egressd::e2e {
namespace {

const std::string kU = std::to_string(kUdp);
constexpr test::milliseconds kArrival{3000};

class BackstopTest : public RoutelessNetnsTest {
 protected:
  void SetUp() override {
    RoutelessNetnsTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) {
      return;
    }
    PolicySpec spec;
    spec.extraYaml = "sockets:\n  raw: true\n";
    spec.allow = {{.cidr = w().ip4(3) + "/32", .ports = {kUdp}, .protocol = "udp"},
                  {.cidr = w().ip6(3) + "/128", .ports = {kUdp}, .protocol = "udp"}};
    ASSERT_OK_AND_ASSIGN(sb_, Sandbox::start(spec, true));
    src4_ = w().net->sandboxIp4(2);
    src6_ = w().net->sandboxIp6(2);
    ASSERT_OK_AND_ASSIGN(before_, sandboxStatus(*sb_));
  }

  // "udp-recv <server> <sandbox source>:<sport> " in the servers.py log.
  std::string recv4(int host, int sport) const {
    return "udp-recv " + world_->ip4(host) + ":" + kU + " " + src4_ + ":" + std::to_string(sport) +
           " ";
  }
  std::string recv6(int host, int sport) const {
    return "udp-recv [" + world_->ip6(host) + "]:" + kU + " [" + src6_ +
           "]:" + std::to_string(sport) + " ";
  }
  bool arrives(const std::string& needle) const {
    return world_->waitForServerEvent(needle, kArrival);
  }
  bool seen(const std::string& needle) const {
    return world_->servers->log().find(needle) != std::string::npos;
  }
  // How much a counter grew since SetUp.
  uint64_t grown(const std::string& reason) {
    auto after = sandboxStatus(*sb_);
    EXPECT_TRUE(after.ok()) << after.error().message();
    return after.ok() ? counterOf(*after, reason) - counterOf(before_, reason) : 0;
  }
  std::vector<std::string> raw4(int host, int sport, std::vector<std::string> extra = {}) const {
    std::vector<std::string> a{"raw-udp4", world_->ip4(host),    kU, "--src", src4_,
                               "--sport",  std::to_string(sport)};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }
  std::vector<std::string> raw6(int host, int sport, std::vector<std::string> extra = {}) const {
    std::vector<std::string> a{"raw-udp6", world_->ip6(host),    kU, "--src", src6_,
                               "--sport",  std::to_string(sport)};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
  }

  std::unique_ptr<Sandbox> sb_;
  std::string src4_;
  std::string src6_;
  nlohmann::json before_;
};

TEST_F(BackstopTest, RawUdpIsDroppedUnlessItsDestinationIsAllowed) {
  // (a) Not allowed (198.18.N.4, enableInternet: false): plain raw, IP_HDRINCL, IPv6 raw.
  EXPECT_PROBE_ERR(sb_->probe(raw4(4, 41001)), "EPERM");
  EXPECT_PROBE_ERR(sb_->probe(raw4(4, 41002, {"--hdrincl"})), "EPERM");
  EXPECT_PROBE_ERR(sb_->probe(raw6(4, 41003)), "EPERM");
  EXPECT_PROBE_ERR(sb_->probe(raw6(4, 41004, {"--hdrincl"})), "EPERM");

  // (b) The same packets to the allowed server arrive.
  EXPECT_PROBE_OK(sb_->probe(raw4(3, 41011)));
  EXPECT_TRUE(arrives(recv4(3, 41011))) << w().servers->log();
  EXPECT_PROBE_OK(sb_->probe(raw4(3, 41012, {"--hdrincl"})));
  EXPECT_TRUE(arrives(recv4(3, 41012))) << w().servers->log();
  EXPECT_PROBE_OK(sb_->probe(raw6(3, 41013)));
  EXPECT_TRUE(arrives(recv6(3, 41013))) << w().servers->log();
  EXPECT_PROBE_OK(sb_->probe(raw6(3, 41014, {"--hdrincl"})));
  EXPECT_TRUE(arrives(recv6(3, 41014))) << w().servers->log();

  // Control: from outside the sandbox cgroup the denied destination receives them.
  EXPECT_PROBE_OK(sb_->probeOutside(raw4(4, 41021)));
  EXPECT_TRUE(arrives(recv4(4, 41021))) << w().servers->log();
  EXPECT_PROBE_OK(sb_->probeOutside(raw6(4, 41022, {"--hdrincl"})));
  EXPECT_TRUE(arrives(recv6(4, 41022))) << w().servers->log();

  // Later packets on the same path arrived, so the dropped ones are not just late.
  for (int sport : {41001, 41002}) {
    EXPECT_FALSE(seen(recv4(4, sport))) << sport << "\n" << w().servers->log();
  }
  for (int sport : {41003, 41004}) {
    EXPECT_FALSE(seen(recv6(4, sport))) << sport << "\n" << w().servers->log();
  }
  EXPECT_EQ(grown("deny_skb_dest"), 4u);
  EXPECT_EQ(grown("deny_skb_options"), 0u);
}

TEST_F(BackstopTest, Ipv4OptionsAreDropped) {
  // (c) ihl=6 with NOP, NOP, NOP, EOL to the allowed destination.
  EXPECT_PROBE_ERR(sb_->probe(raw4(3, 41101, {"--ip-options"})), "EPERM");
  // Without options the same header-included packet arrives.
  EXPECT_PROBE_OK(sb_->probe(raw4(3, 41102, {"--hdrincl"})));
  EXPECT_TRUE(arrives(recv4(3, 41102))) << w().servers->log();
  // The packet with options is valid: from outside the sandbox cgroup it arrives.
  EXPECT_PROBE_OK(sb_->probeOutside(raw4(3, 41103, {"--ip-options"})));
  EXPECT_TRUE(arrives(recv4(3, 41103))) << w().servers->log();
  EXPECT_FALSE(seen(recv4(3, 41101))) << w().servers->log();
  EXPECT_EQ(grown("deny_skb_options"), 1u);
}

TEST_F(BackstopTest, Ipv6RoutingHeaderIsDropped) {
  // (d) A routing header (type 0 and type 4 SRH, segments_left 0) to the allowed server.
  EXPECT_PROBE_ERR(sb_->probe(raw6(3, 41201, {"--rthdr"})), "EPERM");
  EXPECT_PROBE_ERR(sb_->probe(raw6(3, 41202, {"--srh"})), "EPERM");
  // The same packet without the routing header arrives.
  EXPECT_PROBE_OK(sb_->probe(raw6(3, 41203, {"--hdrincl"})));
  EXPECT_TRUE(arrives(recv6(3, 41203))) << w().servers->log();
  // With the type 0 header it is valid too (a receiver skips an exhausted routing header):
  // from outside the sandbox cgroup it arrives.
  EXPECT_PROBE_OK(sb_->probeOutside(raw6(3, 41204, {"--rthdr"})));
  EXPECT_TRUE(arrives(recv6(3, 41204))) << w().servers->log();
  EXPECT_FALSE(seen(recv6(3, 41201))) << w().servers->log();
  EXPECT_EQ(grown("deny_skb_options"), 2u);
}

}  // namespace
}  // namespace egressd::e2e
