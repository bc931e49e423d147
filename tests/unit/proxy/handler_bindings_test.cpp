// Which handler the proxy runs for a request (design.md "Precedence" 3-5, HandlerBindings::pick)
// and when a handler may decide at all (after deniedHosts/allowedHosts, instead of the
// internet_disabled default), plus the host decision a forwarding handler gives a name the
// policy left to its default.
#include <gtest/gtest.h>

#include <string>

#include "policy/host_policy.h"
#include "policy/policy.h"
#include "proxy/sandbox_context.h"
#include "proxy/upstream_choice.h"

namespace egressd::proxy {
namespace {

using handlers::HostBinding;

HostBinding bind(const std::string& pattern, const std::string& handler) {
  return HostBinding{pattern, handler, nlohmann::json::object()};
}

// The handler pick() returns for `host` and where it came from ("none" when nothing).
std::string picked(const HandlerBindings& b, const std::string& host) {
  std::string_view from = "unset";
  const HostBinding* binding = b.pick(host, &from);
  if (binding == nullptr) {
    return "none";
  }
  return std::string(from) + ":" + binding->handler;
}

// Every kind of binding present, each naming a different handler.
HandlerBindings allFour() {
  HandlerBindings b;
  b.instanceByHost = {bind("api.example.test", "instanceHost")};
  b.policyByHost = {bind("api.example.test", "policyHostExact"),
                    bind("*.example.test", "policyHostGlob")};
  b.instanceOutbound = bind("*", "instanceCatchAll");
  b.policyOutbound = bind("*", "policyCatchAll");
  return b;
}

TEST(HandlerBindingsTest, InstancePerHostComesFirst) {
  EXPECT_EQ(picked(allFour(), "api.example.test"), "instance:instanceHost");
}

TEST(HandlerBindingsTest, PolicyPerHostBeatsBothCatchAlls) {
  // The instance's per-host binding does not match this host; the policy's glob does.
  EXPECT_EQ(picked(allFour(), "www.example.test"), "policy:policyHostGlob");
  HandlerBindings b = allFour();
  b.instanceByHost.clear();
  EXPECT_EQ(picked(b, "api.example.test"), "policy:policyHostExact");
}

TEST(HandlerBindingsTest, InstanceCatchAllBeatsPolicyCatchAll) {
  EXPECT_EQ(picked(allFour(), "other.test"), "instance:instanceCatchAll");
}

TEST(HandlerBindingsTest, PolicyCatchAllAlone) {
  HandlerBindings b = allFour();
  b.instanceOutbound.reset();
  EXPECT_EQ(picked(b, "other.test"), "policy:policyCatchAll");
  // A per-host binding still wins for its hosts.
  EXPECT_EQ(picked(b, "x.example.test"), "policy:policyHostGlob");
}

TEST(HandlerBindingsTest, NothingBoundPicksNothing) {
  HandlerBindings b;
  EXPECT_TRUE(b.empty());
  EXPECT_EQ(picked(b, "api.example.test"), "none");
  b.policyByHost = {bind("*.example.test", "h")};
  EXPECT_FALSE(b.empty());
  EXPECT_EQ(picked(b, "example.test"), "none") << "*.example.test needs a label before the dot";
  EXPECT_EQ(picked(b, "a.example.test"), "policy:h");
  EXPECT_EQ(b.pick("a.example.test"), &b.policyByHost[0]) << "`from` is optional";
}

TEST(HandlerBindingsTest, FromPolicyCompilesTheHandlersAndKeepsFileOrder) {
  auto policy = policy::parsePolicy(R"(name: p
outboundByHost:
  "*.api.test": tenant
  exact.api.test: { handler: gh }
outbound: { handler: readOnly }
outboundHandlers:
  gh:
    - setHeader: { name: Authorization, value: "Bearer ${secret:GH}" }
  tenant:
    - setHeader: { name: X-Tenant, value: "${sandbox}" }
  readOnly:
    - deny: { status: 405, unless: { method: [GET, HEAD] } }
)",
                                    "p.yaml");
  ASSERT_TRUE(policy.ok()) << policy.error().message();
  auto bindings = HandlerBindings::fromPolicy(*policy);
  ASSERT_TRUE(bindings.ok()) << bindings.error().message();
  ASSERT_NE(bindings->set, nullptr);
  EXPECT_TRUE(bindings->set->contains("gh"));
  EXPECT_TRUE(bindings->set->contains("readOnly"));
  ASSERT_EQ(bindings->policyByHost.size(), 2u);
  EXPECT_EQ(bindings->policyByHost[0].pattern, "*.api.test");
  EXPECT_EQ(bindings->policyByHost[0].handler, "tenant");
  EXPECT_EQ(bindings->policyByHost[1].handler, "gh");
  ASSERT_TRUE(bindings->policyOutbound.has_value());
  EXPECT_EQ(bindings->policyOutbound->handler, "readOnly");
  EXPECT_TRUE(bindings->instanceByHost.empty());
  EXPECT_FALSE(bindings->instanceOutbound.has_value());
  // Exact beats glob, whatever the file order.
  EXPECT_EQ(picked(*bindings, "exact.api.test"), "policy:gh");
  EXPECT_EQ(picked(*bindings, "v1.api.test"), "policy:tenant");
  EXPECT_EQ(picked(*bindings, "elsewhere.test"), "policy:readOnly");
}

TEST(HandlerBindingsTest, FromPolicyWithoutHandlersHasNoSet) {
  auto policy = policy::parsePolicy("name: plain\nenableInternet: true\n", "plain.yaml");
  ASSERT_TRUE(policy.ok()) << policy.error().message();
  auto bindings = HandlerBindings::fromPolicy(*policy);
  ASSERT_TRUE(bindings.ok()) << bindings.error().message();
  EXPECT_EQ(bindings->set, nullptr);
  EXPECT_TRUE(bindings->empty());
}

TEST(HandlerBindingsTest, FromPolicyReportsACompileErrorWithItsPosition) {
  auto policy = policy::parsePolicy(R"(name: bad
outbound: kv
outboundHandlers:
  kv:
    - reroute: { upstream: "unix:relative.sock" }
)",
                                    "bad.yaml");
  ASSERT_TRUE(policy.ok()) << policy.error().message();
  auto bindings = HandlerBindings::fromPolicy(*policy);
  ASSERT_FALSE(bindings.ok());
  EXPECT_EQ(bindings.error().message().rfind("bad.yaml:5:", 0), 0u) << bindings.error().message();
}

// --- when a handler decides ----------------------------------------------------------------

policy::HostPolicy hostPolicy(const std::string& yaml) {
  auto p = policy::parsePolicy(yaml, "t.yaml");
  EXPECT_TRUE(p.ok()) << p.error().message();
  return p.ok() ? policy::HostPolicy::fromPolicy(*p) : policy::HostPolicy();
}

policy::NormalizedHost host(const std::string& text) {
  auto h = policy::normalizeHost(text);
  EXPECT_TRUE(h.ok()) << text;
  return h.ok() ? *h : policy::NormalizedHost{};
}

TEST(HandlerMayApplyTest, OnlyTheDefaultDenyGivesWayToAHandler) {
  const auto closed = hostPolicy("name: t\ndeniedHosts: [\"*.evil.test\"]\n");
  EXPECT_TRUE(handlerMayApply(closed.decide(host("api.test"), 80)))
      << closed.decide(host("api.test"), 80).reason;
  EXPECT_EQ(closed.decide(host("api.test"), 80).reason, "internet_disabled");
  EXPECT_FALSE(handlerMayApply(closed.decide(host("x.evil.test"), 80)));  // denied_host

  const auto listed = hostPolicy("name: t\nallowedHosts: [api.test]\n");
  EXPECT_TRUE(handlerMayApply(listed.decide(host("api.test"), 80)));
  EXPECT_FALSE(handlerMayApply(listed.decide(host("other.test"), 80)))
      << "allowedHosts written: an unlisted host is denied before any handler";
  EXPECT_EQ(listed.decide(host("other.test"), 80).reason, "not_in_allowed_hosts");

  const auto open = hostPolicy("name: t\nenableInternet: true\n");
  EXPECT_TRUE(handlerMayApply(open.decide(host("anything.test"), 80)));
  // Special destinations need an allow rule: a handler does not stand in for one.
  EXPECT_FALSE(handlerMayApply(open.decide(host("127.0.0.1"), 80)));
}

TEST(HandlerDecisionTest, ANameIsAllowedByTheHandlerLikeAnEnableInternetName) {
  const policy::HostDecision d = handlerDecision(host("api.test"), "gh");
  EXPECT_TRUE(d.allowed());
  EXPECT_EQ(d.reason, "handler");
  EXPECT_EQ(d.rule, "handler gh");
  EXPECT_TRUE(d.byName);
  EXPECT_FALSE(d.matchedAllowGlob);

  // Its resolved addresses: ordinary ones pass; private and special ones are refused unless
  // an allow rule covers them (no DNS rebinding into the internal network via a handler).
  const auto closed = hostPolicy("name: t\nallow: [{ cidr: 10.9.0.0/16, ports: [80] }]\n");
  const IpAddress ordinary = *IpAddress::parse("198.51.100.7");
  const IpAddress privateAddr = *IpAddress::parse("10.1.2.3");
  const IpAddress covered = *IpAddress::parse("10.9.0.1");
  const IpAddress loopback = *IpAddress::parse("127.0.0.1");
  EXPECT_TRUE(closed.judgeResolvedAddress(ordinary, 80, d).allowed());
  EXPECT_EQ(closed.judgeResolvedAddress(privateAddr, 80, d).reason, "private_destination");
  EXPECT_TRUE(closed.judgeResolvedAddress(covered, 80, d).allowed());
  EXPECT_EQ(closed.judgeResolvedAddress(loopback, 80, d).reason, "special_destination");
}

TEST(HandlerDecisionTest, AnIpLiteralHostOnlyForOrdinaryAddresses) {
  EXPECT_TRUE(handlerDecision(host("198.51.100.7"), "h").allowed());
  EXPECT_FALSE(handlerDecision(host("198.51.100.7"), "h").byName);
  const policy::HostDecision priv = handlerDecision(host("192.168.1.1"), "h");
  EXPECT_FALSE(priv.allowed());
  EXPECT_EQ(priv.reason, "private_destination");
  EXPECT_EQ(handlerDecision(host("169.254.169.254"), "h").reason, "special_destination");
  EXPECT_EQ(handlerDecision(host("[::1]"), "h").reason, "special_destination");
  EXPECT_EQ(handlerDecision(host("[64:ff9b::a00:1]"), "h").reason, "embedded_v4_destination");
}

}  // namespace
}  // namespace egressd::proxy
