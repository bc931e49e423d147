// Which upstream connections a forwarded request may use: the keys that keep a request's own
// host, each kind of reroute target and each port apart, and the address check on reuse.
#include "proxy/upstream_target.h"

#include <gtest/gtest.h>

namespace egressd::proxy {
namespace {

handlers::RerouteTarget reroute(std::string_view text) {
  auto target = handlers::parseRerouteTarget(text);
  EXPECT_TRUE(target.ok()) << target.error().message();
  return *target;
}

IpAddress ip(std::string_view text) {
  return *IpAddress::parse(text);
}

TEST(UpstreamTargetTest, OwnHostOnTheSandboxesPort) {
  const UpstreamTarget target = upstreamTargetFor("api.example", 8080, std::nullopt);
  EXPECT_EQ(target.key, "api.example|8080");
  EXPECT_EQ(target.port, 8080);
  EXPECT_FALSE(target.reroute);
}

TEST(UpstreamTargetTest, RerouteTargetsHaveTheirOwnPortAndKey) {
  UpstreamTarget target = upstreamTargetFor("api.example", 80, reroute("10.0.0.5:9000"));
  EXPECT_EQ(target.key, "reroute|tcp|10.0.0.5|9000");
  EXPECT_EQ(target.port, 9000);
  ASSERT_TRUE(target.reroute);

  target = upstreamTargetFor("api.example", 80, reroute("https://mirror.example"));
  EXPECT_EQ(target.key, "reroute|tls|mirror.example|443");
  EXPECT_EQ(target.port, 443);

  target = upstreamTargetFor("api.example", 80, reroute("unix:/run/kv.sock"));
  EXPECT_EQ(target.key, "reroute|unix|/run/kv.sock");
}

TEST(UpstreamTargetTest, KeysKeepPlainAndTlsReroutesToTheSameHostApart) {
  EXPECT_NE(upstreamTargetFor("h", 80, reroute("http://mirror.example:443")).key,
            upstreamTargetFor("h", 80, reroute("https://mirror.example:443")).key);
  EXPECT_NE(upstreamTargetFor("mirror.example", 443, std::nullopt).key,
            upstreamTargetFor("h", 443, reroute("mirror.example:443")).key);
}

TEST(UpstreamTargetTest, ReuseOnlyToAnAddressTheRequestMayStillGoTo) {
  UpstreamTarget target = upstreamTargetFor("api.example", 443, std::nullopt);
  target.addrs = {ip("192.0.2.1"), ip("2001:db8::1")};
  EXPECT_TRUE(target.mayUse(ip("192.0.2.1")));
  EXPECT_TRUE(target.mayUse(ip("2001:db8::1")));
  EXPECT_FALSE(target.mayUse(ip("192.0.2.2")));
}

TEST(UpstreamTargetTest, AnyAddressForARerouteTarget) {
  UpstreamTarget target = upstreamTargetFor("api.example", 80, reroute("10.0.0.5:9000"));
  target.addrs = {ip("10.0.0.5")};
  EXPECT_TRUE(target.mayUse(ip("10.0.0.6")));
}

}  // namespace
}  // namespace egressd::proxy
