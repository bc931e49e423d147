// The pure parts of egressd's resolver for sandboxes (proxy/dns_query_judge.h,
// dns_limits.h): which names a policy lets a sandbox resolve, which reverse names are
// answered locally, which types are forwarded, what one query's bytes come to, which
// answer addresses are dropped, and the limits.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "dns/message.h"
#include "policy/host_policy.h"
#include "policy/policy.h"
#include "proxy/dns_limits.h"
#include "proxy/dns_query_judge.h"
#include "proxy/sandbox_context.h"
#include "proxy/upstream_choice.h"

namespace egressd::proxy {
namespace {

SandboxPolicyView viewOf(const std::string& yaml) {
  auto p = policy::parsePolicy(yaml, "t.yaml");
  EXPECT_TRUE(p.ok()) << p.error().message();
  SandboxPolicyView view;
  view.hosts = policy::HostPolicy::fromPolicy(*p);
  auto bindings = HandlerBindings::fromPolicy(*p);
  EXPECT_TRUE(bindings.ok()) << bindings.error().message();
  view.handlers = std::move(*bindings);
  view.dns = p->dns;
  return view;
}

std::string verdict(const SandboxPolicyView& view, const std::string& name) {
  const DnsNameDecision d = decideDnsName(view, name);
  return std::string(d.allowed ? "allow" : "deny") + " " + d.reason +
         (d.rule.empty() ? "" : " [" + d.rule + "]");
}

TEST(DnsNamePolicyTest, SameRulesAsTheProxy) {
  const SandboxPolicyView locked = viewOf("name: p\n");
  EXPECT_EQ(verdict(locked, "example.com"), "deny internet_disabled");

  const SandboxPolicyView listed = viewOf(R"(name: p
enableInternet: true
allowedHosts: ["*.npmjs.org", "github.com"]
deniedHosts: ["evil.npmjs.org"]
)");
  EXPECT_EQ(verdict(listed, "registry.npmjs.org"),
            "allow allowed_host [allowedHosts[0] *.npmjs.org]");
  EXPECT_EQ(verdict(listed, "github.com"), "allow allowed_host [allowedHosts[1] github.com]");
  EXPECT_EQ(verdict(listed, "evil.npmjs.org"), "deny denied_host [deniedHosts[0] evil.npmjs.org]");
  // allowedHosts written: enableInternet no longer opens other names.
  EXPECT_EQ(verdict(listed, "example.com"), "deny not_in_allowed_hosts");

  const SandboxPolicyView open = viewOf("name: p\nenableInternet: true\n");
  EXPECT_EQ(verdict(open, "anything.example"), "allow enable_internet");
}

TEST(DnsNamePolicyTest, AHandlersHostIsResolvable) {
  const SandboxPolicyView view = viewOf(R"(name: p
outboundByHost:
  api.example.com: mark
  "*.kv.example": mark
outbound: mark
outboundHandlers:
  mark:
    - setHeader: { name: X-A, value: b }
deniedHosts: ["bad.kv.example"]
)");
  EXPECT_EQ(verdict(view, "api.example.com"), "allow handler [handler mark]");
  EXPECT_EQ(verdict(view, "a.kv.example"), "allow handler [handler mark]");
  // The catch-all handler does not open every name; deniedHosts still wins.
  EXPECT_EQ(verdict(view, "other.example.com"), "deny internet_disabled");
  EXPECT_EQ(verdict(view, "bad.kv.example"), "deny denied_host [deniedHosts[0] bad.kv.example]");

  // A runtime binding (instance override) counts too.
  SandboxPolicyView withInstance = viewOf("name: p\n");
  withInstance.handlers.instanceByHost.push_back(
      handlers::HostBinding{"db.example", "kv", nlohmann::json::object()});
  EXPECT_EQ(verdict(withInstance, "db.example"), "allow handler [handler kv]");
}

TEST(DnsNamePolicyTest, NameBasedAllowRulesMakeTheirHostsResolvable) {
  SandboxPolicyView view = viewOf(R"(name: p
allowedHosts: ["github.com"]
deniedHosts: ["bad.db.example"]
allow: [{ host: "*.db.example", ports: [5432], protocol: tcp }]
)");
  view.nameRules = policy::nameRules(*policy::parsePolicy(R"(name: p
allow: [{ host: "*.db.example", ports: [5432], protocol: tcp }]
)",
                                                          "t.yaml"));
  EXPECT_EQ(verdict(view, "pg.db.example"), "allow allow_rule [allow[0] *.db.example tcp/5432]");
  EXPECT_EQ(verdict(view, "bad.db.example"), "deny denied_host [deniedHosts[0] bad.db.example]");
  EXPECT_EQ(verdict(view, "other.example"), "deny not_in_allowed_hosts");
}

TEST(DnsNamePolicyTest, PrivateReverseNames) {
  for (const char* name :
       {"1.0.0.10.in-addr.arpa", "10.in-addr.arpa", "1.0.0.127.in-addr.arpa",
        "5.1.168.192.in-addr.arpa", "1.1.16.172.in-addr.arpa", "1.1.31.172.in-addr.arpa",
        "9.9.254.169.in-addr.arpa", "1.1.64.100.in-addr.arpa", "d.f.ip6.arpa", "c.f.ip6.arpa",
        "8.e.f.ip6.arpa",
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.ip6.arpa"}) {
    EXPECT_TRUE(isPrivateReverseName(name)) << name;
  }
  for (const char* name :
       {"8.8.8.8.in-addr.arpa", "1.1.32.172.in-addr.arpa", "1.1.128.100.in-addr.arpa",
        "8.in-addr.arpa", "in-addr.arpa", "x.10.in-addr.arpa", "300.10.in-addr.arpa",
        "8.b.d.0.1.0.0.2.ip6.arpa", "c.e.f.ip6.arpa", "10.in-addr.arpa.example", "example.com"}) {
    EXPECT_FALSE(isPrivateReverseName(name)) << name;
  }
}

TEST(DnsNamePolicyTest, ForwardedTypes) {
  for (uint16_t t : {1, 5, 15, 16, 28, 33, 64, 65}) {
    EXPECT_TRUE(isForwardedType(t)) << t;
  }
  for (uint16_t t : {0, 2, 6, 10, 12, 35, 99, 252, 255}) {
    EXPECT_FALSE(isForwardedType(t)) << t;
  }
}

TEST(DnsNamePolicyTest, AnswerAddresses) {
  const SandboxPolicyView view = viewOf(R"(name: p
enableInternet: true
deniedHosts: ["203.0.113.0/24"]
allow: [{ cidr: 169.254.10.0/24, ports: [8080] }]
)");
  auto judge = [&](const char* text) {
    const auto d = view.hosts.judgeAnswerAddress(*IpAddress::parse(text));
    return std::string(d.allowed() ? "allow" : "deny ") + (d.allowed() ? "" : d.reason);
  };
  EXPECT_EQ(judge("198.51.100.7"), "allow");
  EXPECT_EQ(judge("10.1.2.3"), "allow");  // private: the kernel judges connects to it
  EXPECT_EQ(judge("203.0.113.9"), "deny denied_cidr");
  EXPECT_EQ(judge("127.0.0.1"), "deny special_destination");
  EXPECT_EQ(judge("::1"), "deny special_destination");
  EXPECT_EQ(judge("169.254.169.254"), "deny special_destination");
  EXPECT_EQ(judge("169.254.10.5"), "allow");  // an allow rule names it
  EXPECT_EQ(judge("64:ff9b::1.2.3.4"), "deny embedded_v4_destination");
}

TEST(DnsNamePolicyTest, RequireResolved) {
  SandboxPolicyView view =
      viewOf("name: p\nenableInternet: true\ndns: { requireResolved: true }\n");
  EXPECT_TRUE(view.dns.requireResolved);
  ResolvedAddresses answered;
  const IpAddress a = *IpAddress::parse("192.0.2.1");
  const IpAddress b = *IpAddress::parse("2001:db8::2");
  auto refused = requireResolved(view, &answered, a);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ(refused->reason, "unresolved_address");
  answered.record({a, b}, std::chrono::steady_clock::now() + std::chrono::seconds(30));
  EXPECT_FALSE(requireResolved(view, &answered, a).has_value());
  EXPECT_FALSE(requireResolved(view, &answered, b).has_value());
  answered.record({b},
                  std::chrono::steady_clock::now() - std::chrono::seconds(1));  // no shortening
  EXPECT_TRUE(answered.contains(b));
  ResolvedAddresses expired;
  expired.record({a}, std::chrono::steady_clock::now() - std::chrono::seconds(1));
  EXPECT_FALSE(expired.contains(a));
  // Off: nothing is checked.
  view.dns.requireResolved = false;
  EXPECT_FALSE(requireResolved(view, nullptr, a).has_value());
}

TEST(DnsLimitsTest, RegisteredDomains) {
  EXPECT_EQ(registeredDomain("a.b.example.com"), "example.com");
  EXPECT_EQ(registeredDomain("x.y.example.co.uk"), "example.co.uk");
  EXPECT_EQ(registeredDomain("chunk.attacker.test"), "attacker.test");
  EXPECT_EQ(registeredDomain("localhost"), "localhost");
}

struct FakeClock {
  std::chrono::steady_clock::time_point now =
      std::chrono::steady_clock::time_point{} + std::chrono::hours(1);
  QueryLimiter::Clock clock() {
    return [this] { return now; };
  }
};

TEST(DnsLimitsTest, QueriesPerSecondWithBurst) {
  FakeClock t;
  QueryLimiter limiter(t.clock());
  policy::DnsLimits limits;
  limits.qps = 10;
  limits.burst = 20;
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(limiter.admitQuery(limits), "") << i;
  }
  EXPECT_EQ(limiter.admitQuery(limits), "rate_limited");
  t.now += std::chrono::milliseconds(250);  // 2.5 tokens back
  EXPECT_EQ(limiter.admitQuery(limits), "");
  EXPECT_EQ(limiter.admitQuery(limits), "");
  EXPECT_EQ(limiter.admitQuery(limits), "rate_limited");
  t.now += std::chrono::seconds(60);  // refilled to the burst, not beyond
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(limiter.admitQuery(limits), "") << i;
  }
  EXPECT_EQ(limiter.admitQuery(limits), "rate_limited");
}

TEST(DnsLimitsTest, UniqueNamesPerRegisteredDomainPerMinute) {
  FakeClock t;
  QueryLimiter limiter(t.clock());
  policy::DnsLimits limits;
  limits.uniqueNamesPerMinute = 3;
  for (const char* name : {"a.example.com", "b.example.com", "c.x.example.com"}) {
    EXPECT_EQ(limiter.admitForward(limits, name, 30), "") << name;
  }
  EXPECT_EQ(limiter.admitForward(limits, "d.example.com", 30), "unique_names_limited");
  EXPECT_EQ(limiter.admitForward(limits, "a.example.com", 30), "");  // seen: not new
  EXPECT_EQ(limiter.admitForward(limits, "a.other.org", 30), "");    // another domain
  t.now += std::chrono::seconds(61);
  EXPECT_EQ(limiter.admitForward(limits, "d.example.com", 30), "");
}

TEST(DnsLimitsTest, QueryBytesPerMinute) {
  FakeClock t;
  QueryLimiter limiter(t.clock());
  policy::DnsLimits limits;
  limits.queryBytesPerMinute = 100;
  EXPECT_EQ(limiter.admitForward(limits, "a.example.com", 60), "");
  EXPECT_EQ(limiter.admitForward(limits, "b.example.com", 60), "query_bytes_limited");
  EXPECT_EQ(limiter.admitForward(limits, "a.example.com", 40), "");
  t.now += std::chrono::seconds(60);
  EXPECT_EQ(limiter.admitForward(limits, "b.example.com", 60), "");
}

// judgeDnsQuery: a query's bytes and the sandbox's view in, what the resolver does out.
class DnsQueryJudgeTest : public ::testing::Test {
 protected:
  DnsQueryJudgeTest()
      : view_(viewOf(R"(name: p
enableInternet: true
allowedHosts: ["github.com", "*.example.com"]
)")),
        limiter_(clock_.clock()) {}

  // "forward NAME REASON [RULE]", "answer RCODE DECISION REASON [RULE]" (" limit" when
  // dns.limits refused it; "unparsed" when the message did not parse) or "ignore".
  std::string judge(const std::vector<uint8_t>& message) {
    const DnsQueryJudgement j = judgeDnsQuery(message, view_, limiter_);
    switch (j.action) {
      case DnsQueryJudgement::Action::kIgnore:
        return "ignore";
      case DnsQueryJudgement::Action::kForward:
        EXPECT_TRUE(j.query.has_value());
        return "forward " + j.name + " " + j.decision.reason +
               (j.decision.rule.empty() ? "" : " [" + j.decision.rule + "]");
      case DnsQueryJudgement::Action::kAnswer:
        break;
    }
    const DnsOutcome& o = j.outcome;
    return "answer " + dns::rcodeName(o.rcode) + " " + o.decision + " " + o.reason +
           (o.rule.empty() ? "" : " [" + o.rule + "]") + (o.limit ? " limit" : "") +
           (j.query ? "" : " unparsed");
  }
  std::string judge(std::string_view name, uint16_t qtype) {
    return judge(dns::buildQuery(0x1234, name, qtype));
  }

  FakeClock clock_;
  SandboxPolicyView view_;
  QueryLimiter limiter_;
};

TEST_F(DnsQueryJudgeTest, AllowedNamesAreForwardedNormalized) {
  EXPECT_EQ(judge("GitHub.com.", dns::kTypeA),
            "forward github.com allowed_host "
            "[allowedHosts[0] github.com]");
  EXPECT_EQ(judge("api.example.com", dns::kTypeHttps),
            "forward api.example.com allowed_host [allowedHosts[1] *.example.com]");
}

TEST_F(DnsQueryJudgeTest, DeniedNamesGetTheConfiguredAnswer) {
  EXPECT_EQ(judge("other.test", dns::kTypeA), "answer NXDOMAIN deny not_in_allowed_hosts");
  EXPECT_EQ(judge("192.0.2.1", dns::kTypeA), "answer NXDOMAIN deny invalid_host");
  view_.dns.deniedAnswer = policy::DnsDeniedAnswer::kRefused;
  EXPECT_EQ(judge("other.test", dns::kTypeA), "answer REFUSED deny not_in_allowed_hosts");
}

TEST_F(DnsQueryJudgeTest, TypesOpcodesAndClasses) {
  EXPECT_EQ(judge("github.com", dns::kTypeAny), "answer REFUSED deny type_refused");
  EXPECT_EQ(judge("github.com", 99), "answer REFUSED deny type_refused");
  EXPECT_EQ(judge("1.0.0.10.in-addr.arpa", dns::kTypePtr), "answer NXDOMAIN allow private_ptr");
  EXPECT_EQ(judge("8.8.8.8.in-addr.arpa", dns::kTypePtr), "answer REFUSED deny type_refused");

  std::vector<uint8_t> notify = dns::buildQuery(1, "github.com", dns::kTypeA);
  notify[2] = static_cast<uint8_t>(notify[2] | (4 << 3));  // opcode NOTIFY
  EXPECT_EQ(judge(notify), "answer NOTIMP deny unsupported_opcode");
  std::vector<uint8_t> chaos = dns::buildQuery(1, "github.com", dns::kTypeA);
  chaos.back() = 3;  // QCLASS CH
  EXPECT_EQ(judge(chaos), "answer REFUSED deny unsupported_class");
}

TEST_F(DnsQueryJudgeTest, MalformedMessages) {
  EXPECT_EQ(judge(std::vector<uint8_t>{0x12, 0x34, 0x01}), "ignore");  // no header
  std::vector<uint8_t> noQuestion = dns::buildQuery(1, "github.com", dns::kTypeA);
  noQuestion[5] = 0;  // QDCOUNT 0
  EXPECT_EQ(judge(noQuestion), "answer FORMERR deny malformed_query unparsed");
}

TEST_F(DnsQueryJudgeTest, NameShapeLimits) {
  view_.dns.limits.maxLabelLength = 5;
  EXPECT_EQ(judge("github.com", dns::kTypeA),
            "answer REFUSED deny label_too_long [dns.limits.maxLabelLength] limit");
  view_.dns.limits.maxLabelLength = 63;
  view_.dns.limits.maxNameLength = 9;
  EXPECT_EQ(judge("github.com", dns::kTypeA),
            "answer REFUSED deny name_too_long [dns.limits.maxNameLength] limit");
}

TEST_F(DnsQueryJudgeTest, RateLimitsEveryMessage) {
  view_.dns.limits.qps = 1;
  view_.dns.limits.burst = 2;
  EXPECT_EQ(judge("other.test", dns::kTypeA), "answer NXDOMAIN deny not_in_allowed_hosts");
  std::vector<uint8_t> noQuestion = dns::buildQuery(1, "github.com", dns::kTypeA);
  noQuestion[5] = 0;
  EXPECT_EQ(judge(noQuestion), "answer FORMERR deny malformed_query unparsed");
  // The burst is spent, by a denied and a malformed message alike.
  EXPECT_EQ(judge("github.com", dns::kTypeA),
            "answer REFUSED deny rate_limited [dns.limits.qps] limit");
  EXPECT_EQ(judge(noQuestion), "answer REFUSED deny rate_limited [dns.limits.qps] limit unparsed");
  clock_.now += std::chrono::seconds(1);
  EXPECT_EQ(judge("github.com", dns::kTypeA),
            "forward github.com allowed_host [allowedHosts[0] github.com]");
}

TEST_F(DnsQueryJudgeTest, ForwardedNamesCountAgainstTheirDomain) {
  view_.dns.limits.uniqueNamesPerMinute = 2;
  EXPECT_EQ(judge("a.example.com", dns::kTypeA).substr(0, 7), "forward");
  EXPECT_EQ(judge("b.example.com", dns::kTypeA).substr(0, 7), "forward");
  // A denied name is never counted; a forwarded one over the limit is refused.
  EXPECT_EQ(judge("c.other.test", dns::kTypeA), "answer NXDOMAIN deny not_in_allowed_hosts");
  EXPECT_EQ(judge("c.example.com", dns::kTypeA),
            "answer REFUSED deny unique_names_limited [dns.limits.uniqueNamesPerMinute] limit");
  const DnsQueryJudgement j =
      judgeDnsQuery(dns::buildQuery(1, "d.example.com", dns::kTypeA), view_, limiter_);
  EXPECT_EQ(j.outcome.detail, "registered domain example.com");
}

}  // namespace
}  // namespace egressd::proxy
