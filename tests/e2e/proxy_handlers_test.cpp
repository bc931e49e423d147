// Handlers in the proxy (issue 5): policy-file `outboundByHost` handlers run by the
// single-sandbox daemon (world.h Sandbox), with real clients inside the sandbox (curl,
// clients/raw_http.py) and real origins in the test internet (http_origin.py on
// 198.18.N.{3,4}:8080, over TLS on :8443 with the world's test CA).
//
// One sandbox serves the whole suite (one daemon start): its policy binds a handler to each
// of a set of names, so each test exercises one behaviour through one name. Nothing in it
// allows the names otherwise (enableInternet false, no allowedHosts): every request that
// gets anywhere got there because a handler decided so.
//
// Every request carries a tag in its query string; the origin logs each request, so "the
// upstream was never contacted" is checked by the tag's absence next to a request of the
// same test that did arrive.
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <set>

#include "common/fs.h"
#include "http_client.h"
#include "test_ca.h"
#include "world.h"

namespace egressd::e2e {
namespace {

using nlohmann::json;
using test::milliseconds;

const std::string kOriginPort = std::to_string(kHttpOrigin);
const std::string kGoodPort = std::to_string(kHttpsGood);

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

json jsonBody(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  return j.is_object() ? j : json::object();
}

// A request header as the origin received it: /whoami's hex copy, which egressd's redaction
// of injected secrets in the response leaves readable. "" when absent.
std::string received(const json& who, const std::string& name) {
  const json hex = who.value("headers_hex", json::object());
  return test::unhex(hex.is_object() ? hex.value(name, "") : "");
}

// A small HTTP/1.1 server on a unix socket (the `reroute: unix:` target): answers every GET
// with JSON {unix: true, path, host, headers}.
constexpr const char* kUnixServer = R"PY(
import http.server, json, os, socketserver, sys

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def do_GET(self):
        headers = {k.lower(): v for k, v in self.headers.items()}
        body = (json.dumps({"unix": True, "path": self.path, "host": self.headers.get("Host", ""),
                            "headers": headers}) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

server = Server(sys.argv[1], Handler)
with open(sys.argv[2] + ".tmp", "w") as f:
    f.write("ready\n")
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
server.serve_forever()
)PY";

// What the suite shares: the sandbox, its secret file, the unix-socket server.
struct Suite {
  test::TempDir dir = test::TempDir::createOrThrow();
  std::string tokenFile;
  std::string token;
  std::vector<std::string> secretValues;  // every value the token file ever held
  std::string unixSocket;
  std::optional<test::Process> unixServer;
  std::unique_ptr<Sandbox> sb;
};

class ProxyHandlersTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) {
      return;
    }
    auto https = httpsOrigin();
    ASSERT_TRUE(https.ok()) << https.error().message();
    httpsOrigin_ = *https;
    auto origin = httpOrigin();
    ASSERT_TRUE(origin.ok()) << origin.error().message();
    origin_ = *origin;
    if (!suite_) {
      ASSERT_TRUE(setUpSuite().ok()) << setupError_;
    }
    ASSERT_NE(suite_, nullptr) << setupError_;
    s_ = suite_.get();
  }

  static void TearDownTestSuite() { suite_.reset(); }

  Status setUpSuite() {
    auto fail = [](const std::string& why) {
      setupError_ = why;
      return Status(Error(EIO, why));
    };
    auto s = std::make_unique<Suite>();
    s->token = "tok-" + std::to_string(::getpid()) + "-9f3Kq7Zr";
    s->secretValues.push_back(s->token);
    auto file = s->dir.writeFile("token", s->token + "\n");
    if (!file.ok()) {
      return fail(file.error().message());
    }
    s->tokenFile = *file;

    // The unix-socket service, outside every sandbox (the daemon connects to it).
    s->unixSocket = s->dir.path() + "/kv.sock";
    auto script = s->dir.writeFile("unix_server.py", kUnixServer);
    if (!script.ok()) {
      return fail(script.error().message());
    }
    const std::string ready = s->dir.path() + "/unix.ready";
    auto proc = test::Process::spawn(
        test::SpawnOptions{.argv = {test::python3Bin(), *script, s->unixSocket, ready}});
    if (!proc.ok()) {
      return fail(proc.error().message());
    }
    s->unixServer.emplace(std::move(*proc));
    for (int i = 0; i < 100 && !pathExists(ready); ++i) {
      usleep(50 * 1000);
    }
    if (!pathExists(ready)) {
      return fail("the unix-socket server did not start: " + s->unixServer->stderrText());
    }

    PolicySpec spec;
    spec.name = "handlers";
    spec.proxyPorts = std::vector<int>{kHttp, kHttps, kHttpOrigin, kHttpsGood};
    spec.deniedHosts = {"denied.allowed.test"};
    const std::string otherOrigin = w().ip4(4) + ":" + kOriginPort;
    spec.extraYaml =
        "interceptHttps: false\n"
        "secrets:\n"
        "  TOKEN: { file: \"" +
        s->tokenFile +
        "\" }\n"
        "  MISSING: { file: \"" +
        s->dir.path() +
        "/no-such-secret\" }\n"
        "outboundByHost:\n"
        "  inject.allowed.test: inject\n"
        "  denied.allowed.test: inject\n"
        "  readonly.allowed.test: readOnly\n"
        "  kv.test: kv\n"
        "  tcp.allowed.test: toOther\n"
        "  unix.allowed.test: toUnix\n"
        "  tls.allowed.test: toTls\n"
        "  broken.allowed.test: broken\n"
        "  other.test: passOn\n"
        "  strict.allowed.test: strict\n"
        "  strict-http.allowed.test: strictToHttp\n"
        "  strict-https.allowed.test: strictToHttps\n"
        "  apikey.allowed.test: apiKey\n"
        "outboundHandlers:\n"
        "  inject:\n"
        "    - setHeader: { name: Authorization, value: \"Bearer ${secret:TOKEN}\", "
        "allowPlaintext: true }\n"
        "    - removeHeader: { name: Cookie }\n"
        "  strict:\n"
        "    - setHeader: { name: Authorization, value: \"Bearer ${secret:TOKEN}\" }\n"
        "  strictToHttp:\n"
        "    - setHeader: { name: Authorization, value: \"Bearer ${secret:TOKEN}\" }\n"
        "    - reroute: { upstream: \"http://other.test:" +
        kOriginPort +
        "\" }\n"
        "  strictToHttps:\n"
        "    - setHeader: { name: Authorization, value: \"Bearer ${secret:TOKEN}\" }\n"
        "    - reroute: { upstream: \"https://other.test:" +
        kGoodPort +
        "\" }\n"
        "  apiKey:\n"
        "    - setHeader: { name: X-Api-Key, value: \"key-${sandbox}\" }\n"
        "  readOnly:\n"
        "    - deny: { status: 405, body: \"read only\\n\", unless: { method: [GET, "
        "HEAD] } }\n"
        "  kv:\n"
        "    - respond: { status: 200, headers: { Content-Type: application/json, "
        "X-Kv: virtual }, body: '{\"ok\":true}' }\n"
        "  toOther:\n"
        "    - setHeader: { name: X-Rerouted, value: \"by ${sandbox}\" }\n"
        "    - reroute: { upstream: \"" +
        otherOrigin +
        "\" }\n"
        "  toUnix:\n"
        "    - setHeader: { name: X-Via, value: unix }\n"
        "    - reroute: { upstream: \"unix:" +
        s->unixSocket +
        "\" }\n"
        "  toTls:\n"
        "    - reroute: { upstream: \"https://other.test:" +
        kGoodPort +
        "\" }\n"
        "  broken:\n"
        "    - setHeader: { name: X-Fine, value: \"${secret:TOKEN}\" }\n"
        "    - setHeader: { name: X-Broken, value: \"${secret:MISSING}\" }\n"
        "  passOn:\n"
        "    - forward: {}\n";
    auto ca = testCa();
    if (!ca.ok()) {
      return fail(ca.error().message());
    }
    auto sb = Sandbox::start(
        spec, SandboxOptions{.auditLog = true,
                             .daemonArgs = {"--upstream-ca-file", (*ca)->caCertFile()}});
    if (!sb.ok()) {
      return fail(sb.error().message());
    }
    s->sb = std::move(*sb);
    suite_ = std::move(s);
    return okStatus();
  }

  Sandbox& sb() { return *s_->sb; }
  std::string sandboxId() { return s_->sb->daemon().sandboxId(); }
  std::string sandboxCa() { return "/run/egressd/sandboxes/" + sandboxId() + "/ca.crt"; }

  // Unique in this binary: put in a query string, it says which requests reached an origin.
  static std::string tag(const std::string& what) {
    static std::atomic<int> counter{0};
    char number[16];
    std::snprintf(number, sizeof(number), "%05d", counter++);
    return what + "-" + number;
  }

  // curl http://HOST:8080PATH inside the sandbox, connecting to the .3 origin's address.
  CurlReply get(const std::string& host, const std::string& path,
                std::vector<std::string> extra = {}) {
    std::vector<std::string> args{"--resolve", host + ":" + kOriginPort + ":" + w().ip4(3),
                                  "http://" + host + ":" + kOriginPort + path};
    args.insert(args.end(), extra.begin(), extra.end());
    return curlIn(sb(), args);
  }

  std::vector<std::string> reached(const std::string& tagText) const {
    auto lines = origin_->requestsMatching(tagText);
    auto tls = httpsOrigin_->requestsMatching(tagText);
    lines.insert(lines.end(), tls.begin(), tls.end());
    return lines;
  }

  Result<json> audit(const json& fields) { return sb().daemon().waitForAudit(auditWith(fields)); }

  static inline std::unique_ptr<Suite> suite_;
  static inline std::string setupError_;
  Suite* s_ = nullptr;
  test::TestHttpOrigin* origin_ = nullptr;
  test::TestHttpOrigin* httpsOrigin_ = nullptr;
};

// --- setHeader / removeHeader with a secret ------------------------------------------------

TEST_F(ProxyHandlersTest, SetHeaderInjectsTheSecretInPlaceOfTheSandboxsOwn) {
  const std::string t = tag("inject");
  auto r = get("inject.allowed.test", "/whoami?tag=" + t,
               {"-H", "Authorization: Bearer from-the-sandbox", "-H", "Cookie: session=abc", "-H",
                "X-Keep: yes"});
  ASSERT_EQ(r.status(), 200) << r.describe();
  json who = jsonBody(r.last().body);
  const json& h = who["headers"];
  // Exactly one Authorization, the injected one (whoami joins repeated headers with ", ").
  EXPECT_EQ(received(who, "authorization"), "Bearer " + s_->token) << who.dump();
  EXPECT_FALSE(h.contains("cookie")) << "removeHeader: " << who.dump();
  EXPECT_EQ(h.value("x-keep", ""), "yes") << who.dump();
  EXPECT_EQ(who.value("host", ""), "inject.allowed.test:" + kOriginPort);
  // enableInternet is false and nothing lists the name: the handler allowed it, and the
  // upstream is egressd's own resolution of the name (*.allowed.test -> .3).
  EXPECT_EQ(who.value("server", "").rfind(w().ip4(3) + ":", 0), 0u) << who.dump();
  ASSERT_EQ(reached(t).size(), 1u) << origin_->log();

  auto a = audit({{"host", "inject.allowed.test"}, {"handler", "inject"}, {"status", 200}});
  ASSERT_TRUE(a.ok()) << a.error().message();
  EXPECT_EQ((*a).value("decision", ""), "allow");
  EXPECT_EQ((*a).value("reason", ""), "handler");
  EXPECT_EQ((*a).value("rule", ""), "handler inject");
}

TEST_F(ProxyHandlersTest, ARotatedSecretFileIsUsedOnTheNextRequest) {
  const std::string rotated = "tok-" + std::to_string(::getpid()) + "-rotated-Xw2";
  s_->secretValues.push_back(rotated);
  // Rename over the file, as secret managers do.
  auto next = s_->dir.writeFile("token.next", rotated + "\n");
  ASSERT_TRUE(next.ok());
  ASSERT_EQ(std::rename(next->c_str(), s_->tokenFile.c_str()), 0);
  auto r = get("inject.allowed.test", "/whoami?tag=" + tag("rotated"));
  ASSERT_EQ(r.status(), 200) << r.describe();
  EXPECT_EQ(received(jsonBody(r.last().body), "authorization"), "Bearer " + rotated);

  // Back to the first value (rewritten in place this time) for the other tests.
  ASSERT_TRUE(s_->dir.writeFile("token", s_->token + "\n").ok());
  r = get("inject.allowed.test", "/whoami?tag=" + tag("restored"));
  ASSERT_EQ(r.status(), 200) << r.describe();
  EXPECT_EQ(received(jsonBody(r.last().body), "authorization"), "Bearer " + s_->token);
}

// A keep-alive connection is judged per request: the secret goes only with requests whose
// own host matched the binding, never with the next request on the same connection.
TEST_F(ProxyHandlersTest, TheSecretGoesOnlyWithRequestsForItsHostOnAKeptAliveConnection) {
  const std::string first = tag("first");
  const std::string second = tag("second");
  auto x = rawHttpIn(sb(), hostPort(w().ip4(3), kHttpOrigin),
                     {"GET /whoami?tag=" + first +
                          " HTTP/1.1\r\nHost: inject.allowed.test:" + kOriginPort + "\r\n\r\n",
                      "GET /whoami?tag=" + second + " HTTP/1.1\r\nHost: other.test:" + kOriginPort +
                          "\r\nConnection: close\r\n\r\n"},
                     RawOptions{.gapSeconds = 0.5});
  auto responses = x.responses();
  ASSERT_EQ(responses.size(), 2u) << x.describe();
  json a = jsonBody(responses[0].body);
  json b = jsonBody(responses[1].body);
  EXPECT_EQ(received(a, "authorization"), "Bearer " + s_->token) << a.dump();
  EXPECT_FALSE(b["headers"].contains("authorization")) << b.dump();
  EXPECT_EQ(b.value("host", ""), "other.test:" + kOriginPort);
  // other.test -> .4 by egressd's resolution, although the connection went to .3.
  EXPECT_EQ(b.value("server", "").rfind(w().ip4(4) + ":", 0), 0u) << b.dump();
  EXPECT_EQ(reached(first).size(), 1u);
  EXPECT_EQ(reached(second).size(), 1u);
}

// --- deny / respond ---------------------------------------------------------------------

TEST_F(ProxyHandlersTest, DenyUnlessMethodLetsGetThroughAndAnswersPostItself) {
  const std::string getTag = tag("get");
  const std::string postTag = tag("post");
  auto r = get("readonly.allowed.test", "/whoami?tag=" + getTag);
  EXPECT_EQ(r.status(), 200) << r.describe();
  r = get("readonly.allowed.test", "/whoami?tag=" + postTag, {"-X", "POST", "--data", "x=1"});
  ASSERT_EQ(r.status(), 405) << r.describe();
  EXPECT_EQ(r.last().body, "read only\n");
  EXPECT_EQ(r.last().header("X-Egressd-Reason"), "handler_deny");
  EXPECT_EQ(r.last().header("X-Egressd-Handler"), "readOnly");
  EXPECT_EQ(reached(getTag).size(), 1u) << origin_->log();
  EXPECT_TRUE(reached(postTag).empty()) << "the denied POST reached an origin";

  auto a = audit({{"host", "readonly.allowed.test"}, {"method", "POST"}});
  ASSERT_TRUE(a.ok()) << a.error().message();
  EXPECT_EQ((*a).value("decision", ""), "deny");
  EXPECT_EQ((*a).value("reason", ""), "handler_deny");
  EXPECT_EQ((*a).value("handler", ""), "readOnly");
  EXPECT_EQ((*a).value("status", 0), 405);
}

TEST_F(ProxyHandlersTest, RespondIsAVirtualHostNoUpstreamSees) {
  const std::string t = tag("kv");
  auto r = get("kv.test", "/v1/items?tag=" + t);
  ASSERT_EQ(r.status(), 200) << r.describe();
  EXPECT_EQ(r.last().body, "{\"ok\":true}");
  EXPECT_EQ(r.last().header("Content-Type"), "application/json");
  EXPECT_EQ(r.last().header("X-Kv"), "virtual");
  EXPECT_TRUE(reached(t).empty()) << "an origin saw the request: " << origin_->log();
  auto a = audit({{"host", "kv.test"}, {"handler", "kv"}});
  ASSERT_TRUE(a.ok()) << a.error().message();
  EXPECT_EQ((*a).value("decision", ""), "allow");
  EXPECT_EQ((*a).value("reason", ""), "handler_respond");
  EXPECT_FALSE((*a).contains("upstream")) << a->dump();
}

// --- reroute ------------------------------------------------------------------------------

TEST_F(ProxyHandlersTest, RerouteToHostPortGoesToThatOriginWithTheEdits) {
  const std::string t = tag("tcp");
  auto r = get("tcp.allowed.test", "/whoami?tag=" + t);
  ASSERT_EQ(r.status(), 200) << r.describe();
  json who = jsonBody(r.last().body);
  // tcp.allowed.test resolves to .3; the handler sent it to .4.
  EXPECT_EQ(who.value("server", ""), hostPort(w().ip4(4), kHttpOrigin)) << who.dump();
  EXPECT_EQ(who.value("host", ""), "tcp.allowed.test:" + kOriginPort) << "the client's Host";
  EXPECT_EQ(who["headers"].value("x-rerouted", ""), "by " + sandboxId());
  auto a = audit({{"host", "tcp.allowed.test"}, {"handler", "toOther"}});
  ASSERT_TRUE(a.ok()) << a.error().message();
  EXPECT_EQ((*a).value("reason", ""), "handler_reroute");
  EXPECT_EQ((*a).value("upstream", ""), "http://" + w().ip4(4) + ":" + kOriginPort);
}

TEST_F(ProxyHandlersTest, RerouteToAUnixSocket) {
  const std::string t = tag("unix");
  // Twice on one connection: the second request reuses the unix-socket upstream.
  const std::string hostLine = "Host: unix.allowed.test:" + kOriginPort + "\r\n";
  auto x =
      rawHttpIn(sb(), hostPort(w().ip4(3), kHttpOrigin),
                {"GET /items?tag=" + t + " HTTP/1.1\r\n" + hostLine + "\r\n",
                 "GET /again?tag=" + t + " HTTP/1.1\r\n" + hostLine + "Connection: close\r\n\r\n"},
                RawOptions{.gapSeconds = 0.3});
  auto responses = x.responses();
  ASSERT_EQ(responses.size(), 2u) << x.describe();
  for (const HttpResponse& resp : responses) {
    ASSERT_EQ(resp.status, 200) << x.describe();
    json got = jsonBody(resp.body);
    EXPECT_TRUE(got.value("unix", false)) << resp.body;
    EXPECT_EQ(got.value("host", ""), "unix.allowed.test:" + kOriginPort);
    EXPECT_EQ(got["headers"].value("x-via", ""), "unix");
  }
  EXPECT_EQ(jsonBody(responses[1].body).value("path", ""), "/again?tag=" + t);
  EXPECT_TRUE(reached(t).empty()) << "an origin saw the request";
  auto a = audit({{"host", "unix.allowed.test"}, {"handler", "toUnix"}, {"path", "/again"}});
  ASSERT_TRUE(a.ok()) << a.error().message();
  EXPECT_EQ((*a).value("reason", ""), "handler_reroute");
  EXPECT_EQ((*a).value("upstream", ""), "unix:" + s_->unixSocket);
}

TEST_F(ProxyHandlersTest, ReroutePlainHttpToAnHttpsOrigin) {
  const std::string t = tag("tls");
  auto r = get("tls.allowed.test", "/whoami?tag=" + t);
  ASSERT_EQ(r.status(), 200) << r.describe();
  json who = jsonBody(r.last().body);
  // TLS verified for other.test (the world's test CA through --upstream-ca-file).
  EXPECT_EQ(who.value("sni", ""), "other.test") << who.dump();
  EXPECT_FALSE(who.value("tls_version", "").empty()) << who.dump();
  EXPECT_EQ(who.value("server", ""), hostPort(w().ip4(4), kHttpsGood)) << who.dump();
  EXPECT_EQ(who.value("host", ""), "tls.allowed.test:" + kOriginPort);
  auto a = audit({{"host", "tls.allowed.test"}, {"handler", "toTls"}});
  ASSERT_TRUE(a.ok()) << a.error().message();
  EXPECT_EQ((*a).value("reason", ""), "handler_reroute");
  EXPECT_EQ((*a).value("upstream", ""), "https://other.test:" + kGoodPort);
}

// --- HTTPS -------------------------------------------------------------------------------

// interceptHttps is false, yet TLS to a name with a handler is intercepted (the client
// trusts only the sandbox's CA and gets through) and the handler's header reaches the
// origin; a name without a handler is not intercepted.
TEST_F(ProxyHandlersTest, TlsToAHandlerHostIsInterceptedAndGetsTheHeader) {
  const std::string t = tag("https");
  auto r = curlIn(sb(), {"--cacert", sandboxCa(), "--resolve",
                         "inject.allowed.test:" + kGoodPort + ":" + w().ip4(3),
                         "https://inject.allowed.test:" + kGoodPort + "/whoami?tag=" + t});
  ASSERT_EQ(r.status(), 200) << r.describe();
  json who = jsonBody(r.last().body);
  EXPECT_EQ(received(who, "authorization"), "Bearer " + s_->token) << who.dump();
  EXPECT_EQ(who.value("sni", ""), "inject.allowed.test") << who.dump();
  ASSERT_EQ(reached(t).size(), 1u);
  // curl asks for h2 and gets it: the handler ran on the HTTP/2 stream.
  auto a = audit({{"host", "inject.allowed.test"}, {"protocol", "h2"}, {"handler", "inject"}});
  ASSERT_TRUE(a.ok()) << a.error().message();

  // No handler for plain.other.test: not intercepted, so the gate judges the name itself
  // and refuses it (internet_disabled) with a TLS alert; an intercepted connection would
  // have completed the handshake with the sandbox CA and answered 403.
  r = curlIn(sb(), {"--cacert", sandboxCa(), "--resolve",
                    "plain.other.test:" + kGoodPort + ":" + w().ip4(4),
                    "https://plain.other.test:" + kGoodPort + "/whoami"});
  EXPECT_EQ(r.status(), 0) << r.describe();
  EXPECT_NE(r.run.exitCode, 0) << r.describe();
  auto refused = audit({{"host", "plain.other.test"}, {"protocol", "tls"}});
  ASSERT_TRUE(refused.ok()) << refused.error().message();
  EXPECT_EQ((*refused).value("reason", ""), "internet_disabled");
}

// --- errors and precedence -------------------------------------------------------------

TEST_F(ProxyHandlersTest, AMissingSecretIsA502NamingItWithoutAnyValue) {
  const std::string t = tag("broken");
  auto r = get("broken.allowed.test", "/whoami?tag=" + t);
  ASSERT_EQ(r.status(), 502) << r.describe();
  EXPECT_EQ(r.last().header("X-Egressd-Reason"), "handler_error");
  EXPECT_TRUE(contains(r.last().body, "MISSING")) << r.last().body;
  for (const std::string& value : s_->secretValues) {
    EXPECT_FALSE(contains(r.last().body, value)) << "a secret value in the error body";
  }
  EXPECT_TRUE(reached(t).empty()) << "the request went upstream without its header";
  auto a = audit({{"host", "broken.allowed.test"}, {"handler", "broken"}});
  ASSERT_TRUE(a.ok()) << a.error().message();
  EXPECT_EQ((*a).value("decision", ""), "error");
  EXPECT_EQ((*a).value("reason", ""), "handler_error");
  EXPECT_EQ((*a).value("status", 0), 502);
}

TEST_F(ProxyHandlersTest, DeniedHostsComeBeforeAnyHandler) {
  const std::string t = tag("denied");
  auto r = get("denied.allowed.test", "/whoami?tag=" + t);
  ASSERT_EQ(r.status(), 403) << r.describe();
  EXPECT_EQ(r.last().header("X-Egressd-Reason"), "denied_host");
  EXPECT_TRUE(reached(t).empty());
  auto a = audit({{"host", "denied.allowed.test"}, {"reason", "denied_host"}});
  ASSERT_TRUE(a.ok()) << a.error().message();
  EXPECT_FALSE((*a).contains("handler")) << "no handler ran: " << a->dump();
}

TEST_F(ProxyHandlersTest, NoHandlerMeansTheDefaultDeny) {
  auto r = get("nohandler.other.test", "/whoami?tag=" + tag("default"));
  ASSERT_EQ(r.status(), 403) << r.describe();
  EXPECT_EQ(r.last().header("X-Egressd-Reason"), "internet_disabled");
}

// Runs last (file order): everything above wrote audit lines and log lines with secrets
// flowing through the proxy; none of them may hold a value.
// --- secrets stay where they belong (issue 12 items 5 and 6, docs/security.md) ----------

// Item 5a: a secret is not sent in cleartext unless its setHeader says allowPlaintext; the
// same handler works over (intercepted) HTTPS and with a reroute to https://.
TEST_F(ProxyHandlersTest, ASecretIsNeverSentOverCleartextUnlessAllowed) {
  for (const std::string host : {"strict.allowed.test", "strict-http.allowed.test"}) {
    SCOPED_TRACE(host);
    const std::string t = tag("plain");
    auto r = get(host, "/whoami?tag=" + t);
    EXPECT_EQ(r.status(), 403) << r.describe();
    EXPECT_EQ(r.last().header("X-Egressd-Reason"), "secret_over_plaintext") << r.describe();
    EXPECT_TRUE(contains(r.last().body, "allowPlaintext")) << r.describe();
    EXPECT_FALSE(contains(r.run.out, s_->token)) << r.describe();
    EXPECT_TRUE(reached(t).empty()) << "refused before connecting upstream";
    auto a = audit({{"host", host}, {"reason", "secret_over_plaintext"}});
    ASSERT_TRUE(a.ok()) << a.error().message();
    EXPECT_EQ((*a).value("decision", ""), "deny");
    EXPECT_EQ((*a).value("status", 0), 403);
  }
  // Over TLS: the client's HTTPS is intercepted, the upstream connection is TLS too.
  const std::string tls = tag("tls");
  auto r = curlIn(sb(), {"--cacert", sandboxCa(), "--resolve",
                         "strict.allowed.test:" + kGoodPort + ":" + w().ip4(3),
                         "https://strict.allowed.test:" + kGoodPort + "/whoami?tag=" + tls});
  ASSERT_EQ(r.status(), 200) << r.describe();
  EXPECT_EQ(received(jsonBody(r.last().body), "authorization"), "Bearer " + s_->token);
  // Plain HTTP from the sandbox, rerouted to an https:// upstream: the secret goes over TLS.
  const std::string up = tag("reroute-https");
  r = get("strict-https.allowed.test", "/whoami?tag=" + up);
  ASSERT_EQ(r.status(), 200) << r.describe();
  json who = jsonBody(r.last().body);
  EXPECT_EQ(who.value("sni", ""), "other.test") << who.dump();
  // The secret does not come back either: the response is redacted (item 5c).
  EXPECT_EQ(who["headers"].value("authorization", ""),
            "Bearer " + std::string(s_->token.size(), '*'))
      << who.dump();
}

// Item 5b: TRACE would carry the injected credential back to the sandbox.
TEST_F(ProxyHandlersTest, TraceNeverEchoesTheInjectedCredential) {
  for (const std::string method : {"TRACE", "TRACK"}) {
    SCOPED_TRACE(method);
    const std::string t = tag("trace");
    auto x = rawHttpIn(sb(), hostPort(w().ip4(3), kHttpOrigin),
                       {method + " /x?tag=" + t + " HTTP/1.1\r\nHost: inject.allowed.test:" +
                        kOriginPort + "\r\nConnection: close\r\n\r\n"});
    auto responses = x.responses();
    ASSERT_EQ(responses.size(), 1u) << x.describe();
    EXPECT_GE(responses[0].status, 400) << x.describe();
    if (method == "TRACE") {
      EXPECT_EQ(responses[0].status, 405) << x.describe();
    }
    EXPECT_FALSE(contains(x.data, s_->token)) << x.describe();
    EXPECT_TRUE(reached(t).empty());
  }
}

// Item 5c: an upstream that reflects the request returns the secret in its headers and its
// body; the sandbox gets '*' in its place, however large the body (not spliced then).
TEST_F(ProxyHandlersTest, AnEchoedSecretIsRedactedInTheResponse) {
  const std::string masked = std::string(s_->token.size(), '*');
  for (const std::string pad : {"0", "300000"}) {
    SCOPED_TRACE("pad " + pad);
    const std::string t = tag("echo");
    auto r = get("inject.allowed.test", "/echo?pad=" + pad + "&tag=" + t);
    ASSERT_EQ(r.status(), 200) << r.describe().substr(0, 2000);
    EXPECT_EQ(reached(t).size(), 1u);
    EXPECT_EQ(r.last().header("X-Echo-Authorization"), "Bearer " + masked);
    EXPECT_EQ(r.last().body.find_first_not_of('p'), std::stoul(pad)) << "the padding arrived";
    EXPECT_TRUE(contains(r.last().body, "\"authorization\": \"Bearer " + masked + "\""))
        << r.last().body.substr(r.last().body.size() > 500 ? r.last().body.size() - 500 : 0);
    EXPECT_FALSE(contains(r.run.out, s_->token)) << "the secret reached the sandbox";
    auto a = audit({{"host", "inject.allowed.test"}, {"path", "/echo"}, {"status", 200}});
    ASSERT_TRUE(a.ok()) << a.error().message();
    EXPECT_TRUE(contains((*a).value("detail", ""), "redacted")) << *a;
  }
  // Inside intercepted TLS too.
  auto r = curlIn(sb(), {"--cacert", sandboxCa(), "--resolve",
                         "inject.allowed.test:" + kGoodPort + ":" + w().ip4(3),
                         "https://inject.allowed.test:" + kGoodPort + "/echo?tag=" + tag("tls")});
  ASSERT_EQ(r.status(), 200) << r.describe();
  EXPECT_EQ(r.last().header("X-Echo-Authorization"), "Bearer " + masked) << r.describe();
  EXPECT_FALSE(contains(r.run.out, s_->token)) << r.describe();
}

// Item 6: a header the handler sets replaces the sandbox's, whatever case, '_' spelling or
// number of copies the sandbox sent.
TEST_F(ProxyHandlersTest, AHandlerHeaderReplacesEverySpellingOfTheSandboxs) {
  auto r = get("apikey.allowed.test", "/whoami?tag=" + tag("apikey"),
               {"-H", "X-Api-Key: mine-1", "-H", "x-api-key: mine-2", "-H", "X_API_KEY: mine-3",
                "-H", "x_Api-key: mine-4"});
  ASSERT_EQ(r.status(), 200) << r.describe();
  const json h = jsonBody(r.last().body)["headers"];
  EXPECT_EQ(h.value("x-api-key", ""), "key-" + sandboxId()) << h.dump();
  for (const auto& [name, value] : h.items()) {
    EXPECT_FALSE(contains(value.dump(), "mine-")) << name << ": " << value;
  }
}

TEST_F(ProxyHandlersTest, ZzNoSecretValueInTheAuditLogOrTheDaemonLog) {
  // One more injected request, so there is something to leak even when run alone.
  auto r = get("inject.allowed.test", "/whoami?tag=" + tag("last"));
  ASSERT_EQ(r.status(), 200) << r.describe();
  ASSERT_TRUE(audit({{"handler", "inject"}, {"path", "/whoami"}}).ok());
  auto text = readFile(sb().daemon().auditLogPath());
  ASSERT_TRUE(text.ok()) << text.error().message();
  EXPECT_TRUE(contains(*text, "\"handler\":\"inject\"")) << *text;
  const std::string logs = sb().daemon().logs();
  for (const std::string& value : s_->secretValues) {
    EXPECT_FALSE(contains(*text, value)) << "the audit log holds a secret value";
    EXPECT_FALSE(contains(logs, value)) << "the daemon's log holds a secret value";
  }
}

}  // namespace
}  // namespace egressd::e2e
