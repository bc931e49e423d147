// egressd as the sandboxes' resolver (docs/dns.md): every DNS query (UDP and TCP 53, any
// address, IPv4 and IPv6) lands at egressd, which forwards only names the policy allows to
// the upstream (the world's dnsmasq, whose query log proves what reached it) and answers
// the rest itself. Real clients: dig, python3's getaddrinfo, tests/e2e/clients/dns_query.py.
#include <netdb.h>
#include <signal.h>
#include <unistd.h>

#include "common/fs.h"
#include "http_client.h"
#include "temp_dir.h"
#include "world.h"

namespace egressd::e2e {
namespace {

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

std::string uniqueLabel(const std::string& what) {
  static int counter = 0;
  return what + std::to_string(::getpid()) + "x" + std::to_string(++counter);
}

class DnsResolverTest : public E2eTest {
 protected:
  // dig with extra options (+type, +tcp, ...), inside the sandbox.
  RunResult dig(const Sandbox& sb, const std::string& server, std::vector<std::string> args) {
    std::vector<std::string> argv{"dig", "+time=2", "+tries=1", "@" + server};
    argv.insert(argv.end(), args.begin(), args.end());
    return sb.runInside(argv);
  }
  // tests/e2e/clients/dns_query.py inside the sandbox; its JSON summary.
  nlohmann::json queries(const Sandbox& sb, const std::string& server, const std::string& name,
                         int count, std::vector<std::string> extra = {}) {
    std::vector<std::string> argv{test::python3Bin(), clientsDir() + "/dns_query.py", server, name,
                                  "--count",          std::to_string(count)};
    argv.insert(argv.end(), extra.begin(), extra.end());
    RunResult r = sb.runInside(argv, "", test::milliseconds(120000));
    EXPECT_EQ(r.exitCode, 0) << r.describe();
    auto parsed = nlohmann::json::parse(r.out, nullptr, false);
    EXPECT_FALSE(parsed.is_discarded()) << r.describe();
    return parsed.is_discarded() ? nlohmann::json::object() : parsed;
  }
  static int rcodeCount(const nlohmann::json& summary, const std::string& rcode) {
    return summary["rcodes"].value(rcode, 0);
  }
};

// The "arbitrary resolver" 198.18.N.99 is served by nobody: only egressd can answer.
TEST_F(DnsResolverTest, AllowedNamesAreAnsweredDeniedNamesNeverLeave) {
  PolicySpec spec;  // enableInternet: false; DNS is all that can get out
  spec.allowedHosts = {"*.allowed.test", "allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec));
  const std::string nobody = w().ip4(99);
  for (bool tcp : {false, true}) {
    const std::string allowed = uniqueLabel("a") + ".allowed.test";
    auto r = dig(*sb, nobody, {tcp ? "+tcp" : "+notcp", allowed});
    ASSERT_EQ(r.exitCode, 0) << r.describe();
    EXPECT_TRUE(contains(r.out, "status: NOERROR")) << r.out;
    EXPECT_TRUE(contains(r.out, "\t" + w().ip4(3) + "\n")) << r.out;
    // The reply appears to come from the address dig asked (no "unexpected source").
    EXPECT_TRUE(contains(r.out, ";; SERVER: " + nobody + "#53(" + nobody + ")")) << r.out;
    EXPECT_FALSE(contains(r.out + r.err, "unexpected source")) << r.out << r.err;
    EXPECT_TRUE(contains(w().dns->log(), allowed)) << w().dns->log();

    const std::string denied = uniqueLabel("d") + ".other.test";
    r = dig(*sb, nobody, {tcp ? "+tcp" : "+notcp", denied});
    ASSERT_EQ(r.exitCode, 0) << r.describe();
    EXPECT_TRUE(contains(r.out, "status: NXDOMAIN")) << r.out;
    EXPECT_FALSE(contains(w().dns->log(), denied)) << w().dns->log();
  }
  // IPv6 (to an IPv6 address nobody serves), over UDP and TCP.
  for (bool tcp : {false, true}) {
    auto r = dig(*sb, w().ip6(0x99), {tcp ? "+tcp" : "+notcp", "AAAA", "allowed.test"});
    ASSERT_EQ(r.exitCode, 0) << r.describe();
    EXPECT_TRUE(contains(r.out, "\t" + w().ip6(3) + "\n")) << r.out;
    EXPECT_FALSE(contains(r.out + r.err, "unexpected source")) << r.out;
  }
  // Control: outside the sandbox nobody answers at that address.
  auto outside = runGuarded({"dig", "+time=1", "+tries=1", "@" + nobody, "allowed.test"}, "", "",
                            test::milliseconds(10000));
  EXPECT_NE(outside.exitCode, 0) << outside.describe();
}

// glibc's resolver, with the host's own /etc/resolv.conf (whatever nameserver it names: port
// 53 is egressd's wherever it goes).
TEST_F(DnsResolverTest, GetaddrinfoAndGetentGoThroughEgressd) {
  PolicySpec spec;
  spec.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec));
  auto r = sb->runInside({test::python3Bin(), "-c",
                          "import socket,sys\n"
                          "print(sorted({a[4][0] for a in socket.getaddrinfo(sys.argv[1], 80)}))\n",
                          "allowed.test"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "'" + w().ip4(3) + "'")) << r.out;
  EXPECT_TRUE(contains(r.out, "'" + w().ip6(3) + "'")) << r.out;
  r = sb->runInside({test::python3Bin(), "-c",
                     "import socket\n"
                     "try:\n  socket.getaddrinfo('other.test', 80)\n"
                     "except socket.gaierror as e:\n  print('gaierror', e.errno)\n"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "gaierror " + std::to_string(EAI_NONAME))) << r.out;
  r = sb->runInside({"getent", "ahostsv4", "allowed.test"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, w().ip4(3))) << r.out;
  EXPECT_NE(sb->runInside({"getent", "hosts", "other.test"}).exitCode, 0);
}

TEST_F(DnsResolverTest, TypesNamesAndDeniedAnswer) {
  PolicySpec spec;
  spec.allowedHosts = {"*.allowed.test", "allowed.test", "rebind.test"};
  spec.deniedHosts = {"deny.allowed.test"};
  spec.dnsExtra = "  deniedAnswer: refused\n  limits: { maxLabelLength: 40, maxNameLength: 80 }\n";
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec, SandboxOptions{.auditLog = true}));
  const std::string server = w().ip4(99);
  auto status = [&](std::vector<std::string> args) {
    RunResult r = dig(*sb, server, std::move(args));
    EXPECT_EQ(r.exitCode, 0) << r.describe();
    const size_t at = r.out.find("status: ");
    return at == std::string::npos ? r.out : r.out.substr(at + 8, r.out.find(',', at) - at - 8);
  };
  EXPECT_EQ(status({"ANY", "allowed.test"}), "REFUSED");
  EXPECT_EQ(status({"NAPTR", "allowed.test"}), "REFUSED");
  // Forwarded types reach the upstream (dnsmasq itself refuses TXT/MX it has no data for).
  status({"TXT", "allowed.test"});
  status({"MX", "allowed.test"});
  EXPECT_TRUE(contains(w().dns->log(), "query[TXT] allowed.test")) << w().dns->log();
  EXPECT_TRUE(contains(w().dns->log(), "query[MX] allowed.test")) << w().dns->log();
  EXPECT_FALSE(contains(w().dns->log(), "query[NAPTR] allowed.test")) << w().dns->log();
  EXPECT_FALSE(contains(w().dns->log(), "query[ANY] allowed.test")) << w().dns->log();
  // deniedHosts wins over the allowedHosts glob; deniedAnswer: refused.
  EXPECT_EQ(status({"deny.allowed.test"}), "REFUSED");
  EXPECT_EQ(status({"other.test"}), "REFUSED");
  // Reverse lookups: private ranges answered here, others refused, nothing forwarded.
  EXPECT_EQ(status({"-x", "10.1.2.3"}), "NXDOMAIN");
  EXPECT_EQ(status({"-x", "192.168.1.1"}), "NXDOMAIN");
  EXPECT_EQ(status({"-x", "fd00::1"}), "NXDOMAIN");
  EXPECT_EQ(status({"-x", w().ip4(3)}), "REFUSED");
  EXPECT_FALSE(contains(w().dns->log(), "in-addr.arpa")) << w().dns->log();
  // Long labels and names (a tunnel's chunks) are refused before the name is even judged.
  const std::string longLabel = std::string(41, 'q') + uniqueLabel("l") + ".allowed.test";
  EXPECT_EQ(status({longLabel}), "REFUSED");
  std::string longName;
  for (int i = 0; i < 5; ++i) {
    longName += std::string(20, 'a' + i) + ".";
  }
  longName += uniqueLabel("n") + ".allowed.test";
  EXPECT_EQ(status({longName}), "REFUSED");
  EXPECT_FALSE(contains(w().dns->log(), "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"))
      << w().dns->log();
  EXPECT_FALSE(contains(w().dns->log(), "aaaaaaaaaaaaaaaaaaaa.bbbb")) << w().dns->log();
  // Rebinding: rebind.test is allowed but resolves to 127.0.0.1, which is dropped.
  RunResult r = dig(*sb, server, {"rebind.test"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "status: NOERROR")) << r.out;
  EXPECT_TRUE(contains(r.out, "ANSWER: 0,")) << r.out;
  EXPECT_FALSE(contains(r.out, "127.0.0.1")) << r.out;

  // One audit line per decision, layer dns.
  auto& d = sb->daemon();
  ASSERT_OK(d.waitForAudit([](const nlohmann::json& a) {
    return a.value("layer", "") == "dns" && a.value("host", "") == "other.test" &&
           a.value("decision", "") == "deny" && a.value("reason", "") == "not_in_allowed_hosts" &&
           a.value("rcode", "") == "REFUSED" && a.value("query_type", "") == "A";
  }));
  ASSERT_OK(d.waitForAudit([](const nlohmann::json& a) {
    return a.value("layer", "") == "dns" && a.value("host", "") == "deny.allowed.test" &&
           a.value("reason", "") == "denied_host" &&
           a.value("rule", "") == "deniedHosts[0] deny.allowed.test";
  }));
  ASSERT_OK(d.waitForAudit([](const nlohmann::json& a) {
    return a.value("layer", "") == "dns" && a.value("host", "") == "rebind.test" &&
           a.value("reason", "") == "answer_filtered" &&
           contains(a.value("detail", ""), "127.0.0.1 (special_destination)");
  }));
  ASSERT_OK(d.waitForAudit([](const nlohmann::json& a) {
    return a.value("layer", "") == "dns" && a.value("reason", "") == "allowed_host" &&
           a.value("query_type", "") == "TXT" && a.value("decision", "") == "allow";
  }));
  ASSERT_OK(d.waitForAudit([](const nlohmann::json& a) {
    return a.value("layer", "") == "dns" && a.value("reason", "") == "label_too_long";
  }));
}

// A DNS tunnel from a locked-down sandbox: 1,000 unique labels under an attacker's domain.
// None is forwarded (the name is not allowed), and past the rate limit they are refused.
TEST_F(DnsResolverTest, ExfiltrationLoopFromALockedDownSandboxLeaksNothing) {
  PolicySpec spec;
  spec.dnsExtra = "  limits: { qps: 50, burst: 100 }\n";
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec, SandboxOptions{.metrics = true}));
  const std::string tag = uniqueLabel("x");
  auto summary =
      queries(*sb, w().ip4(99), "{i}." + tag + ".attacker.test", 1000, {"--timeout", "1"});
  EXPECT_EQ(summary["timeouts"], 0) << summary.dump();
  EXPECT_GE(rcodeCount(summary, "NXDOMAIN"), 100) << summary.dump();
  EXPECT_GT(rcodeCount(summary, "REFUSED"), 0) << summary.dump();
  EXPECT_EQ(rcodeCount(summary, "NXDOMAIN") + rcodeCount(summary, "REFUSED"), 1000)
      << summary.dump();
  EXPECT_FALSE(contains(w().dns->log(), tag)) << w().dns->log();
  ASSERT_OK_AND_ASSIGN(std::string metrics, sb->daemon().scrapeMetrics());
  const std::string series = "egressd_dns_queries_total{decision=\"deny\",reason=\"";
  const std::string sandbox = "\",sandbox=\"" + sb->daemon().sandboxId() + "\"} ";
  EXPECT_TRUE(contains(metrics, series + "rate_limited" + sandbox)) << metrics;
  EXPECT_TRUE(contains(metrics, series + "internet_disabled" + sandbox)) << metrics;
}

// Allowed names, many unique ones under one registered domain: forwarded up to the limit,
// refused after it, and nothing past the limit reaches the upstream.
TEST_F(DnsResolverTest, UniqueNamesPerDomainAreLimited) {
  PolicySpec spec;
  spec.allowedHosts = {"*.allowed.test"};
  spec.dnsExtra = "  limits: { uniqueNamesPerMinute: 30 }\n";
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec, SandboxOptions{.auditLog = true}));
  const std::string tag = uniqueLabel("u");
  auto summary = queries(*sb, w().ip4(99), "{i}." + tag + ".allowed.test", 100);
  EXPECT_EQ(rcodeCount(summary, "NOERROR"), 30) << summary.dump();
  EXPECT_EQ(rcodeCount(summary, "REFUSED"), 70) << summary.dump();
  const std::string log = w().dns->log();
  size_t forwarded = 0;
  for (size_t at = log.find("query[A] "); at != std::string::npos;
       at = log.find("query[A] ", at + 1)) {
    const size_t end = log.find(' ', at + 9);
    forwarded += contains(log.substr(at + 9, end - at - 9), "." + tag + ".allowed.test") ? 1 : 0;
  }
  EXPECT_EQ(forwarded, 30u) << log;
  // A name already seen this minute is not a new one; audited once per burst, not 70 times.
  summary = queries(*sb, w().ip4(99), "{i}." + tag + ".allowed.test", 5);
  EXPECT_EQ(rcodeCount(summary, "NOERROR"), 5) << summary.dump();
  ASSERT_OK_AND_ASSIGN(size_t limited, sb->daemon().waitForAuditCount(
                                           [](const nlohmann::json& a) {
                                             return a.value("reason", "") == "unique_names_limited";
                                           },
                                           1));
  EXPECT_GE(limited, 1u);
  EXPECT_LE(limited, 5u);
}

// DNS over TLS is plain TCP to 853: denied like any port unless an IP rule allows it.
TEST_F(DnsResolverTest, DnsOverTlsIsDeniedUnlessAnIpRuleAllowsIt) {
  PolicySpec spec;
  spec.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec));
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(2), "853"}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip6(2), "853"}), "EPERM");
  spec.allow = {{.cidr = w().ip4(2) + "/32", .ports = {853}, .protocol = "tcp"}};
  ASSERT_OK_AND_ASSIGN(auto allowed, Sandbox::start(spec));
  // Nobody serves 853 there: the kernel let the connection out, and it was refused.
  EXPECT_PROBE_ERR(allowed->probe({"tcp", w().ip4(2), "853"}), "ECONNREFUSED");
}

// Fail closed: with egressd down, queries fail; they never go straight to a resolver.
TEST_F(DnsResolverTest, DaemonDownQueriesFailAndNeverGoDirect) {
  PolicySpec spec;
  spec.allowedHosts = {"*.allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec));
  auto& d = sb->daemon();
  ASSERT_OK(d.killAndWait(SIGKILL));
  const std::string name = uniqueLabel("k") + ".allowed.test";
  for (const std::string& server : {w().ip4(2), w().ip4(99)}) {
    for (const char* transport : {"+notcp", "+tcp"}) {
      auto r = dig(*sb, server, {transport, name});
      EXPECT_NE(r.exitCode, 0) << r.describe();
      EXPECT_FALSE(contains(r.out, "status: NOERROR")) << r.out;
    }
  }
  EXPECT_FALSE(contains(w().dns->log(), name)) << w().dns->log();
  // Back up: answered again.
  ASSERT_OK(d.restart());
  auto r = dig(*sb, w().ip4(99), {name});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "\t" + w().ip4(3) + "\n")) << r.out;
}

// A policy change (SIGHUP) applies to the next query.
TEST_F(DnsResolverTest, PolicyReloadAppliesToTheNextQuery) {
  PolicySpec spec;
  spec.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec));
  auto r = dig(*sb, w().ip4(99), {"other.test"});
  EXPECT_TRUE(contains(r.out, "status: NXDOMAIN")) << r.out;
  spec.allowedHosts = {"allowed.test", "other.test"};
  ASSERT_OK(sb->daemon().reload(policyYaml(spec)));
  for (int i = 0; i < 50; ++i) {
    r = dig(*sb, w().ip4(99), {"other.test"});
    if (contains(r.out, "status: NOERROR")) {
      break;
    }
    usleep(100000);
  }
  EXPECT_TRUE(contains(r.out, "\t" + w().ip4(4) + "\n")) << r.out;
}

// A container-like sandbox: the resolver listens inside its netns.
TEST_F(DnsResolverTest, NetnsSandboxIsAnsweredToo) {
  PolicySpec spec;
  spec.allowedHosts = {"allowed.test"};
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec, true));
  for (bool tcp : {false, true}) {
    auto r = dig(*sb, w().ip4(99), {tcp ? "+tcp" : "+notcp", "allowed.test"});
    ASSERT_EQ(r.exitCode, 0) << r.describe();
    EXPECT_TRUE(contains(r.out, "\t" + w().ip4(3) + "\n")) << r.out;
    EXPECT_FALSE(contains(r.out + r.err, "unexpected source")) << r.out;
    const std::string denied = uniqueLabel("n") + ".other.test";
    r = dig(*sb, w().ip4(99), {tcp ? "+tcp" : "+notcp", denied});
    EXPECT_TRUE(contains(r.out, "status: NXDOMAIN")) << r.out;
    EXPECT_FALSE(contains(w().dns->log(), denied));
  }
}

// A name-based allow rule: resolving the name puts its addresses into the sandbox's kernel
// allow map before the answer is released (the connect right after the answer works), for
// the rule's ports only, until TTL (0 from dnsmasq) + nameRuleGrace; then refused again.
TEST_F(DnsResolverTest, NameBasedAllowRuleOpensTheResolvedAddressUntilItExpires) {
  PolicySpec spec;
  spec.allow = {{.host = "*.allowed.test", .ports = {kTcpA}, .protocol = "tcp"}};
  spec.dnsExtra = "  nameRuleGrace: 3\n";
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec, SandboxOptions{.auditLog = true}));
  const std::string a = std::to_string(kTcpA);
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(3), a}), "EPERM");
  // other.test is not named by the rule: not even resolvable.
  auto r = dig(*sb, w().ip4(99), {"other.test"});
  EXPECT_TRUE(contains(r.out, "status: NXDOMAIN")) << r.out;

  const std::string name = uniqueLabel("db") + ".allowed.test";
  r = dig(*sb, w().ip4(99), {"+short", name});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, w().ip4(3) + "\n");
  auto connected = sb->probe({"tcp", w().ip4(3), a});
  ASSERT_PROBE_OK(connected);
  EXPECT_TRUE(contains(connected.out, "hello from " + w().ip4(3) + ":" + a)) << connected.out;
  // The rule's port only, the resolved address only.
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(3), std::to_string(kTcpB)}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(4), a}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"udp", w().ip4(3), a}), "EPERM");
  // AAAA answers open the IPv6 address the same way.
  r = dig(*sb, w().ip4(99), {"+short", "AAAA", name});
  EXPECT_EQ(r.out, w().ip6(3) + "\n");
  EXPECT_PROBE_OK(sb->probe({"tcp", w().ip6(3), a}));
  ASSERT_OK(sb->daemon().waitForAudit([&](const nlohmann::json& j) {
    return j.value("layer", "") == "dns" && j.value("host", "") == name &&
           j.value("reason", "") == "allow_rule" &&
           j.value("rule", "") == "allow[0] *.allowed.test tcp/" + a;
  }));
  // Expired (TTL 0 + 3 s grace, swept every 0.5 s): refused again.
  bool refused = false;
  for (int i = 0; i < 60 && !refused; ++i) {
    usleep(100000);
    refused = ProbeErr(sb->probe({"tcp", w().ip4(3), a}), "EPERM");
  }
  EXPECT_TRUE(refused) << "the entry never expired";
  // Resolved again: open again.
  r = dig(*sb, w().ip4(99), {"+short", name});
  EXPECT_PROBE_OK(sb->probe({"tcp", w().ip4(3), a}));
}

// An entry past its TTL + grace stays while a connection of the sandbox uses it (the
// per-packet backstop would cut it otherwise); new connections are refused once it goes.
TEST_F(DnsResolverTest, NameRuleExpiryLeavesEstablishedConnectionsAlone) {
  PolicySpec spec;
  spec.allow = {{.host = "allowed.test", .ports = {kTcpA}, .protocol = "tcp"}};
  spec.dnsExtra = "  nameRuleGrace: 1\n";
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec));
  auto r = dig(*sb, w().ip4(99), {"+short", "allowed.test"});
  ASSERT_EQ(r.out, w().ip4(3) + "\n") << r.describe();
  const std::string endpoint = w().ip4(3) + ":" + std::to_string(kTcpA);
  ASSERT_OK_AND_ASSIGN(test::TempDir tmp, test::TempDir::create());
  const std::string trigger = tmp.path() + "/go";
  ASSERT_OK_AND_ASSIGN(test::Process holder,
                       test::Process::spawn(test::SpawnOptions{
                           .argv = {test::python3Bin(), clientsDir() + "/hold_conns.py", "--tcp",
                                    endpoint, "--trigger", trigger, "--wait", "20"},
                           .cgroup = sb->cgroup().path()}));
  ASSERT_TRUE(holder.waitForOutput("\"ready\"", test::milliseconds(10000)))
      << holder.stdoutText() << holder.stderrText();
  // Well past TTL 0 + 1 s grace: the entry stays while the connection uses it (so a new
  // connection to the same address and port is still allowed too).
  sleep(3);
  EXPECT_PROBE_OK(sb->probe({"tcp", w().ip4(3), std::to_string(kTcpA)}));
  ASSERT_OK(writeFileAtomic(trigger, "go\n"));
  ASSERT_OK_AND_ASSIGN(RunResult done, holder.wait(test::milliseconds(15000)));
  const std::string last = done.out.substr(done.out.rfind('{', done.out.rfind("\"ready\"")));
  auto after = nlohmann::json::parse(last, nullptr, false);
  ASSERT_FALSE(after.is_discarded()) << done.describe();
  EXPECT_EQ(after["after"]["tcp"].value(endpoint, ""), "ok") << done.describe();
  // The connection closed: the entry goes at the next sweep.
  bool refused = false;
  for (int i = 0; i < 40 && !refused; ++i) {
    usleep(100000);
    refused = ProbeErr(sb->probe({"tcp", w().ip4(3), std::to_string(kTcpA)}), "EPERM");
  }
  EXPECT_TRUE(refused);
}

// dns.requireResolved: an IP-literal request is served only to an address the sandbox's
// resolver answered it for an allowed name.
TEST_F(DnsResolverTest, RequireResolvedServesOnlyAnsweredAddresses) {
  ASSERT_OK(httpOrigin());
  PolicySpec spec;
  spec.enableInternet = true;
  spec.proxyPorts = std::vector<int>{kHttpOrigin};
  spec.dnsExtra = "  requireResolved: true\n";
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec, SandboxOptions{.auditLog = true}));
  auto status = [&](int host) {
    RunResult r = sb->runInside({"curl", "--noproxy", "*", "-s", "-o", "/dev/null", "-w",
                                 "%{http_code}", "--max-time", "10",
                                 "http://" + w().ip4(host) + ":" + std::to_string(kHttpOrigin) +
                                     "/whoami?tag=" + uniqueLabel("rr")});
    return r.out;
  };
  EXPECT_EQ(status(3), "403");
  auto r = dig(*sb, w().ip4(99), {"+short", "allowed.test"});
  ASSERT_EQ(r.out, w().ip4(3) + "\n") << r.describe();
  EXPECT_EQ(status(3), "200");
  EXPECT_EQ(status(4), "403");  // other.test's address was never answered
  ASSERT_OK(sb->daemon().waitForAudit([&](const nlohmann::json& a) {
    return a.value("layer", "") == "proxy" && a.value("reason", "") == "unresolved_address" &&
           a.value("rule", "") == "dns.requireResolved";
  }));
}

}  // namespace
}  // namespace egressd::e2e
