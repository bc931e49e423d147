// The pure request decision (proxy/request_decision.h): the precedence table and every
// handler action, without a socket. What each row expects is docs/proxy.md's table.
#include "proxy/request_decision.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "policy/policy.h"

namespace egressd::proxy {
namespace {

using Action = RequestDecision::Action;

constexpr const char* kPolicy = R"(name: table
enableInternet: false
deniedHosts: ["*.evil.test", "10.0.0.0/8"]
http:
  allowUpgrades: [websocket]
outboundByHost:
  ro.test: readOnly
  vhost.test: virtual
  kv.test: kv
  kvclear.test: kvClear
  tok.test: token
  tokplain.test: tokenPlain
  missing.test: needsMissing
  edit.test: edits
  blocked.evil.test: virtual
outboundHandlers:
  readOnly:
    - deny: { status: 405, body: "read only\n", unless: { method: [GET, HEAD] } }
  virtual:
    - respond: { status: 200, headers: { Content-Type: application/json }, body: '{"ok":true}' }
  kv:
    - reroute: { upstream: "unix:/run/kv.sock" }
  kvClear:
    - setHeader: { name: Authorization, value: "Bearer ${secret:TOKEN}" }
    - reroute: { upstream: "http://127.0.0.1:8080" }
  token:
    - setHeader: { name: Authorization, value: "Bearer ${secret:TOKEN}" }
  tokenPlain:
    - setHeader: { name: Authorization, value: "Bearer ${secret:TOKEN}", allowPlaintext: true }
  needsMissing:
    - setHeader: { name: X-Key, value: "${secret:ABSENT}" }
  edits:
    - setHeader: { name: X-Tenant, value: "${sandbox}" }
    - removeHeader: { name: Cookie }
)";

class RequestDecisionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto parsed = policy::parsePolicy(kPolicy, "table.yaml");
    ASSERT_TRUE(parsed.ok()) << parsed.error().message();
    policy_ = std::move(*parsed);
    rebuildView();
    ASSERT_TRUE(secrets_.set("TOKEN", "s3cr3t-token-value").ok());
  }

  void rebuildView() {
    auto view = makePolicyView(policy_);
    ASSERT_TRUE(view.ok()) << view.error().message();
    view_ = std::move(*view);
  }

  static http::RequestHead request(const std::string& host, const std::string& method = "GET",
                                   std::vector<http::Header> extra = {}) {
    http::RequestHead head;
    head.method = method;
    head.target = "/";
    head.path = "/";
    head.host = host;
    head.versionMinor = 1;
    head.keepAlive = true;
    head.headers.push_back(http::Header{"Host", host});
    for (auto& h : extra) {
      head.headers.push_back(std::move(h));
    }
    return head;
  }

  RequestDecision decide(const http::RequestHead& head, bool tls = false,
                         std::string_view serverName = {}) {
    RequestContext context;
    context.port = tls ? 443 : 80;
    if (tls) {
      context.tlsServerName = serverName.empty() ? std::string_view(head.host) : serverName;
    }
    context.sandboxId = "sb1";
    context.secrets = &secrets_;
    return decideRequest(head, context, *view_);
  }

  static bool has(const std::vector<std::string>& names, std::string_view name) {
    return std::find(names.begin(), names.end(), name) != names.end();
  }
  static const http::Header* header(const std::vector<http::Header>& headers,
                                    std::string_view name) {
    for (const auto& h : headers) {
      if (http::equalsIgnoreCase(h.name, name)) {
        return &h;
      }
    }
    return nullptr;
  }

  policy::Policy policy_;
  std::shared_ptr<const SandboxPolicyView> view_;
  handlers::SecretStore secrets_;
};

// One row: a request and what the decision must say about it.
struct Row {
  std::string name;
  std::string host;
  std::string method;
  bool tls;
  Action action;
  std::string decision;
  std::string reason;
  int status;  // 0: not an answer
};

TEST_F(RequestDecisionTest, PrecedenceTable) {
  const std::vector<Row> rows = {
      // Before any policy: the request itself.
      {"bad host", "exa mple.test", "GET", false, Action::kMalformed, "deny", "bad_request", 400},
      {"numeric last label", "127.1", "GET", false, Action::kMalformed, "deny", "bad_request", 400},
      {"TRACE echoes credentials", "tok.test", "TRACE", true, Action::kAnswer, "deny",
       "method_refused", 405},
      // 1. deniedHosts beat every handler binding (blocked.evil.test has one).
      {"denied glob with a handler", "blocked.evil.test", "GET", false, Action::kForward, "allow",
       "", 0},
      // 6. internet_disabled and no handler: forwarded to resolveUpstream, which denies.
      {"default deny, no handler", "other.test", "GET", false, Action::kForward, "allow", "", 0},
      // Handlers, each action.
      {"handler deny", "ro.test", "POST", false, Action::kAnswer, "deny", "handler_deny", 405},
      {"handler deny condition unmet", "ro.test", "GET", false, Action::kForward, "allow", "", 0},
      {"handler respond", "vhost.test", "GET", false, Action::kAnswer, "allow", "handler_respond",
       200},
      {"handler reroute", "kv.test", "GET", false, Action::kForward, "allow", "handler_reroute", 0},
      {"handler error: missing secret", "missing.test", "GET", true, Action::kAnswer, "error",
       "handler_error", 502},
      {"secret over cleartext", "tok.test", "GET", false, Action::kAnswer, "deny",
       "secret_over_plaintext", 403},
      {"secret over TLS", "tok.test", "GET", true, Action::kForward, "allow", "", 0},
      {"secret with allowPlaintext", "tokplain.test", "GET", false, Action::kForward, "allow", "",
       0},
      {"secret rerouted to http://", "kvclear.test", "GET", true, Action::kAnswer, "deny",
       "secret_over_plaintext", 403},
  };
  for (const Row& row : rows) {
    SCOPED_TRACE(row.name);
    const RequestDecision d = decide(request(row.host, row.method), row.tls);
    EXPECT_EQ(d.action, row.action);
    EXPECT_EQ(d.outcome.decision, row.decision);
    EXPECT_EQ(d.outcome.reason, row.reason);
    EXPECT_EQ(d.outcome.status, row.status);
    if (row.action != Action::kForward) {
      EXPECT_FALSE(d.body.empty());
      EXPECT_TRUE(d.setHeaders.empty()) << "an answer carries no upstream header edits";
    }
  }
}

TEST_F(RequestDecisionTest, HostPolicyDecisionIsHandedOnForResolution) {
  // deniedHosts first: the bound handler never runs, the host decision says why.
  RequestDecision denied = decide(request("blocked.evil.test"));
  EXPECT_EQ(denied.hostDecision.reason, "denied_host");
  EXPECT_FALSE(denied.hostDecision.allowed());
  EXPECT_TRUE(denied.outcome.handler.empty());
  // A denied CIDR as an IP-literal Host.
  EXPECT_EQ(decide(request("10.1.2.3")).hostDecision.reason, "denied_cidr");
  // The default deny without a handler.
  EXPECT_EQ(decide(request("other.test")).hostDecision.reason, "internet_disabled");
  // A forwarding handler on a host left to the default: allowed by the handler.
  RequestDecision handled = decide(request("edit.test"));
  EXPECT_TRUE(handled.hostDecision.allowed());
  EXPECT_EQ(handled.hostDecision.reason, "handler");
  EXPECT_EQ(handled.outcome.handler, "edits");
}

TEST_F(RequestDecisionTest, HostMustMatchTheTlsServerName) {
  const RequestDecision d = decide(request("ro.test"), true, "vhost.test");
  EXPECT_EQ(d.action, Action::kAnswer);
  EXPECT_EQ(d.outcome.reason, "host_sni_mismatch");
  EXPECT_EQ(d.outcome.status, 421);
  EXPECT_FALSE(d.close);
  // Outside TLS there is no server name to match.
  EXPECT_EQ(decide(request("ro.test")).action, Action::kForward);
}

TEST_F(RequestDecisionTest, UpgradesOnlyAsThePolicyAllows) {
  http::RequestHead h2c =
      request("ro.test", "GET", {{"Connection", "Upgrade"}, {"Upgrade", "h2c"}});
  h2c.upgrade = true;
  h2c.upgradeProtocol = "H2C";
  EXPECT_EQ(decide(h2c).action, Action::kMalformed);

  // Not "Connection: upgrade", yet an Upgrade header names a protocol the policy does not list.
  const RequestDecision other = decide(request("ro.test", "GET", {{"Upgrade", "foo/1"}}));
  EXPECT_EQ(other.outcome.reason, "upgrade_refused");
  EXPECT_EQ(other.outcome.status, 403);

  http::RequestHead ws =
      request("ro.test", "GET", {{"Connection", "Upgrade"}, {"Upgrade", "websocket"}});
  ws.upgrade = true;
  ws.upgradeProtocol = "websocket";
  const RequestDecision allowed = decide(ws);
  EXPECT_EQ(allowed.action, Action::kForward);
  EXPECT_FALSE(has(allowed.dropHeaders, "Upgrade"));
  EXPECT_FALSE(has(allowed.dropHeaders, "Connection")) << "an upgrade keeps its Connection";
}

TEST_F(RequestDecisionTest, HandlerAnswersCarryTheirHeaders) {
  const RequestDecision deny = decide(request("ro.test", "DELETE"));
  EXPECT_EQ(deny.body, "read only\n");
  ASSERT_NE(header(deny.responseHeaders, "X-Egressd-Handler"), nullptr);
  EXPECT_EQ(header(deny.responseHeaders, "X-Egressd-Handler")->value, "readOnly");
  EXPECT_EQ(header(deny.responseHeaders, "X-Egressd-Reason")->value, "handler_deny");
  EXPECT_FALSE(deny.close);

  const RequestDecision respond = decide(request("vhost.test"));
  EXPECT_EQ(respond.body, "{\"ok\":true}");
  ASSERT_NE(header(respond.responseHeaders, "Content-Type"), nullptr);
  EXPECT_EQ(header(respond.responseHeaders, "Content-Type")->value, "application/json");

  const RequestDecision error = decide(request("missing.test"), true);
  EXPECT_TRUE(error.close) << "a handler error closes the connection";
  EXPECT_NE(error.body.find("handler needsMissing"), std::string::npos) << error.body;
  EXPECT_NE(error.operatorLog.find("sandbox sb1: handler needsMissing"), std::string::npos);

  const RequestDecision method = decide(request("tok.test", "TRACE"), true);
  ASSERT_NE(header(method.responseHeaders, "Allow"), nullptr);
}

TEST_F(RequestDecisionTest, ForwardCarriesHeaderEditsAndSecretsToRedact) {
  const RequestDecision tok = decide(request("tok.test"), true);
  ASSERT_EQ(tok.action, Action::kForward);
  ASSERT_NE(header(tok.setHeaders, "Authorization"), nullptr);
  EXPECT_EQ(header(tok.setHeaders, "Authorization")->value, "Bearer s3cr3t-token-value");
  EXPECT_EQ(tok.secretValues, std::vector<std::string>{"s3cr3t-token-value"});
  // No secret value anywhere the client or a log could see it.
  EXPECT_EQ(tok.body.find("s3cr3t"), std::string::npos);
  EXPECT_EQ(tok.outcome.detail.find("s3cr3t"), std::string::npos);

  const RequestDecision refused = decide(request("tok.test"));  // cleartext upstream
  EXPECT_TRUE(refused.secretValues.empty());
  EXPECT_EQ(refused.body.find("s3cr3t"), std::string::npos);
  EXPECT_NE(refused.body.find("allowPlaintext"), std::string::npos) << refused.body;

  const RequestDecision edits = decide(request("edit.test", "GET", {{"Cookie", "a=b"}}));
  ASSERT_NE(header(edits.setHeaders, "X-Tenant"), nullptr);
  EXPECT_EQ(header(edits.setHeaders, "X-Tenant")->value, "sb1");
  EXPECT_TRUE(has(edits.dropHeaders, "Cookie"));
}

TEST_F(RequestDecisionTest, RerouteTargetsAreTheHandlers) {
  const RequestDecision kv = decide(request("kv.test"));
  ASSERT_TRUE(kv.reroute.has_value());
  EXPECT_EQ(kv.reroute->kind, handlers::RerouteTarget::Kind::kUnix);
  EXPECT_EQ(kv.reroute->path, "/run/kv.sock");
  EXPECT_EQ(kv.outcome.rule, "outboundHandlers.kv[0] reroute");
  EXPECT_EQ(kv.outcome.handler, "kv");
}

TEST_F(RequestDecisionTest, TrustHeadersAreAlwaysDroppedAndForwardedIsOptIn) {
  const RequestDecision plain =
      decide(request("edit.test", "GET", {{"Connection", "close, X-Foo"}}));
  for (const char* name : {"Proxy-*", "X-Egressd-*", "Forwarded", "X-Forwarded-*", "X-Real-IP",
                           "Connection", "Keep-Alive", "TE", "X-Foo", "Upgrade"}) {
    EXPECT_TRUE(has(plain.dropHeaders, name)) << name;
  }
  EXPECT_EQ(header(plain.setHeaders, "Forwarded"), nullptr);

  policy_.http.forwarded = policy::ForwardedMode::kSandbox;
  rebuildView();
  const RequestDecision sandbox = decide(request("edit.test"));
  ASSERT_NE(header(sandbox.setHeaders, "Forwarded"), nullptr);
  EXPECT_EQ(header(sandbox.setHeaders, "Forwarded")->value, "for=\"_sb1\"");
  EXPECT_EQ(header(sandbox.setHeaders, "X-Forwarded-For")->value, "sb1");
}

TEST_F(RequestDecisionTest, InstanceOverridesComeBeforeThePolicy) {
  policy::InstanceOverrides overrides;
  overrides.outboundByHost.emplace("ro.test",
                                   policy::HandlerRef{"virtual", nlohmann::json::object(), {}});
  auto view = makePolicyView(policy_, nullptr, &overrides);
  ASSERT_TRUE(view.ok()) << view.error().message();
  view_ = std::move(*view);
  const RequestDecision d = decide(request("ro.test", "POST"));
  EXPECT_EQ(d.outcome.reason, "handler_respond") << "the instance's binding, not readOnly";
}

TEST(RequestDecisionHelpersTest, ClientCannotStripFramingHeaders) {
  http::RequestHead head;
  head.versionMinor = 1;
  head.headers.push_back(
      http::Header{"Connection", "Host, Content-Length, transfer-encoding, X-*, ,X-Ok"});
  const std::vector<std::string> names = hopByHopHeaders(head);
  EXPECT_EQ(names, (std::vector<std::string>{"Connection", "Keep-Alive", "Proxy-Connection", "TE",
                                             "X-Ok"}));
  head.versionMinor = 0;
  EXPECT_TRUE(hopByHopHeaders(head).empty()) << "HTTP/1.0 keeps its keep-alive signalling";
}

TEST(RequestDecisionHelpersTest, DenyBodyNamesHostSandboxRuleAndReason) {
  RequestOutcome out;
  out.reason = "denied_host";
  out.rule = "deniedHosts[0]";
  EXPECT_EQ(denyBody("x.test", "sb1", out),
            "egressd: request to x.test denied for sandbox sb1 by rule deniedHosts[0] "
            "(denied_host)\n");
  out.rule.clear();
  out.detail = "why";
  EXPECT_EQ(denyBody("", "sb1", out),
            "egressd: request to ? denied for sandbox sb1 (denied_host): why\n");
}

}  // namespace
}  // namespace egressd::proxy
