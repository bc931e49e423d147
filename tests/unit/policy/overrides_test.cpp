#include "policy/overrides.h"

#include <gtest/gtest.h>

#include "policy/host_policy.h"
#include "test_util.h"

namespace egressd::policy {
namespace {

using testing::parseOk;
using Strings = std::vector<std::string>;

const char* kBase = R"(
name: base
enableInternet: false
allowedHosts: ["github.com", "10.20.0.0/16", "*.npmjs.org"]
deniedHosts: ["*.evil.example"]
outboundHandlers:
  h: [ { deny: { status: 403 } } ]
)";

TEST(OverridesTest, NoOverridesKeepThePolicysListsInFileOrder) {
  Policy base = parseOk(kBase);
  EXPECT_EQ(hostListTexts(base.allowedHosts),
            (Strings{"github.com", "10.20.0.0/16", "*.npmjs.org"}));
  auto effective = applyHostOverrides(base, InstanceOverrides{});
  ASSERT_TRUE(effective.ok());
  EXPECT_EQ(hostListTexts(effective->allowedHosts), hostListTexts(base.allowedHosts));
}

TEST(OverridesTest, AddedAndRemovedAdjustThePolicysList) {
  Policy base = parseOk(kBase);
  InstanceOverrides o;
  o.allowedHosts.added = {"pkg.test", "GitHub.com."};  // the second is already there
  o.allowedHosts.removed = {"10.20.0.0/16"};
  EXPECT_EQ(effectiveHostList(base.allowedHosts, o.allowedHosts),
            (Strings{"github.com", "*.npmjs.org", "pkg.test"}));
  auto effective = applyHostOverrides(base, o);
  ASSERT_TRUE(effective.ok()) << effective.error().message();
  EXPECT_TRUE(effective->allowedHosts.cidrs.empty());
  const HostPolicy hosts = HostPolicy::fromPolicy(*effective);
  EXPECT_TRUE(hosts.decideName("pkg.test").allowed());
  EXPECT_FALSE(hosts.decideName("other.test").allowed());
}

TEST(OverridesTest, SetReplacesAndAnEmptySetDeniesEveryName) {
  Policy base = parseOk(kBase);
  InstanceOverrides o;
  o.allowedHosts.set = Strings{};
  auto effective = applyHostOverrides(base, o);
  ASSERT_TRUE(effective.ok());
  EXPECT_TRUE(effective->allowedHosts.present);
  EXPECT_TRUE(effective->allowedHosts.empty());
  EXPECT_FALSE(HostPolicy::fromPolicy(*effective).decideName("github.com").allowed());
}

TEST(OverridesTest, AddingToAnUnwrittenAllowListWritesIt) {
  Policy base = parseOk("name: open\nenableInternet: true\n");
  EXPECT_TRUE(HostPolicy::fromPolicy(base).decideName("any.test").allowed());
  InstanceOverrides o;
  o.allowedHosts.added = {"pkg.test"};
  auto effective = applyHostOverrides(base, o);
  ASSERT_TRUE(effective.ok());
  const HostPolicy hosts = HostPolicy::fromPolicy(*effective);
  EXPECT_TRUE(hosts.decideName("pkg.test").allowed());
  EXPECT_FALSE(hosts.decideName("any.test").allowed()) << "allowedHosts, once written, denies";
}

TEST(OverridesTest, DeniedCidrReachesTheAddressDecision) {
  Policy base = parseOk("name: open\nenableInternet: true\n");
  InstanceOverrides o;
  o.deniedHosts.added = {"198.18.3.0/24"};
  auto effective = applyHostOverrides(base, o);
  ASSERT_TRUE(effective.ok());
  auto addr = IpAddress::parse("198.18.3.3");
  ASSERT_TRUE(addr.has_value());
  const HostPolicy hosts = HostPolicy::fromPolicy(*effective);
  EXPECT_EQ(hosts.decideAddress(*addr, 9000).reason, "denied_cidr");
  EXPECT_EQ(hosts.decideAddress(*addr, 9000, Protocol::kUdp).reason, "denied_cidr");
}

TEST(OverridesTest, BadEntriesAreRejectedWithTheEntry) {
  Policy base = parseOk(kBase);
  InstanceOverrides o;
  o.deniedHosts.added = {"a..b"};
  auto effective = applyHostOverrides(base, o);
  ASSERT_FALSE(effective.ok());
  EXPECT_NE(effective.error().message().find("\"a..b\""), std::string::npos)
      << effective.error().message();
  EXPECT_FALSE(hostEntryKey("10.0.0.0/33").ok());
  EXPECT_EQ(*hostEntryKey("Example.COM."), "example.com");
}

TEST(OverridesTest, JsonRoundTripKeepsEverything) {
  InstanceOverrides o;
  o.allowedHosts.set = Strings{"a.test"};
  o.allowedHosts.removed = {"b.test"};
  o.deniedHosts.added = {"10.0.0.0/8"};
  HandlerRef ref;
  ref.handler = "tag";
  ref.params = {{"t", "v"}};
  o.outboundByHost["api.test"] = ref;
  o.outbound = ref;
  auto back = InstanceOverrides::fromJson(o.toJson());
  ASSERT_TRUE(back.ok()) << back.error().message();
  EXPECT_EQ(back->toJson(), o.toJson());
  EXPECT_FALSE(InstanceOverrides::fromJson(nlohmann::json::array()).ok());
  EXPECT_FALSE(InstanceOverrides::fromJson({{"outbound", {{"params", 1}}}}).ok());
}

}  // namespace
}  // namespace egressd::policy
