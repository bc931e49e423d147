// HTTPS through the transparent proxy (issue 4): SNI passthrough with host policy, and TLS
// interception with a per-sandbox CA. Real clients inside the sandbox (curl, python ssl and
// urllib, openssl s_client, clients/tls_client.py for split hellos, ALPN and certificate
// details), real origins in the test internet (http_origin.py over TLS on .3/.4/::3/::4 with
// certificates from the world's test CA: 8443 good, 8444 expired, 8445 wrong name, 8446
// issued by a CA egressd is not told about).
//
// Every SNI or request path a test sends carries a unique label, and the origin logs every
// handshake ("tls SERVER PEER SNI") and every request ("req SERVER METHOD PATH HOST"), so
// "nothing reached the origin" is checked by the label's absence next to a label of the same
// test that did arrive.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>
#include <thread>

#include "common/fs.h"
#include "http_client.h"
#include "prometheus.h"
#include "test_ca.h"
#include "world.h"

namespace egressd::e2e {
namespace {

using nlohmann::json;
using test::milliseconds;

const std::string kGood = std::to_string(kHttpsGood);
constexpr const char* kSandboxesDir = "/run/egressd/sandboxes/";

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

// The value of the CN attribute of an RFC 2253 name ("" when there is none).
std::string cnOf(const std::string& name) {
  size_t pos = name.find("CN=");
  if (pos == std::string::npos) {
    return "";
  }
  pos += 3;
  size_t end = name.find(',', pos);
  return name.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
}

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines) {
    s += "\n  " + l;
  }
  return s.empty() ? " (none)" : s;
}

// One run of clients/tls_client.py.
struct TlsCall {
  std::string connect;  // "ip:port" / "[v6]:port"
  std::string sni;      // "" = no SNI
  std::string cafile;   // "" = no verification
  std::string alpn;     // "h2,http/1.1"
  std::string host;     // "" = no request after the handshake
  std::string path = "/whoami";
  std::string thenHost;  // a second request on the same connection
  std::string thenPath = "/whoami";
  int split = 1;
  int records = 1;
  bool ech = false;
};

std::vector<std::string> tlsClientArgv(const TlsCall& c) {
  std::vector<std::string> argv{test::python3Bin(), clientsDir() + "/tls_client.py", "--connect",
                                c.connect};
  auto opt = [&](const char* flag, const std::string& value) {
    if (!value.empty()) {
      argv.push_back(flag);
      argv.push_back(value);
    }
  };
  opt("--sni", c.sni);
  opt("--cafile", c.cafile);
  opt("--alpn", c.alpn);
  if (!c.host.empty()) {
    opt("--host", c.host);
    opt("--path", c.path);
    opt("--then-host", c.thenHost);
    if (!c.thenHost.empty()) {
      opt("--then-path", c.thenPath);
    }
  }
  if (c.split > 1) {
    opt("--split", std::to_string(c.split));
    opt("--split-gap", "0.1");
  }
  if (c.records > 1) {
    opt("--records", std::to_string(c.records));
  }
  if (c.ech) {
    argv.push_back("--ech");
  }
  return argv;
}

json parseClientOutput(const RunResult& r) {
  json j = json::parse(r.out, nullptr, false);
  if (!r.succeeded() || !j.is_object()) {
    return json{{"client_failed", r.describe()}, {"handshake", false}};
  }
  return j;
}

// tls_client.py inside the sandbox; its JSON (or {client_failed, handshake: false}).
json tlsIn(const Sandbox& sb, const TlsCall& c) {
  return parseClientOutput(sb.runInside(tlsClientArgv(c), "", milliseconds(30000)));
}

// tls_client.py in the test's own netns, outside every sandbox (direct to the origins).
json tlsDirect(const TlsCall& c) {
  return parseClientOutput(runGuarded(tlsClientArgv(c), "", "", milliseconds(30000)));
}

bool handshakeOk(const json& r) {
  return r.value("handshake", false);
}

// The /whoami JSON of a tls_client response ({} when there is none).
json whoami(const json& r) {
  if (!r.contains("response")) {
    return json::object();
  }
  json body = json::parse(r["response"].value("body", ""), nullptr, false);
  return body.is_object() ? body : json::object();
}

int statusOf(const json& r) {
  return r.contains("response") ? r["response"].value("status", 0) : 0;
}

json jsonBody(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  return j.is_object() ? j : json::object();
}

class HttpsProxyTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) {
      return;
    }
    auto origin = httpsOrigin();
    ASSERT_TRUE(origin.ok()) << origin.error().message();
    origin_ = *origin;
    ca_ = *testCa();
  }

  // Proxies 80/443 and the four HTTPS origin ports.
  static PolicySpec spec() {
    PolicySpec s;
    s.proxyPorts = std::vector<int>{kHttp,         kHttps,          kHttpsGood,
                                    kHttpsExpired, kHttpsWrongName, kHttpsUntrusted};
    return s;
  }

  static PolicySpec intercepting(PolicySpec s, const std::string& value = "true") {
    s.extraYaml += "interceptHttps: " + value + "\n";
    return s;
  }

  // A sandbox with an audit log and metrics whose daemon trusts the test CA upstream.
  Result<std::unique_ptr<Sandbox>> start(const PolicySpec& s, bool upstreamCa = true,
                                         std::vector<std::string> extraArgs = {}) {
    std::vector<std::string> args = std::move(extraArgs);
    if (upstreamCa) {
      args.insert(args.end(), {"--upstream-ca-file", ca_->caCertFile()});
    }
    return Sandbox::start(
        s,
        SandboxOptions{
            .ownNetns = false, .auditLog = true, .metrics = true, .daemonArgs = std::move(args)});
  }

  static std::string sandboxDir(Sandbox& sb) { return kSandboxesDir + sb.daemon().sandboxId(); }
  static std::string sandboxCa(Sandbox& sb) { return sandboxDir(sb) + "/ca.crt"; }

  // Unique in this binary, usable as a DNS label: "what-00042".
  static std::string label(const std::string& what) {
    static std::atomic<int> counter{0};
    char number[16];
    std::snprintf(number, sizeof(number), "%05d", counter++);
    return what + "-" + number;
  }

  std::string endpoint(int host, int port) { return hostPort(w().ip4(host), port); }
  std::string endpoint6(int host, int port) { return hostPort(w().ip6(host), port); }
  // The origin endpoints of allowed.test (A and AAAA) on `port`.
  std::set<std::string> allowedTestOrigins(int port = kHttpsGood) {
    return {endpoint(3, port), endpoint6(3, port)};
  }

  // Origin log lines of TLS handshakes that carried `sni`.
  std::vector<std::string> handshakesWith(const std::string& sni) const {
    std::vector<std::string> out;
    for (const auto& line : origin_->requestsMatching(" " + sni)) {
      if (line.starts_with("tls ") && line.ends_with(" " + sni)) {
        out.push_back(line);
      }
    }
    return out;
  }
  // Origin log lines of requests whose target contains `tagText`.
  std::vector<std::string> requestsWith(const std::string& tagText) const {
    std::vector<std::string> out;
    for (const auto& line : origin_->requestsMatching(tagText)) {
      if (line.starts_with("req ")) {
        out.push_back(line);
      }
    }
    return out;
  }

  // curl https://HOST:PORT/PATH inside the sandbox, connecting to `ip`, trusting `cafile`.
  static CurlReply curlHttps(const Sandbox& sb, const std::string& host, int port,
                             const std::string& ip, const std::string& path,
                             const std::string& cafile, std::vector<std::string> extra = {}) {
    const std::string p = std::to_string(port);
    const std::string addr = contains(ip, ":") ? "[" + ip + "]" : ip;
    // HTTP/1.1 inside TLS is what this suite tests (curl would choose h2 under interception;
    // http2_test.cpp covers that).
    std::vector<std::string> args{"--http1.1",
                                  "--cacert",
                                  cafile,
                                  "--resolve",
                                  host + ":" + p + ":" + addr,
                                  "https://" + host + ":" + p + path};
    args.insert(args.end(), extra.begin(), extra.end());
    return curlIn(sb, args);
  }

  // The subject of the sandbox's CA certificate (RFC 2253).
  static std::string sandboxCaSubject(Sandbox& sb) {
    auto info = test::inspectCertFile(sandboxCa(sb));
    return info.ok() ? info->subject : "<" + info.error().message() + ">";
  }

  // Where a proxied TLS connection of `sb` ended up: "intercepted" (leaf issued by the
  // sandbox CA), "passthrough" (the origin's own good certificate) or a description.
  std::string modeOf(Sandbox& sb, const json& r) {
    if (!handshakeOk(r)) {
      return "handshake failed: " + r.dump();
    }
    const std::string sha = r.value("cert_sha256", "");
    if (sha == ca_->good().sha256) {
      return "passthrough";
    }
    auto info = test::inspectCertPem(r.value("cert_pem", ""));
    if (!info.ok()) {
      return "no certificate: " + info.error().message();
    }
    if (info->issuer == sandboxCaSubject(sb) &&
        test::verifyCertPem(r.value("cert_pem", ""), sandboxCa(sb)).ok()) {
      return "intercepted";
    }
    return "certificate from elsewhere: issuer " + info->issuer + ", subject " + info->subject;
  }

  test::TestHttpOrigin* origin_ = nullptr;
  test::TestCa* ca_ = nullptr;
};

// --- the fixtures themselves (no egressd): each origin port serves what the tests assume ---

TEST_F(HttpsProxyTest, OriginsServeTheirCertificates) {
  const std::string t = label("direct");
  json r = tlsDirect({.connect = endpoint(3, kHttpsGood),
                      .sni = "allowed.test",
                      .cafile = ca_->caCertFile(),
                      .host = "allowed.test",
                      .path = "/whoami?tag=" + t});
  ASSERT_TRUE(handshakeOk(r)) << r.dump();
  EXPECT_EQ(r.value("cert_sha256", ""), ca_->good().sha256) << r.dump();
  EXPECT_EQ(whoami(r).value("sni", ""), "allowed.test") << r.dump();
  EXPECT_EQ(whoami(r).value("server", ""), endpoint(3, kHttpsGood)) << r.dump();
  EXPECT_EQ(r.value("alpn", json()), json()) << "no ALPN offered, none selected: " << r.dump();
  EXPECT_EQ(requestsWith(t).size(), 1u) << origin_->log();

  // No SNI: the IP SAN verifies, and the origin reports that it saw no name.
  r = tlsDirect({.connect = endpoint6(4, kHttpsGood),
                 .cafile = ca_->caCertFile(),
                 .host = "other.test",
                 .path = "/whoami"});
  ASSERT_TRUE(handshakeOk(r)) << r.dump();
  EXPECT_TRUE(whoami(r).contains("sni") && whoami(r)["sni"].is_null()) << r.dump();

  const std::vector<std::pair<int, std::string>> bad{
      {kHttpsExpired, "certificate has expired"},
      {kHttpsWrongName, "Hostname mismatch"},
      {kHttpsUntrusted, "unable to get local issuer certificate"}};
  for (const auto& [port, why] : bad) {
    r = tlsDirect(
        {.connect = endpoint(3, port), .sni = "allowed.test", .cafile = ca_->caCertFile()});
    EXPECT_FALSE(handshakeOk(r)) << port << ": " << r.dump();
    EXPECT_TRUE(contains(r.value("verify_message", ""), why)) << port << ": " << r.dump();
  }
}

// --- passthrough -------------------------------------------------------------------------

TEST_F(HttpsProxyTest, PassthroughRelaysAnAllowedSniToTheOriginUntouched) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test", "*.allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string id = sb->daemon().sandboxId();
  const std::string name = label("pass") + ".allowed.test";
  const std::string t = label("pass");

  // python ssl: the certificate the client sees is the origin's, verified by the test CA.
  json r = tlsIn(*sb, {.connect = endpoint(3, kHttpsGood),
                       .sni = name,
                       .cafile = ca_->caCertFile(),
                       .host = name,
                       .path = "/whoami?tag=" + t});
  ASSERT_TRUE(handshakeOk(r)) << r.dump();
  EXPECT_EQ(r.value("cert_sha256", ""), ca_->good().sha256) << r.dump();
  EXPECT_EQ(statusOf(r), 200) << r.dump();
  EXPECT_EQ(whoami(r).value("sni", ""), name) << r.dump();
  EXPECT_TRUE(allowedTestOrigins().contains(whoami(r).value("server", ""))) << r.dump();
  EXPECT_EQ(requestsWith(t).size(), 1u) << origin_->log();

  // A client offering only h2 passes through untouched (the origin speaks no h2: no ALPN).
  r = tlsIn(*sb, {.connect = endpoint(3, kHttpsGood),
                  .sni = "allowed.test",
                  .cafile = ca_->caCertFile(),
                  .alpn = "h2"});
  EXPECT_TRUE(handshakeOk(r)) << r.dump();
  EXPECT_EQ(r.value("cert_sha256", ""), ca_->good().sha256) << r.dump();

  // curl, and over IPv6.
  const std::string t6 = label("curl6");
  auto c = curlHttps(*sb, "allowed.test", kHttpsGood, w().ip6(3), "/whoami?tag=" + t6,
                     ca_->caCertFile());
  ASSERT_EQ(c.status(), 200) << c.describe();
  EXPECT_EQ(jsonBody(c.last().body).value("sni", ""), "allowed.test") << c.describe();
  EXPECT_EQ(requestsWith(t6).size(), 1u) << origin_->log();

  ASSERT_OK_AND_ASSIGN(json a,
                       sb->daemon().waitForAudit(auditWith({{"protocol", "tls"}, {"host", name}}),
                                                 milliseconds(8000)));
  EXPECT_EQ(a.value("sandbox", ""), id) << a;
  EXPECT_EQ(a.value("layer", ""), "proxy") << a;
  EXPECT_EQ(a.value("decision", ""), "allow") << a;
  EXPECT_EQ(a.value("reason", ""), "allowed_host") << a;
  EXPECT_EQ(a.value("rule", ""), "allowedHosts[1] *.allowed.test") << a;
  EXPECT_EQ(a.value("detail", ""), "passthrough") << a;
  EXPECT_EQ(a.value("orig_dst", ""), endpoint(3, kHttpsGood)) << a;
  EXPECT_TRUE(allowedTestOrigins().contains(a.value("upstream", ""))) << a;
  EXPECT_GT(a.value("bytes_in", 0), 0) << a;
  EXPECT_GT(a.value("bytes_out", 0), 0) << a;
  // The bytes of a passthrough connection are never parsed as HTTP: no request audit line.
  ASSERT_OK_AND_ASSIGN(auto records, sb->daemon().auditRecords());
  for (const auto& rec : records) {
    EXPECT_NE(rec.value("protocol", ""), "http") << rec;
    EXPECT_NE(rec.value("protocol", ""), "https") << rec;
  }
  ASSERT_OK_AND_ASSIGN(json six,
                       sb->daemon().waitForAudit(
                           auditWith({{"protocol", "tls"}, {"orig_dst", endpoint6(3, kHttpsGood)}}),
                           milliseconds(8000)));
  EXPECT_EQ(six.value("host", ""), "allowed.test") << six;

  ASSERT_OK_AND_ASSIGN(std::string text, sb->daemon().scrapeMetrics());
  auto samples = test::parsePrometheusText(text);
  EXPECT_EQ(test::promValue(samples, "egressd_tls_connections_total",
                            {{"sandbox", id}, {"mode", "passthrough"}, {"decision", "allow"}}),
            3.0)
      << text;
}

TEST_F(HttpsProxyTest, PassthroughDeniesBySniWithAnAccessDeniedAlert) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test", "*.allowed.test"};
  s.deniedHosts = {"*.blocked.allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string outside = label("deny") + ".other.test";
  const std::string blocked = label("deny") + ".blocked.allowed.test";
  const std::string control = label("control") + ".allowed.test";

  json r = tlsIn(*sb, {.connect = endpoint(4, kHttpsGood), .sni = outside});
  EXPECT_FALSE(handshakeOk(r)) << r.dump();
  EXPECT_EQ(r.value("error_reason", ""), "TLSV1_ALERT_ACCESS_DENIED") << r.dump();
  r = tlsIn(*sb, {.connect = endpoint(3, kHttpsGood), .sni = blocked});
  EXPECT_FALSE(handshakeOk(r)) << r.dump();
  EXPECT_EQ(r.value("error_reason", ""), "TLSV1_ALERT_ACCESS_DENIED") << r.dump();
  // curl gets no connection either (curl: (35) ... alert access denied).
  auto c = curlHttps(*sb, "other.test", kHttpsGood, w().ip4(4), "/whoami", ca_->caCertFile());
  EXPECT_EQ(c.status(), 0) << c.describe();
  EXPECT_EQ(c.run.exitCode, 35) << c.describe();
  // The same sandbox passes an allowed name.
  r = tlsIn(*sb, {.connect = endpoint(3, kHttpsGood), .sni = control, .cafile = ca_->caCertFile()});
  EXPECT_TRUE(handshakeOk(r)) << r.dump();

  EXPECT_EQ(handshakesWith(control).size(), 1u) << origin_->log();
  EXPECT_TRUE(handshakesWith(outside).empty()) << joined(handshakesWith(outside));
  EXPECT_TRUE(handshakesWith(blocked).empty()) << joined(handshakesWith(blocked));

  ASSERT_OK_AND_ASSIGN(
      json a, sb->daemon().waitForAudit(auditWith({{"protocol", "tls"}, {"host", outside}})));
  EXPECT_EQ(a.value("layer", ""), "proxy") << a;
  EXPECT_EQ(a.value("decision", ""), "deny") << a;
  EXPECT_EQ(a.value("reason", ""), "not_in_allowed_hosts") << a;
  EXPECT_EQ(a.value("orig_dst", ""), endpoint(4, kHttpsGood)) << a;
  EXPECT_EQ(a.value("upstream", ""), "") << "a denied connection has no upstream: " << a;
  ASSERT_OK_AND_ASSIGN(
      json b, sb->daemon().waitForAudit(auditWith({{"protocol", "tls"}, {"host", blocked}})));
  EXPECT_EQ(b.value("decision", ""), "deny") << b;
  EXPECT_EQ(b.value("reason", ""), "denied_host") << b;
  EXPECT_EQ(b.value("rule", ""), "deniedHosts[0] *.blocked.allowed.test") << b;
}

// A hello for allowed.test sent to other.test's address goes where egressd resolves
// allowed.test; other.test's origin sees nothing.
TEST_F(HttpsProxyTest, SniNotTheConnectedAddressChoosesTheUpstream) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string t = label("spoof");
  const size_t before4 = origin_->requestsTo(endpoint(4, kHttpsGood));

  auto c =
      curlHttps(*sb, "allowed.test", kHttpsGood, w().ip4(4), "/whoami?tag=" + t, ca_->caCertFile());
  ASSERT_EQ(c.status(), 200) << c.describe();
  const std::string server = jsonBody(c.last().body).value("server", "");
  EXPECT_TRUE(allowedTestOrigins().contains(server)) << "answered by " << server;
  auto lines = requestsWith(t);
  ASSERT_EQ(lines.size(), 1u) << origin_->log();
  EXPECT_TRUE(lines[0].starts_with("req " + server + " ")) << lines[0];
  EXPECT_EQ(origin_->requestsTo(endpoint(4, kHttpsGood)), before4) << origin_->log();

  ASSERT_OK_AND_ASSIGN(
      json a, sb->daemon().waitForAudit(auditWith({{"protocol", "tls"}, {"host", "allowed.test"}}),
                                        milliseconds(8000)));
  EXPECT_EQ(a.value("orig_dst", ""), endpoint(4, kHttpsGood)) << a;
  EXPECT_EQ(a.value("upstream", ""), server) << a;
}

// No SNI: only address rules on the original destination decide (openssl s_client
// -noservername), as for an IP-literal Host in plain HTTP: allow CIDR rules and address
// entries of allowedHosts open it, host names never do.
TEST_F(HttpsProxyTest, HelloWithoutSniIsJudgedByAddressRulesOnly) {
  auto sClient = [&](Sandbox& sb, int host, const std::string& t) {
    const std::string ip = w().ip4(host);
    const std::string script = "printf 'GET /whoami?tag=" + t +
                               " HTTP/1.1\\r\\nHost: nosni\\r\\nConnection: close\\r\\n\\r\\n' | "
                               "openssl s_client -connect " +
                               endpoint(host, kHttpsGood) + " -noservername -CAfile " +
                               ca_->caCertFile() + " -verify_return_error -verify_ip " + ip +
                               " -quiet";
    return sb.runInside({"/bin/sh", "-c", script}, "", milliseconds(20000));
  };

  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};  // names do not open a hello without one
  {
    ASSERT_OK_AND_ASSIGN(auto sb, start(s));
    const std::string t = label("nosni-denied");
    RunResult r = sClient(*sb, 3, t);
    EXPECT_NE(r.exitCode, 0) << r.describe();
    EXPECT_TRUE(contains(r.err, "alert access denied")) << r.describe();
    EXPECT_TRUE(requestsWith(t).empty()) << joined(requestsWith(t));
    ASSERT_OK_AND_ASSIGN(
        json a, sb->daemon().waitForAudit(
                    auditWith({{"protocol", "tls"}, {"orig_dst", endpoint(3, kHttpsGood)}})));
    EXPECT_EQ(a.value("decision", ""), "deny") << a;
    // allowedHosts is set and names no address: refused by tls.requireSni (on by default
    // with allowedHosts) before any rule is looked at.
    EXPECT_EQ(a.value("reason", ""), "sni_required") << a;
    EXPECT_EQ(a.value("upstream", ""), "") << a;
  }

  s.allow = {{.cidr = w().ip4(3) + "/32", .ports = {kHttpsGood}, .protocol = "tcp"}};
  s.allowedHosts = {"allowed.test", w().ip4(4)};
  {
    ASSERT_OK_AND_ASSIGN(auto sb, start(s));
    for (int host : {3, 4}) {
      SCOPED_TRACE("to ." + std::to_string(host));
      const std::string t = label("nosni-allowed");
      RunResult r = sClient(*sb, host, t);
      EXPECT_EQ(r.exitCode, 0) << r.describe();
      EXPECT_TRUE(contains(r.out, "HTTP/1.1 200")) << r.describe();
      EXPECT_TRUE(contains(r.out, "\"sni\": null")) << r.describe();
      EXPECT_TRUE(contains(r.out, "\"server\": \"" + endpoint(host, kHttpsGood) + "\""))
          << "the upstream is the original destination: " << r.describe();
      EXPECT_EQ(requestsWith(t).size(), 1u) << origin_->log();
      ASSERT_OK_AND_ASSIGN(
          json a, sb->daemon().waitForAudit(
                      auditWith({{"protocol", "tls"}, {"orig_dst", endpoint(host, kHttpsGood)}}),
                      milliseconds(8000)));
      EXPECT_EQ(a.value("decision", ""), "allow") << a;
      EXPECT_EQ(a.value("reason", ""), "allowed_cidr") << a;
      EXPECT_EQ(a.value("upstream", ""), endpoint(host, kHttpsGood)) << a;
      if (host == 4) {
        EXPECT_TRUE(a.value("rule", "").starts_with("allowedHosts[1] " + w().ip4(4))) << a;
      }
    }
  }
}

// A ClientHello in 3 TCP segments 100 ms apart (the first only 3 bytes), also re-cut into 3
// TLS records, works in both modes.
TEST_F(HttpsProxyTest, SplitClientHelloIsReassembled) {
  for (bool intercept : {false, true}) {
    SCOPED_TRACE(intercept ? "interception" : "passthrough");
    PolicySpec s = spec();
    s.allowedHosts = {"allowed.test", "*.allowed.test"};
    if (intercept) {
      s = intercepting(s);
    }
    ASSERT_OK_AND_ASSIGN(auto sb, start(s));
    for (int records : {1, 3}) {
      SCOPED_TRACE("records " + std::to_string(records));
      const std::string name = label("split") + ".allowed.test";
      const std::string t = label("split");
      json r = tlsIn(*sb, {.connect = endpoint(3, kHttpsGood),
                           .sni = name,
                           .cafile = intercept ? sandboxCa(*sb) : ca_->caCertFile(),
                           .host = name,
                           .path = "/whoami?tag=" + t,
                           .split = 3,
                           .records = records});
      ASSERT_TRUE(handshakeOk(r)) << r.dump();
      EXPECT_EQ(r.value("hello_pieces", 0), 3) << r.dump();
      EXPECT_EQ(modeOf(*sb, r), intercept ? "intercepted" : "passthrough") << r.dump();
      EXPECT_EQ(statusOf(r), 200) << r.dump();
      EXPECT_EQ(whoami(r).value("sni", ""), name) << r.dump();
      EXPECT_EQ(requestsWith(t).size(), 1u) << origin_->log();
    }
  }
}

TEST_F(HttpsProxyTest, MalformedOrOversizedClientHelloGetsADecodeErrorAlert) {
  PolicySpec s = spec();
  s.enableInternet = true;
  ASSERT_OK_AND_ASSIGN(auto sb, start(s, true, {"--header-timeout-ms", "1000"}));
  const size_t requestsBefore = origin_->requestsTo(endpoint(3, kHttpsGood));
  auto raw = [&](const std::vector<std::string>& hex, int repeat) {
    std::vector<std::string> argv{
        test::python3Bin(), clientsDir() + "/tls_raw.py", "--connect",      endpoint(3, kHttpsGood),
        "--repeat",         std::to_string(repeat),       "--read-timeout", "6"};
    for (const auto& h : hex) {
      argv.push_back("--hex");
      argv.push_back(h);
    }
    return parseClientOutput(sb->runInside(argv, "", milliseconds(20000)));
  };
  // A handshake record holding a ClientHello whose body stops after the version.
  json r = raw({"1603010006010000020303"}, 1);
  EXPECT_EQ(r.value("end", ""), "eof") << r.dump();
  ASSERT_TRUE(r.contains("alert")) << r.dump();
  EXPECT_EQ(r["alert"].value("level", 0), 2) << r.dump();
  EXPECT_EQ(r["alert"].value("description", 0), 50) << "decode_error: " << r.dump();

  // A ClientHello that announces 1 MiB and keeps coming in full records: cut at 64 KiB.
  const std::string filler(2 * 16384, 'a');  // 16 KiB of 0xaa
  json big = raw({"1603014000"
                  "01100000" +
                      std::string(2 * 16380, 'a'),
                  "1603014000" + filler},
                 6);
  EXPECT_TRUE(big.value("end", "") == "eof" || big.value("end", "") == "reset") << big.dump();
  if (big.contains("alert")) {
    EXPECT_EQ(big["alert"].value("description", 0), 50) << big.dump();
  }

  // A hello that stops after 3 bytes: closed by the head timeout (1 s here), not held open.
  json stalled = raw({"160301"}, 1);
  EXPECT_EQ(stalled.value("end", ""), "eof") << stalled.dump();
  EXPECT_LT(stalled.value("seconds", 99.0), 3.0) << stalled.dump();

  ASSERT_OK_AND_ASSIGN(size_t n,
                       sb->daemon().waitForAuditCount(
                           auditWith({{"protocol", "tls"}, {"reason", "bad_client_hello"}}), 3));
  EXPECT_EQ(n, 3u);
  ASSERT_OK_AND_ASSIGN(json a,
                       sb->daemon().waitForAudit(auditWith({{"reason", "bad_client_hello"}})));
  EXPECT_EQ(a.value("decision", ""), "deny") << a;
  EXPECT_EQ(origin_->requestsTo(endpoint(3, kHttpsGood)), requestsBefore) << origin_->log();
}

// The name's resolution is judged like the name: a denied CIDR, or loopback (DNS
// rebinding), refuse the connection in both modes; nothing is connected to.
TEST_F(HttpsProxyTest, SniResolvingIntoDeniedOrSpecialAddressesIsRefused) {
  // Where the proxy would connect if it followed rebind.test (only when the port is free).
  auto trap = test::TestServers::start("", {"127.0.0.1:" + kGood}, {});
  for (bool intercept : {false, true}) {
    SCOPED_TRACE(intercept ? "interception" : "passthrough");
    PolicySpec s = spec();
    s.enableInternet = true;
    s.deniedHosts = {w().ip4(4) + "/32"};  // where other.test resolves
    ASSERT_OK_AND_ASSIGN(auto sb, start(intercept ? intercepting(s) : s));
    const std::vector<std::pair<std::string, std::string>> cases{
        {"other.test", "denied_cidr"}, {"rebind.test", "special_destination"}};
    for (const auto& [name, reason] : cases) {
      SCOPED_TRACE(name);
      // Connected to .3 (the kernel refuses .4 itself).
      const std::string t = label("resolved");
      json r = tlsIn(*sb, {.connect = endpoint(3, kHttpsGood),
                           .sni = name,
                           .cafile = intercept ? sandboxCa(*sb) : "",
                           .host = name,
                           .path = "/whoami?tag=" + t});
      if (intercept) {
        EXPECT_EQ(statusOf(r), 403) << r.dump();
        EXPECT_EQ(r.value("response", json::object())
                      .value("headers", json::object())
                      .value("x-egressd-reason", ""),
                  reason)
            << r.dump();
      } else {
        EXPECT_FALSE(handshakeOk(r)) << r.dump();
        EXPECT_EQ(r.value("error_reason", ""), "TLSV1_ALERT_ACCESS_DENIED") << r.dump();
      }
      EXPECT_TRUE(requestsWith(t).empty()) << joined(requestsWith(t));
      ASSERT_OK_AND_ASSIGN(json a, sb->daemon().waitForAudit(auditWith({{"host", name}})));
      EXPECT_EQ(a.value("protocol", ""), intercept ? "https" : "tls") << a;
      EXPECT_EQ(a.value("decision", ""), "deny") << a;
      EXPECT_EQ(a.value("reason", ""), reason) << a;
      EXPECT_EQ(a.value("upstream", ""), "") << a;
    }
    // The same sandbox serves a name that resolves into the test network.
    json r = tlsIn(*sb, {.connect = endpoint(3, kHttpsGood),
                         .sni = "allowed.test",
                         .cafile = intercept ? sandboxCa(*sb) : ca_->caCertFile(),
                         .host = "allowed.test"});
    EXPECT_EQ(statusOf(r), 200) << r.dump();
  }
  if (trap.ok()) {
    EXPECT_EQ(trap->log(), "") << "the proxy connected to loopback for rebind.test";
  }
}

// An ECH extension hides the real name: the outer SNI must not be trusted, so only address
// rules judge the connection (here none allow it).
TEST_F(HttpsProxyTest, EncryptedClientHelloIsJudgedByAddressOnly) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test", "*.allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string name = label("ech") + ".allowed.test";
  json r = tlsIn(*sb, {.connect = endpoint(3, kHttpsGood), .sni = name, .ech = true});
  EXPECT_FALSE(handshakeOk(r)) << r.dump();
  EXPECT_EQ(r.value("error_reason", ""), "TLSV1_ALERT_ACCESS_DENIED") << r.dump();
  EXPECT_TRUE(handshakesWith(name).empty()) << joined(handshakesWith(name));
  ASSERT_OK_AND_ASSIGN(json a, sb->daemon().waitForAudit(auditWith(
                                   {{"protocol", "tls"}, {"orig_dst", endpoint(3, kHttpsGood)}})));
  EXPECT_EQ(a.value("decision", ""), "deny") << a;
  // No usable name, no address rule: tls.requireSni (on by default with allowedHosts).
  EXPECT_EQ(a.value("reason", ""), "sni_required") << a;
  EXPECT_TRUE(contains(a.value("detail", ""), "encrypted")) << a;
  // Without the extension the same name passes.
  r = tlsIn(*sb, {.connect = endpoint(3, kHttpsGood), .sni = name, .cafile = ca_->caCertFile()});
  EXPECT_TRUE(handshakeOk(r)) << r.dump();
}

TEST_F(HttpsProxyTest, PassthroughToAnUnreachableUpstreamIsClosed) {
  PolicySpec s = spec();
  s.proxyPorts->push_back(kHttpNoServer);  // nothing listens on 8081 of .3
  s.allowedHosts = {"allowed.test", "*.nonexistent.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  json r = tlsIn(*sb, {.connect = endpoint(3, kHttpNoServer), .sni = "allowed.test"});
  EXPECT_FALSE(handshakeOk(r)) << r.dump();
  EXPECT_TRUE(r.value("connected", false)) << "the sandbox's connect succeeds (to the proxy)";
  ASSERT_OK_AND_ASSIGN(json a, sb->daemon().waitForAudit(
                                   auditWith({{"protocol", "tls"}, {"host", "allowed.test"}})));
  EXPECT_EQ(a.value("decision", ""), "error") << a;
  EXPECT_EQ(a.value("reason", ""), "upstream_unreachable") << a;
  EXPECT_EQ(a.value("orig_dst", ""), endpoint(3, kHttpNoServer)) << a;

  // An allowed name the resolver does not know: nowhere to go, nothing relayed.
  const std::string unknown = label("unknown") + ".nonexistent.test";
  r = tlsIn(*sb, {.connect = endpoint(3, kHttpsGood), .sni = unknown});
  EXPECT_FALSE(handshakeOk(r)) << r.dump();
  EXPECT_TRUE(handshakesWith(unknown).empty()) << joined(handshakesWith(unknown));
  ASSERT_OK_AND_ASSIGN(
      json u, sb->daemon().waitForAudit(auditWith({{"protocol", "tls"}, {"host", unknown}})));
  EXPECT_EQ(u.value("decision", ""), "error") << u;
  EXPECT_EQ(u.value("reason", ""), "resolve_failed") << u;
}

// Bodies of some MiB arrive intact both ways: spliced (passthrough) and re-encrypted
// (interception, where TLS no longer vouches for the bytes end to end).
TEST_F(HttpsProxyTest, LargeBodiesArriveIntactInBothModes) {
  constexpr int kBytes = 4 * 1024 * 1024;
  ASSERT_OK_AND_ASSIGN(auto dir, test::TempDir::create());
  std::string payload(kBytes, '\0');
  for (size_t i = 0; i < payload.size(); ++i) {
    payload[i] = static_cast<char>((i * 2654435761u) >> 13);
  }
  ASSERT_OK_AND_ASSIGN(std::string file, dir.writeFile("upload.bin", payload));
  auto sha256 = [](const RunResult& r) {
    return r.out.substr(0, std::min<size_t>(64, r.out.size()));
  };
  auto curlPipe = [&](const std::string& cafile, const std::string& ip, const std::string& path) {
    return "curl --http1.1 --noproxy '*' -sS --fail --max-time 20 --cacert " + cafile +
           " --resolve allowed.test:" + kGood + ":" + ip + " 'https://allowed.test:" + kGood +
           path + "' | sha256sum";
  };
  const std::string download = "/download?bytes=" + std::to_string(kBytes);
  // The reference: straight from the origin, outside every sandbox.
  RunResult direct =
      runGuarded({"/bin/sh", "-c", curlPipe(ca_->caCertFile(), w().ip4(3), download)}, "", "",
                 milliseconds(30000));
  ASSERT_TRUE(direct.succeeded()) << direct.describe();
  RunResult local = runGuarded({"sha256sum", file}, "", "", milliseconds(10000));
  ASSERT_TRUE(local.succeeded()) << local.describe();

  for (bool intercept : {false, true}) {
    SCOPED_TRACE(intercept ? "interception" : "passthrough");
    PolicySpec s = spec();
    s.allowedHosts = {"allowed.test"};
    ASSERT_OK_AND_ASSIGN(auto sb, start(intercept ? intercepting(s) : s));
    const std::string cafile = intercept ? sandboxCa(*sb) : ca_->caCertFile();
    RunResult down = sb->runInside({"/bin/sh", "-c", curlPipe(cafile, w().ip4(3), download)}, "",
                                   milliseconds(30000));
    ASSERT_TRUE(down.succeeded()) << down.describe();
    EXPECT_EQ(sha256(down), sha256(direct)) << "download differs";
    auto up =
        curlHttps(*sb, "allowed.test", kHttpsGood, w().ip4(3), "/upload", cafile,
                  {"--data-binary", "@" + file, "-H", "Content-Type: application/octet-stream"});
    ASSERT_EQ(up.status(), 200) << up.describe();
    json body = jsonBody(up.last().body);
    EXPECT_EQ(body.value("bytes", 0), kBytes) << up.describe();
    EXPECT_EQ(body.value("sha256", ""), sha256(local)) << "upload differs: " << up.describe();

    // The audit counts the bytes: per connection (passthrough) or per request (interception).
    const uint64_t big = kBytes;
    auto over = [&](const char* key) {
      return [key, intercept](const json& a) {  // big: a constant, not captured
        return a.value("protocol", "") == (intercept ? "https" : "tls") &&
               a.value(key, uint64_t{0}) >= big;
      };
    };
    ASSERT_OK_AND_ASSIGN(json d, sb->daemon().waitForAudit(over("bytes_out"), milliseconds(8000)));
    EXPECT_LT(d.value("bytes_out", uint64_t{0}), big + 64 * 1024) << d;
    ASSERT_OK_AND_ASSIGN(json u, sb->daemon().waitForAudit(over("bytes_in"), milliseconds(8000)));
    EXPECT_LT(u.value("bytes_in", uint64_t{0}), big + 64 * 1024) << u;
    if (intercept) {
      EXPECT_EQ(d.value("path", ""), "/download") << d;
      EXPECT_EQ(u.value("path", ""), "/upload") << u;
      EXPECT_EQ(u.value("bytes_in", uint64_t{0}), big) << "request body bytes: " << u;
    }
  }
}

// --- interception --------------------------------------------------------------------------

TEST_F(HttpsProxyTest, InterceptedRequestsAreJudgedOnTheirHost) {
  PolicySpec s = intercepting(spec());
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string id = sb->daemon().sandboxId();
  const std::string allowed = label("allowed");
  const std::string denied = label("denied");

  // curl trusting only the sandbox CA: the origin's own certificate would not verify.
  auto c = curlHttps(*sb, "allowed.test", kHttpsGood, w().ip4(3), "/whoami?tag=" + allowed,
                     sandboxCa(*sb), {"-v"});
  ASSERT_EQ(c.status(), 200) << c.describe();
  json who = jsonBody(c.last().body);
  EXPECT_EQ(who.value("sni", ""), "allowed.test") << "egressd's upstream TLS: " << who.dump();
  EXPECT_EQ(who.value("host", ""), "allowed.test:" + kGood) << who.dump();
  EXPECT_TRUE(allowedTestOrigins().contains(who.value("server", ""))) << who.dump();
  const std::string caCn = cnOf(sandboxCaSubject(*sb));
  ASSERT_FALSE(caCn.empty()) << sandboxCaSubject(*sb);
  EXPECT_TRUE(contains(c.run.err, "issuer: ") && contains(c.run.err, caCn))
      << "issuer is not the sandbox CA (" << caCn << "): " << c.run.err;
  ASSERT_EQ(requestsWith(allowed).size(), 1u) << origin_->log();
  // Connected to other.test's address: the request still goes where allowed.test resolves.
  const std::string spoof = label("spoof");
  const size_t spoofBefore4 = origin_->requestsTo(endpoint(4, kHttpsGood));
  c = curlHttps(*sb, "allowed.test", kHttpsGood, w().ip4(4), "/whoami?tag=" + spoof,
                sandboxCa(*sb));
  ASSERT_EQ(c.status(), 200) << c.describe();
  EXPECT_TRUE(allowedTestOrigins().contains(jsonBody(c.last().body).value("server", "")))
      << c.describe();
  EXPECT_EQ(origin_->requestsTo(endpoint(4, kHttpsGood)), spoofBefore4) << origin_->log();

  // The leaf: issued by the sandbox CA, for the SNI.
  json r = tlsIn(*sb, {.connect = endpoint(3, kHttpsGood), .sni = "allowed.test"});
  ASSERT_TRUE(handshakeOk(r)) << r.dump();
  EXPECT_EQ(modeOf(*sb, r), "intercepted");
  ASSERT_OK_AND_ASSIGN(auto leaf, test::inspectCertPem(r.value("cert_pem", "")));
  EXPECT_EQ(leaf.san, "DNS:allowed.test") << leaf.subject;
  // Trusting only the test CA, the client refuses the intercepted connection.
  r = tlsIn(
      *sb,
      {.connect = endpoint(3, kHttpsGood), .sni = "allowed.test", .cafile = ca_->caCertFile()});
  EXPECT_FALSE(handshakeOk(r)) << r.dump();

  // A Host outside allowedHosts: the handshake completes, the request is answered 403.
  c = curlHttps(*sb, "other.test", kHttpsGood, w().ip4(4), "/whoami?tag=" + denied, sandboxCa(*sb));
  EXPECT_EQ(c.status(), 403) << c.describe();
  EXPECT_EQ(c.last().header("X-Egressd-Reason"), "not_in_allowed_hosts") << c.describe();
  EXPECT_EQ(c.last().header("X-Egressd-Rule"), "default") << c.describe();
  EXPECT_TRUE(c.last().body.starts_with("egressd: request to other.test denied for sandbox " + id))
      << c.describe();
  EXPECT_TRUE(requestsWith(denied).empty()) << joined(requestsWith(denied));

  ASSERT_OK_AND_ASSIGN(
      json a, sb->daemon().waitForAudit(
                  auditWith({{"protocol", "https"}, {"host", "allowed.test"}, {"status", 200}})));
  EXPECT_EQ(a.value("layer", ""), "proxy") << a;
  EXPECT_EQ(a.value("decision", ""), "allow") << a;
  EXPECT_EQ(a.value("reason", ""), "allowed_host") << a;
  EXPECT_EQ(a.value("method", ""), "GET") << a;
  EXPECT_EQ(a.value("path", ""), "/whoami") << a;
  EXPECT_EQ(a.value("orig_dst", ""), endpoint(3, kHttpsGood)) << a;
  EXPECT_EQ(a.value("upstream", ""), who.value("server", "")) << a;
  EXPECT_FALSE(contains(a.dump(), allowed)) << "the query string reached the audit log: " << a;
  ASSERT_OK_AND_ASSIGN(json d, sb->daemon().waitForAudit(
                                   auditWith({{"protocol", "https"}, {"host", "other.test"}})));
  EXPECT_EQ(d.value("decision", ""), "deny") << d;
  EXPECT_EQ(d.value("reason", ""), "not_in_allowed_hosts") << d;
  EXPECT_EQ(d.value("status", 0), 403) << d;

  ASSERT_OK_AND_ASSIGN(std::string text, sb->daemon().scrapeMetrics());
  auto samples = test::parsePrometheusText(text);
  EXPECT_GE(test::promValue(samples, "egressd_tls_connections_total",
                            {{"sandbox", id}, {"mode", "intercept"}, {"decision", "allow"}})
                .value_or(0),
            4.0)
      << text;
}

// No SNI under interception: the leaf names the original destination's IP, the request's
// Host must be that address, and the upstream (that address) gets no IP in its SNI.
TEST_F(HttpsProxyTest, InterceptionWithoutSniUsesAnIpLeaf) {
  PolicySpec s = intercepting(spec());
  s.allowedHosts = {w().ip4(3), w().ip6(3)};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  for (const std::string& ip : {w().ip4(3), w().ip6(3)}) {
    SCOPED_TRACE(ip);
    const std::string ep = hostPort(ip, kHttpsGood);
    const std::string t = label("ipleaf");
    // python verifies the IP SAN when given an IP as the server name (and sends no SNI).
    json r = tlsIn(
        *sb, {.connect = ep, .cafile = sandboxCa(*sb), .host = ep, .path = "/whoami?tag=" + t});
    ASSERT_TRUE(handshakeOk(r)) << r.dump();
    EXPECT_EQ(modeOf(*sb, r), "intercepted");
    ASSERT_OK_AND_ASSIGN(auto leaf, test::inspectCertPem(r.value("cert_pem", "")));
    EXPECT_TRUE(contains(leaf.san, "IP Address:")) << leaf.san;
    EXPECT_EQ(statusOf(r), 200) << r.dump();
    json who = whoami(r);
    EXPECT_EQ(who.value("server", ""), ep) << r.dump();
    EXPECT_TRUE(who.contains("sni") && who["sni"].is_null())
        << "an IP address was sent as SNI upstream (RFC 6066 3): " << who.dump();
    EXPECT_EQ(requestsWith(t).size(), 1u) << origin_->log();
  }
}

// Domain fronting: an SNI the policy allows, a Host (or absolute-form authority) it names
// another host with. 421, and the origin sees nothing.
TEST_F(HttpsProxyTest, HostDifferentFromSniIsMisdirected) {
  PolicySpec s = intercepting(spec());
  s.allowedHosts = {"allowed.test", "other.test"};  // only the disagreement can refuse it
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string header = label("front-header");
  const std::string absolute = label("front-absolute");
  const std::string same = label("same");

  auto c = curlHttps(*sb, "allowed.test", kHttpsGood, w().ip4(3), "/whoami?tag=" + header,
                     sandboxCa(*sb), {"-H", "Host: other.test"});
  EXPECT_EQ(c.status(), 421) << c.describe();
  EXPECT_EQ(c.last().header("X-Egressd-Reason"), "host_sni_mismatch") << c.describe();

  json r = tlsIn(*sb, {.connect = endpoint(3, kHttpsGood),
                       .sni = "allowed.test",
                       .cafile = sandboxCa(*sb),
                       .host = "other.test:" + kGood,
                       .path = "https://other.test:" + kGood + "/whoami?tag=" + absolute});
  EXPECT_EQ(statusOf(r), 421) << r.dump();

  // On a kept-alive connection, the second request's Host is checked as well.
  const std::string first = label("keepalive-first");
  const std::string second = label("keepalive-second");
  r = tlsIn(*sb, {.connect = endpoint(3, kHttpsGood),
                  .sni = "allowed.test",
                  .cafile = sandboxCa(*sb),
                  .host = "allowed.test",
                  .path = "/whoami?tag=" + first,
                  .thenHost = "other.test",
                  .thenPath = "/whoami?tag=" + second});
  EXPECT_EQ(statusOf(r), 200) << r.dump();
  EXPECT_EQ(r.value("then_response", json::object()).value("status", 0), 421) << r.dump();
  EXPECT_EQ(requestsWith(first).size(), 1u) << origin_->log();
  EXPECT_TRUE(requestsWith(second).empty()) << joined(requestsWith(second));

  // Case and port do not make a mismatch.
  c = curlHttps(*sb, "allowed.test", kHttpsGood, w().ip4(3), "/whoami?tag=" + same, sandboxCa(*sb),
                {"-H", "Host: Allowed.TEST:" + kGood});
  EXPECT_EQ(c.status(), 200) << c.describe();

  EXPECT_TRUE(requestsWith(header).empty()) << joined(requestsWith(header));
  EXPECT_TRUE(requestsWith(absolute).empty()) << joined(requestsWith(absolute));
  EXPECT_EQ(requestsWith(same).size(), 1u) << origin_->log();
  ASSERT_OK_AND_ASSIGN(size_t n, sb->daemon().waitForAuditCount(
                                     auditWith({{"protocol", "https"}, {"status", 421}}), 3));
  EXPECT_EQ(n, 3u);
  ASSERT_OK_AND_ASSIGN(json a, sb->daemon().waitForAudit(auditWith({{"status", 421}})));
  EXPECT_EQ(a.value("reason", ""), "host_sni_mismatch") << a;
  EXPECT_EQ(a.value("decision", ""), "deny") << a;
}

TEST_F(HttpsProxyTest, UpstreamCertificateFailuresGive502) {
  PolicySpec s = intercepting(spec());
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));

  const std::vector<std::pair<int, std::string>> cases{
      {kHttpsExpired, "certificate has expired"},
      {kHttpsWrongName, "hostname mismatch"},
      {kHttpsUntrusted, "unable to get local issuer certificate"}};
  for (const auto& [port, why] : cases) {
    SCOPED_TRACE("port " + std::to_string(port));
    const std::string t = label("bad-upstream");
    auto c = curlHttps(*sb, "allowed.test", port, w().ip4(3), "/whoami?tag=" + t, sandboxCa(*sb));
    EXPECT_EQ(c.status(), 502) << c.describe();
    EXPECT_EQ(c.last().header("X-Egressd-Reason"), "upstream_tls_failed") << c.describe();
    const std::string& body = c.last().body;
    EXPECT_TRUE(body.starts_with("egressd: TLS to allowed.test (")) << c.describe();
    std::string lowerBody = body;
    for (char& ch : lowerBody) {
      ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
    EXPECT_TRUE(contains(lowerBody, ":" + std::to_string(port) + ") failed: " + why))
        << c.describe();
    EXPECT_TRUE(requestsWith(t).empty())
        << "a request reached an unverified upstream: " << joined(requestsWith(t));
    ASSERT_OK_AND_ASSIGN(json a, sb->daemon().waitForAudit(auditWith(
                                     {{"protocol", "https"}, {"orig_dst", endpoint(3, port)}})));
    EXPECT_EQ(a.value("decision", ""), "error") << a;
    EXPECT_EQ(a.value("reason", ""), "upstream_tls_failed") << a;
    EXPECT_EQ(a.value("status", 0), 502) << a;
  }
}

// Without --upstream-ca-file the test CA is unknown: the good origin fails verification too;
// egressd never falls back to unverified TLS.
TEST_F(HttpsProxyTest, UpstreamIsVerifiedAgainstTheSystemStoreWithoutTheExtraCa) {
  PolicySpec s = intercepting(spec());
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s, /*upstreamCa=*/false));
  const std::string t = label("no-extra-ca");
  auto c =
      curlHttps(*sb, "allowed.test", kHttpsGood, w().ip4(3), "/whoami?tag=" + t, sandboxCa(*sb));
  EXPECT_EQ(c.status(), 502) << c.describe();
  EXPECT_EQ(c.last().header("X-Egressd-Reason"), "upstream_tls_failed") << c.describe();
  EXPECT_TRUE(contains(c.last().body, "unable to get local issuer certificate")) << c.describe();
  EXPECT_TRUE(requestsWith(t).empty()) << joined(requestsWith(t));
}

TEST_F(HttpsProxyTest, EachSandboxHasItsOwnCa) {
  PolicySpec plain = spec();
  plain.allowedHosts = {"allowed.test"};
  // A: interception off (its CA files exist all the same); B: interception on.
  ASSERT_OK_AND_ASSIGN(auto a, start(plain));
  ASSERT_OK_AND_ASSIGN(auto b, start(intercepting(plain)));
  const std::string dirB = sandboxDir(*b);

  for (Sandbox* sb : {a.get(), b.get()}) {
    SCOPED_TRACE(sb->daemon().sandboxId());
    struct stat st {};
    ASSERT_EQ(::stat(sandboxCa(*sb).c_str(), &st), 0) << sandboxCa(*sb);
    EXPECT_EQ(st.st_mode & 07777, 0644u);
    ASSERT_OK_AND_ASSIGN(std::string pem, readFile(sandboxCa(*sb)));
    ASSERT_OK_AND_ASSIGN(std::string bundle, readFile(sandboxDir(*sb) + "/ca-bundle.crt"));
    EXPECT_TRUE(contains(bundle, pem)) << "ca-bundle.crt lacks the sandbox CA";
    EXPECT_TRUE(bundle.find("BEGIN CERTIFICATE") != bundle.rfind("BEGIN CERTIFICATE"))
        << "ca-bundle.crt holds only one certificate; the system bundle is missing";
    EXPECT_FALSE(contains(bundle, "PRIVATE KEY"));
  }
  ASSERT_OK_AND_ASSIGN(auto caA, test::inspectCertFile(sandboxCa(*a)));
  ASSERT_OK_AND_ASSIGN(auto caB, test::inspectCertFile(sandboxCa(*b)));
  EXPECT_NE(caA.sha256, caB.sha256);
  // An ECDSA P-256 CA certificate.
  RunResult text = runGuarded({"openssl", "x509", "-in", sandboxCa(*a), "-noout", "-text"}, "", "",
                              milliseconds(10000));
  EXPECT_TRUE(contains(text.out, "id-ecPublicKey") && contains(text.out, "prime256v1")) << text.out;
  EXPECT_TRUE(contains(text.out, "CA:TRUE")) << text.out;

  json r = tlsIn(*b, {.connect = endpoint(3, kHttpsGood), .sni = "allowed.test"});
  ASSERT_TRUE(handshakeOk(r)) << r.dump();
  const std::string leaf = r.value("cert_pem", "");
  EXPECT_OK(test::verifyCertPem(leaf, sandboxCa(*b)));
  EXPECT_FALSE(test::verifyCertPem(leaf, sandboxCa(*a)).ok())
      << "sandbox A's CA validates sandbox B's leaf";
  // A real client of B that trusts A's CA refuses the connection; trusting B's, it works.
  r = tlsIn(*b,
            {.connect = endpoint(3, kHttpsGood), .sni = "allowed.test", .cafile = sandboxCa(*a)});
  EXPECT_FALSE(handshakeOk(r)) << r.dump();
  EXPECT_EQ(r.value("error_reason", ""), "CERTIFICATE_VERIFY_FAILED") << r.dump();
  r = tlsIn(*b, {.connect = endpoint(3, kHttpsGood),
                 .sni = "allowed.test",
                 .cafile = sandboxCa(*b),
                 .host = "allowed.test"});
  EXPECT_EQ(statusOf(r), 200) << r.dump();

  // The files go with the sandbox.
  b.reset();
  EXPECT_FALSE(pathExists(dirB + "/ca.crt"));
  EXPECT_FALSE(pathExists(dirB + "/ca-bundle.crt"));
  EXPECT_FALSE(pathExists(dirB)) << dirB << " left behind";
}

// The CA private key lives in memory only: not in /run/egressd, not in the state dir, not in
// any regular file the daemon holds open (its logs and audit log included).
TEST_F(HttpsProxyTest, CaPrivateKeyIsNowhereOnDisk) {
  PolicySpec s = intercepting(spec());
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  auto c = curlHttps(*sb, "allowed.test", kHttpsGood, w().ip4(3), "/whoami", sandboxCa(*sb));
  ASSERT_EQ(c.status(), 200) << c.describe();

  std::set<std::string> scanned;
  std::vector<std::string> leaks;
  auto scan = [&](const std::string& path, const std::string& as) {
    auto text = readFile(path);
    if (!text.ok()) {
      return;  // gone meanwhile, or not readable as a file
    }
    scanned.insert(as);
    if (contains(*text, "PRIVATE KEY")) {
      leaks.push_back(as);
    }
  };
  for (const char* root : {"/run/egressd", "/var/lib/egressd"}) {
    std::error_code ec;
    if (!std::filesystem::exists(root, ec)) {
      continue;
    }
    for (auto it = std::filesystem::recursive_directory_iterator(
             root, std::filesystem::directory_options::skip_permission_denied, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_regular_file(ec)) {
        scan(it->path().string(), it->path().string());
      }
    }
  }
  const pid_t pid = sb->daemon().pid();
  ASSERT_GT(pid, 0);
  const std::string fdDir = "/proc/" + std::to_string(pid) + "/fd";
  size_t openFiles = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(fdDir, ec)) {
    struct stat st {};
    if (::stat(entry.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
      continue;
    }
    std::error_code linkEc;
    const auto target = std::filesystem::read_symlink(entry.path(), linkEc);
    ++openFiles;
    scan(entry.path().string(), entry.path().string() + " -> " + target.string());
  }
  ASSERT_FALSE(ec) << fdDir << ": " << ec.message();
  EXPECT_TRUE(scanned.contains(sandboxCa(*sb))) << "the scan did not see the sandbox's ca.crt";
  EXPECT_GE(openFiles, 2u) << "the daemon's log and audit files should be open";
  EXPECT_TRUE(leaks.empty()) << "PRIVATE KEY found in:" << joined(leaks);
  EXPECT_FALSE(contains(sb->daemon().logs(), "PRIVATE KEY"));
}

// After a restart of the daemon (SIGKILL: no cleanup ran), ca.crt is the certificate of the
// CA the daemon signs with now: a client that trusts the file keeps working.
TEST_F(HttpsProxyTest, CaFileMatchesTheCaInUseAfterARestart) {
  PolicySpec s = intercepting(spec());
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const TlsCall call{.connect = endpoint(3, kHttpsGood),
                     .sni = "allowed.test",
                     .cafile = sandboxCa(*sb),
                     .host = "allowed.test"};
  json r = tlsIn(*sb, call);
  ASSERT_EQ(statusOf(r), 200) << r.dump();
  for (int sig : {SIGKILL, SIGTERM}) {
    SCOPED_TRACE(sig == SIGKILL ? "after SIGKILL" : "after SIGTERM");
    ASSERT_OK(sb->daemon().killAndWait(sig));
    ASSERT_OK(sb->daemon().restart());
    ASSERT_TRUE(pathExists(sandboxCa(*sb))) << sandboxCa(*sb);
    r = tlsIn(*sb, call);
    EXPECT_TRUE(handshakeOk(r)) << "the client trusting ca.crt refuses the leaf: " << r.dump();
    EXPECT_EQ(statusOf(r), 200) << r.dump();
  }
}

// The container case: a sandbox in its own network namespace, both modes side by side.
TEST_F(HttpsProxyTest, SandboxInItsOwnNetnsIsServedInBothModes) {
  PolicySpec s = intercepting(spec(), "[\"allowed.test\"]");
  s.allowedHosts = {"allowed.test", "other.test"};
  ASSERT_OK_AND_ASSIGN(
      auto sb,
      Sandbox::start(s, SandboxOptions{.ownNetns = true,
                                       .auditLog = true,
                                       .daemonArgs = {"--upstream-ca-file", ca_->caCertFile()}}));
  json r = tlsIn(*sb, {.connect = endpoint(3, kHttpsGood),
                       .sni = "allowed.test",
                       .cafile = sandboxCa(*sb),
                       .host = "allowed.test"});
  EXPECT_EQ(modeOf(*sb, r), "intercepted");
  EXPECT_EQ(statusOf(r), 200) << r.dump();
  r = tlsIn(*sb, {.connect = endpoint6(3, kHttpsGood),
                  .sni = "other.test",
                  .cafile = ca_->caCertFile(),
                  .host = "other.test"});
  EXPECT_EQ(modeOf(*sb, r), "passthrough");
  EXPECT_EQ(statusOf(r), 200) << r.dump();
  EXPECT_EQ(whoami(r).value("server", ""), endpoint(4, kHttpsGood)) << r.dump();
  r = tlsIn(*sb, {.connect = endpoint(3, kHttpsGood), .sni = label("no") + ".allowed.test"});
  EXPECT_EQ(r.value("error_reason", ""), "TLSV1_ALERT_ACCESS_DENIED") << r.dump();
}

// A daemon that died without cleaning up (SIGKILL) leaves its sandbox to `egressd detach`,
// which removes the sandbox: its CA files go too.
TEST_F(HttpsProxyTest, DetachAfterACrashRemovesTheCaFiles) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string dir = sandboxDir(*sb);
  ASSERT_TRUE(pathExists(dir + "/ca.crt")) << dir;
  ASSERT_OK(sb->daemon().killAndWait(SIGKILL));
  ASSERT_OK_AND_ASSIGN(RunResult r, sb->daemon().detach());
  ASSERT_TRUE(r.succeeded()) << r.describe();
  EXPECT_FALSE(pathExists(dir)) << dir << " outlives `egressd detach --sandbox "
                                << sb->daemon().sandboxId() << "`";
  std::error_code ec;
  std::filesystem::remove_all(dir, ec);  // this test's own leftovers, whatever the outcome
}

TEST_F(HttpsProxyTest, LeafCertificatesAreCachedPerName) {
  PolicySpec s = intercepting(spec());
  s.allowedHosts = {"allowed.test", "*.allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string id = sb->daemon().sandboxId();
  auto cache = [&](const std::string& result) {
    auto text = sb->daemon().scrapeMetrics();
    if (!text.ok()) {
      ADD_FAILURE() << text.error().message();
      return -1.0;
    }
    return test::promValue(test::parsePrometheusText(*text), "egressd_tls_leaf_cache_total",
                           {{"sandbox", id}, {"result", result}})
        .value_or(0.0);
  };

  json first = tlsIn(*sb, {.connect = endpoint(3, kHttpsGood), .sni = "allowed.test"});
  ASSERT_TRUE(handshakeOk(first)) << first.dump();
  const double hits = cache("hit");
  const double misses = cache("miss");
  EXPECT_GE(misses, 1.0);
  json second = tlsIn(*sb, {.connect = endpoint6(3, kHttpsGood), .sni = "allowed.test"});
  ASSERT_TRUE(handshakeOk(second)) << second.dump();
  EXPECT_EQ(first.value("cert_sha256", ""), second.value("cert_sha256", ""))
      << "two connections to one name got different leaves";
  EXPECT_EQ(cache("hit"), hits + 1);
  EXPECT_EQ(cache("miss"), misses);

  // Another name: another leaf (a miss), for that name.
  const std::string name = label("leaf") + ".allowed.test";
  json third = tlsIn(*sb, {.connect = endpoint(3, kHttpsGood), .sni = name});
  ASSERT_TRUE(handshakeOk(third)) << third.dump();
  EXPECT_NE(third.value("cert_sha256", ""), first.value("cert_sha256", ""));
  ASSERT_OK_AND_ASSIGN(auto leaf, test::inspectCertPem(third.value("cert_pem", "")));
  EXPECT_EQ(leaf.san, "DNS:" + name);
  EXPECT_EQ(cache("miss"), misses + 1);
  EXPECT_EQ(modeOf(*sb, first), "intercepted");
  EXPECT_EQ(modeOf(*sb, third), "intercepted");
}

TEST_F(HttpsProxyTest, InterceptionListPicksHostsBySni) {
  PolicySpec s = intercepting(spec(), "[\"allowed.test\", \"intercept-*.other.test\"]");
  s.allowedHosts = {"allowed.test", "*.allowed.test", "other.test", "*.other.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string other = label("list") + ".other.test";
  const std::string sub = label("list") + ".allowed.test";

  json r = tlsIn(*sb, {.connect = endpoint(3, kHttpsGood),
                       .sni = "allowed.test",
                       .cafile = sandboxCa(*sb),
                       .host = "allowed.test"});
  EXPECT_EQ(modeOf(*sb, r), "intercepted");
  EXPECT_EQ(statusOf(r), 200) << r.dump();
  r = tlsIn(*sb, {.connect = endpoint(4, kHttpsGood),
                  .sni = other,
                  .cafile = ca_->caCertFile(),
                  .host = other});
  EXPECT_EQ(modeOf(*sb, r), "passthrough");
  EXPECT_EQ(statusOf(r), 200) << r.dump();
  EXPECT_EQ(whoami(r).value("sni", ""), other) << r.dump();
  ASSERT_OK_AND_ASSIGN(auto info, test::inspectCertPem(r.value("cert_pem", "")));
  EXPECT_EQ(cnOf(info.issuer), "egressd e2e test root CA") << info.issuer;
  // The list names allowed.test exactly: its subdomains pass through.
  r = tlsIn(*sb, {.connect = endpoint(3, kHttpsGood), .sni = sub});
  EXPECT_EQ(modeOf(*sb, r), "passthrough");
  // A glob entry: what it matches is intercepted.
  const std::string globbed = label("intercept") + ".other.test";
  r = tlsIn(*sb, {.connect = endpoint(4, kHttpsGood),
                  .sni = globbed,
                  .cafile = sandboxCa(*sb),
                  .host = globbed});
  EXPECT_EQ(modeOf(*sb, r), "intercepted");
  EXPECT_EQ(whoami(r).value("sni", ""), globbed) << r.dump();

  ASSERT_OK_AND_ASSIGN(json a, sb->daemon().waitForAudit(
                                   auditWith({{"protocol", "https"}, {"host", "allowed.test"}})));
  EXPECT_EQ(a.value("status", 0), 200) << a;
  ASSERT_OK_AND_ASSIGN(json p,
                       sb->daemon().waitForAudit(auditWith({{"protocol", "tls"}, {"host", other}}),
                                                 milliseconds(8000)));
  EXPECT_EQ(p.value("detail", ""), "passthrough") << p;
}

TEST_F(HttpsProxyTest, ReloadSwitchesInterceptionForNewConnections) {
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const TlsCall call{
      .connect = endpoint(3, kHttpsGood), .sni = "allowed.test", .host = "allowed.test"};
  auto reload = [&](const PolicySpec& next) {
    auto count = [&] {
      const std::string logs = sb->daemon().logs();
      size_t n = 0;
      for (size_t pos = logs.find(" reloaded"); pos != std::string::npos;
           pos = logs.find(" reloaded", pos + 1)) {
        ++n;
      }
      return n;
    };
    const size_t before = count();
    ASSERT_OK(sb->daemon().reload(policyYaml(next)));
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (count() == before && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(milliseconds(20));
    }
    ASSERT_GT(count(), before) << "no reload logged:\n" << sb->daemon().logs();
  };

  json r = tlsIn(*sb, call);
  EXPECT_EQ(modeOf(*sb, r), "passthrough");
  EXPECT_EQ(statusOf(r), 200) << r.dump();

  reload(intercepting(s));
  r = tlsIn(*sb, call);
  EXPECT_EQ(modeOf(*sb, r), "intercepted");
  EXPECT_EQ(statusOf(r), 200) << r.dump();
  ASSERT_OK_AND_ASSIGN(json a, sb->daemon().waitForAudit(auditWith({{"protocol", "https"}})));
  EXPECT_EQ(a.value("host", ""), "allowed.test") << a;

  reload(s);
  r = tlsIn(*sb, call);
  EXPECT_EQ(modeOf(*sb, r), "passthrough");
}

// With http.http2 off, interception speaks HTTP/1.1 only (http2_test.cpp covers h2 on).
TEST_F(HttpsProxyTest, ClientOfferingOnlyH2IsRefusedWhenHttp2IsOff) {
  PolicySpec s = intercepting(spec());
  s.allowedHosts = {"allowed.test"};
  s.extraYaml += "http:\n  http2: false\n";
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const TlsCall base{.connect = endpoint(3, kHttpsGood),
                     .sni = "allowed.test",
                     .cafile = sandboxCa(*sb),
                     .host = "allowed.test"};

  TlsCall h2 = base;
  h2.alpn = "h2";
  json r = tlsIn(*sb, h2);
  EXPECT_FALSE(handshakeOk(r)) << r.dump();
  // Python 3.11 has no reason name for alert 120; its text names it.
  EXPECT_TRUE(contains(r.value("error", ""), "alert no application protocol")) << r.dump();
  ASSERT_OK_AND_ASSIGN(json a,
                       sb->daemon().waitForAudit(auditWith({{"reason", "alpn_unsupported"}})));
  EXPECT_EQ(a.value("decision", ""), "deny") << a;
  EXPECT_EQ(a.value("host", ""), "allowed.test") << a;

  TlsCall both = base;
  both.alpn = "h2,http/1.1";
  r = tlsIn(*sb, both);
  ASSERT_TRUE(handshakeOk(r)) << r.dump();
  EXPECT_EQ(r.value("alpn", ""), "http/1.1") << r.dump();
  EXPECT_EQ(statusOf(r), 200) << r.dump();
  r = tlsIn(*sb, base);  // no ALPN: HTTP/1.1 all the same
  ASSERT_TRUE(handshakeOk(r)) << r.dump();
  EXPECT_TRUE(r["alpn"].is_null()) << r.dump();
  EXPECT_EQ(statusOf(r), 200) << r.dump();
  EXPECT_EQ(whoami(r).value("alpn", ""), "http/1.1") << "egressd's upstream ALPN: " << r.dump();
}

// `egressd run`: the command trusts the intercepting proxy through the variables egressd run
// sets (urllib with no explicit CA), and the CA files go when it ends.
TEST_F(HttpsProxyTest, EgressdRunExportsTheSandboxCa) {
  ASSERT_OK(test::requireBinaries());
  ASSERT_OK_AND_ASSIGN(auto dir, test::TempDir::create());
  ASSERT_OK_AND_ASSIGN(auto parent, test::TestCgroup::create());
  test::PinRoot pin;
  PolicySpec s = intercepting(spec());
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(std::string policy, dir.writeFile("policy.yaml", policyYaml(s)));
  const std::string t = label("run");
  // urllib resolves allowed.test through a getaddrinfo that names .3 (the test does not
  // depend on the host's resolver configuration); everything else is stock.
  const std::string script = R"PY(
import json, os, socket, ssl, urllib.request
real = socket.getaddrinfo
socket.getaddrinfo = lambda host, *a, **k: real(")PY" +
                             w().ip4(3) +
                             R"PY(" if host == "allowed.test" else host, *a, **k)
names = ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO",
         "NODE_EXTRA_CA_CERTS", "EGRESSD_CA_CERT", "EGRESSD_SANDBOX"]
out = {"env": {n: os.environ.get(n) for n in names}}
out["exists"] = {n: os.path.isfile(v) for n, v in out["env"].items() if v and n != "EGRESSD_SANDBOX"}
url = "https://allowed.test:)PY" +
                             kGood + "/whoami?tag=" + t + R"PY("
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    with opener.open(url, timeout=10) as r:
        out["status"] = r.status
        out["body"] = json.loads(r.read())
except Exception as e:
    out["error"] = repr(e)
if os.environ.get("SSL_CERT_FILE"):
    out["bundle_certs"] = open(os.environ["SSL_CERT_FILE"]).read().count("BEGIN CERTIFICATE")
print(json.dumps(out))
)PY";
  RunResult r = runGuarded({test::egressdBin(), "run", "--upstream-ca-file", ca_->caCertFile(),
                            "--policy", policy, "--pin-root", pin.path(), "--cgroup-parent",
                            parent.path(), "--", test::python3Bin(), "-c", script},
                           "", "", milliseconds(30000));
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  json out;
  for (size_t pos = 0; pos < r.out.size();) {  // the script's line among egressd's
    size_t end = r.out.find('\n', pos);
    std::string line = r.out.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (line.starts_with("{\"env\"")) {
      out = json::parse(line, nullptr, false);
    }
    pos = end == std::string::npos ? r.out.size() : end + 1;
  }
  ASSERT_TRUE(out.is_object()) << r.describe();
  const json& env = out["env"];
  const std::string id = env.value("EGRESSD_SANDBOX", "");
  ASSERT_TRUE(id.starts_with("run-")) << out.dump();
  const std::string d = kSandboxesDir + id;
  for (const char* n :
       {"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO"}) {
    EXPECT_EQ(env.value(n, ""), d + "/ca-bundle.crt") << n << ": " << out.dump();
  }
  for (const char* n : {"NODE_EXTRA_CA_CERTS", "EGRESSD_CA_CERT"}) {
    EXPECT_EQ(env.value(n, ""), d + "/ca.crt") << n << ": " << out.dump();
  }
  const json exists = out.value("exists", json::object());
  for (const auto& [n, present] : exists.items()) {
    EXPECT_TRUE(present.get<bool>()) << n << " names no file inside the command: " << out.dump();
  }
  EXPECT_GT(out.value("bundle_certs", 0), 1) << out.dump();
  EXPECT_EQ(out.value("status", 0), 200) << out.dump();
  EXPECT_EQ(out.value("body", json::object()).value("sni", ""), "allowed.test") << out.dump();
  EXPECT_EQ(requestsWith(t).size(), 1u) << origin_->log();
  EXPECT_FALSE(pathExists(d)) << d << " left behind after egressd run exited";
}

// Item 7 of issue 12: a hello without a usable name (none, or hidden by ECH) to an address
// some rule allows is refused unless a rule names that address and port (tls.requireSni,
// on by default when allowedHosts is written): an `allow` rule for every port is not one.
TEST_F(HttpsProxyTest, HelloWithoutSniNeedsARuleNamingAddressAndPort) {
  auto noSni = [&](Sandbox& sb, int host, bool ech) {
    return tlsIn(sb, {.connect = endpoint(host, kHttpsGood),
                      .sni = ech ? label("ech") + ".allowed.test" : "",
                      .cafile = ech ? "" : ca_->caCertFile(),
                      .ech = ech});
  };
  auto reasonFor = [&](Sandbox& sb, int host) -> std::string {
    auto a = sb.daemon().waitForAudit(
        auditWith({{"protocol", "tls"}, {"orig_dst", endpoint(host, kHttpsGood)}}));
    return a.ok() ? a->value("reason", "") : a.error().message();
  };
  PolicySpec s = spec();
  s.allowedHosts = {"allowed.test"};
  s.allow = {{.cidr = w().ip4(3) + "/32", .protocol = "tcp"}};  // every port: names none
  {
    ASSERT_OK_AND_ASSIGN(auto sb, start(s));
    for (bool ech : {false, true}) {
      SCOPED_TRACE(ech ? "ECH" : "no SNI");
      json r = noSni(*sb, 3, ech);
      EXPECT_FALSE(handshakeOk(r)) << r.dump();
      EXPECT_EQ(r.value("error_reason", ""), "TLSV1_ALERT_ACCESS_DENIED") << r.dump();
    }
    EXPECT_EQ(reasonFor(*sb, 3), "sni_required");
  }
  // The same rule with the port named opens it; so does tls.requireSni: false.
  for (const std::string variant : {"port", "switch-off"}) {
    SCOPED_TRACE(variant);
    PolicySpec v = s;
    if (variant == "port") {
      v.allow = {{.cidr = w().ip4(3) + "/32", .ports = {kHttpsGood}, .protocol = "tcp"}};
    } else {
      v.extraYaml += "tls: { requireSni: false }\n";
    }
    ASSERT_OK_AND_ASSIGN(auto sb, start(v));
    json r = noSni(*sb, 3, false);
    EXPECT_TRUE(handshakeOk(r)) << r.dump();
    EXPECT_EQ(reasonFor(*sb, 3), "allowed_cidr");
  }
  // Without allowedHosts the switch is off unless written: enableInternet passes a hello
  // without SNI by address, tls.requireSni: true refuses it.
  PolicySpec open = spec();
  open.enableInternet = true;
  {
    ASSERT_OK_AND_ASSIGN(auto sb, start(open));
    EXPECT_TRUE(handshakeOk(noSni(*sb, 4, false)));
    EXPECT_EQ(reasonFor(*sb, 4), "enable_internet");
  }
  open.extraYaml = "tls: { requireSni: true }\n";
  ASSERT_OK_AND_ASSIGN(auto sb, start(open));
  EXPECT_FALSE(handshakeOk(noSni(*sb, 4, false)));
  EXPECT_EQ(reasonFor(*sb, 4), "sni_required");
}

// Item 4 of issue 12 inside intercepted TLS: an Upgrade other than websocket is answered by
// egressd and never reaches the origin.
TEST_F(HttpsProxyTest, InterceptedUpgradeToAnotherProtocolIsRefused) {
  PolicySpec s = intercepting(spec());
  s.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  const std::string t = label("upgrade");
  auto c = curlHttps(*sb, "allowed.test", kHttpsGood, w().ip4(3), "/switch?tag=" + t,
                     sandboxCa(*sb), {"-H", "Connection: Upgrade", "-H", "Upgrade: foo"});
  EXPECT_EQ(c.status(), 403) << c.describe();
  EXPECT_EQ(c.last().header("X-Egressd-Reason"), "upgrade_refused") << c.describe();
  EXPECT_TRUE(requestsWith(t).empty()) << joined(requestsWith(t));
  ASSERT_OK_AND_ASSIGN(
      json a,
      sb->daemon().waitForAudit(auditWith({{"protocol", "https"}, {"reason", "upgrade_refused"}})));
  EXPECT_EQ(a.value("status", 0), 403) << a;
}

// DNS over HTTPS is HTTPS: a real DoH client (curl --doh-url) asking a resolver whose name
// the policy denies gets nowhere, even when the sandbox knows the resolver's address
// (--resolve) — refused by SNI under passthrough, 403 per request under interception. The
// same client reaches an allowed DoH host (the control: the origin logs its /dns-query).
TEST_F(HttpsProxyTest, DnsOverHttpsFollowsTheHostPolicy) {
  const std::string port = std::to_string(kHttpsGood);
  auto dohCurl = [&](Sandbox& sb, const std::string& dohHost, const std::string& ip,
                     const std::string& cafile, const std::string& tag) {
    // The DoH answer would name lookup.allowed.test; the DoH request is all that matters.
    return sb.runInside({"curl", "--http1.1", "--noproxy", "*", "-sS", "--max-time", "10",
                         "--cacert", cafile, "--resolve", dohHost + ":" + port + ":" + ip,
                         "--doh-url", "https://" + dohHost + ":" + port + "/dns-query?tag=" + tag,
                         "http://lookup.allowed.test/"},
                        "", milliseconds(20000));
  };
  for (bool intercept : {false, true}) {
    SCOPED_TRACE(intercept ? "interception" : "passthrough");
    PolicySpec s = spec();
    s.allowedHosts = {"allowed.test", "*.allowed.test"};
    s.deniedHosts = {"*.other.test"};
    if (intercept) {
      s = intercepting(s);
    }
    ASSERT_OK_AND_ASSIGN(auto sb, start(s));
    const std::string cafile = intercept ? sandboxCa(*sb) : ca_->caCertFile();

    const std::string denied = label("doh-denied");
    const std::string deniedHost = "doh.other.test";
    RunResult r = dohCurl(*sb, deniedHost, w().ip4(4), cafile, denied);
    EXPECT_NE(r.exitCode, 0) << r.describe();
    EXPECT_TRUE(requestsWith(denied).empty()) << joined(requestsWith(denied));
    ASSERT_OK_AND_ASSIGN(
        json a, sb->daemon().waitForAudit(
                    // curl speaks DoH over HTTP/2 whenever it can (--http1.1 does not apply).
                    auditWith({{"protocol", intercept ? "h2" : "tls"}, {"host", deniedHost}})));
    EXPECT_EQ(a.value("decision", ""), "deny") << a;
    EXPECT_EQ(a.value("reason", ""), "denied_host") << a;

    const std::string allowed = label("doh-allowed");
    r = dohCurl(*sb, "doh.allowed.test", w().ip4(3), cafile, allowed);
    // (curl asks for A and AAAA: one POST each.)
    EXPECT_FALSE(requestsWith(allowed).empty()) << r.describe() << "\n" << origin_->log();
  }
}

}  // namespace
}  // namespace egressd::e2e
