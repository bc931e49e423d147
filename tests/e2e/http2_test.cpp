// HTTP/2 inside TLS interception: real h2 clients in the sandbox (curl --http2, a real gRPC
// client from python3-grpcio, a hand-written frame client for the attacks), real origins in
// the test internet: http_origin.py (HTTP/1.1 over TLS, 8443), clients/h2_origin.py (ALPN h2
// only, 8447) and clients/grpc_origin.py (a grpcio server, 8448), all with the world's test
// certificates. Every stream is judged as an HTTP/1.1 request would be; the attack cases end
// the connection (GOAWAY) and leave the daemon serving, with bounded memory.
#include <sys/stat.h>
#include <atomic>

#include <cstdio>

#include "common/fs.h"
#include "http_client.h"
#include "prometheus.h"
#include "sanitizers.h"
#include "servers.h"
#include "temp_dir.h"
#include "test_ca.h"
#include "world.h"

namespace egressd::e2e {
namespace {

using nlohmann::json;
using test::milliseconds;

constexpr int kH2Origin = 8447;
constexpr int kGrpcOrigin = 8448;
constexpr uint32_t kEnhanceYourCalm = 0xb;

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

json jsonOf(const std::string& text) {
  json j = json::parse(text, nullptr, false);
  return j.is_object() ? j : json::object();
}

// A server script of clients/ in the test internet, alive for the whole binary.
struct ScriptServer {
  test::TempDir dir;
  test::Process proc;
  std::string log() const {
    auto text = readFile(dir.path() + "/requests.log");
    return text.ok() ? *text : "";
  }
};

Result<ScriptServer*> startScript(std::unique_ptr<ScriptServer>& slot, const std::string& what,
                                  std::vector<std::string> args) {
  if (slot) {
    return slot.get();
  }
  auto dir = test::TempDir::create();
  if (!dir.ok()) {
    return std::move(dir).error();
  }
  auto w = world();
  if (!w.ok()) {
    return std::move(w).error();
  }
  const std::string ready = dir->path() + "/ready";
  std::vector<std::string> argv{test::python3Bin(), clientsDir() + "/" + what, "--ready", ready};
  for (auto& a : args) {
    if (a == "LOG") {
      a = dir->path() + "/requests.log";
    }
    argv.push_back(a);
  }
  auto proc = test::Process::spawn(
      test::SpawnOptions{.argv = argv, .netnsPath = (*w)->net->internet().path()});
  if (!proc.ok()) {
    return std::move(proc).error();
  }
  auto bound = test::waitForReadyFile(*proc, ready, what);
  if (!bound.ok()) {
    return std::move(bound).error();
  }
  slot.reset(new ScriptServer{std::move(dir).value(), std::move(proc).value()});
  return slot.get();
}

std::unique_ptr<ScriptServer> h2OriginSlot;
std::unique_ptr<ScriptServer> grpcOriginSlot;

class Http2Test : public E2eTest {
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
    const test::TestCert& good = ca_->good();
    auto h2 = startScript(
        h2OriginSlot, "h2_origin.py",
        {"--log", "LOG", "--listen",
         w().ip4(3) + ":" + std::to_string(kH2Origin) + "|" + good.certFile + "|" + good.keyFile,
         "--listen",
         "[" + w().ip6(3) + "]:" + std::to_string(kH2Origin) + "|" + good.certFile + "|" +
             good.keyFile});
    ASSERT_TRUE(h2.ok()) << h2.error().message();
    h2Origin_ = *h2;
    auto grpc = startScript(grpcOriginSlot, "grpc_origin.py",
                            {"--listen", w().ip4(3) + ":" + std::to_string(kGrpcOrigin), "--cert",
                             good.certFile, "--key", good.keyFile});
    ASSERT_TRUE(grpc.ok()) << grpc.error().message();
  }

  static PolicySpec spec(const std::string& extraYaml = "") {
    PolicySpec s;
    s.proxyPorts = std::vector<int>{kHttp, kHttps, kHttpsGood, kH2Origin, kGrpcOrigin};
    s.allowedHosts = {"allowed.test"};
    s.extraYaml = "interceptHttps: true\n" + extraYaml;
    return s;
  }

  Result<std::unique_ptr<Sandbox>> start(const PolicySpec& s) {
    return Sandbox::start(s,
                          SandboxOptions{.ownNetns = false,
                                         .auditLog = true,
                                         .metrics = true,
                                         .daemonArgs = {"--upstream-ca-file", ca_->caCertFile()}});
  }

  static std::string sandboxCa(Sandbox& sb) {
    return "/run/egressd/sandboxes/" + sb.daemon().sandboxId() + "/ca.crt";
  }

  static std::string label(const std::string& what) {
    static std::atomic<int> counter{0};
    char number[16];
    std::snprintf(number, sizeof(number), "%05d", counter++);
    return what + "-" + number;
  }

  // curl --http2 https://HOST:PORT/PATH inside the sandbox, connected to allowed.test's .3.
  CurlReply curl2(Sandbox& sb, const std::string& host, int port, const std::string& path,
                  std::vector<std::string> extra = {}) {
    const std::string p = std::to_string(port);
    std::vector<std::string> args{"--http2",
                                  "-v",
                                  "--cacert",
                                  sandboxCa(sb),
                                  "--resolve",
                                  host + ":" + p + ":" + w().ip4(3),
                                  "https://" + host + ":" + p + path};
    args.insert(args.end(), extra.begin(), extra.end());
    return curlIn(sb, args, milliseconds(20000));
  }

  json attack(Sandbox& sb, const std::string& mode, int count, double hold = 2) {
    RunResult r = sb.runInside(
        {test::python3Bin(), clientsDir() + "/h2_attack.py", "--connect",
         w().ip4(3) + ":" + std::to_string(kH2Origin), "--sni", "allowed.test", "--cafile",
         sandboxCa(sb), "--authority", "allowed.test:" + std::to_string(kH2Origin), "--mode", mode,
         "--count", std::to_string(count), "--hold", std::to_string(hold)},
        "", milliseconds(60000));
    json j = json::parse(r.out, nullptr, false);
    return j.is_object() ? j : json{{"client_failed", r.describe()}};
  }

  // The daemon still serves HTTP/2 on a new connection.
  void expectStillServing(Sandbox& sb) {
    json again = attack(sb, "get", 1);
    EXPECT_EQ(again.value("alpn", ""), "h2") << again.dump();
    ASSERT_TRUE(again.contains("statuses")) << again.dump();
    EXPECT_EQ(again["statuses"], json::array({200})) << again.dump();
  }

  int64_t peakRssKib(Sandbox& sb) {
    auto v = test::procStatusKib(sb.daemon().pid(), "VmHWM");
    return v.ok() ? static_cast<int64_t>(*v) : 0;
  }

  test::TestHttpOrigin* origin_ = nullptr;
  test::TestCa* ca_ = nullptr;
  ScriptServer* h2Origin_ = nullptr;
};

// Streams are requests: allowed, denied (403 with the HTTP/1.1 body and headers), misdirected
// (421 when :authority is not the SNI), audited per stream with protocol h2; several streams
// share one connection. The upstream here speaks only HTTP/1.1.
TEST_F(Http2Test, StreamsAreJudgedLikeHttp11Requests) {
  ASSERT_OK_AND_ASSIGN(auto sb, start(spec()));
  const std::string id = sb->daemon().sandboxId();
  const std::string allowed = label("allowed");
  CurlReply c = curl2(*sb, "allowed.test", kHttpsGood, "/whoami?tag=" + allowed);
  ASSERT_EQ(c.status(), 200) << c.describe() << sb->daemon().logs();
  EXPECT_TRUE(contains(c.run.err, "ALPN: server accepted h2") ||
              contains(c.run.err, "ALPN, server accepted to use h2"))
      << c.run.err;
  EXPECT_TRUE(c.run.out.starts_with("HTTP/2 200")) << c.run.out;
  json who = jsonOf(c.last().body);
  EXPECT_EQ(who.value("host", ""), "allowed.test:" + std::to_string(kHttpsGood)) << who.dump();
  EXPECT_EQ(who.value("alpn", ""), "http/1.1") << "upstream ALPN: " << who.dump();
  EXPECT_EQ(origin_->requestsMatching(allowed).size(), 1u) << origin_->log();

  const std::string denied = label("denied");
  c = curl2(*sb, "other.test", kHttpsGood, "/whoami?tag=" + denied);
  EXPECT_EQ(c.status(), 403) << c.describe();
  EXPECT_EQ(c.last().header("x-egressd-reason"), "not_in_allowed_hosts") << c.describe();
  EXPECT_TRUE(c.last().body.starts_with("egressd: request to other.test denied for sandbox " + id))
      << c.describe();
  EXPECT_TRUE(origin_->requestsMatching(denied).empty()) << origin_->log();

  // :authority other than the name the TLS session was judged for: curl sends a Host header
  // as :authority in HTTP/2.
  const std::string fronted = label("fronted");
  c = curl2(*sb, "allowed.test", kHttpsGood, "/whoami?tag=" + fronted, {"-H", "Host: other.test"});
  EXPECT_EQ(c.status(), 421) << c.describe();
  EXPECT_EQ(c.last().header("x-egressd-reason"), "host_sni_mismatch") << c.describe();
  EXPECT_TRUE(origin_->requestsMatching(fronted).empty()) << origin_->log();

  // Three streams on one connection (curl multiplexes --parallel transfers).
  const std::string multi = label("multi");
  const std::string p = std::to_string(kHttpsGood);
  RunResult par = sb->runInside({"curl",
                                 "-sS",
                                 "--http2",
                                 "--parallel",
                                 "--parallel-immediate",
                                 "--cacert",
                                 sandboxCa(*sb),
                                 "--resolve",
                                 "allowed.test:" + p + ":" + w().ip4(3),
                                 "-w",
                                 "%{http_code} %{num_connects}\n",
                                 "-o",
                                 "/dev/null",
                                 "-o",
                                 "/dev/null",
                                 "-o",
                                 "/dev/null",
                                 "https://allowed.test:" + p + "/whoami?tag=" + multi + "a",
                                 "https://allowed.test:" + p + "/whoami?tag=" + multi + "b",
                                 "https://allowed.test:" + p + "/whoami?tag=" + multi + "c"},
                                "", milliseconds(20000));
  ASSERT_TRUE(par.succeeded()) << par.describe();
  EXPECT_EQ(origin_->requestsMatching(multi).size(), 3u) << origin_->log();

  ASSERT_OK_AND_ASSIGN(
      json a, sb->daemon().waitForAudit(
                  auditWith({{"protocol", "h2"}, {"host", "allowed.test"}, {"status", 200}})));
  EXPECT_EQ(a.value("decision", ""), "allow") << a;
  EXPECT_EQ(a.value("reason", ""), "allowed_host") << a;
  EXPECT_EQ(a.value("method", ""), "GET") << a;
  EXPECT_EQ(a.value("path", ""), "/whoami") << a;
  EXPECT_FALSE(a.value("upstream", "").empty()) << a;
  ASSERT_OK_AND_ASSIGN(
      json d, sb->daemon().waitForAudit(auditWith({{"protocol", "h2"}, {"host", "other.test"}})));
  EXPECT_EQ(d.value("decision", ""), "deny") << d;
  EXPECT_EQ(d.value("status", 0), 403) << d;
  ASSERT_OK_AND_ASSIGN(size_t streams,
                       sb->daemon().waitForAuditCount(auditWith({{"protocol", "h2"}}), 6));
  EXPECT_GE(streams, 6u);

  ASSERT_OK_AND_ASSIGN(std::string text, sb->daemon().scrapeMetrics());
  auto samples = test::parsePrometheusText(text);
  EXPECT_GE(
      test::promValue(samples, "egressd_http2_connections_total", {{"sandbox", id}}).value_or(0),
      4.0)
      << text;
}

// An origin that offers h2 gets HTTP/2 from egressd; bodies flow both ways under flow
// control (1 MiB up, 8 MiB down), trailers arrive.
TEST_F(Http2Test, OriginOfferingH2IsSpokenToInHttp2) {
  ASSERT_OK_AND_ASSIGN(auto sb, start(spec()));
  const std::string tag = label("h2up");
  CurlReply c = curl2(*sb, "allowed.test", kH2Origin, "/whoami?tag=" + tag);
  ASSERT_EQ(c.status(), 200) << c.describe();
  json who = jsonOf(c.last().body);
  EXPECT_EQ(who.value("alpn", ""), "h2") << "egressd's upstream ALPN: " << who.dump();
  EXPECT_EQ(who.value("authority", ""), "allowed.test:" + std::to_string(kH2Origin)) << who.dump();
  EXPECT_TRUE(contains(h2Origin_->log(), tag)) << h2Origin_->log();

  // 1 MiB up, echoed back.
  auto dir = test::TempDir::create();
  ASSERT_TRUE(dir.ok()) << dir.error().message();
  std::string upload(1024 * 1024, 'u');
  for (size_t i = 0; i < upload.size(); i += 997) {
    upload[i] = static_cast<char>('a' + (i / 997) % 26);
  }
  ASSERT_OK(dir->writeFile("up.bin", upload));
  chmod(dir->path().c_str(), 0755);
  chmod((dir->path() + "/up.bin").c_str(), 0644);
  c = curl2(*sb, "allowed.test", kH2Origin, "/echo",
            {"--data-binary", "@" + dir->path() + "/up.bin"});
  ASSERT_EQ(c.status(), 200) << c.run.err;
  EXPECT_EQ(c.last().body.size(), upload.size());
  EXPECT_TRUE(c.last().body == upload) << "echoed body differs";

  // 8 MiB down.
  RunResult big =
      sb->runInside({"curl", "-sS", "--http2", "--cacert", sandboxCa(*sb), "--resolve",
                     "allowed.test:" + std::to_string(kH2Origin) + ":" + w().ip4(3), "-o",
                     "/dev/null", "-w", "%{http_code} %{size_download} %{http_version}",
                     "https://allowed.test:" + std::to_string(kH2Origin) + "/big?n=8388608"},
                    "", milliseconds(30000));
  EXPECT_EQ(big.out, "200 8388608 2") << big.describe();

  // Trailers (curl prints them with the headers under -D).
  c = curl2(*sb, "allowed.test", kH2Origin, "/trailers");
  EXPECT_EQ(c.status(), 200) << c.describe();
  EXPECT_TRUE(contains(c.run.out, "grpc-status: 0")) << c.run.out;
  EXPECT_TRUE(contains(c.run.out, "x-trailer: yes")) << c.run.out;
}

// A real gRPC client and server: unary with metadata and trailing metadata, a bidirectional
// stream, an error status; each call audited as an h2 stream.
TEST_F(Http2Test, GrpcWorksEndToEnd) {
  ASSERT_OK_AND_ASSIGN(auto sb, start(spec()));
  RunResult r =
      sb->runInside({test::python3Bin(), clientsDir() + "/grpc_client.py", "--target",
                     w().ip4(3) + ":" + std::to_string(kGrpcOrigin), "--authority", "allowed.test",
                     "--cafile", sandboxCa(*sb), "--messages", "20", "--metadata", "x-probe=42"},
                    "", milliseconds(60000));
  ASSERT_TRUE(r.succeeded()) << r.describe();
  json j = jsonOf(r.out);
  ASSERT_TRUE(j.contains("unary")) << r.describe();
  EXPECT_EQ(j["unary"].value("reply", ""), "echo:hello") << j.dump();
  EXPECT_EQ(j["unary"]["initial"].value("seen-x-probe", ""), "42") << j.dump();
  EXPECT_EQ(j["unary"]["trailing"].value("x-trailer", ""), "done") << j.dump();
  ASSERT_TRUE(j["chat"].value("ok", false)) << j.dump();
  EXPECT_EQ(j["chat"]["replies"].size(), 20u) << j.dump();
  EXPECT_EQ(j["chat"]["replies"][19], "echo:m19") << j.dump();
  EXPECT_EQ(j["fail"].value("code", ""), "NOT_FOUND") << j.dump();
  EXPECT_EQ(j["fail"].value("details", ""), "no such thing") << j.dump();
  ASSERT_OK_AND_ASSIGN(json a, sb->daemon().waitForAudit(auditWith(
                                   {{"protocol", "h2"}, {"path", "/egressd.test.Echo/Chat"}})));
  EXPECT_EQ(a.value("decision", ""), "allow") << a;
  EXPECT_EQ(a.value("method", ""), "POST") << a;

  // A gRPC call to a host the policy denies never reaches the server.
  RunResult denied =
      sb->runInside({test::python3Bin(), clientsDir() + "/grpc_client.py", "--target",
                     w().ip4(3) + ":" + std::to_string(kGrpcOrigin), "--authority", "other.test",
                     "--cafile", sandboxCa(*sb), "--messages", "1"},
                    "", milliseconds(60000));
  json dj = jsonOf(denied.out);
  EXPECT_FALSE(dj["unary"].value("ok", true)) << denied.describe();
}

// A handler runs per stream: secrets injected (and redacted from the response), deny
// verdicts as stream responses; over an h2 and an HTTP/1.1 upstream alike.
TEST_F(Http2Test, HandlersAndSecretsApplyPerStream) {
  auto dir = test::TempDir::create();
  ASSERT_TRUE(dir.ok()) << dir.error().message();
  const std::string token = "s3cr3t-h2-token-value";
  ASSERT_OK(dir->writeFile("token", token));
  PolicySpec s = spec(
      "secrets:\n"
      "  TOKEN: { file: \"" +
      dir->path() +
      "/token\" }\n"
      "outboundByHost:\n"
      "  allowed.test: inject\n"
      "outboundHandlers:\n"
      "  inject:\n"
      "    - deny: { status: 405, body: \"read only\\n\", when: { method: DELETE } }\n"
      "    - setHeader: { name: Authorization, value: \"Bearer ${secret:TOKEN}\" }\n");
  ASSERT_OK_AND_ASSIGN(auto sb, start(s));
  for (int port : {kH2Origin, kHttpsGood}) {
    SCOPED_TRACE("origin port " + std::to_string(port));
    CurlReply c = curl2(*sb, "allowed.test", port, "/whoami");
    ASSERT_EQ(c.status(), 200) << c.describe();
    // The origin's JSON echoes the header: egressd masks the injected value on its way back.
    EXPECT_FALSE(contains(c.last().body, token)) << c.last().body;
    EXPECT_TRUE(contains(c.last().body, "Bearer ")) << c.last().body;
    c = curl2(*sb, "allowed.test", port, "/whoami", {"-X", "DELETE"});
    EXPECT_EQ(c.status(), 405) << c.describe();
    EXPECT_EQ(c.last().body, "read only\n") << c.describe();
    EXPECT_EQ(c.last().header("x-egressd-handler"), "inject") << c.describe();
  }
  // What reached the h2 origin carried the secret.
  ASSERT_OK_AND_ASSIGN(json a, sb->daemon().waitForAudit(auditWith(
                                   {{"protocol", "h2"}, {"handler", "inject"}, {"status", 200}})));
  EXPECT_TRUE(contains(a.value("detail", ""), "redacted")) << a;
}

// http.http2: false keeps interception on HTTP/1.1: curl falls back, an h2-only client is
// refused in the handshake. Plain-text h2 (prior knowledge) is refused on proxied ports.
TEST_F(Http2Test, Http2OffAndCleartextH2AreRefused) {
  ASSERT_OK_AND_ASSIGN(auto sb, start(spec("http:\n  http2: false\n")));
  CurlReply c = curl2(*sb, "allowed.test", kHttpsGood, "/whoami");
  ASSERT_EQ(c.status(), 200) << c.describe();
  EXPECT_TRUE(c.run.out.starts_with("HTTP/1.1 200")) << c.run.out;
  json h2only = attack(*sb, "get", 1);
  EXPECT_TRUE(contains(h2only.value("client_failed", ""), "no application protocol"))
      << h2only.dump();
  ASSERT_OK_AND_ASSIGN(json refusal,
                       sb->daemon().waitForAudit(auditWith({{"reason", "alpn_unsupported"}})));
  EXPECT_TRUE(contains(refusal.value("detail", ""), "http.http2")) << refusal;

  // h2c with prior knowledge on a plain proxied port: never a tunnel.
  const std::string tag = label("h2c");
  RunResult pk =
      sb->runInside({"curl", "-sS", "--http2-prior-knowledge", "--max-time", "5", "--resolve",
                     "allowed.test:80:" + w().ip4(3), "http://allowed.test/whoami?tag=" + tag},
                    "", milliseconds(15000));
  EXPECT_FALSE(pk.succeeded()) << pk.describe();
  ASSERT_OK_AND_ASSIGN(json bad, sb->daemon().waitForAudit(
                                     auditWith({{"protocol", "http"}, {"reason", "bad_request"}})));
  EXPECT_EQ(bad.value("status", 0), 400) << bad;
}

// Rapid reset (CVE-2023-44487): thousands of streams opened and cancelled at once end the
// connection with ENHANCE_YOUR_CALM; the daemon stays up, bounded.
TEST_F(Http2Test, RapidResetEndsTheConnection) {
  ASSERT_OK_AND_ASSIGN(auto sb, start(spec()));
  const int64_t before = peakRssKib(*sb);
  json r = attack(*sb, "rapid-reset", 5000);
  EXPECT_EQ(r.value("goaway", json()).is_number() ? r["goaway"].get<uint32_t>() : 0u,
            kEnhanceYourCalm)
      << r.dump();
  ASSERT_OK_AND_ASSIGN(json a,
                       sb->daemon().waitForAudit(auditWith({{"reason", "h2_rapid_reset"}})));
  EXPECT_EQ(a.value("decision", ""), "deny") << a;
  expectStillServing(*sb);
  const int64_t after = peakRssKib(*sb);
  if (!test::kAddressSanitizer) {
    EXPECT_LT(after - before, 64 * 1024)
        << "peak RSS grew from " << before << " to " << after << " KiB";
  }
}

// CONTINUATION flood (CVE-2024-27316 class), an HPACK bomb and a PING flood: the connection
// ends before the header block is buffered or decoded without bound, or acknowledgements
// pile up.
TEST_F(Http2Test, ContinuationHpackAndPingFloodsEndTheConnection) {
  ASSERT_OK_AND_ASSIGN(auto sb, start(spec()));
  const int64_t before = peakRssKib(*sb);
  json r = attack(*sb, "continuation", 10000);
  EXPECT_TRUE(r.value("closed", false) || r.contains("goaway")) << r.dump();
  EXPECT_FALSE(r["goaway"].is_null()) << r.dump();
  ASSERT_OK_AND_ASSIGN(json c,
                       sb->daemon().waitForAudit(auditWith({{"reason", "h2_continuation_flood"}})));
  EXPECT_EQ(c.value("decision", ""), "deny") << c;
  json b = attack(*sb, "hpack-bomb", 12000);
  EXPECT_TRUE(b.value("closed", false)) << b.dump();
  EXPECT_FALSE(b["goaway"].is_null()) << b.dump();
  EXPECT_EQ(b.value("responses", -1), 0) << b.dump();
  ASSERT_OK_AND_ASSIGN(json h,
                       sb->daemon().waitForAudit(auditWith({{"reason", "h2_header_bomb"}})));
  EXPECT_EQ(h.value("decision", ""), "deny") << h;
  // PINGs whose acknowledgements the client never reads: nghttp2's queue bound.
  json p = attack(*sb, "ping-flood", 200000);
  EXPECT_TRUE(p.value("closed", false)) << p.dump();
  ASSERT_OK_AND_ASSIGN(json f,
                       sb->daemon().waitForAudit(auditWith({{"reason", "h2_control_flood"}})));
  EXPECT_EQ(f.value("decision", ""), "deny") << f;
  expectStillServing(*sb);
  const int64_t after = peakRssKib(*sb);
  if (!test::kAddressSanitizer) {
    EXPECT_LT(after - before, 32 * 1024)
        << "peak RSS grew from " << before << " to " << after << " KiB";
  }
}

// Stream and window exhaustion: more streams than SETTINGS_MAX_CONCURRENT_STREAMS are
// refused; streams whose responses the client never reads hold at most a window each.
TEST_F(Http2Test, StreamAndWindowExhaustionStayBounded) {
  ASSERT_OK_AND_ASSIGN(auto sb, start(spec()));
  json r = attack(*sb, "streams", 300, 3);
  int refused = 0;
  const json resets = r.contains("rst") ? r["rst"] : json::object();
  for (const auto& entry : resets) {
    refused += entry.get<int>();
  }
  EXPECT_GE(refused + (r["goaway"].is_null() ? 0 : 200), 200) << r.dump();
  EXPECT_LE(r.value("responses", 0), 100) << r.dump();
  expectStillServing(*sb);

  const int64_t before = peakRssKib(*sb);
  json win = attack(*sb, "window", 50, 4);  // 50 x 4 MiB offered, never read
  EXPECT_EQ(win.value("data_bytes", -1), 0) << win.dump();
  const int64_t after = peakRssKib(*sb);
  if (!test::kAddressSanitizer) {
    EXPECT_LT(after - before, 48 * 1024)
        << "peak RSS grew from " << before << " to " << after << " KiB for 200 MiB offered";
  }
  expectStillServing(*sb);
}

// Memory an idle connection costs the daemon (VmRSS growth with N connections held, over N):
// an intercepted HTTP/1.1 connection after one request (its upstream kept alive beside it),
// and an HTTP/2 connection with one open stream (its upstream HTTP/2 stream open too).
TEST_F(Http2Test, IdleConnectionsCostAtMost64KiB) {
  if (test::kAddressSanitizer) {
    GTEST_SKIP() << "RSS under AddressSanitizer is mostly shadow memory";
  }
  ASSERT_OK_AND_ASSIGN(auto sb, start(spec()));
  constexpr int kConnections = 200;
  for (const auto& [protocolName, portNumber] :
       {std::pair{std::string("h1"), kHttpsGood}, std::pair{std::string("h2"), kH2Origin}}) {
    // Copies: clang 14 cannot capture structured bindings in the lambda below.
    const std::string protocol = protocolName;
    const int port = portNumber;
    SCOPED_TRACE(protocol);
    const std::string p = std::to_string(port);
    auto holder = [&](int count) {
      return test::Process::spawn(test::SpawnOptions{
          .argv = {test::python3Bin(), clientsDir() + "/idle_tls_conns.py", "--connect",
                   w().ip4(3) + ":" + p, "--sni", "allowed.test", "--cafile", sandboxCa(*sb),
                   "--authority", "allowed.test:" + p, "--protocol", protocol, "--count",
                   std::to_string(count), "--hold", "30"},
          .cgroup = sb->cgroup().path()});
    };
    // One small round first: what is allocated once (leaf certificate, pools, TLS contexts)
    // is not a per-connection cost.
    {
      ASSERT_OK_AND_ASSIGN(test::Process warm, holder(10));
      ASSERT_TRUE(warm.waitForOutput("\"ready\"", milliseconds(30000))) << warm.stderrText();
    }
    usleep(500000);
    ASSERT_OK_AND_ASSIGN(uint64_t before, test::procStatusKib(sb->daemon().pid(), "VmRSS"));
    ASSERT_OK_AND_ASSIGN(test::Process held, holder(kConnections));
    ASSERT_TRUE(held.waitForOutput("\"ready\"", milliseconds(60000))) << held.stderrText();
    const json ready = jsonOf(held.stdoutText());
    ASSERT_EQ(ready.value("ready", 0), kConnections) << held.stdoutText();
    usleep(500000);
    ASSERT_OK_AND_ASSIGN(uint64_t after, test::procStatusKib(sb->daemon().pid(), "VmRSS"));
    const double perConnection =
        static_cast<double>(static_cast<int64_t>(after) - static_cast<int64_t>(before)) /
        kConnections;
    std::printf("idle %s connection: %.1f KiB each (VmRSS %lu -> %lu KiB for %d)\n",
                protocol.c_str(), perConnection, static_cast<unsigned long>(before),
                static_cast<unsigned long>(after), kConnections);
    RecordProperty("kib_per_idle_" + protocol + "_connection", std::to_string(perConnection));
    EXPECT_LE(perConnection, 64.0) << "VmRSS " << before << " -> " << after << " KiB";
  }
}

}  // namespace
}  // namespace egressd::e2e
