// Handler chains: compile errors with their positions for every kind of mistake, and the
// evaluation of each action kind, conditions, templates, secrets and params.
#include "handlers/handler.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "test_util.h"

namespace egressd::handlers {
namespace {

using nlohmann::json;
using testing::compileError;
using testing::compileOk;
using testing::FakeSecrets;
using testing::request;
using Kind = Verdict::Kind;

// A single handler `h` with the given action lines (each "- ..."), starting at line 4.
std::string handler(const std::string& actions) {
  std::string yaml = "outboundHandlers:\n  h:\n";
  size_t start = 0;
  while (start < actions.size()) {
    size_t end = actions.find('\n', start);
    end = end == std::string::npos ? actions.size() : end;
    yaml += "    " + actions.substr(start, end - start) + "\n";
    start = end + 1;
  }
  return yaml;
}

Verdict run(const HandlerSet& set, const http::RequestHead& req, FakeSecrets* secrets = nullptr,
            const json& params = json::object(), std::string_view name = "h") {
  FakeSecrets none;
  FakeSecrets& use = secrets != nullptr ? *secrets : none;
  return set.evaluate(name, params, req, "sb1", use.resolver());
}

// What the proxy would send upstream for a forwarded/rerouted verdict.
std::string upstreamHead(const Verdict& verdict, const http::RequestHead& req) {
  return http::serializeRequestHead(req, verdict.setHeaders, verdict.removeHeaders);
}

// ---- compile errors ----------------------------------------------------------------------

TEST(HandlerCompileTest, RerouteErrorNamesFileLineHandlerIndexAndAction) {
  const std::string yaml = R"(outboundHandlers:
  kv:
    - setHeader: { name: X-A, value: "1" }
    - reroute: { upstream: "unix:relative" }
)";
  EXPECT_EQ(compileError(yaml),
            "p.yaml:5:7: outboundHandlers.kv[1] reroute: upstream \"unix:relative\" must be an "
            "absolute path");
}

TEST(HandlerCompileTest, UnknownActionKind) {
  EXPECT_EQ(compileError(handler("- setHeaders: { name: A, value: b }")),
            "p.yaml:4:7: outboundHandlers.h[0]: unknown action 'setHeaders' (expected setHeader, "
            "removeHeader, deny, respond, reroute or forward)");
}

TEST(HandlerCompileTest, UnknownKeysAndMissingKeys) {
  EXPECT_EQ(compileError(handler("- setHeader: { name: A, value: b, vaule: c }")),
            "p.yaml:4:7: outboundHandlers.h[0] setHeader: unknown key 'vaule' (expected name, "
            "value, allowPlaintext, when, unless)");
  EXPECT_EQ(compileError(handler("- setHeader: { name: A }")),
            "p.yaml:4:7: outboundHandlers.h[0] setHeader: missing required key 'value'");
  EXPECT_EQ(compileError(handler("- removeHeader: { value: A }")),
            "p.yaml:4:7: outboundHandlers.h[0] removeHeader: missing required key 'name'");
  EXPECT_EQ(compileError(handler("- deny: { status: 403, reason: x }")),
            "p.yaml:4:7: outboundHandlers.h[0] deny: unknown key 'reason' (expected status, body, "
            "when, unless)");
  EXPECT_EQ(compileError(handler("- forward: { to: x }")),
            "p.yaml:4:7: outboundHandlers.h[0] forward: unknown key 'to' (expected when, unless)");
  EXPECT_EQ(compileError(handler("- reroute: {}")),
            "p.yaml:4:7: outboundHandlers.h[0] reroute: missing required key 'upstream'");
}

TEST(HandlerCompileTest, WrongTypes) {
  EXPECT_EQ(compileError(handler("- setHeader: { name: X-N, value: 5 }")),
            "p.yaml:4:7: outboundHandlers.h[0] setHeader: value: expected a string, got 5 "
            "(quote it)");
  EXPECT_EQ(compileError(handler("- setHeader: [X-N, v]")),
            "p.yaml:4:7: outboundHandlers.h[0] setHeader: expected a mapping of arguments, got "
            "[\"X-N\",\"v\"]");
  EXPECT_EQ(compileError(handler("- deny: { body: [a] }")),
            "p.yaml:4:7: outboundHandlers.h[0] deny: body: expected a string, got [\"a\"]");
  EXPECT_EQ(compileError(handler("- respond: { headers: [a] }")),
            "p.yaml:4:7: outboundHandlers.h[0] respond: headers: expected a mapping of header "
            "name to value");
  EXPECT_EQ(compileError(handler("- respond: { headers: { X-A: 1 } }")),
            "p.yaml:4:7: outboundHandlers.h[0] respond: headers.X-A: expected a string, got 1");
  EXPECT_EQ(compileError(handler("- forward: false")),
            "p.yaml:4:7: outboundHandlers.h[0] forward: expected a mapping of arguments, got "
            "false");
  EXPECT_EQ(compileError(handler("- removeHeader:")),
            "p.yaml:4:7: outboundHandlers.h[0] removeHeader: expected a mapping of arguments, got "
            "null");
}

TEST(HandlerCompileTest, BadStatuses) {
  EXPECT_EQ(compileError(handler("- deny: { status: 200 }")),
            "p.yaml:4:7: outboundHandlers.h[0] deny: status: expected an integer in 400..599, "
            "got 200");
  EXPECT_EQ(compileError(handler("- deny: { status: \"403\" }")),
            "p.yaml:4:7: outboundHandlers.h[0] deny: status: expected an integer in 400..599, "
            "got \"403\"");
  EXPECT_NE(compileError(handler("- deny: { status: 600 }")).find("400..599, got 600"),
            std::string::npos);
  EXPECT_NE(compileError(handler("- deny: { status: 403.5 }")).find("400..599, got 403.5"),
            std::string::npos);
  EXPECT_NE(compileError(handler("- respond: { status: 101 }")).find("200..599, got 101"),
            std::string::npos);
  EXPECT_NE(compileError(handler("- respond: { status: 600 }")).find("200..599, got 600"),
            std::string::npos);
}

TEST(HandlerCompileTest, BadHeaderNamesAndValues) {
  EXPECT_EQ(compileError(handler("- setHeader: { name: \"Bad Name\", value: x }")),
            "p.yaml:4:7: outboundHandlers.h[0] setHeader: name: \"Bad Name\" is not a valid "
            "header name");
  EXPECT_EQ(compileError(handler("- removeHeader: { name: \"\" }")),
            "p.yaml:4:7: outboundHandlers.h[0] removeHeader: name: \"\" is not a valid header "
            "name");
  EXPECT_EQ(compileError(handler("- setHeader: { name: X-A, value: \"a\\r\\nX-B: b\" }")),
            "p.yaml:4:7: outboundHandlers.h[0] setHeader: value: holds CR, LF or NUL");
  EXPECT_EQ(compileError(handler("- respond: { headers: { \"X Y\": a } }")),
            "p.yaml:4:7: outboundHandlers.h[0] respond: headers: name: \"X Y\" is not a valid "
            "header name");
  EXPECT_NE(compileError(handler("- respond: { headers: { X-A: \"a\\nb\" } }"))
                .find("headers.X-A: holds CR, LF or NUL"),
            std::string::npos);
}

TEST(HandlerCompileTest, FramingHeadersBelongToTheProxy) {
  for (const char* name : {"Content-Length", "transfer-encoding", "Host", "Connection", "TE"}) {
    EXPECT_NE(compileError(handler(std::string("- setHeader: { name: ") + name + ", value: x }"))
                  .find("is managed by the proxy and cannot be changed"),
              std::string::npos)
        << name;
    EXPECT_NE(compileError(handler(std::string("- removeHeader: { name: ") + name + " }"))
                  .find("is managed by the proxy"),
              std::string::npos)
        << name;
  }
  EXPECT_NE(compileError(handler("- respond: { headers: { Content-Length: \"3\" } }"))
                .find("is managed by the proxy"),
            std::string::npos);
  // Content-Type and friends are fine in a local response.
  compileOk(
      handler("- respond: { headers: { Content-Type: text/html, Cache-Control: no-store } }"));
}

TEST(HandlerCompileTest, TemplateErrorsCarryTheirPosition) {
  EXPECT_EQ(compileError(handler("- deny: { body: \"no ${foo} here\" }")),
            "p.yaml:4:7: outboundHandlers.h[0] deny: body: unknown reference \"${foo}\" at "
            "character 4 (expected ${params.NAME}, ${sandbox} or ${secret:NAME})");
  EXPECT_EQ(compileError(handler("- setHeader: { name: X-A, value: \"${params.a\" }")),
            "p.yaml:4:7: outboundHandlers.h[0] setHeader: value: unterminated \"${\" at character "
            "1 in \"${params.a\"");
  EXPECT_NE(compileError(handler("- reroute: { upstream: \"${sandbox\" }"))
                .find("reroute: upstream: unterminated"),
            std::string::npos);
}

TEST(HandlerCompileTest, SecretsOnlyInSetHeaderValues) {
  const std::vector<std::string> bad = {
      "- deny: { body: \"${secret:K}\" }",
      "- respond: { body: \"${secret:K}\" }",
      "- respond: { headers: { X-A: \"${secret:K}\" } }",
      "- reroute: { upstream: \"${secret:K}:80\" }",
  };
  for (const std::string& action : bad) {
    EXPECT_NE(compileError(handler(action)).find("secrets may only be used in setHeader values"),
              std::string::npos)
        << action;
  }
  compileOk(handler("- setHeader: { name: Authorization, value: \"Bearer ${secret:K}\" }"));
}

TEST(HandlerCompileTest, ConditionErrorsNameWhenOrUnless) {
  EXPECT_EQ(compileError(handler("- deny: { when: { methd: GET } }")),
            "p.yaml:4:7: outboundHandlers.h[0] deny: when: unknown key 'methd' (expected method, "
            "path or header)");
  EXPECT_EQ(compileError(handler("- deny: { unless: { path: v1 } }")),
            "p.yaml:4:7: outboundHandlers.h[0] deny: unless: path: expected a string starting "
            "with '/', got \"v1\"");
}

TEST(HandlerCompileTest, ErrorsAreReportedForTheOffendingActionOnly) {
  const std::string yaml = R"(outboundHandlers:
  a:
    - forward: {}
  b:
    - setHeader: { name: X-Ok, value: fine }
    - removeHeader: { name: X-Gone }
    - deny: { status: 99 }
)";
  EXPECT_EQ(compileError(yaml),
            "p.yaml:8:7: outboundHandlers.b[2] deny: status: expected an integer in 400..599, got "
            "99");
}

TEST(HandlerCompileTest, ParamsOfHandlerUsesAreChecked) {
  const std::string handlers = R"(outboundHandlers:
  tenant:
    - setHeader: { name: X-Tenant, value: "${params.tenant}" }
)";
  EXPECT_EQ(compileError(handlers + "outboundByHost:\n  api.test: tenant\n"),
            "p.yaml:6:13: outboundByHost[\"api.test\"]: handler tenant needs params: tenant");
  EXPECT_EQ(
      compileError(handlers + "outbound: { handler: tenant, params: { tenant: a, zone: b } }\n"),
      "p.yaml:5:22: outbound: handler tenant has no param zone (it uses: tenant)");
  EXPECT_EQ(compileError(handlers + "outbound: { handler: tenant, params: { tenant: [a] } }\n"),
            "p.yaml:5:22: outbound: handler tenant param tenant must be a string, number or "
            "boolean");
  compileOk(handlers + "outbound: { handler: tenant, params: { tenant: 42 } }\n");
}

TEST(HandlerCompileTest, SpecExamplePolicyCompiles) {
  const auto set = compileOk(R"(outboundHandlers:
  gh:
    - setHeader: { name: Authorization, value: "Bearer ${secret:GH_TOKEN}" }
    - removeHeader: { name: Cookie }
  readOnly:
    - deny: { status: 405, body: "read only\n", unless: { method: [GET, HEAD] } }
  kv:
    - respond: { status: 200, headers: { Content-Type: application/json }, body: '{"ok":true}',
                 when: { method: GET, path: "/v1/*" } }
    - reroute: { upstream: "unix:/run/kv.sock" }
  perTenant:
    - setHeader: { name: X-Tenant, value: "${params.tenant}-${sandbox}" }
    - setHeader: { name: Authorization, value: "Bearer ${secret:API_KEY/${sandbox}}" }
    - forward: {}
outboundByHost:
  api.github.com: gh
  "*.tenant.test": { handler: perTenant, params: { tenant: acme } }
outbound: readOnly
)");
  ASSERT_NE(set, nullptr);
  EXPECT_EQ(set->names(), (std::vector<std::string>{"gh", "kv", "perTenant", "readOnly"}));
  EXPECT_TRUE(set->contains("kv"));
  EXPECT_FALSE(set->contains("KV"));
  EXPECT_EQ(set->params("perTenant"), std::vector<std::string>{"tenant"});
  EXPECT_TRUE(set->params("gh").empty());
  EXPECT_TRUE(set->warnings().empty());
}

TEST(HandlerCompileTest, WarnsAboutActionsThatNeverRun) {
  const auto set = compileOk(handler(
      "- deny: { when: { method: POST } }\n- forward: {}\n- setHeader: { name: X-A, value: b }"));
  ASSERT_NE(set, nullptr);
  ASSERT_EQ(set->warnings().size(), 1u);
  EXPECT_EQ(set->warnings()[0],
            "p.yaml:6:7: outboundHandlers.h[2] setHeader: never runs (outboundHandlers.h[1] "
            "forward always ends the chain)");
}

// ---- evaluation --------------------------------------------------------------------------

TEST(HandlerEvalTest, ChainWithoutTerminatorForwards) {
  const auto set = compileOk(handler("- setHeader: { name: X-A, value: one }"));
  const Verdict v = run(*set, request("GET", "/"));
  EXPECT_EQ(v.kind, Kind::kForward);
  EXPECT_EQ(v.rule, "");
  ASSERT_EQ(v.setHeaders.size(), 1u);
  EXPECT_EQ(v.setHeaders[0].name, "X-A");
  EXPECT_EQ(v.setHeaders[0].value, "one");
  EXPECT_FALSE(v.injectedSecret);

  const auto empty = compileOk("outboundHandlers:\n  h: []\n");
  const Verdict e = run(*empty, request("POST", "/x"));
  EXPECT_EQ(e.kind, Kind::kForward);
  EXPECT_TRUE(e.setHeaders.empty());
  EXPECT_TRUE(e.removeHeaders.empty());
}

TEST(HandlerEvalTest, ForwardForms) {
  for (const char* form : {"- forward: {}", "- forward:", "- forward: null", "- forward: true"}) {
    const auto set = compileOk(handler(std::string(form) + "\n- deny: {}"));
    ASSERT_NE(set, nullptr) << form;
    const Verdict v = run(*set, request("GET", "/"));
    EXPECT_EQ(v.kind, Kind::kForward) << form;
    EXPECT_EQ(v.rule, "outboundHandlers.h[0] forward") << form;
  }
}

TEST(HandlerEvalTest, SetHeaderReplacesEveryClientHeaderOfThatName) {
  const auto set = compileOk(handler("- setHeader: { name: Authorization, value: Bearer new }"));
  const auto req = request(
      "GET", "/a", {{"authorization", "Basic old1"}, {"X-Keep", "k"}, {"AUTHORIZATION", "old2"}});
  const Verdict v = run(*set, req);
  ASSERT_EQ(v.kind, Kind::kForward);
  EXPECT_EQ(v.removeHeaders, std::vector<std::string>{"Authorization"});
  const std::string head = upstreamHead(v, req);
  EXPECT_EQ(head,
            "GET /a HTTP/1.1\r\nHost: api.test\r\nX-Keep: k\r\nAuthorization: Bearer new\r\n\r\n");
}

TEST(HandlerEvalTest, LastSetHeaderWinsWhateverTheCase) {
  const auto set = compileOk(
      handler("- setHeader: { name: X-A, value: first }\n- setHeader: { name: X-B, value: b }\n"
              "- setHeader: { name: x-a, value: second }"));
  const Verdict v = run(*set, request("GET", "/", {{"X-A", "client"}}));
  ASSERT_EQ(v.setHeaders.size(), 2u);
  EXPECT_EQ(v.setHeaders[0].name, "X-B");
  EXPECT_EQ(v.setHeaders[1].name, "x-a");
  EXPECT_EQ(v.setHeaders[1].value, "second");
  EXPECT_EQ(v.removeHeaders, (std::vector<std::string>{"X-A", "X-B"}));
}

TEST(HandlerEvalTest, RemoveHeaderDropsClientHeadersAndEarlierSets) {
  const auto set = compileOk(
      handler("- setHeader: { name: X-Debug, value: on }\n- removeHeader: { name: x-debug }\n"
              "- removeHeader: { name: Cookie }"));
  const auto req = request("GET", "/", {{"Cookie", "a=1"}, {"X-Debug", "c"}, {"Accept", "*/*"}});
  const Verdict v = run(*set, req);
  EXPECT_TRUE(v.setHeaders.empty());
  EXPECT_EQ(upstreamHead(v, req), "GET / HTTP/1.1\r\nHost: api.test\r\nAccept: */*\r\n\r\n");
  // Set again after a remove: it is back.
  const auto again =
      compileOk(handler("- removeHeader: { name: X-A }\n- setHeader: { name: X-A, value: later }"));
  const Verdict w = run(*again, request("GET", "/", {{"X-A", "client"}}));
  ASSERT_EQ(w.setHeaders.size(), 1u);
  EXPECT_EQ(w.setHeaders[0].value, "later");
  EXPECT_EQ(w.removeHeaders, std::vector<std::string>{"X-A"});
}

TEST(HandlerEvalTest, DenyDefaultAndCustom) {
  const auto set = compileOk(R"(outboundHandlers:
  plain:
    - deny: {}
  custom:
    - deny: { status: 451, body: "no ${params.what} for ${sandbox}\n" }
)");
  const Verdict plain = run(*set, request("GET", "/"), nullptr, json::object(), "plain");
  EXPECT_EQ(plain.kind, Kind::kDeny);
  EXPECT_EQ(plain.status, 403);
  EXPECT_EQ(plain.body, "egressd: denied by handler plain\n");
  EXPECT_EQ(plain.rule, "outboundHandlers.plain[0] deny");
  const Verdict custom = run(*set, request("GET", "/"), nullptr, {{"what", "uploads"}}, "custom");
  EXPECT_EQ(custom.kind, Kind::kDeny);
  EXPECT_EQ(custom.status, 451);
  EXPECT_EQ(custom.body, "no uploads for sb1\n");
}

TEST(HandlerEvalTest, DenyUnlessMethod) {
  const auto set =
      compileOk(handler("- deny: { status: 405, body: \"read only\\n\", unless: { method: [GET, "
                        "HEAD] } }"));
  EXPECT_EQ(run(*set, request("GET", "/")).kind, Kind::kForward);
  EXPECT_EQ(run(*set, request("HEAD", "/")).kind, Kind::kForward);
  const Verdict post = run(*set, request("POST", "/"));
  EXPECT_EQ(post.kind, Kind::kDeny);
  EXPECT_EQ(post.status, 405);
  EXPECT_EQ(post.body, "read only\n");
}

TEST(HandlerEvalTest, WhenAndUnlessTogether) {
  // Deny writes to /admin unless the request carries X-Admin: yes.
  const auto set =
      compileOk(handler("- deny: { when: { path: /admin }, unless: { header: { name: X-Admin, "
                        "equals: \"yes\" } } }"));
  EXPECT_EQ(run(*set, request("GET", "/admin/users")).kind, Kind::kDeny);
  EXPECT_EQ(run(*set, request("GET", "/admin/users", {{"X-Admin", "yes"}})).kind, Kind::kForward);
  EXPECT_EQ(run(*set, request("GET", "/public")).kind, Kind::kForward);
}

TEST(HandlerEvalTest, RespondWithHeadersAndBody) {
  const auto set = compileOk(R"(outboundHandlers:
  kv:
    - respond: { status: 200, headers: { Content-Type: application/json, X-Sb: "${sandbox}" },
                 body: '{"ok":true}', when: { method: GET, path: "/v1/*" } }
    - reroute: { upstream: "unix:/run/kv.sock" }
)");
  const Verdict local = run(*set, request("GET", "/v1/x"), nullptr, json::object(), "kv");
  EXPECT_EQ(local.kind, Kind::kRespond);
  EXPECT_EQ(local.status, 200);
  EXPECT_EQ(local.body, "{\"ok\":true}");
  ASSERT_EQ(local.responseHeaders.size(), 2u);
  EXPECT_EQ(local.responseHeaders[0].name, "Content-Type");
  EXPECT_EQ(local.responseHeaders[0].value, "application/json");
  EXPECT_EQ(local.responseHeaders[1].name, "X-Sb");
  EXPECT_EQ(local.responseHeaders[1].value, "sb1");
  // Not GET: the respond is skipped and the reroute decides.
  const Verdict other = run(*set, request("PUT", "/v1/x"), nullptr, json::object(), "kv");
  EXPECT_EQ(other.kind, Kind::kReroute);
  EXPECT_EQ(other.reroute.kind, RerouteTarget::Kind::kUnix);
  EXPECT_EQ(other.reroute.path, "/run/kv.sock");
  EXPECT_EQ(other.rule, "outboundHandlers.kv[1] reroute");

  const auto defaults = compileOk(handler("- respond: {}"));
  const Verdict d = run(*defaults, request("GET", "/"));
  EXPECT_EQ(d.status, 200);
  EXPECT_EQ(d.body, "");
  EXPECT_TRUE(d.responseHeaders.empty());
}

TEST(HandlerEvalTest, RerouteKeepsHeaderEditsSoFar) {
  const auto set = compileOk(
      handler("- setHeader: { name: X-Via, value: egressd }\n- reroute: { upstream: "
              "\"https://backup.test:8443\" }\n- setHeader: { name: X-Never, value: x }"));
  const Verdict v = run(*set, request("GET", "/"));
  ASSERT_EQ(v.kind, Kind::kReroute);
  EXPECT_EQ(v.reroute.text(), "https://backup.test:8443");
  ASSERT_EQ(v.setHeaders.size(), 1u);
  EXPECT_EQ(v.setHeaders[0].name, "X-Via");
}

TEST(HandlerEvalTest, TemplatedRerouteIsParsedAfterExpansion) {
  const auto set = compileOk(handler("- reroute: { upstream: \"${params.host}:${params.port}\" }"));
  const Verdict ok = run(*set, request("GET", "/"), nullptr, {{"host", "kv.test"}, {"port", 9000}});
  ASSERT_EQ(ok.kind, Kind::kReroute);
  EXPECT_EQ(ok.reroute.host, "kv.test");
  EXPECT_EQ(ok.reroute.port, 9000);
  const Verdict bad = run(*set, request("GET", "/"), nullptr, {{"host", "kv.test"}, {"port", 0}});
  EXPECT_EQ(bad.kind, Kind::kError);
  EXPECT_EQ(bad.status, 502);
  EXPECT_NE(bad.error.find("port out of range"), std::string::npos) << bad.error;
  EXPECT_EQ(bad.rule, "outboundHandlers.h[0] reroute");
}

TEST(HandlerEvalTest, ActionsAfterATerminatorNeverRun) {
  const auto set = compileOk(handler(
      "- deny: { status: 429, when: { header: X-Flood } }\n- setHeader: { name: X-Seen, value: "
      "\"1\" }\n- forward: {}\n- setHeader: { name: X-After, value: \"1\" }\n- deny: {}"));
  const Verdict denied = run(*set, request("GET", "/", {{"X-Flood", "1"}}));
  EXPECT_EQ(denied.kind, Kind::kDeny);
  EXPECT_EQ(denied.status, 429);
  EXPECT_TRUE(denied.setHeaders.empty());
  const Verdict passed = run(*set, request("GET", "/"));
  EXPECT_EQ(passed.kind, Kind::kForward);
  EXPECT_EQ(passed.rule, "outboundHandlers.h[2] forward");
  ASSERT_EQ(passed.setHeaders.size(), 1u);
  EXPECT_EQ(passed.setHeaders[0].name, "X-Seen");
}

TEST(HandlerEvalTest, ConditionsSeeTheClientRequestNotEarlierEdits) {
  const auto set = compileOk(
      handler("- setHeader: { name: X-Tag, value: set }\n- deny: { when: { header: X-Tag } }"));
  EXPECT_EQ(run(*set, request("GET", "/")).kind, Kind::kForward);
  EXPECT_EQ(run(*set, request("GET", "/", {{"x-tag", "client"}})).kind, Kind::kDeny);
}

TEST(HandlerEvalTest, ParamsAndSandboxInHeaders) {
  const auto set = compileOk(
      handler("- setHeader: { name: X-Tenant, value: \"${params.tenant}-${sandbox}\" }\n"
              "- setHeader: { name: X-Flags, value: \"${params.n}/${params.on}/${params.r}\" }"));
  const Verdict v = run(*set, request("GET", "/"), nullptr,
                        {{"tenant", "acme"}, {"n", -7}, {"on", true}, {"r", 0.5}});
  ASSERT_EQ(v.kind, Kind::kForward);
  ASSERT_EQ(v.setHeaders.size(), 2u);
  EXPECT_EQ(v.setHeaders[0].value, "acme-sb1");
  EXPECT_EQ(v.setHeaders[1].value, "-7/true/0.5");
}

TEST(HandlerEvalTest, SecretsAreInjectedPerSandbox) {
  const auto set = compileOk(handler(
      "- setHeader: { name: Authorization, value: \"Bearer ${secret:API_KEY/${sandbox}}\" }"));
  FakeSecrets secrets;
  secrets.values = {{"API_KEY/sbA", "key-a"}, {"API_KEY/sbB", "key-b"}};
  const auto req = request("GET", "/");
  const Verdict a = set->evaluate("h", json::object(), req, "sbA", secrets.resolver());
  const Verdict b = set->evaluate("h", json::object(), req, "sbB", secrets.resolver());
  ASSERT_EQ(a.kind, Kind::kForward);
  ASSERT_EQ(b.kind, Kind::kForward);
  EXPECT_EQ(a.setHeaders.at(0).value, "Bearer key-a");
  EXPECT_EQ(b.setHeaders.at(0).value, "Bearer key-b");
  EXPECT_TRUE(a.injectedSecret);
  EXPECT_EQ(secrets.asked, (std::vector<std::string>{"API_KEY/sbA", "API_KEY/sbB"}));
}

TEST(HandlerEvalTest, MissingSecretIsA502ThatNamesItButNoValue) {
  const auto set = compileOk(R"(outboundHandlers:
  gh:
    - setHeader: { name: Authorization, value: "Bearer ${secret:GH_TOKEN}" }
    - setHeader: { name: X-Other, value: "${secret:OTHER}" }
)");
  FakeSecrets secrets;
  secrets.values = {{"OTHER", "other-secret-value"}};
  const Verdict v = run(*set, request("GET", "/"), &secrets, json::object(), "gh");
  EXPECT_EQ(v.kind, Kind::kError);
  EXPECT_EQ(v.status, 502);
  EXPECT_EQ(v.error, "secret GH_TOKEN is not available");
  EXPECT_EQ(v.errorDetail, "no fake source for GH_TOKEN");
  EXPECT_EQ(v.rule, "outboundHandlers.gh[0] setHeader");
  EXPECT_TRUE(v.setHeaders.empty());
  EXPECT_FALSE(v.injectedSecret);
  EXPECT_EQ(v.error.find("other-secret-value"), std::string::npos);
}

TEST(HandlerEvalTest, SecretWithLineBreakIsA502) {
  const auto set = compileOk(handler("- setHeader: { name: X-Key, value: \"${secret:K}\" }"));
  FakeSecrets secrets;
  secrets.values = {{"K", "abc\r\nX-Injected: yes"}};
  const Verdict v = run(*set, request("GET", "/"), &secrets);
  EXPECT_EQ(v.kind, Kind::kError);
  EXPECT_EQ(v.status, 502);
  EXPECT_EQ(v.error, "secret K holds CR/LF");
  EXPECT_EQ(v.error.find("Injected"), std::string::npos);
  EXPECT_TRUE(v.setHeaders.empty());
}

TEST(HandlerEvalTest, SecretsAreOnlyFetchedForHeadersThatAreSent) {
  const auto set =
      compileOk(handler("- setHeader: { name: X-A, value: \"${secret:OVERRIDDEN}\" }\n"
                        "- setHeader: { name: X-A, value: plain }\n"
                        "- setHeader: { name: X-B, value: \"${secret:REMOVED}\" }\n"
                        "- removeHeader: { name: X-B }\n"
                        "- setHeader: { name: X-C, value: \"${secret:DENIED}\" }\n"
                        "- deny: { when: { method: DELETE } }"));
  FakeSecrets secrets;
  secrets.values = {{"DENIED", "d"}};
  const Verdict deny = run(*set, request("DELETE", "/"), &secrets);
  EXPECT_EQ(deny.kind, Kind::kDeny);
  EXPECT_FALSE(deny.injectedSecret);
  EXPECT_TRUE(deny.setHeaders.empty());
  EXPECT_TRUE(secrets.asked.empty());
  const Verdict forward = run(*set, request("GET", "/"), &secrets);
  ASSERT_EQ(forward.kind, Kind::kForward);
  EXPECT_EQ(secrets.asked, std::vector<std::string>{"DENIED"});
  EXPECT_TRUE(forward.injectedSecret);
  ASSERT_EQ(forward.setHeaders.size(), 2u);
  EXPECT_EQ(forward.setHeaders[0].value, "plain");
  EXPECT_EQ(forward.setHeaders[1].value, "d");
}

TEST(HandlerEvalTest, ProblemsAtRequestTimeAreErrorsNotExceptions) {
  const auto set =
      compileOk(handler("- setHeader: { name: X-T, value: \"${params.t}/${secret:K}\" }"));
  // Unknown handler.
  const Verdict unknown = run(*set, request("GET", "/"), nullptr, json::object(), "nope");
  EXPECT_EQ(unknown.kind, Kind::kError);
  EXPECT_EQ(unknown.status, 502);
  EXPECT_EQ(unknown.error, "not defined in the policy");
  // Params that checkParams would refuse.
  EXPECT_EQ(run(*set, request("GET", "/")).error, "handler h needs params: t");
  EXPECT_EQ(run(*set, request("GET", "/"), nullptr, {{"t", "a\nb"}}).kind, Kind::kError);
  // A resolver that throws.
  const SecretResolver throwing = [](std::string_view) -> Result<std::string> {
    throw std::runtime_error("boom");
  };
  const Verdict thrown = set->evaluate("h", {{"t", "x"}}, request("GET", "/"), "sb1", throwing);
  EXPECT_EQ(thrown.kind, Kind::kError);
  EXPECT_EQ(thrown.status, 502);
  EXPECT_NE(thrown.error.find("internal error"), std::string::npos);
}

// ---- params ------------------------------------------------------------------------------

TEST(HandlerParamsTest, CheckParams) {
  const auto set = compileOk(R"(outboundHandlers:
  kv:
    - setHeader: { name: X-Tenant, value: "${params.tenant}" }
    - deny: { body: "${params.reason}", when: { method: DELETE } }
  plain:
    - forward: {}
)");
  ASSERT_NE(set, nullptr);
  EXPECT_TRUE(set->checkParams("kv", {{"tenant", "a"}, {"reason", "b"}}).ok());
  EXPECT_TRUE(set->checkParams("kv", {{"tenant", 1}, {"reason", false}}).ok());
  EXPECT_TRUE(set->checkParams("plain", json::object()).ok());
  EXPECT_TRUE(set->checkParams("plain", nullptr).ok());

  auto message = [&](std::string_view handler, const json& params) {
    Status status = set->checkParams(handler, params);
    EXPECT_FALSE(status.ok()) << params.dump();
    return status.ok() ? std::string() : status.error().message();
  };
  EXPECT_EQ(message("kv", json::object()), "handler kv needs params: reason, tenant");
  EXPECT_EQ(message("kv", {{"tenant", "a"}}), "handler kv needs params: reason");
  EXPECT_EQ(message("kv", {{"tenant", "a"}, {"reason", "b"}, {"x", 1}}),
            "handler kv has no param x (it uses: reason, tenant)");
  EXPECT_EQ(message("plain", {{"x", 1}}), "handler plain has no param x (it uses: none)");
  EXPECT_EQ(message("kv", {{"tenant", json::array()}, {"reason", "b"}}),
            "handler kv param tenant must be a string, number or boolean");
  EXPECT_EQ(message("kv", {{"tenant", json::object()}, {"reason", "b"}}),
            "handler kv param tenant must be a string, number or boolean");
  EXPECT_EQ(message("kv", {{"tenant", nullptr}, {"reason", "b"}}),
            "handler kv param tenant must be a string, number or boolean");
  EXPECT_EQ(message("kv", {{"tenant", "a\r\nX: y"}, {"reason", "b"}}),
            "handler kv param tenant holds CR, LF or NUL");
  EXPECT_EQ(message("kv", json::array()), "handler kv: params must be a JSON object, got []");
  const Status unknown = set->checkParams("nope", json::object());
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code(), ENOENT);
  EXPECT_EQ(unknown.error().message(), "unknown handler 'nope'");
}

}  // namespace
}  // namespace egressd::handlers

namespace egressd::handlers {
namespace {

using testing::compileError;
using testing::compileOk;
using testing::FakeSecrets;
using testing::request;

std::string oneHandler(const std::string& action) {
  return "outboundHandlers:\n  h:\n    " + action + "\n";
}

// The proxy refuses a secret over cleartext unless its setHeader says allowPlaintext, and
// redacts the secret values (not the whole header values) in the response.
TEST(HandlerSecretsTest, VerdictNamesSecretsAndTheHeaderThatNeedsTls) {
  FakeSecrets secrets;
  secrets.values = {{"T", "tok-123"}, {"U", "u-9"}};
  const auto set = compileOk(
      "outboundHandlers:\n  h:\n"
      "    - setHeader: { name: X-Plain, value: \"id ${sandbox}\" }\n"
      "    - setHeader: { name: Authorization, value: \"Bearer ${secret:T}\" }\n"
      "    - setHeader: { name: X-Ok, value: \"${secret:U}\", allowPlaintext: true }\n");
  const Verdict v = set->evaluate("h", nlohmann::json::object(), request("GET", "/", {}), "sb1",
                                  secrets.resolver());
  ASSERT_EQ(v.kind, Verdict::Kind::kForward);
  EXPECT_TRUE(v.injectedSecret);
  EXPECT_EQ(v.secretNeedsTls, "Authorization");
  EXPECT_EQ(v.secretValues, (std::vector<std::string>{"tok-123", "u-9"}));

  const auto allowed = compileOk(oneHandler(
      "- setHeader: { name: Authorization, value: \"Bearer ${secret:T}\", allowPlaintext: true }"));
  const Verdict w = allowed->evaluate("h", nlohmann::json::object(), request("GET", "/", {}), "sb1",
                                      secrets.resolver());
  EXPECT_TRUE(w.secretNeedsTls.empty());
  EXPECT_EQ(w.secretValues, (std::vector<std::string>{"tok-123"}));

  const auto none = compileOk(oneHandler("- setHeader: { name: X-A, value: b }"));
  const Verdict n = none->evaluate("h", nlohmann::json::object(), request("GET", "/", {}), "sb1",
                                   secrets.resolver());
  EXPECT_TRUE(n.secretNeedsTls.empty());
  EXPECT_TRUE(n.secretValues.empty());
}

TEST(HandlerSecretsTest, AllowPlaintextMustBeABoolean) {
  EXPECT_EQ(compileError(oneHandler("- setHeader: { name: A, value: b, allowPlaintext: 1 }")),
            "p.yaml:4:7: outboundHandlers.h[0] setHeader: allowPlaintext: expected true or "
            "false, got 1");
  EXPECT_NE(compileError(oneHandler("- removeHeader: { name: A, allowPlaintext: true }"))
                .find("allowPlaintext"),
            std::string::npos);
}

}  // namespace
}  // namespace egressd::handlers
