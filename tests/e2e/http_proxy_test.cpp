// The transparent HTTP/1.1 proxy (issue 3), with real clients inside the sandbox (curl,
// python http.client, raw sockets, asyncio) and real origins in the test internet
// (http_origin.py on 198.18.N.{3,4}:8080 and [2001:db8:e9:N::{3,4}]:8080).
//
// Every request carries a tag in its query string, and the origin logs each request before
// reading its body, so "nothing reached the origin" is checked by the tag's absence, next to
// a request of the same test that did arrive. The audit log (--audit-log) is checked by
// content; the query string never reaches it.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <set>
#include <thread>

#include "common/fs.h"
#include "http_client.h"
#include "prometheus.h"
#include "world.h"

namespace egressd::e2e {
namespace {

using nlohmann::json;
using test::milliseconds;

constexpr int64_t kMiB = 1024 * 1024;
const std::string kOriginPort = std::to_string(kHttpOrigin);

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

std::string originJoined(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) {
    s += "\n  " + l;
  }
  return s.empty() ? " (none)" : s;
}

// egressd's own answer to a denied request: status, the X-Egressd-* headers, and a body
// that names the host, the sandbox, the rule and the reason.
::testing::AssertionResult IsDenial(const CurlReply& r, const std::string& sandboxId,
                                    const std::string& host, const std::string& reason,
                                    const std::string& rule) {
  const HttpResponse& last = r.last();
  const std::string wantRule = rule.empty() ? "default" : rule;
  std::string problems;
  if (r.status() != 403) {
    problems += " status " + std::to_string(r.status()) + " (want 403);";
  }
  if (last.header("X-Egressd-Reason") != reason) {
    problems +=
        " X-Egressd-Reason '" + last.header("X-Egressd-Reason") + "' (want " + reason + ");";
  }
  if (last.header("X-Egressd-Rule") != wantRule) {
    problems += " X-Egressd-Rule '" + last.header("X-Egressd-Rule") + "' (want " + wantRule + ");";
  }
  const std::string head = "egressd: request to " + host + " denied for sandbox " + sandboxId;
  if (!last.body.starts_with(head)) {
    problems += " body does not start with '" + head + "';";
  }
  if (!rule.empty() && !contains(last.body, "by rule " + rule)) {
    problems += " body does not name the rule '" + rule + "';";
  }
  if (!contains(last.body, "(" + reason + ")")) {
    problems += " body does not name the reason (" + reason + ");";
  }
  if (problems.empty()) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << problems << "\n" << r.describe();
}

class HttpProxyTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) {
      return;
    }
    auto origin = httpOrigin();
    ASSERT_TRUE(origin.ok()) << origin.error().message();
    origin_ = *origin;
  }

  // A policy that proxies the origin's port and the port nobody serves, besides 80/443.
  static PolicySpec spec() {
    PolicySpec s;
    s.proxyPorts = std::vector<int>{kHttp, kHttps, kHttpOrigin, kHttpNoServer};
    return s;
  }

  // A sandbox whose daemon writes an audit log and serves metrics.
  static Result<std::unique_ptr<Sandbox>> start(const PolicySpec& s, bool ownNetns = false,
                                                std::vector<std::string> daemonArgs = {}) {
    return Sandbox::start(s, SandboxOptions{.ownNetns = ownNetns,
                                            .auditLog = true,
                                            .metrics = true,
                                            .daemonArgs = std::move(daemonArgs)});
  }

  // Unique in this binary: put in a query string, it says which requests reached the origin.
  static std::string tag(const std::string& what) {
    static std::atomic<int> counter{0};
    std::string name = ::testing::UnitTest::GetInstance()->current_test_info()->name();
    for (char& c : name) {
      c = c == '/' ? '.' : c;
    }
    // Fixed width, so that no tag is a prefix of a later one ("-1" of "-10").
    char number[16];
    std::snprintf(number, sizeof(number), "%05d", counter++);
    return name + "-" + what + "-" + number;
  }

  // GET http://HOST:8080PATH with curl, connecting to `ip` (curl --resolve).
  static CurlReply get(const Sandbox& sb, const std::string& host, const std::string& ip,
                       const std::string& path, std::vector<std::string> extra = {}) {
    const std::string addr = contains(ip, ":") ? "[" + ip + "]" : ip;
    std::vector<std::string> args{"--resolve", host + ":" + kOriginPort + ":" + addr,
                                  "http://" + host + ":" + kOriginPort + path};
    args.insert(args.end(), extra.begin(), extra.end());
    return curlIn(sb, args);
  }

  std::vector<std::string> reached(const std::string& tagText) const {
    return origin_->requestsMatching(tagText);
  }

  // The origin endpoints of allowed.test (A and AAAA).
  std::set<std::string> allowedTestOrigins() {
    return {hostPort(w().ip4(3), kHttpOrigin), hostPort(w().ip6(3), kHttpOrigin)};
  }

  std::string originEndpoint(int host) { return hostPort(w().ip4(host), kHttpOrigin); }

  test::TestHttpOrigin* origin_ = nullptr;
};

json jsonBody(const std::string& body) {
  return json::parse(body, nullptr, false);
}

std::string request(const std::string& method, const std::string& target, const std::string& host,
                    const std::string& extraHeaders = "", const std::string& body = "") {
  std::string r = method + " " + target + " HTTP/1.1\r\nHost: " + host + "\r\n" + extraHeaders;
  if (!body.empty()) {
    r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  return r + "\r\n" + body;
}

// --- the basic cases, for both sandbox kinds (host netns, own netns) -----------------------

class HttpProxyKindsTest : public HttpProxyTest, public ::testing::WithParamInterface<bool> {};

INSTANTIATE_TEST_SUITE_P(SandboxKinds, HttpProxyKindsTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& param) {
                           return param.param ? "OwnNetns" : "HostNetns";
                         });

TEST_P(HttpProxyKindsTest, AllowedHostsMatchByExactNameAndByGlob) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test", "*.allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s, GetParam()));
  const std::string exact = tag("exact");
  const std::string glob = tag("glob");

  auto r = get(*sb, "allowed.test", w().ip4(3), "/whoami?tag=" + exact);
  ASSERT_EQ(r.status(), 200) << r.describe();
  json who = jsonBody(r.last().body);
  ASSERT_TRUE(who.is_object()) << r.describe();
  const std::string server = who.value("server", "");
  EXPECT_TRUE(allowedTestOrigins().contains(server)) << who.dump();
  EXPECT_EQ(who.value("host", ""), "allowed.test:" + kOriginPort);
  EXPECT_EQ(who.value("path", ""), "/whoami?tag=" + exact);
  auto lines = reached(exact);
  ASSERT_EQ(lines.size(), 1u) << origin_->log();
  EXPECT_EQ(lines[0],
            "req " + server + " GET /whoami?tag=" + exact + " allowed.test:" + kOriginPort);

  r = get(*sb, "api.v2.allowed.test", w().ip4(3), "/whoami?tag=" + glob);
  ASSERT_EQ(r.status(), 200) << r.describe();
  EXPECT_EQ(jsonBody(r.last().body).value("host", ""), "api.v2.allowed.test:" + kOriginPort);
  EXPECT_EQ(reached(glob).size(), 1u) << origin_->log();

  // A response delimited by the end of the connection arrives whole, and ends: curl exits
  // 0 well before its --max-time.
  const auto started = std::chrono::steady_clock::now();
  r = get(*sb, "allowed.test", w().ip4(3), "/close");
  EXPECT_EQ(r.status(), 200) << r.describe();
  EXPECT_EQ(r.last().body, "body delimited by close\n");
  EXPECT_EQ(r.run.exitCode, 0) << r.describe();
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(5));

  ASSERT_OK_AND_ASSIGN(json a, sb->daemon().waitForAudit(
                                   auditWith({{"host", "allowed.test"}, {"path", "/whoami"}})));
  EXPECT_EQ(a.value("sandbox", ""), sb->daemon().sandboxId()) << a;
  EXPECT_EQ(a.value("layer", ""), "proxy") << a;
  EXPECT_EQ(a.value("protocol", ""), "http") << a;
  EXPECT_EQ(a.value("decision", ""), "allow") << a;
  EXPECT_EQ(a.value("reason", ""), "allowed_host") << a;
  EXPECT_EQ(a.value("rule", ""), "allowedHosts[0] allowed.test") << a;
  EXPECT_EQ(a.value("method", ""), "GET") << a;
  EXPECT_EQ(a.value("status", 0), 200) << a;
  EXPECT_EQ(a.value("orig_dst", ""), originEndpoint(3)) << a;
  EXPECT_EQ(a.value("upstream", ""), server) << a;  // where the request really went
  EXPECT_GT(a.value("bytes_out", 0), 0) << a;
  EXPECT_TRUE(a.value("time", "").ends_with("Z")) << a;
  EXPECT_TRUE(a.contains("duration_us") && a["duration_us"].is_number()) << a;
  EXPECT_FALSE(contains(a.dump(), exact)) << "the query string reached the audit log: " << a;

  ASSERT_OK_AND_ASSIGN(json g,
                       sb->daemon().waitForAudit(auditWith({{"host", "api.v2.allowed.test"}})));
  EXPECT_EQ(g.value("decision", ""), "allow") << g;
  EXPECT_EQ(g.value("rule", ""), "allowedHosts[1] *.allowed.test") << g;
  EXPECT_EQ(g.value("path", ""), "/whoami") << g;
}

TEST_P(HttpProxyKindsTest, DeniedHostsGlobBeatsAllowedHosts) {
  PolicySpec s = spec();
  s.allowedHosts = {"*.allowed.test"};
  s.deniedHosts = {"*.internal.allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s, GetParam()));
  const std::string denied = tag("denied");
  const std::string control = tag("control");

  auto r = get(*sb, "db.internal.allowed.test", w().ip4(3), "/whoami?tag=" + denied);
  EXPECT_TRUE(IsDenial(r, sb->daemon().sandboxId(), "db.internal.allowed.test", "denied_host",
                       "deniedHosts[0] *.internal.allowed.test"));
  EXPECT_TRUE(reached(denied).empty()) << originJoined(reached(denied));
  // The allow glob still works for names the deny glob does not cover.
  r = get(*sb, "www.allowed.test", w().ip4(3), "/whoami?tag=" + control);
  EXPECT_EQ(r.status(), 200) << r.describe();
  EXPECT_EQ(reached(control).size(), 1u) << origin_->log();

  ASSERT_OK_AND_ASSIGN(
      json a, sb->daemon().waitForAudit(auditWith({{"host", "db.internal.allowed.test"}})));
  EXPECT_EQ(a.value("decision", ""), "deny") << a;
  EXPECT_EQ(a.value("reason", ""), "denied_host") << a;
  EXPECT_EQ(a.value("rule", ""), "deniedHosts[0] *.internal.allowed.test") << a;
  EXPECT_EQ(a.value("status", 0), 403) << a;
  EXPECT_EQ(a.value("upstream", ""), "") << "a denied request has no upstream: " << a;
}

TEST_P(HttpProxyKindsTest, HostOutsideAllowedHostsIsDeniedEvenWithInternetEnabled) {
  PolicySpec s = spec();
  s.enableInternet = true;  // allowedHosts, once written, decides alone for names
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s, GetParam()));
  const std::string denied = tag("denied");
  const std::string control = tag("control");

  auto r = get(*sb, "other.test", w().ip4(4), "/whoami?tag=" + denied);
  EXPECT_TRUE(IsDenial(r, sb->daemon().sandboxId(), "other.test", "not_in_allowed_hosts", ""));
  EXPECT_TRUE(reached(denied).empty()) << originJoined(reached(denied));
  r = get(*sb, "allowed.test", w().ip4(3), "/whoami?tag=" + control);
  EXPECT_EQ(r.status(), 200) << r.describe();
  EXPECT_EQ(reached(control).size(), 1u) << origin_->log();

  ASSERT_OK_AND_ASSIGN(json a, sb->daemon().waitForAudit(auditWith({{"host", "other.test"}})));
  EXPECT_EQ(a.value("decision", ""), "deny") << a;
  EXPECT_EQ(a.value("reason", ""), "not_in_allowed_hosts") << a;
  EXPECT_EQ(a.value("orig_dst", ""), originEndpoint(4)) << a;
}

TEST_P(HttpProxyKindsTest, WithoutAllowedHostsEnableInternetDecides) {
  PolicySpec s = spec();
  s.enableInternet = false;
  ASSERT_OK_AND_ASSIGN(auto closed, start(s, GetParam()));
  const std::string denied = tag("denied");
  auto r = get(*closed, "other.test", w().ip4(4), "/whoami?tag=" + denied);
  EXPECT_TRUE(IsDenial(r, closed->daemon().sandboxId(), "other.test", "internet_disabled", ""));
  EXPECT_TRUE(reached(denied).empty()) << originJoined(reached(denied));

  s.enableInternet = true;
  ASSERT_OK_AND_ASSIGN(auto open, start(s, GetParam()));
  const std::string allowed = tag("allowed");
  r = get(*open, "other.test", w().ip4(4), "/whoami?tag=" + allowed);
  ASSERT_EQ(r.status(), 200) << r.describe();
  // other.test has only an A record: .4.
  EXPECT_EQ(jsonBody(r.last().body).value("server", ""), originEndpoint(4)) << r.describe();
  EXPECT_EQ(reached(allowed).size(), 1u) << origin_->log();
  ASSERT_OK_AND_ASSIGN(json a, open->daemon().waitForAudit(auditWith({{"host", "other.test"}})));
  EXPECT_EQ(a.value("decision", ""), "allow") << a;
  EXPECT_EQ(a.value("reason", ""), "enable_internet") << a;
  EXPECT_EQ(a.value("upstream", ""), originEndpoint(4)) << a;
}

// Fail closed: with the daemon (and so the proxy) gone, proxied connections fail; they
// never go direct to the origin.
TEST_P(HttpProxyKindsTest, KilledDaemonFailsClosed) {
  PolicySpec s = spec();
  s.enableInternet = true;
  ASSERT_OK_AND_ASSIGN(auto sb, start(s, GetParam()));
  const std::string before = tag("before");
  auto r = get(*sb, "allowed.test", w().ip4(3), "/whoami?tag=" + before);
  ASSERT_EQ(r.status(), 200) << r.describe();

  ASSERT_OK(sb->daemon().killAndWait(SIGKILL));
  const std::string after = tag("after");
  r = get(*sb, "allowed.test", w().ip4(3), "/whoami?tag=" + after);
  EXPECT_EQ(r.status(), 0) << r.describe();
  EXPECT_NE(r.run.exitCode, 0) << r.describe();
  EXPECT_TRUE(reached(after).empty())
      << "reached the origin with the proxy dead:" << originJoined(reached(after));
  const std::string ipLiteral = tag("ip");
  r = curlIn(*sb, {"http://" + originEndpoint(4) + "/whoami?tag=" + ipLiteral});
  EXPECT_EQ(r.status(), 0) << r.describe();
  EXPECT_TRUE(reached(ipLiteral).empty()) << originJoined(reached(ipLiteral));
}

// --- where an allowed request goes ---------------------------------------------------------

// The sandbox connects to other.test's address but says Host: allowed.test: the request is
// judged on allowed.test and sent where egressd resolves allowed.test, not to the IP the
// sandbox picked.
TEST_F(HttpProxyTest, HostHeaderNotTheConnectedAddressChoosesTheUpstream) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string t = tag("spoof");
  const size_t before4 = origin_->requestsTo(originEndpoint(4)) +
                         origin_->requestsTo(hostPort(w().ip6(4), kHttpOrigin));

  auto r =
      curlIn(*sb, {"-H", "Host: allowed.test", "http://" + originEndpoint(4) + "/whoami?tag=" + t});
  ASSERT_EQ(r.status(), 200) << r.describe();
  const std::string server = jsonBody(r.last().body).value("server", "");
  EXPECT_TRUE(allowedTestOrigins().contains(server)) << "answered by " << server;
  auto lines = reached(t);
  ASSERT_EQ(lines.size(), 1u) << origin_->log();
  EXPECT_TRUE(lines[0].starts_with("req " + server + " ")) << lines[0];
  EXPECT_EQ(origin_->requestsTo(originEndpoint(4)) +
                origin_->requestsTo(hostPort(w().ip6(4), kHttpOrigin)),
            before4)
      << "other.test's origin saw a request";

  ASSERT_OK_AND_ASSIGN(json a, sb->daemon().waitForAudit(auditWith({{"host", "allowed.test"}})));
  EXPECT_EQ(a.value("orig_dst", ""), originEndpoint(4)) << a;
  EXPECT_EQ(a.value("upstream", ""), server) << a;
}

TEST_F(HttpProxyTest, AbsoluteFormTargetMustAgreeWithHost) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test", "other.test"};  // only the disagreement can refuse it
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string mismatch = tag("mismatch");
  const std::string agree = tag("agree");

  auto x =
      rawHttpIn(*sb, originEndpoint(3),
                {request("GET", "http://other.test:8080/whoami?tag=" + mismatch, "allowed.test")});
  EXPECT_EQ(x.firstStatus(), 400) << x.describe();
  EXPECT_TRUE(x.closedByServer()) << x.describe();
  EXPECT_TRUE(reached(mismatch).empty()) << originJoined(reached(mismatch));

  // Absolute form whose authority agrees with Host is an ordinary request (RFC 9112 3.2.2).
  x = rawHttpIn(*sb, originEndpoint(3),
                {request("GET", "http://allowed.test:8080/whoami?tag=" + agree, "allowed.test:8080",
                         "Connection: close\r\n")});
  EXPECT_EQ(x.firstStatus(), 200) << x.describe();
  ASSERT_EQ(reached(agree).size(), 1u) << origin_->log();
  EXPECT_TRUE(reached(agree)[0].starts_with("req " + originEndpoint(3)) ||
              reached(agree)[0].starts_with("req " + hostPort(w().ip6(3), kHttpOrigin)))
      << reached(agree)[0];
}

TEST_F(HttpProxyTest, NameResolvingIntoDeniedCidrIsRefused) {
  PolicySpec s = spec();
  s.enableInternet = true;
  s.deniedHosts = {w().ip4(4) + "/32"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string denied = tag("denied");
  const std::string control = tag("control");

  // Connected to .3 (the kernel refuses .4 outright); other.test resolves to .4.
  auto r = get(*sb, "other.test", w().ip4(3), "/whoami?tag=" + denied);
  EXPECT_TRUE(IsDenial(r, sb->daemon().sandboxId(), "other.test", "denied_cidr",
                       "deniedHosts[0] " + w().ip4(4) + "/32"));
  EXPECT_TRUE(reached(denied).empty()) << originJoined(reached(denied));
  r = get(*sb, "allowed.test", w().ip4(3), "/whoami?tag=" + control);
  EXPECT_EQ(r.status(), 200) << r.describe();
  EXPECT_EQ(reached(control).size(), 1u);

  ASSERT_OK_AND_ASSIGN(json a, sb->daemon().waitForAudit(auditWith({{"host", "other.test"}})));
  EXPECT_EQ(a.value("decision", ""), "deny") << a;
  EXPECT_EQ(a.value("reason", ""), "denied_cidr") << a;
}

// DNS rebinding: rebind.test resolves to 127.0.0.1. Neither enableInternet nor an
// allowedHosts entry for the name lets the proxy connect to loopback for the sandbox.
TEST_F(HttpProxyTest, NameResolvingToLoopbackIsRefused) {
  // A listener where the proxy would connect if it followed the name: it must see nothing.
  // (Only when the port is free on this host; the status checks below stand on their own.)
  auto trap = test::TestServers::start("", {"127.0.0.1:" + kOriginPort}, {});
  for (bool byAllowList : {false, true}) {
    SCOPED_TRACE(byAllowList ? "allowedHosts: [rebind.test]" : "enableInternet: true");
    PolicySpec s = spec();
    if (byAllowList) {
      s.allowedHosts = {"rebind.test", "allowed.test"};
    } else {
      s.enableInternet = true;
    }
    ASSERT_OK_AND_ASSIGN(auto sb, start(s));
    const std::string t = tag("rebind");
    auto r = get(*sb, "rebind.test", w().ip4(3), "/whoami?tag=" + t);
    EXPECT_EQ(r.status(), 403) << r.describe();
    EXPECT_EQ(r.last().header("X-Egressd-Reason"), "special_destination") << r.describe();
    EXPECT_TRUE(reached(t).empty()) << originJoined(reached(t));
    ASSERT_OK_AND_ASSIGN(json a, sb->daemon().waitForAudit(auditWith({{"host", "rebind.test"}})));
    EXPECT_EQ(a.value("decision", ""), "deny") << a;
    EXPECT_EQ(a.value("upstream", ""), "") << a;
    // The same sandbox is served for a name that resolves into the test network.
    EXPECT_EQ(get(*sb, "allowed.test", w().ip4(3), "/whoami").status(), 200);
  }
  if (trap.ok()) {
    EXPECT_EQ(trap->log(), "") << "the proxy connected to loopback for rebind.test";
  }
}

TEST_F(HttpProxyTest, IpLiteralHostIsJudgedByCidrRules) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test", w().ip4(3)};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string allowed = tag("allowed");
  const std::string denied4 = tag("denied4");
  const std::string denied6 = tag("denied6");

  auto r = curlIn(*sb, {"http://" + originEndpoint(3) + "/whoami?tag=" + allowed});
  ASSERT_EQ(r.status(), 200) << r.describe();
  // An IP-literal host goes to exactly that address.
  EXPECT_EQ(jsonBody(r.last().body).value("server", ""), originEndpoint(3));
  EXPECT_EQ(reached(allowed).size(), 1u) << origin_->log();
  ASSERT_OK_AND_ASSIGN(json a, sb->daemon().waitForAudit(auditWith({{"host", w().ip4(3)}})));
  EXPECT_EQ(a.value("decision", ""), "allow") << a;
  EXPECT_EQ(a.value("reason", ""), "allowed_cidr") << a;
  EXPECT_TRUE(a.value("rule", "").starts_with("allowedHosts[1] " + w().ip4(3))) << a;

  r = curlIn(*sb, {"http://" + originEndpoint(4) + "/whoami?tag=" + denied4});
  EXPECT_TRUE(IsDenial(r, sb->daemon().sandboxId(), w().ip4(4), "not_in_allowed_hosts", ""));
  r = curlIn(*sb, {"http://" + hostPort(w().ip6(4), kHttpOrigin) + "/whoami?tag=" + denied6});
  EXPECT_TRUE(IsDenial(r, sb->daemon().sandboxId(), w().ip6(4), "not_in_allowed_hosts", ""));
  EXPECT_TRUE(reached(denied4).empty()) << originJoined(reached(denied4));
  EXPECT_TRUE(reached(denied6).empty()) << originJoined(reached(denied6));
}

// --- connections carrying several requests -------------------------------------------------

// One connection (to allowed.test's address), four hosts: each request is judged on its own
// Host and sent where its own host resolves, whatever the connection carried before.
TEST_F(HttpProxyTest, KeptAliveConnectionJudgesAndRoutesEveryRequestOnItsOwnHost) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test", "www.other.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string first = tag("first");
  const std::string denied = tag("denied");
  const std::string other = tag("other");
  const std::string last = tag("last");

  auto x =
      rawHttpIn(*sb, originEndpoint(3),
                {request("GET", "/whoami?tag=" + first, "allowed.test"),
                 request("GET", "/whoami?tag=" + denied, "other.test"),
                 request("GET", "/whoami?tag=" + other, "www.other.test"),
                 request("GET", "/whoami?tag=" + last, "allowed.test", "Connection: close\r\n")},
                {.gapSeconds = 0.3});
  auto responses = x.responses();
  ASSERT_EQ(responses.size(), 4u) << x.describe();
  EXPECT_EQ(responses[0].status, 200);
  EXPECT_EQ(jsonBody(responses[0].body).value("path", ""), "/whoami?tag=" + first);
  EXPECT_TRUE(allowedTestOrigins().contains(jsonBody(responses[0].body).value("server", "")));
  EXPECT_EQ(responses[1].status, 403);
  EXPECT_EQ(responses[1].header("X-Egressd-Reason"), "not_in_allowed_hosts");
  EXPECT_EQ(responses[2].status, 200);
  EXPECT_EQ(jsonBody(responses[2].body).value("server", ""), originEndpoint(4))
      << "www.other.test was not sent to its own address: " << responses[2].body;
  EXPECT_EQ(responses[3].status, 200);
  EXPECT_EQ(jsonBody(responses[3].body).value("path", ""), "/whoami?tag=" + last);
  EXPECT_TRUE(allowedTestOrigins().contains(jsonBody(responses[3].body).value("server", "")));
  EXPECT_EQ(x.end, "eof") << x.describe();
  EXPECT_EQ(reached(first).size(), 1u) << origin_->log();
  EXPECT_TRUE(reached(denied).empty()) << originJoined(reached(denied));
  EXPECT_EQ(reached(other).size(), 1u) << origin_->log();
  EXPECT_EQ(reached(last).size(), 1u) << origin_->log();
}

// A policy reload applies to the next request on a connection already open (its
// kept-alive upstream connection goes to an address the new policy denies).
TEST_F(HttpProxyTest, ReloadAppliesToTheNextRequestOnAnOpenConnection) {
  PolicySpec s = spec();
  s.allowedHosts = {"other.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  PolicySpec tightened = s;
  tightened.deniedHosts = {w().ip4(4) + "/32"};  // where other.test resolves
  const std::string before = tag("before");
  const std::string after = tag("after");

  Status reloaded = okStatus();
  std::thread reloader([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    reloaded = sb->daemon().reload(policyYaml(tightened));
  });
  auto x = rawHttpIn(*sb, originEndpoint(3),
                     {request("GET", "/whoami?tag=" + before, "other.test"),
                      request("GET", "/whoami?tag=" + after, "other.test")},
                     {.gapSeconds = 2.5, .readTimeoutSeconds = 1.5});
  reloader.join();
  ASSERT_TRUE(reloaded.ok()) << reloaded.error().message();
  auto responses = x.responses();
  ASSERT_EQ(responses.size(), 2u) << x.describe();
  EXPECT_EQ(responses[0].status, 200) << x.describe();
  EXPECT_EQ(responses[1].status, 403) << x.describe();
  EXPECT_EQ(responses[1].header("X-Egressd-Reason"), "denied_cidr") << x.describe();
  EXPECT_EQ(reached(before).size(), 1u) << origin_->log();
  EXPECT_TRUE(reached(after).empty()) << originJoined(reached(after));
}

// An Upgrade request the origin answers with an ordinary 200 leaves the connection HTTP:
// the next request on it is judged like any other, not tunnelled unseen.
TEST_F(HttpProxyTest, UpgradeWithoutA101LeavesTheConnectionHttp) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string upgrade = tag("upgrade");
  const std::string next = tag("next");
  auto x = rawHttpIn(
      *sb, originEndpoint(3),
      {request("GET", "/whoami?tag=" + upgrade, "allowed.test",
               "Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"),
       request("GET", "/whoami?tag=" + next, "other.test", "Connection: close\r\n")},
      {.gapSeconds = 0.3});
  auto responses = x.responses();
  ASSERT_GE(responses.size(), 1u) << x.describe();
  EXPECT_EQ(responses[0].status, 200) << x.describe();
  // Either judged (403) or refused by closing; never relayed.
  if (responses.size() > 1) {
    EXPECT_EQ(responses[1].status, 403) << x.describe();
  }
  EXPECT_LE(responses.size(), 2u) << x.describe();
  EXPECT_EQ(reached(upgrade).size(), 1u) << origin_->log();
  EXPECT_TRUE(reached(next).empty())
      << "a request after a refused upgrade was tunnelled:" << originJoined(reached(next));
}

// The body of a denied request is data, never the next request - however it is framed.
TEST_F(HttpProxyTest, DeniedRequestBodyIsNeverReadAsARequest) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  for (bool chunked : {false, true}) {
    SCOPED_TRACE(chunked ? "chunked" : "Content-Length");
    const std::string denied = tag("denied");
    const std::string inner = tag("inner");
    const std::string smuggled = request("GET", "/whoami?tag=" + inner, "allowed.test");
    std::string payload;
    if (chunked) {
      char size[16];
      std::snprintf(size, sizeof(size), "%zx", smuggled.size());
      payload =
          request("POST", "/upload?tag=" + denied, "other.test", "Transfer-Encoding: chunked\r\n") +
          size + "\r\n" + smuggled + "\r\n0\r\n\r\n";
    } else {
      payload = request("POST", "/upload?tag=" + denied, "other.test", "", smuggled);
    }
    auto x = rawHttpIn(*sb, originEndpoint(3), {payload}, {.readTimeoutSeconds = 3});
    auto responses = x.responses();
    ASSERT_EQ(responses.size(), 1u) << x.describe();
    EXPECT_EQ(responses[0].status, 403) << x.describe();
    EXPECT_TRUE(reached(denied).empty()) << originJoined(reached(denied));
    EXPECT_TRUE(reached(inner).empty())
        << "the denied request's body was served:" << originJoined(reached(inner));
  }
}

// Response framing the proxy must follow to stay in step on a kept-alive connection: a HEAD
// answer announces a length but has no body; a chunked body has extensions and a trailer.
TEST_F(HttpProxyTest, HeadAndChunkedResponsesKeepTheConnectionInStep) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string head = tag("head");
  const std::string chunked = tag("chunked");
  const std::string last = tag("last");
  auto x =
      rawHttpIn(*sb, originEndpoint(3),
                {request("HEAD", "/whoami?tag=" + head, "allowed.test"),
                 request("GET", "/chunked?tag=" + chunked, "allowed.test"),
                 request("GET", "/whoami?tag=" + last, "allowed.test", "Connection: close\r\n")},
                {.gapSeconds = 0.3});
  auto responses = x.responses({0});
  ASSERT_EQ(responses.size(), 3u) << x.describe();
  EXPECT_EQ(responses[0].status, 200);
  EXPECT_NE(responses[0].header("Content-Length"), "") << x.describe();
  EXPECT_EQ(responses[1].status, 200);
  EXPECT_EQ(responses[1].body, "chunked response for /chunked?tag=" + chunked + "\n");
  EXPECT_EQ(responses[2].status, 200);
  EXPECT_EQ(jsonBody(responses[2].body).value("path", ""), "/whoami?tag=" + last) << x.describe();
  EXPECT_EQ(x.end, "eof") << x.describe();
  EXPECT_EQ(reached(head).size(), 1u);
  EXPECT_EQ(reached(chunked).size(), 1u);
  EXPECT_EQ(reached(last).size(), 1u);
  // Relayed by egressd, each request complete with its status.
  for (const char* method : {"HEAD", "GET"}) {
    ASSERT_OK_AND_ASSIGN(
        auto n, sb->daemon().waitForAuditCount(auditWith({{"method", method}, {"status", 200}}),
                                               std::string(method) == "GET" ? 2 : 1));
    EXPECT_EQ(n, std::string(method) == "GET" ? 2u : 1u) << method;
  }
}

// A client that half-closes after its request (shutdown(SHUT_WR), as `nc -N` does) still
// gets the whole response.
TEST_F(HttpProxyTest, HalfClosedClientStillGetsItsResponse) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string t = tag("halfclose");
  auto x = rawHttpIn(*sb, originEndpoint(3), {request("GET", "/whoami?tag=" + t, "allowed.test")},
                     {.readTimeoutSeconds = 5, .shutdown = true});
  auto responses = x.responses();
  ASSERT_EQ(responses.size(), 1u) << x.describe();
  EXPECT_EQ(responses[0].status, 200) << x.describe();
  EXPECT_EQ(jsonBody(responses[0].body).value("path", ""), "/whoami?tag=" + t) << x.describe();
  EXPECT_EQ(reached(t).size(), 1u);
  ASSERT_OK_AND_ASSIGN(json a, sb->daemon().waitForAudit(auditWith({{"path", "/whoami"}})));
  EXPECT_EQ(a.value("status", 0), 200) << a;
}

// Host names are compared after normalization (case, trailing dot, port), and names that
// are really numbers, or not names at all, are refused rather than resolved.
TEST_F(HttpProxyTest, HostNamesAreNormalizedBeforeJudging) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test", "*.allowed.test"};
  s.deniedHosts = {"*.internal.allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string disguised = tag("disguised");
  const std::string upper = tag("upper");
  auto x = rawHttpIn(*sb, originEndpoint(3),
                     {request("GET", "/whoami?tag=" + disguised, "DB.Internal.ALLOWED.test.:8080",
                              "Connection: close\r\n")});
  auto responses = x.responses();
  ASSERT_EQ(responses.size(), 1u) << x.describe();
  EXPECT_EQ(responses[0].status, 403) << x.describe();
  EXPECT_EQ(responses[0].header("X-Egressd-Reason"), "denied_host") << x.describe();
  x = rawHttpIn(*sb, originEndpoint(3),
                {request("GET", "/whoami?tag=" + upper, "ALLOWED.Test.", "Connection: close\r\n")});
  EXPECT_EQ(x.firstStatus(), 200) << x.describe();
  EXPECT_TRUE(reached(disguised).empty()) << originJoined(reached(disguised));
  EXPECT_EQ(reached(upper).size(), 1u) << origin_->log();

  // With the internet open, only the form of the name can refuse these.
  PolicySpec open = spec();
  open.enableInternet = true;
  ASSERT_OK_AND_ASSIGN(auto openSb, start(open));
  for (const std::string host :
       {"127.1", "0x7f.1", "2130706433", "allowed.test@other.test", "allowed.test,other.test"}) {
    SCOPED_TRACE("Host: " + host);
    const std::string t = tag("badname");
    x = rawHttpIn(*openSb, originEndpoint(3), {request("GET", "/whoami?tag=" + t, host)},
                  {.readTimeoutSeconds = 3});
    EXPECT_EQ(x.firstStatus(), 400) << x.describe();
    EXPECT_TRUE(reached(t).empty()) << originJoined(reached(t));
  }
}

TEST_F(HttpProxyTest, PipelinedRequestsAreJudgedAndAnsweredInOrder) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string a = tag("a");
  const std::string b = tag("b");
  const std::string c = tag("c");
  const std::string d = tag("d");

  // All four in one write: a GET, a POST with a body, a denied GET, a closing GET.
  const std::string pipeline =
      request("GET", "/whoami?tag=" + a, "allowed.test") +
      request("POST", "/upload?tag=" + b, "allowed.test", "", "hello") +
      request("GET", "/whoami?tag=" + c, "other.test") +
      request("GET", "/whoami?tag=" + d, "allowed.test", "Connection: close\r\n");
  auto x = rawHttpIn(*sb, originEndpoint(3), {pipeline});
  auto responses = x.responses();
  ASSERT_EQ(responses.size(), 4u) << x.describe();
  EXPECT_EQ(responses[0].status, 200);
  EXPECT_EQ(jsonBody(responses[0].body).value("path", ""), "/whoami?tag=" + a);
  EXPECT_EQ(responses[1].status, 200);
  EXPECT_EQ(jsonBody(responses[1].body).value("bytes", -1), 5) << responses[1].body;
  EXPECT_EQ(responses[2].status, 403);
  EXPECT_EQ(responses[3].status, 200);
  EXPECT_EQ(jsonBody(responses[3].body).value("path", ""), "/whoami?tag=" + d);
  EXPECT_EQ(reached(a).size(), 1u);
  EXPECT_EQ(reached(b).size(), 1u);
  EXPECT_TRUE(reached(c).empty()) << originJoined(reached(c));
  EXPECT_EQ(reached(d).size(), 1u);
}

// --- malformed requests and limits -------------------------------------------------------

TEST_F(HttpProxyTest, SmugglingAndMalformedRequestsAreRefused) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test", "other.test"};  // a forwarded payload would be served
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  struct Case {
    std::string name;
    std::string head;  // the offending request; a valid follow-up request is appended
    int status;
  };
  const std::string T = "TAG";  // replaced per case
  const std::vector<Case> cases = {
      {"cl_and_te",
       "POST /upload?tag=TAG HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 5\r\n"
       "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
       400},
      {"te_and_cl",
       "POST /upload?tag=TAG HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked\r\n"
       "Content-Length: 5\r\n\r\n0\r\n\r\n",
       400},
      {"te_with_space_before_colon",
       "POST /upload?tag=TAG HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 5\r\n"
       "Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
       400},
      {"duplicate_content_length",
       "POST /upload?tag=TAG HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: 5\r\n"
       "Content-Length: 41\r\n\r\nhello",
       400},
      {"content_length_with_sign",
       "POST /upload?tag=TAG HTTP/1.1\r\nHost: allowed.test\r\nContent-Length: +5\r\n\r\nhello",
       400},
      {"chunked_not_the_final_coding",
       "POST /upload?tag=TAG HTTP/1.1\r\nHost: allowed.test\r\nTransfer-Encoding: chunked, gzip\r\n"
       "\r\n0\r\n\r\n",
       400},
      {"obs_fold",
       "GET /whoami?tag=TAG HTTP/1.1\r\nHost: allowed.test\r\nX-Folded: a\r\n b\r\n\r\n", 400},
      {"bad_header_name_char",
       "GET /whoami?tag=TAG HTTP/1.1\r\nHost: allowed.test\r\nX-Bad(Name): 1\r\n\r\n", 400},
      {"two_hosts",
       "GET /whoami?tag=TAG HTTP/1.1\r\nHost: allowed.test\r\nHost: other.test\r\n\r\n", 400},
      {"no_host", "GET /whoami?tag=TAG HTTP/1.1\r\nX-Nothing: 1\r\n\r\n", 400},
      {"absolute_form_host_mismatch",
       "GET http://other.test:8080/whoami?tag=TAG HTTP/1.1\r\nHost: allowed.test\r\n\r\n", 400},
      {"connect",
       "CONNECT allowed.test:8080 HTTP/1.1\r\nHost: allowed.test:8080\r\nX-Tag: TAG\r\n\r\n", 405},
      {"upgrade_h2c",
       "GET /whoami?tag=TAG HTTP/1.1\r\nHost: allowed.test\r\nConnection: Upgrade, "
       "HTTP2-Settings\r\n"
       "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
       400},
  };
  std::map<int, size_t> expectedByStatus;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string t = tag(c.name);
    std::string payload = c.head;
    for (size_t at = payload.find(T); at != std::string::npos; at = payload.find(T, at)) {
      payload.replace(at, T.size(), t);
    }
    payload += request("GET", "/whoami?tag=" + t + "-next", "allowed.test");
    auto x = rawHttpIn(*sb, originEndpoint(3), {payload}, {.readTimeoutSeconds = 3});
    auto responses = x.responses();
    ASSERT_FALSE(responses.empty()) << x.describe();
    EXPECT_EQ(responses[0].status, c.status) << x.describe();
    EXPECT_EQ(responses.size(), 1u)
        << "the request after a refused one was served: " << x.describe();
    EXPECT_TRUE(x.closedByServer()) << x.describe();
    EXPECT_TRUE(reached(t).empty()) << "reached the origin:" << originJoined(reached(t));
    ++expectedByStatus[c.status];
  }
  // One audit line (decision deny) per refused request, with the status it got.
  for (const auto& [status, n] : expectedByStatus) {
    ASSERT_OK_AND_ASSIGN(size_t got, sb->daemon().waitForAuditCount(
                                         auditWith({{"decision", "deny"}, {"status", status}}), n));
    EXPECT_EQ(got, n) << "audit lines for status " << status;
  }
  // The sandbox is still served after all that.
  EXPECT_EQ(get(*sb, "allowed.test", w().ip4(3), "/whoami").status(), 200);
}

TEST_F(HttpProxyTest, OversizedHeadAndUriAreRefused) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string bigHeader = tag("header");
  const std::string bigUri = tag("uri");
  const std::string control = tag("control");

  auto x = rawHttpIn(*sb, originEndpoint(3),
                     {request("GET", "/whoami?tag=" + bigHeader, "allowed.test",
                              "X-Big: " + std::string(40 * 1024, 'h') + "\r\n")});
  EXPECT_EQ(x.firstStatus(), 431) << x.describe();
  EXPECT_TRUE(x.closedByServer()) << x.describe();
  x = rawHttpIn(*sb, originEndpoint(3),
                {request("GET", "/whoami?tag=" + bigUri + "&pad=" + std::string(10 * 1024, 'u'),
                         "allowed.test")});
  EXPECT_EQ(x.firstStatus(), 414) << x.describe();
  EXPECT_TRUE(x.closedByServer()) << x.describe();
  EXPECT_TRUE(reached(bigHeader).empty()) << originJoined(reached(bigHeader));
  EXPECT_TRUE(reached(bigUri).empty()) << originJoined(reached(bigUri));

  // Sizes real clients send (a 4 KiB cookie, a 2 KiB URI) pass.
  x = rawHttpIn(*sb, originEndpoint(3),
                {request("GET", "/whoami?tag=" + control + "&pad=" + std::string(2 * 1024, 'u'),
                         "allowed.test",
                         "Cookie: c=" + std::string(4 * 1024, 'c') + "\r\nConnection: close\r\n")});
  EXPECT_EQ(x.firstStatus(), 200) << x.describe();
  EXPECT_EQ(reached(control).size(), 1u);
}

// Slowloris: a head that never completes - all at once, or dripped a byte at a time - is cut
// after --header-timeout-ms counted from its first byte; a kept-alive connection with no
// request is closed after --idle-timeout-ms.
TEST_F(HttpProxyTest, SlowClientsAreCutByHeaderAndIdleTimeouts) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(
      auto sb, start(s, false, {"--header-timeout-ms", "1000", "--idle-timeout-ms", "1000"}));
  const std::string partial = tag("partial");
  const std::string dripped = tag("dripped");
  const std::string idle = tag("idle");
  const std::string split = tag("split");
  auto closedAfterAboutOneSecond = [](const RawExchange& x) -> ::testing::AssertionResult {
    if (x.closedByServer() && x.seconds >= 0.8 && x.seconds <= 4.0) {
      return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << "want a close by the proxy after ~1 s: " << x.describe();
  };

  auto x = rawHttpIn(*sb, originEndpoint(3),
                     {"GET /whoami?tag=" + partial + " HTTP/1.1\r\nHost: allowed.test\r\n"},
                     {.readTimeoutSeconds = 8});
  EXPECT_TRUE(closedAfterAboutOneSecond(x));
  if (!x.data.empty()) {
    EXPECT_EQ(x.firstStatus(), 408) << x.describe();
  }

  // 60 bytes at 100 ms each: the head would take 6 s and never ends anyway.
  x = rawHttpIn(*sb, originEndpoint(3),
                {"GET /whoami?tag=" + dripped +
                 " HTTP/1.1\r\nHost: allowed.test\r\nX-Slow: " + std::string(20, 's')},
                {.dripSeconds = 0.1, .readTimeoutSeconds = 8});
  EXPECT_TRUE(closedAfterAboutOneSecond(x));

  x = rawHttpIn(*sb, originEndpoint(3), {request("GET", "/whoami?tag=" + idle, "allowed.test")},
                {.readTimeoutSeconds = 8});
  EXPECT_EQ(x.firstStatus(), 200) << x.describe();
  EXPECT_TRUE(closedAfterAboutOneSecond(x));

  // A head that arrives in two parts within the timeout is served.
  x = rawHttpIn(*sb, originEndpoint(3),
                {"GET /whoami?tag=" + split + " HTTP/1.1\r\n",
                 "Host: allowed.test\r\nConnection: close\r\n\r\n"},
                {.gapSeconds = 0.5});
  EXPECT_EQ(x.firstStatus(), 200) << x.describe();

  EXPECT_TRUE(reached(partial).empty()) << originJoined(reached(partial));
  EXPECT_TRUE(reached(dripped).empty()) << originJoined(reached(dripped));
  EXPECT_EQ(reached(idle).size(), 1u);
  EXPECT_EQ(reached(split).size(), 1u);
}

// --- bodies --------------------------------------------------------------------------------

// 512 MiB up (chunked from python; Content-Length from curl -T of a sparse file) and 512 MiB
// down, checked by sha256, while egressd's peak RSS grows by less than 64 MiB.
TEST_F(HttpProxyTest, LargeBodiesStreamInBoundedMemory) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const pid_t pid = sb->daemon().pid();
  ASSERT_OK_AND_ASSIGN(uint64_t hwmBefore, test::procStatusKib(pid, "VmHWM"));
  const std::string size = std::to_string(512 * kMiB);
  const std::string endpoint = originEndpoint(3);

  ASSERT_OK_AND_ASSIGN(json up, pythonClientIn(*sb, "stream.py",
                                               {"upload", "--connect", endpoint, "--host",
                                                "allowed.test", "--bytes", size, "--chunked"},
                                               milliseconds(120000)));
  EXPECT_EQ(up.value("status", 0), 200) << up;
  ASSERT_TRUE(up.contains("response")) << up;
  EXPECT_EQ(up["response"].value("bytes", int64_t{-1}), 512 * kMiB) << up;
  EXPECT_EQ(up["response"].value("sha256", ""), up.value("sent_sha256", "x")) << up;

  ASSERT_OK_AND_ASSIGN(auto dir, test::TempDir::create());
  const std::string sparse = dir.path() + "/zeros.bin";
  {
    const int fd = ::open(sparse.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0644);
    ASSERT_GE(fd, 0);
    const int rc = ::ftruncate(fd, 512 * kMiB);  // a hole: no disk space used
    ::close(fd);
    ASSERT_EQ(rc, 0);
  }
  ASSERT_OK_AND_ASSIGN(json zeros, pythonClientIn(*sb, "stream.py", {"sha-zeros", "--bytes", size},
                                                  milliseconds(60000)));
  auto put = curlIn(*sb,
                    {"--max-time", "90", "-T", sparse, "--resolve",
                     "allowed.test:" + kOriginPort + ":" + w().ip4(3),
                     "http://allowed.test:" + kOriginPort + "/upload"},
                    milliseconds(100000));
  ASSERT_EQ(put.status(), 200) << put.describe();
  json putBody = jsonBody(put.last().body);
  EXPECT_EQ(putBody.value("bytes", int64_t{-1}), 512 * kMiB) << put.describe();
  EXPECT_EQ(putBody.value("sha256", ""), zeros.value("sha256", "x")) << put.describe();

  ASSERT_OK_AND_ASSIGN(json down, pythonClientIn(*sb, "stream.py",
                                                 {"download", "--connect", endpoint, "--host",
                                                  "allowed.test", "--bytes", size},
                                                 milliseconds(120000)));
  EXPECT_EQ(down.value("status", 0), 200) << down;
  EXPECT_EQ(down.value("bytes", int64_t{-1}), 512 * kMiB) << down;
  EXPECT_EQ(down.value("sha256", ""), down.value("expected_sha256", "x")) << down;

  ASSERT_OK_AND_ASSIGN(uint64_t hwmAfter, test::procStatusKib(pid, "VmHWM"));
  EXPECT_LT(hwmAfter - hwmBefore, uint64_t{64 * 1024})
      << "egressd's VmHWM grew from " << hwmBefore << " to " << hwmAfter << " KiB";

  ASSERT_OK_AND_ASSIGN(
      json a, sb->daemon().waitForAudit(auditWith({{"method", "GET"}, {"path", "/download"}})));
  EXPECT_GE(a.value("bytes_out", int64_t{0}), 512 * kMiB) << a;
}

// curl sends "Expect: 100-continue" and waits for the 100 before the body; the proxy must
// pass the origin's 100 on (a proxy that swallows it costs the --expect100-timeout).
TEST_F(HttpProxyTest, ExpectContinueUploadIsPrompt) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  ASSERT_OK_AND_ASSIGN(auto dir, test::TempDir::create());
  ASSERT_OK_AND_ASSIGN(std::string file, dir.writeFile("body.bin", std::string(64 * 1024, 'e')));

  const auto started = std::chrono::steady_clock::now();
  auto r = curlIn(*sb, {"--expect100-timeout", "10", "-H", "Expect: 100-continue", "--data-binary",
                        "@" + file, "--resolve", "allowed.test:" + kOriginPort + ":" + w().ip4(3),
                        "http://allowed.test:" + kOriginPort + "/upload"});
  const auto elapsed = std::chrono::steady_clock::now() - started;
  ASSERT_EQ(r.status(), 200) << r.describe();
  ASSERT_GE(r.responses.size(), 2u) << "no interim response: " << r.describe();
  EXPECT_EQ(r.responses.front().status, 100) << r.describe();
  EXPECT_EQ(jsonBody(r.last().body).value("bytes", -1), 64 * 1024) << r.describe();
  EXPECT_LT(elapsed, std::chrono::seconds(2));
  // A denied upload is answered at once, without waiting for (or reading) its body.
  const auto deniedStart = std::chrono::steady_clock::now();
  auto denied =
      curlIn(*sb, {"--expect100-timeout", "10", "-H", "Expect: 100-continue", "--data-binary",
                   "@" + file, "--resolve", "other.test:" + kOriginPort + ":" + w().ip4(4),
                   "http://other.test:" + kOriginPort + "/upload"});
  EXPECT_EQ(denied.status(), 403) << denied.describe();
  EXPECT_LT(std::chrono::steady_clock::now() - deniedStart, std::chrono::seconds(2));

  // Through egressd, not around it.
  ASSERT_OK_AND_ASSIGN(json a, sb->daemon().waitForAudit(
                                   auditWith({{"path", "/upload"}, {"host", "allowed.test"}})));
  EXPECT_EQ(a.value("decision", ""), "allow") << a;
  EXPECT_EQ(a.value("status", 0), 200) << a;
  EXPECT_EQ(a.value("bytes_in", 0), 64 * 1024) << a;
}

TEST_F(HttpProxyTest, WebSocketIsRelayedAfterA101) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  ASSERT_OK_AND_ASSIGN(json ws, pythonClientIn(*sb, "ws_client.py",
                                               {"--connect", originEndpoint(3), "--host",
                                                "allowed.test:" + kOriginPort}));
  EXPECT_EQ(ws.value("status", 0), 101) << ws;
  EXPECT_TRUE(ws.value("accept_ok", false)) << ws;
  EXPECT_EQ(ws.value("text", ""), "hello through egressd \u00e9") << ws;
  EXPECT_TRUE(ws.value("binary_ok", false)) << ws;
  EXPECT_TRUE(ws.value("close_ok", false)) << ws;
  EXPECT_FALSE(ws.contains("error")) << ws;

  // To a denied host the handshake gets egressd's 403, and no tunnel.
  ASSERT_OK_AND_ASSIGN(json no, pythonClientIn(*sb, "ws_client.py",
                                               {"--connect", originEndpoint(4), "--host",
                                                "other.test:" + kOriginPort}));
  EXPECT_EQ(no.value("status", 0), 403) << no;
  EXPECT_FALSE(no.value("binary_ok", true)) << no;

  ASSERT_OK_AND_ASSIGN(
      json a, sb->daemon().waitForAudit(auditWith({{"path", "/ws"}, {"host", "allowed.test"}})));
  EXPECT_EQ(a.value("protocol", ""), "websocket") << a;
  EXPECT_EQ(a.value("status", 0), 101) << a;
  EXPECT_EQ(a.value("decision", ""), "allow") << a;
  EXPECT_EQ(a.value("host", ""), "allowed.test") << a;
}

// --- scale ---------------------------------------------------------------------------------

TEST_F(HttpProxyTest, ThousandConcurrentKeepAliveConnections) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  ASSERT_OK_AND_ASSIGN(
      json res, pythonClientIn(*sb, "many_conns.py",
                               {"--connect", originEndpoint(3), "--host", "allowed.test", "--conns",
                                "1000", "--requests", "2", "--timeout", "60"},
                               milliseconds(90000)));
  EXPECT_EQ(res.value("connected", 0), 1000) << res;
  EXPECT_EQ(res.value("ok", 0), 2000) << res;
  EXPECT_EQ(res.value("mismatched", -1), 0) << res;
  EXPECT_TRUE(res.value("errors", json::array()).empty()) << res;
  // Every connection and request went through the proxy.
  ASSERT_OK_AND_ASSIGN(std::string text, sb->daemon().scrapeMetrics());
  auto samples = test::parsePrometheusText(text);
  const std::string id = sb->daemon().sandboxId();
  EXPECT_EQ(test::promValue(samples, "egressd_proxy_connections_total", {{"sandbox", id}}), 1000.0);
  EXPECT_EQ(test::promValue(samples, "egressd_requests_total",
                            {{"sandbox", id}, {"layer", "proxy"}, {"decision", "allow"}}),
            2000.0);
}

// --- observability -------------------------------------------------------------------------

TEST_F(HttpProxyTest, MetricsCountDecisionsByReason) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test", "*.allowed.test"};
  s.deniedHosts = {"blocked.allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string id = sb->daemon().sandboxId();

  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(get(*sb, "allowed.test", w().ip4(3), "/whoami").status(), 200);
  }
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(get(*sb, "other.test", w().ip4(4), "/whoami").status(), 403);
  }
  EXPECT_EQ(get(*sb, "blocked.allowed.test", w().ip4(3), "/whoami").status(), 403);

  ASSERT_OK_AND_ASSIGN(std::string before, sb->daemon().scrapeMetrics());
  auto samples = test::parsePrometheusText(before);
  auto value = [&](const std::string& name, const std::map<std::string, std::string>& labels) {
    return test::promValue(samples, name, labels);
  };
  auto proxyDecisions = [&](const std::string& decision, const std::string& reason) {
    std::map<std::string, std::string> labels{
        {"sandbox", id}, {"layer", "proxy"}, {"decision", decision}};
    if (!reason.empty()) {
      labels["reason"] = reason;
    }
    return value("egressd_requests_total", labels);
  };
  EXPECT_EQ(proxyDecisions("allow", "allowed_host"), 3.0) << before;
  EXPECT_EQ(proxyDecisions("allow", ""), 3.0) << before;
  EXPECT_EQ(proxyDecisions("deny", "not_in_allowed_hosts"), 2.0) << before;
  EXPECT_EQ(proxyDecisions("deny", "denied_host"), 1.0) << before;
  EXPECT_EQ(proxyDecisions("deny", ""), 3.0) << before;
  EXPECT_EQ(
      value("egressd_proxy_request_duration_seconds_bucket", {{"sandbox", id}, {"le", "+Inf"}}),
      6.0)
      << before;
  EXPECT_TRUE(value("egressd_proxy_open_connections", {{"sandbox", id}}).has_value()) << before;
  const auto kernelDenials =
      value("egressd_kernel_decisions_total", {{"sandbox", id}, {"decision", "deny"}});
  ASSERT_TRUE(kernelDenials.has_value()) << "no kernel series for the sandbox:\n" << before;

  // One denied direct connection moves the kernel's deny count by exactly one.
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(4), std::to_string(kTcpA)}), "EPERM");
  ASSERT_OK_AND_ASSIGN(std::string after, sb->daemon().scrapeMetrics());
  samples = test::parsePrometheusText(after);
  EXPECT_EQ(value("egressd_kernel_decisions_total", {{"sandbox", id}, {"decision", "deny"}}),
            *kernelDenials + 1)
      << after;
}

TEST_F(HttpProxyTest, KernelDenialsAreAudited) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(3), std::to_string(kTcpA)}), "EPERM");
  ASSERT_OK_AND_ASSIGN(
      json a, sb->daemon().waitForAudit(
                  auditWith({{"layer", "kernel"}, {"orig_dst", hostPort(w().ip4(3), kTcpA)}})));
  EXPECT_EQ(a.value("sandbox", ""), sb->daemon().sandboxId()) << a;
  EXPECT_EQ(a.value("decision", ""), "deny") << a;
  EXPECT_EQ(a.value("protocol", ""), "tcp") << a;
  EXPECT_FALSE(a.value("reason", "").empty()) << a;
}

// `egressd run` serves the proxy for its transient sandbox too.
TEST_F(HttpProxyTest, EgressdRunProxiesItsCommand) {
  ASSERT_OK(test::requireBinaries());
  ASSERT_OK_AND_ASSIGN(auto dir, test::TempDir::create());
  ASSERT_OK_AND_ASSIGN(auto parent, test::TestCgroup::create());
  test::PinRoot pin;
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(std::string policy, dir.writeFile("policy.yaml", policyYaml(s)));
  const std::string audit = dir.path() + "/audit.jsonl";
  const std::string allowed = tag("allowed");
  const std::string denied = tag("denied");
  auto curlCmd = [&](const std::string& host, int ipHost, const std::string& t) {
    return "curl --noproxy '*' -sS --max-time 10 -o /dev/null -w '" + host +
           "=%{http_code}\\n' --resolve " + host + ":" + kOriginPort + ":" + w().ip4(ipHost) +
           " 'http://" + host + ":" + kOriginPort + "/whoami?tag=" + t + "'";
  };
  const std::string script =
      curlCmd("allowed.test", 3, allowed) + "; " + curlCmd("other.test", 4, denied);
  RunResult r = runGuarded(
      {test::egressdBin(), "run", "--policy", policy, "--pin-root", pin.path(), "--cgroup-parent",
       parent.path(), "--audit-log", audit, "--", "/bin/sh", "-c", script},
      "", "", milliseconds(30000));
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "allowed.test=200\n")) << r.describe();
  EXPECT_TRUE(contains(r.out, "other.test=403\n")) << r.describe();
  EXPECT_EQ(reached(allowed).size(), 1u) << origin_->log();
  EXPECT_TRUE(reached(denied).empty()) << originJoined(reached(denied));
  // The audit log is complete once `egressd run` has exited.
  auto text = readFile(audit);
  ASSERT_TRUE(text.ok()) << text.error().message();
  EXPECT_TRUE(contains(*text, "\"host\":\"allowed.test\"")) << *text;
  EXPECT_TRUE(contains(*text, "\"decision\":\"deny\"")) << *text;
}

// --- upstream failures ---------------------------------------------------------------------

TEST_F(HttpProxyTest, UnreachableOrUnresolvableUpstreamGives502) {
  PolicySpec s = spec();
  s.enableInternet = true;
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));

  const std::string noServer = std::to_string(kHttpNoServer);
  auto r = curlIn(*sb, {"--resolve", "allowed.test:" + noServer + ":" + w().ip4(3),
                        "http://allowed.test:" + noServer + "/whoami"});
  EXPECT_EQ(r.status(), 502) << r.describe();
  EXPECT_EQ(r.last().header("X-Egressd-Reason"), "upstream_unreachable") << r.describe();
  ASSERT_OK_AND_ASSIGN(json a, sb->daemon().waitForAudit(auditWith({{"status", 502}})));
  EXPECT_EQ(a.value("decision", ""), "error") << a;
  EXPECT_EQ(a.value("host", ""), "allowed.test") << a;
  EXPECT_EQ(a.value("orig_dst", ""), hostPort(w().ip4(3), kHttpNoServer)) << a;

  // A name the upstream resolver does not know.
  r = get(*sb, "nonexistent.test", w().ip4(3), "/whoami");
  EXPECT_EQ(r.status(), 502) << r.describe();
  EXPECT_EQ(r.last().header("X-Egressd-Reason"), "resolve_failed") << r.describe();
}

TEST_F(HttpProxyTest, ConnectionHeadersStayOnTheirHop) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));

  // The client's close (and what its Connection header names) never reaches the origin,
  // so the upstream connection can serve the next client; the client is told it closes.
  auto r = get(*sb, "allowed.test", w().ip4(3), "/whoami",
               {"-H", "Connection: close, X-Hop-Only", "-H", "X-Hop-Only: 1", "-H",
                "Keep-Alive: timeout=5"});
  ASSERT_EQ(r.status(), 200) << r.describe();
  EXPECT_EQ(r.last().header("Connection"), "close") << r.describe();
  json seen = jsonBody(r.last().body);
  ASSERT_TRUE(seen.is_object()) << r.describe();
  const json& headers = seen.at("headers");
  EXPECT_FALSE(headers.contains("connection")) << headers;
  EXPECT_FALSE(headers.contains("x-hop-only")) << headers;
  EXPECT_FALSE(headers.contains("keep-alive")) << headers;
  EXPECT_EQ(headers.value("host", ""), "allowed.test:" + std::to_string(kHttpOrigin)) << headers;
}

// A connection the kernel did not redirect (here: a process outside the sandbox that dials
// the proxy port directly) has no original destination: the proxy closes it unanswered.
TEST_F(HttpProxyTest, ConnectionWithoutOriginalDestinationIsClosed) {
  PolicySpec s = spec();
  s.enableInternet = true;
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  ASSERT_OK_AND_ASSIGN(json status, sandboxStatus(*sb));
  const std::string target = status.value("proxyTarget", "");
  ASSERT_NE(target.rfind(':'), std::string::npos) << status;
  const std::string port = target.substr(target.rfind(':') + 1);

  const std::string t = tag("direct");
  RawExchange x =
      rawHttpIn(*sb, "127.0.0.1:" + port, {request("GET", "/whoami?" + t, "allowed.test")},
                RawOptions{.outsideSandbox = true});
  EXPECT_EQ(x.data, "") << "the proxy answered a connection it cannot place: " << x.describe();
  EXPECT_TRUE(x.closedByServer()) << x.describe();
  ASSERT_OK_AND_ASSIGN(json a,
                       sb->daemon().waitForAudit(auditWith({{"reason", "orig_dst_missing"}})));
  EXPECT_EQ(a.value("decision", ""), "deny") << a;
  EXPECT_TRUE(origin_->requestsMatching(t).empty()) << origin_->log();
}

TEST_F(HttpProxyTest, SilentUpstreamGives504AfterTheIoTimeout) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s, false, {"--io-timeout-ms", "1000"}));

  const auto started = std::chrono::steady_clock::now();
  auto r = get(*sb, "allowed.test", w().ip4(3), "/stall?ms=4000");
  const auto took = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(r.status(), 504) << r.describe();
  EXPECT_EQ(r.last().header("X-Egressd-Reason"), "upstream_timeout") << r.describe();
  EXPECT_LT(took, std::chrono::milliseconds(3500)) << "the proxy waited for the upstream";
  ASSERT_OK_AND_ASSIGN(json a, sb->daemon().waitForAudit(auditWith({{"status", 504}})));
  EXPECT_EQ(a.value("decision", ""), "error") << a;
  EXPECT_EQ(a.value("reason", ""), "upstream_timeout") << a;
  // A prompt upstream on the same daemon is unaffected.
  EXPECT_EQ(get(*sb, "allowed.test", w().ip4(3), "/stall?ms=100").status(), 200);
}

// --- requests egressd refuses or rewrites (issue 12, docs/security.md "Requests") --------

// A request that asks to switch protocols, then a request for a denied host on the same
// connection: were the switch relayed, the second would travel in the tunnel unjudged (the
// origin's /switch logs tunnelled lines as "tunnel ...").
RawExchange upgradeThenDenied(const Sandbox& sb, const std::string& endpoint,
                              const std::string& first, const std::string& tunnelTag) {
  return rawHttpIn(sb, endpoint,
                   {first, "GET /whoami?tag=" + tunnelTag +
                               " HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n"},
                   {.gapSeconds = 0.3});
}

// Item 4: only `websocket` is forwarded by default, whatever the spelling: every element of
// every Upgrade header counts, with or without "Connection: upgrade", in HTTP/1.0 too.
TEST_F(HttpProxyTest, OnlyAllowedUpgradeProtocolsAreForwarded) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string host = "allowed.test:" + kOriginPort;
  struct Case {
    std::string name;
    std::string head;  // after the request line and Host
    std::string version = "HTTP/1.1";
  };
  const std::vector<Case> refused = {
      {"other", "Connection: Upgrade\r\nUpgrade: foo\r\n"},
      {"listed-after-websocket", "Connection: Upgrade\r\nUpgrade: websocket, foo\r\n"},
      {"second-header", "Connection: Upgrade\r\nUpgrade: websocket\r\nUpgrade: foo/2\r\n"},
      {"case", "connection: UPGRADE\r\nupgrade: FOO\r\n"},
      {"without-connection-upgrade", "Upgrade: foo\r\n"},
      {"http10", "Connection: Upgrade\r\nUpgrade: foo\r\n", "HTTP/1.0"},
  };
  for (const Case& c : refused) {
    SCOPED_TRACE(c.name);
    const std::string t = tag(c.name);
    const std::string tunnelled = tag(c.name + "-tunnelled");
    auto x = upgradeThenDenied(
        *sb, originEndpoint(3),
        "GET /switch?tag=" + t + " " + c.version + "\r\nHost: " + host + "\r\n" + c.head + "\r\n",
        tunnelled);
    auto responses = x.responses();
    ASSERT_GE(responses.size(), 1u) << x.describe();
    EXPECT_EQ(responses[0].status, 403) << x.describe();
    EXPECT_EQ(responses[0].header("X-Egressd-Reason"), "upgrade_refused") << x.describe();
    EXPECT_TRUE(contains(responses[0].body, "http.allowUpgrades")) << x.describe();
    EXPECT_TRUE(reached(t).empty()) << "refused before forwarding:" << originJoined(reached(t));
    EXPECT_TRUE(reached(tunnelled).empty()) << originJoined(reached(tunnelled));
  }
  ASSERT_OK_AND_ASSIGN(json a, sb->daemon().waitForAudit(auditWith(
                                   {{"reason", "upgrade_refused"}, {"host", "allowed.test"}})));
  EXPECT_EQ(a.value("decision", ""), "deny") << a;
  EXPECT_EQ(a.value("status", 0), 403) << a;

  // websocket still switches (the origin's /switch checks nothing)...
  const std::string ws = tag("websocket");
  const std::string inside = tag("inside");
  auto x = rawHttpIn(*sb, originEndpoint(3),
                     {"GET /switch?tag=" + ws + " HTTP/1.1\r\nHost: " + host +
                          "\r\nConnection: Upgrade\r\nUpgrade: WebSocket/13\r\n\r\n",
                      "line " + inside + "\n"},
                     {.gapSeconds = 0.3});
  EXPECT_TRUE(x.data.starts_with("HTTP/1.1 101")) << x.describe();
  EXPECT_TRUE(contains(x.data, "echo line " + inside)) << x.describe();
  EXPECT_EQ(reached(ws).size(), 1u) << origin_->log();

  // ...but an upstream that switches to another protocol than the one asked for is cut off
  // before its 101 reaches the client.
  const std::string swapped = tag("swapped");
  const std::string swappedInside = tag("swapped-inside");
  x = upgradeThenDenied(*sb, originEndpoint(3),
                        "GET /switch?proto=foo&tag=" + swapped + " HTTP/1.1\r\nHost: " + host +
                            "\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
                        swappedInside);
  EXPECT_FALSE(contains(x.data, " 101 ")) << x.describe();
  EXPECT_TRUE(reached(swappedInside).empty()) << originJoined(reached(swappedInside));

  // "Connection: upgrade" without an Upgrade header is an ordinary request; neither
  // header reaches the origin.
  auto r = get(*sb, "allowed.test", w().ip4(3), "/whoami?tag=" + tag("conn-only"),
               {"-H", "Connection: upgrade"});
  ASSERT_EQ(r.status(), 200) << r.describe();
  const json seen = jsonBody(r.last().body).value("headers", json::object());
  EXPECT_FALSE(seen.contains("connection")) << seen;
  EXPECT_FALSE(seen.contains("upgrade")) << seen;
}

// Item 4: http.allowUpgrades replaces the list: another protocol may then switch, and
// websocket no longer does.
TEST_F(HttpProxyTest, AllowUpgradesListsTheProtocolsThatMaySwitch) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  s.extraYaml = "http: { allowUpgrades: [foo] }\n";
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string host = "allowed.test:" + kOriginPort;
  const std::string t = tag("foo");
  const std::string inside = tag("inside");
  auto x = rawHttpIn(*sb, originEndpoint(3),
                     {"GET /switch?tag=" + t + " HTTP/1.1\r\nHost: " + host +
                          "\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n",
                      "line " + inside + "\n"},
                     {.gapSeconds = 0.3});
  EXPECT_TRUE(x.data.starts_with("HTTP/1.1 101")) << x.describe();
  EXPECT_TRUE(contains(x.data, "echo line " + inside)) << x.describe();

  ASSERT_OK_AND_ASSIGN(json ws, pythonClientIn(*sb, "ws_client.py",
                                               {"--connect", originEndpoint(3), "--host", host}));
  EXPECT_EQ(ws.value("status", 0), 403) << ws;
}

// Item 5b: TRACE (and TRACK) would echo the request, injected credentials included, back
// to the sandbox: answered 405 by egressd unless http.allowTrace.
TEST_F(HttpProxyTest, TraceIsRefusedUnlessThePolicyAllowsIt) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  const std::string host = "allowed.test:" + kOriginPort;
  {
    ASSERT_OK_AND_ASSIGN(auto sb, start(s));
    for (const std::string method : {"TRACE", "TRACK", "trace"}) {
      SCOPED_TRACE(method);
      const std::string t = tag(method);
      auto x = rawHttpIn(*sb, originEndpoint(3),
                         {method + " /x?tag=" + t + " HTTP/1.1\r\nHost: " + host +
                          "\r\nConnection: close\r\n\r\n"});
      auto responses = x.responses();
      ASSERT_EQ(responses.size(), 1u) << x.describe();
      // TRACK and a lowercase trace are not methods llhttp knows: the parser refuses them.
      if (method == "TRACE") {
        EXPECT_EQ(responses[0].status, 405) << x.describe();
        EXPECT_EQ(responses[0].header("X-Egressd-Reason"), "method_refused") << x.describe();
      } else {
        EXPECT_GE(responses[0].status, 400) << x.describe();
      }
      EXPECT_TRUE(reached(t).empty()) << originJoined(reached(t));
    }
    ASSERT_OK_AND_ASSIGN(
        json a,
        sb->daemon().waitForAudit(auditWith({{"reason", "method_refused"}, {"method", "TRACE"}})));
    EXPECT_EQ(a.value("status", 0), 405) << a;
  }
  s.extraYaml = "http: { allowTrace: true }\n";
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string t = tag("allowed");
  auto x = rawHttpIn(
      *sb, originEndpoint(3),
      {"TRACE /x?tag=" + t + " HTTP/1.1\r\nHost: " + host + "\r\nConnection: close\r\n\r\n"});
  auto responses = x.responses();
  ASSERT_EQ(responses.size(), 1u) << x.describe();
  EXPECT_EQ(responses[0].status, 200) << x.describe();
  EXPECT_EQ(reached(t).size(), 1u) << origin_->log();
}

// Item 6: headers a sandbox must not be able to write never reach the upstream, in any
// spelling (case, '_' for '-') and however often repeated; Forwarded & co. are dropped by
// default and replaced by egressd's own with http.forwarded: sandbox.
TEST_F(HttpProxyTest, TrustHeadersFromTheSandboxAreStripped) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  const std::vector<std::string> sent = {"Proxy-Authorization: Basic c2FuZGJveDpwYXNz",
                                         "proxy-authorization: Basic second",
                                         "Proxy_Authorization: Basic underscore",
                                         "Proxy-Foo: bar",
                                         "X-Egressd-Sandbox: someone-else",
                                         "x_egressd_rule: allowedHosts[0]",
                                         "Forwarded: for=203.0.113.7",
                                         "X-Forwarded-For: 203.0.113.7",
                                         "x-forwarded-for: 198.51.100.1",
                                         "X_Forwarded_For: 198.51.100.2",
                                         "X-Forwarded-Host: admin.internal",
                                         "X-Real-IP: 203.0.113.7",
                                         "True-Client-IP: 203.0.113.7",
                                         "X-Keep: kept"};
  std::vector<std::string> args;
  for (const std::string& h : sent) {
    args.push_back("-H");
    args.push_back(h);
  }
  auto seenBy = [&](Sandbox& sb) {
    auto r = get(sb, "allowed.test", w().ip4(3), "/whoami?tag=" + tag("trust"), args);
    EXPECT_EQ(r.status(), 200) << r.describe();
    return jsonBody(r.last().body).value("headers", json::object());
  };
  {
    ASSERT_OK_AND_ASSIGN(auto sb, start(s));
    const json seen = seenBy(*sb);
    EXPECT_EQ(seen.value("x-keep", ""), "kept") << seen;
    for (const auto& [name, value] : seen.items()) {
      EXPECT_FALSE(name.starts_with("proxy")) << name << ": " << value;
      EXPECT_FALSE(name.starts_with("x-egressd") || name.starts_with("x_egressd")) << name;
      EXPECT_FALSE(name.starts_with("x-forwarded") || name.starts_with("x_forwarded")) << name;
      EXPECT_NE(name, "forwarded");
      EXPECT_NE(name, "x-real-ip");
      EXPECT_NE(name, "true-client-ip");
    }
  }
  s.extraYaml = "http: { forwarded: sandbox }\n";
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string id = sb->daemon().sandboxId();
  const json seen = seenBy(*sb);
  EXPECT_EQ(seen.value("forwarded", ""), "for=\"_" + id + "\"") << seen;
  EXPECT_EQ(seen.value("x-forwarded-for", ""), id) << "egressd's value only: " << seen;
  EXPECT_FALSE(seen.contains("x_forwarded_for")) << seen;
  EXPECT_FALSE(seen.contains("x-forwarded-host")) << seen;
  EXPECT_FALSE(seen.contains("proxy-authorization")) << seen;
}

}  // namespace
}  // namespace egressd::e2e
