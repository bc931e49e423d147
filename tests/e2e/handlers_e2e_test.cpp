// Handlers and secrets end to end (issue 5), through egressctl only: per-sandbox secrets,
// secrets that never reach the sandbox (env, files, egressd's own responses, audit, logs, API
// output), injection only for the host that matched (not after a redirect, not next to the
// sandbox's own header), rotation of file and API secrets, reroute to a unix-socket service,
// local `respond` virtual hosts, and a handler on intercepted HTTPS.
//
// The origins echo what they received: the world's http_origin.py (/whoami) and
// aux_origin.py (a redirecting origin in the test internet, a service on a unix socket), so
// the tests see the request exactly as egressd sent it on.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "common/fs.h"
#include "control_fixture.h"

namespace egressd::e2e {
namespace {

using nlohmann::json;
using test::CtlReply;
using test::milliseconds;

const std::string kOriginPort = std::to_string(kHttpOrigin);

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

// A value that appears nowhere unless egressd copied it there.
std::string randomSecret(const std::string& prefix) {
  std::random_device rd;
  std::ostringstream s;
  s << prefix << "-" << std::hex << rd() << rd() << rd();
  return s.str();
}

std::string setHeaderSecret(const std::string& handler, const std::string& header,
                            const std::string& valueTemplate) {
  return "  " + handler + ":\n    - setHeader: { name: " + header + ", value: \"" + valueTemplate +
         "\", allowPlaintext: true }\n";
}

class Handlers : public ControlPlaneTest {
 protected:
  CurlResult fetch(const CpSandbox& sb, const std::string& host, const std::string& tag,
                   const std::vector<std::string>& extra = {}, int port = kHttpOrigin) {
    const int ip = host == "other.test" || host.ends_with(".other.test") ? 4 : 3;
    return sb.get(host, port, w().ip4(ip), "/whoami?tag=" + tag, extra);
  }
  size_t reached(const std::string& tag) const { return origin_->requestsMatching(tag).size(); }
};

// One policy, two sandboxes: `${secret:NAME/${sandbox}}` gives each its own value; a third
// sandbox without a value gets an error and nothing leaves.
TEST_F(Handlers, PerSandboxSecretsReachOnlyTheirSandboxesRequests) {
  PolicySpec s;
  s.name = "per-sandbox";
  s.allowedHosts = {"allowed.test"};
  s.extraYaml = "outboundByHost:\n  allowed.test: perSb\noutboundHandlers:\n" +
                setHeaderSecret("perSb", "Authorization", "Bearer ${secret:PS_API_KEY/${sandbox}}");
  applyPolicy(s.name, cpPolicy(s));
  auto a = sandbox("ps-a", s.name);
  auto b = sandbox("ps-b", s.name);
  auto c = sandbox("ps-c", s.name);
  ASSERT_TRUE(a && b && c);
  const std::string va = randomSecret("value-a");
  const std::string vb = randomSecret("value-b");
  ASSERT_CTL_OK(daemon().secretSet("PS_API_KEY/ps-a", va));
  ASSERT_CTL_OK(daemon().secretSet("PS_API_KEY/ps-b", vb));

  CurlResult ra = fetch(*a, "allowed.test", uniqueTag("a"));
  ASSERT_EQ(ra.status(), 200) << ra.describe();
  EXPECT_EQ(ra.seenHeader("authorization"), "Bearer " + va);
  CurlResult rb = fetch(*b, "allowed.test", uniqueTag("b"));
  ASSERT_EQ(rb.status(), 200) << rb.describe();
  EXPECT_EQ(rb.seenHeader("authorization"), "Bearer " + vb);

  const std::string tc = uniqueTag("c");
  CurlResult rc = fetch(*c, "allowed.test", tc);
  EXPECT_EQ(rc.status(), 502) << rc.describe();
  EXPECT_TRUE(contains(rc.last().body, "PS_API_KEY/ps-c")) << rc.describe();
  EXPECT_EQ(reached(tc), 0u) << origin_->log();
  EXPECT_FALSE(contains(rc.run.out, va) || contains(rc.run.out, vb)) << rc.describe();
}

// The secret is used (the origin gets it) but appears in nothing the sandbox can see or the
// daemon writes: the sandbox's environment, the run dir, egressd's own responses (policy
// denial, handler denial, upstream failure), the audit log, egressd's log, the API's output.
TEST_F(Handlers, SecretNeverReachesTheSandboxLogsOrApiOutput) {
  const std::string secret = randomSecret("sn-secret");
  PolicySpec s;
  s.name = "secret-never";
  s.allowedHosts = {"allowed.test", "*.allowed.test"};
  s.deniedHosts = {"bad.allowed.test"};
  s.extraYaml =
      "outbound: inject\n"
      "outboundByHost:\n  deny.allowed.test: injectThenDeny\n"
      "outboundHandlers:\n" +
      setHeaderSecret("inject", "Authorization", "Bearer ${secret:SN_TOKEN}") +
      "  injectThenDeny:\n"
      "    - setHeader: { name: Authorization, value: \"Bearer ${secret:SN_TOKEN}\", "
      "allowPlaintext: true }\n"
      "    - deny: { status: 451 }\n";
  applyPolicy(s.name, cpPolicy(s));
  ASSERT_CTL_OK(daemon().secretSet("SN_TOKEN", secret));
  auto sb = sandbox("secret-never", s.name);
  ASSERT_TRUE(sb);
  ASSERT_OK_AND_ASSIGN(test::Process resident, spawnInCgroup({"sleep", "60"}, sb->cgroup()));

  // It is used: the origin gets it.
  CurlResult used = fetch(*sb, "allowed.test", uniqueTag("used"));
  ASSERT_EQ(used.status(), 200) << used.describe();
  ASSERT_EQ(used.seenHeader("authorization"), "Bearer " + secret);

  const std::string deniedTag = uniqueTag("denied");
  CurlResult denied = fetch(*sb, "bad.allowed.test", deniedTag);
  EXPECT_EQ(denied.status(), 403) << denied.describe();
  EXPECT_FALSE(contains(denied.run.out, secret)) << "policy denial: " << denied.describe();
  CurlResult handlerDenied = fetch(*sb, "deny.allowed.test", uniqueTag("hdeny"));
  EXPECT_EQ(handlerDenied.status(), 451) << handlerDenied.describe();
  EXPECT_TRUE(contains(handlerDenied.last().body, "injectThenDeny")) << handlerDenied.describe();
  EXPECT_FALSE(contains(handlerDenied.run.out, secret))
      << "handler denial: " << handlerDenied.describe();
  CurlResult failed = fetch(*sb, "allowed.test", uniqueTag("502"), {}, kHttpNoServer);
  EXPECT_EQ(failed.status(), 502) << failed.describe();
  EXPECT_FALSE(contains(failed.run.out, secret)) << "upstream failure: " << failed.describe();
  EXPECT_EQ(reached(deniedTag), 0u) << origin_->log();

  // The environment of every process in the sandbox.
  EXPECT_FALSE(test::cgroupProcs(sb->cgroup()).empty());
  for (pid_t pid : test::cgroupProcs(sb->cgroup())) {
    auto env = readFile("/proc/" + std::to_string(pid) + "/environ");
    ASSERT_TRUE(env.ok()) << env.error().message();
    EXPECT_FALSE(contains(*env, secret)) << "in the environment of pid " << pid;
  }
  // Every file under the run dir (the sandbox's CA files live there).
  EXPECT_TRUE(pathExists(sb->created().value("caCert", ""))) << sb->created();
  std::vector<std::string> hits = filesContaining(daemon().runDir(), secret);
  EXPECT_TRUE(hits.empty()) << "under " << daemon().runDir() << ": "
                            << ::testing::PrintToString(hits);

  // The audit log (which did record these requests) and egressd's own log.
  ASSERT_OK(daemon().waitForAudit(auditMatch({{"sandbox", "secret-never"}, {"status", 502}})));
  ASSERT_OK_AND_ASSIGN(
      json used200, daemon().waitForAudit(auditMatch(
                        {{"sandbox", "secret-never"}, {"host", "allowed.test"}, {"status", 200}})));
  EXPECT_EQ(used200.value("handler", ""), "inject") << used200;
  auto audit = readFile(daemon().auditLogPath());
  ASSERT_TRUE(audit.ok()) << audit.error().message();
  EXPECT_FALSE(contains(*audit, secret)) << "in the audit log";
  EXPECT_FALSE(contains(daemon().logs(), secret)) << "in egressd's log";

  // The API's output.
  for (const auto& args :
       std::vector<std::vector<std::string>>{{"secret", "list"},
                                             {"sandbox", "show", "secret-never"},
                                             {"sandbox", "list"},
                                             {"policy", "show", "secret-never"},
                                             {"status", "--pin-root", daemon().pinRoot()},
                                             {"audit", "tail", "-n", "50"}}) {
    CtlReply r = daemon().ctlJson(args);
    EXPECT_TRUE(r.ok()) << r.describe();
    EXPECT_FALSE(contains(r.run.out + r.run.err, secret)) << test::joinArgv(args);
    RunResult human = daemon().ctl(args);
    EXPECT_FALSE(contains(human.out + human.err, secret)) << test::joinArgv(args) << " (human)";
  }
  CtlReply list = daemon().ctlJson({"secret", "list"});
  bool listed = false;
  for (const auto& e : list.body["secrets"]) {
    listed = listed || e.value("name", "") == "SN_TOKEN";
  }
  EXPECT_TRUE(listed) << list.body;
}

// The handler of allowed.test injects a credential; allowed.test answers with a redirect to
// other.test, which curl follows: other.test gets no credential. And a sandbox's own
// Authorization header is replaced, not joined.
TEST_F(Handlers, SecretInjectedOnlyForTheHostThatMatched) {
  std::vector<std::string> eps = {hostPort(w().ip4(3), kAuxPort), hostPort(w().ip6(3), kAuxPort)};
  ASSERT_OK_AND_ASSIGN(auto aux, AuxOrigin::start(w().net->internet().path(), eps, "", "redir"));
  const std::string secret = randomSecret("si-secret");
  PolicySpec s;
  s.name = "inject-host";
  s.allowedHosts = {"allowed.test", "other.test"};
  s.extraYaml = "outboundByHost:\n  allowed.test: inject\noutboundHandlers:\n" +
                setHeaderSecret("inject", "Authorization", "Bearer ${secret:SI_TOKEN}");
  applyPolicy(s.name, cpPolicy(s));
  ASSERT_CTL_OK(daemon().secretSet("SI_TOKEN", secret));
  auto sb = sandbox("inject-host", s.name);
  ASSERT_TRUE(sb);

  const std::string tag = uniqueTag("redirect");
  const std::string target = "http://other.test:" + kOriginPort + "/whoami?tag=" + tag;
  CurlResult r =
      sb->curl({"-L", "--resolve", "allowed.test:" + std::to_string(kAuxPort) + ":" + w().ip4(3),
                "--resolve", "other.test:" + kOriginPort + ":" + w().ip4(4),
                "http://allowed.test:" + std::to_string(kAuxPort) + "/redirect?to=" + target});
  ASSERT_EQ(r.responses.size(), 2u) << r.describe();
  EXPECT_EQ(r.responses[0].status, 302) << r.describe();
  ASSERT_EQ(r.status(), 200) << r.describe();
  auto atA = aux->requestsMatching("/redirect");
  ASSERT_EQ(atA.size(), 1u) << aux->log();
  EXPECT_EQ(atA[0]["headers"].value("authorization", ""), "Bearer " + secret) << atA[0];
  EXPECT_EQ(r.whoami().value("host", ""), "other.test:" + kOriginPort) << r.describe();
  EXPECT_FALSE(r.seen("authorization")) << "other.test got a credential: " << r.describe();
  EXPECT_FALSE(contains(origin_->log(), secret));

  // The sandbox's own Authorization: replaced for allowed.test, untouched for other.test.
  CurlResult own =
      fetch(*sb, "allowed.test", uniqueTag("own"), {"-H", "Authorization: Bearer sandbox-own"});
  ASSERT_EQ(own.status(), 200) << own.describe();
  EXPECT_EQ(own.seenHeader("authorization"), "Bearer " + secret) << own.describe();
  CurlResult plain =
      fetch(*sb, "other.test", uniqueTag("plain"), {"-H", "Authorization: Bearer sandbox-own"});
  ASSERT_EQ(plain.status(), 200) << plain.describe();
  EXPECT_EQ(plain.seenHeader("authorization"), "Bearer sandbox-own") << plain.describe();
}

// A policy secret from a file follows the file (rewritten in place, or replaced by a
// rename); an API secret follows `secret set`. The next request carries the new value.
TEST_F(Handlers, RotatedSecretsApplyToTheNextRequest) {
  auto tmp = test::TempDir::createOrThrow();
  const std::string file = tmp.path() + "/rot.secret";
  ASSERT_OK(writeFileAtomic(file, "rotA-1111\n"));
  PolicySpec s;
  s.name = "rotation";
  s.allowedHosts = {"allowed.test"};
  s.extraYaml = "secrets:\n  SR_FILE: { file: " + file +
                " }\n"
                "outboundByHost:\n  allowed.test: both\n"
                "outboundHandlers:\n  both:\n"
                "    - setHeader: { name: Authorization, value: \"Bearer ${secret:SR_FILE}\", "
                "allowPlaintext: true }\n"
                "    - setHeader: { name: X-Api-Key, value: \"${secret:SR_API}\", "
                "allowPlaintext: true }\n";
  applyPolicy(s.name, cpPolicy(s));
  ASSERT_CTL_OK(daemon().secretSet("SR_API", "api-1"));
  auto sb = sandbox("rotation", s.name);
  ASSERT_TRUE(sb);
  auto seen = [&]() {
    CurlResult r = fetch(*sb, "allowed.test", uniqueTag("rot"));
    EXPECT_EQ(r.status(), 200) << r.describe();
    return r.seenHeader("authorization") + " | " + r.seenHeader("x-api-key");
  };
  EXPECT_EQ(seen(), "Bearer rotA-1111 | api-1");

  // Rewritten in place, same length (a time stamp apart).
  std::this_thread::sleep_for(milliseconds(20));
  {
    std::ofstream out(file, std::ios::trunc);
    out << "rotB-2222\n";
  }
  EXPECT_EQ(seen(), "Bearer rotB-2222 | api-1") << "after rewriting " << file << " in place";

  // Replaced by a rename (what secret managers and kubelet do).
  std::this_thread::sleep_for(milliseconds(20));
  ASSERT_OK(writeFileAtomic(file, "rotC-3333\n"));
  EXPECT_EQ(seen(), "Bearer rotC-3333 | api-1") << "after renaming a new file over " << file;

  ASSERT_CTL_OK(daemon().secretSet("SR_API", "api-2"));
  EXPECT_EQ(seen(), "Bearer rotC-3333 | api-2") << "after secret set";
}

// reroute to unix:/PATH: the sandbox's request for http://kv.test/ is answered by the
// service on the unix socket (with the handler's header edits); the audit line names the
// handler and the upstream; the world's port 80 sees nothing.
TEST_F(Handlers, RerouteToUnixSocketService) {
  auto tmp = test::TempDir::createOrThrow();
  const std::string sock = tmp.path() + "/kv.sock";
  ASSERT_OK_AND_ASSIGN(auto kv, AuxOrigin::start("", {}, sock, "kv"));
  PolicySpec s;
  s.name = "reroute";
  s.extraYaml =
      "outboundByHost:\n  kv.test: kv\noutboundHandlers:\n  kv:\n"
      "    - setHeader: { name: X-Via, value: \"egressd-${sandbox}\" }\n"
      "    - reroute: { upstream: \"unix:" +
      sock + "\" }\n";
  applyPolicy(s.name, cpPolicy(s));
  auto sb = sandbox("reroute", s.name);
  ASSERT_TRUE(sb);

  const std::string port80 = hostPort(w().ip4(3), kHttp);
  const size_t before80 = w().serverEventsFor(port80);
  const std::string tag = uniqueTag("kv");
  CurlResult r = sb->get("kv.test", kHttp, w().ip4(3), "/v1/items?tag=" + tag);
  ASSERT_EQ(r.status(), 200) << r.describe();
  const json who = r.whoami();
  EXPECT_EQ(who.value("service", ""), "kv") << r.describe();
  EXPECT_EQ(who.value("server", ""), "unix:" + sock) << r.describe();
  EXPECT_EQ(who.value("path", ""), "/v1/items?tag=" + tag) << r.describe();
  EXPECT_EQ(who.value("host", ""), "kv.test") << r.describe();
  EXPECT_EQ(r.seenHeader("x-via"), "egressd-reroute") << r.describe();
  EXPECT_EQ(kv->requestsMatching(tag).size(), 1u) << kv->log();
  EXPECT_EQ(w().serverEventsFor(port80), before80) << "the world's port 80 was reached";

  ASSERT_OK_AND_ASSIGN(
      json a, daemon().waitForAudit(auditMatch({{"sandbox", "reroute"}, {"host", "kv.test"}})));
  EXPECT_EQ(a.value("handler", ""), "kv") << a;
  EXPECT_TRUE(contains(a.value("upstream", ""), sock)) << a;
  EXPECT_EQ(a.value("status", 0), 200) << a;
}

// respond: a virtual host answered by egressd itself with the configured status, headers and
// body (a `when` condition picks the requests); no origin sees anything.
TEST_F(Handlers, RespondAnswersAVirtualHostLocally) {
  PolicySpec s;
  s.name = "respond";
  s.extraYaml =
      "outboundByHost:\n  my.kv: kvLocal\noutboundHandlers:\n  kvLocal:\n"
      "    - respond: { status: 201, headers: { Content-Type: application/json, X-Kv: local },"
      " body: '{\"ok\":true}', when: { method: GET } }\n"
      "    - deny: { status: 405, body: \"read only\\n\" }\n";
  applyPolicy(s.name, cpPolicy(s));
  auto sb = sandbox("respond", s.name);
  ASSERT_TRUE(sb);

  const std::string port80 = hostPort(w().ip4(3), kHttp);
  const size_t before80 = w().serverEventsFor(port80);
  const std::string tag = uniqueTag("vhost");
  for (int port : {kHttp, kHttpOrigin}) {
    CurlResult r = sb->get("my.kv", port, w().ip4(3), "/get?tag=" + tag);
    EXPECT_EQ(r.status(), 201) << port << ": " << r.describe();
    EXPECT_EQ(r.last().header("X-Kv"), "local") << r.describe();
    EXPECT_EQ(r.last().header("Content-Type"), "application/json") << r.describe();
    EXPECT_EQ(r.last().body, "{\"ok\":true}") << r.describe();
  }
  CurlResult post = sb->get("my.kv", kHttp, w().ip4(3), "/put?tag=" + tag, {"-X", "POST"});
  EXPECT_EQ(post.status(), 405) << post.describe();
  EXPECT_EQ(post.last().body, "read only\n") << post.describe();
  EXPECT_EQ(reached(tag), 0u) << origin_->log();
  EXPECT_EQ(w().serverEventsFor(port80), before80) << "the world's port 80 was reached";

  ASSERT_OK_AND_ASSIGN(
      json a, daemon().waitForAudit(auditMatch({{"sandbox", "respond"}, {"status", 201}})));
  EXPECT_EQ(a.value("handler", ""), "kvLocal") << a;
  EXPECT_EQ(a.value("host", ""), "my.kv") << a;
  EXPECT_EQ(a.value("upstream", ""), "") << "a local answer has no upstream: " << a;
}

// HTTPS to a host with a handler is intercepted (handlers need the request) with the
// sandbox's CA: the handler's header reaches the HTTPS origin. A host without one stays
// end-to-end (the origin's own certificate, no header).
TEST_F(Handlers, HandlerAppliesToInterceptedHttps) {
  auto https = httpsOrigin();
  ASSERT_TRUE(https.ok()) << https.error().message();
  auto ca = testCa();
  ASSERT_TRUE(ca.ok()) << ca.error().message();
  PolicySpec s;
  s.name = "https-handler";
  s.allowedHosts = {"allowed.test", "other.test"};
  s.extraYaml =
      "interceptHttps: false\noutboundByHost:\n  allowed.test: hsMark\n"
      "outboundHandlers:\n" +
      markerHandlers({"hsMark"});
  applyPolicy(s.name, cpPolicy(s));
  auto sb = sandbox("https-handler", s.name);
  ASSERT_TRUE(sb);
  const std::string sandboxCa = sb->created().value("caCert", "");
  ASSERT_TRUE(pathExists(sandboxCa)) << sb->created();
  EXPECT_TRUE(sandboxCa.starts_with(daemon().runDir() + "/")) << sandboxCa;

  const std::string good = std::to_string(kHttpsGood);
  const std::string tag = uniqueTag("https");
  CurlResult r =
      sb->curl({"--cacert", sandboxCa, "--resolve", "allowed.test:" + good + ":" + w().ip4(3),
                "https://allowed.test:" + good + "/whoami?tag=" + tag});
  ASSERT_EQ(r.status(), 200) << r.describe();
  EXPECT_EQ(r.seenHeader("x-handler"), "hsMark") << r.describe();
  EXPECT_EQ(r.whoami().value("sni", ""), "allowed.test") << r.describe();
  // Intercepted: the client trusting only the origin's CA refuses egressd's leaf.
  CurlResult direct = sb->curl({"--cacert", (*ca)->caCertFile(), "--resolve",
                                "allowed.test:" + good + ":" + w().ip4(3),
                                "https://allowed.test:" + good + "/whoami"});
  EXPECT_EQ(direct.status(), 0) << direct.describe();

  CurlResult passthrough =
      sb->curl({"--cacert", (*ca)->caCertFile(), "--resolve",
                "other.test:" + good + ":" + w().ip4(4), "https://other.test:" + good + "/whoami"});
  ASSERT_EQ(passthrough.status(), 200) << passthrough.describe();
  EXPECT_FALSE(passthrough.seen("x-handler")) << passthrough.describe();

  ASSERT_OK_AND_ASSIGN(
      json a, daemon().waitForAudit(auditMatch(
                  {{"sandbox", "https-handler"}, {"host", "allowed.test"}, {"status", 200}})));
  EXPECT_EQ(a.value("handler", ""), "hsMark") << a;
  // curl asks for h2 and interception serves it: the handler ran on the HTTP/2 stream.
  EXPECT_EQ(a.value("protocol", ""), "h2") << a;
}

}  // namespace
}  // namespace egressd::e2e
