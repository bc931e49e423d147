// The shared e2e world of one test binary and the per-test Sandbox fixture.
//
// World (created lazily by the first test that needs it, torn down by a GTest environment
// after the last): a TestNetwork (internet netns + sandbox netns), servers.py in the
// internet netns on 198.18.N.{2,3,4} and 2001:db8:e9:N::{2,3,4} (TCP 7001, 7002, 80, 443
// with greeting+echo; UDP 7003 and 443 echo on .3/.4 and ::3/::4), and dnsmasq on
// 198.18.N.2:53 / [2001:db8:e9:N::2]:53 answering allowed.test (and *.allowed.test) -> .3
// and ::3, other.test (and *.other.test) -> .4, rebind.test -> 127.0.0.1 (a name that
// resolves to loopback, for DNS-rebinding tests; loopback is the only non-test address the
// world ever hands out). On first use, http_origin.py on .3, .4, ::3, ::4 port 8080.
// HTTPS (httpsOrigin(), on first use): a TestCa whose certificates name allowed.test,
// *.allowed.test, other.test, *.other.test and .3, .4, ::3, ::4, and a second http_origin.py
// serving the same routes over TLS on .3, .4, ::3, ::4: 8443 good certificate, 8444 expired,
// 8445 wrong name (wrong.test), 8446 issued by a CA egressd is not told about.
//
// Sandbox: a TestCgroup plus an EgressdDaemon enforcing a policy on it, optionally in the
// world's sandbox netns (container-like); runs egressd-probe inside or outside of it.
#pragma once

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cgroup.h"
#include "common/result.h"
#include "egressd.h"
#include "netns.h"
#include "process.h"
#include "servers.h"
#include "test_ca.h"
#include "test_util.h"

namespace egressd::e2e {

using test::RunResult;

inline constexpr int kTcpA = 7001;
inline constexpr int kTcpB = 7002;
inline constexpr int kUdp = 7003;
inline constexpr int kHttp = 80;
inline constexpr int kHttps = 443;
// http_origin.py listens on 8080 of .3, .4, ::3, ::4; nothing listens on 8081.
inline constexpr int kHttpOrigin = 8080;
inline constexpr int kHttpNoServer = 8081;
// The HTTPS origins (httpsOrigin()): one certificate per port.
inline constexpr int kHttpsGood = 8443;
inline constexpr int kHttpsExpired = 8444;
inline constexpr int kHttpsWrongName = 8445;
inline constexpr int kHttpsUntrusted = 8446;

struct World {
  std::unique_ptr<test::TestNetwork> net;
  std::optional<test::TestServers> servers;
  std::optional<test::TestDnsmasq> dns;
  std::optional<test::TestHttpOrigin> http;   // started by httpOrigin(); destroyed first
  std::optional<test::TestCa> ca;             // made by testCa() / httpsOrigin()
  std::optional<test::TestHttpOrigin> https;  // started by httpsOrigin(); destroyed before all

  std::string ip4(int host) const { return net->ip4(host); }
  std::string ip6(int host) const { return net->ip6(host); }
  std::string resolver4() const { return net->ip4(2) + ":53"; }
  // Server event log lines mentioning `local` ("198.18.N.3:80"); counts accepted/received.
  size_t serverEventsFor(const std::string& local) const;
  // Polls the server event log (bounded) until a line contains `needle`.
  bool waitForServerEvent(const std::string& needle, test::milliseconds timeout) const;
};

// The binary's World; the error of a failed creation is kept and returned to every caller.
Result<World*> world();
// The world's HTTP origins (started on first use).
Result<test::TestHttpOrigin*> httpOrigin();
// The world's test CA (made on first use; its certificates name the world's addresses).
Result<test::TestCa*> testCa();
// The world's HTTPS origins on 8443..8446 (started on first use, with testCa()).
Result<test::TestHttpOrigin*> httpsOrigin();

struct AllowRule {
  std::string cidr;
  std::string host;        // a name-based rule instead of cidr (docs/dns.md)
  std::vector<int> ports;  // empty: all ports
  std::string protocol;    // "tcp", "udp", "any" or empty (omitted)
};

struct PolicySpec {
  std::string name = "e2e";
  bool enableInternet = false;
  std::vector<AllowRule> allow;
  std::vector<std::string> allowedHosts;
  std::vector<std::string> deniedHosts;
  std::string resolver;  // dns.upstream; empty: the world's dnsmasq (198.18.N.2:53)
  std::string dnsExtra;  // more lines of the dns: block, each indented two spaces
  std::optional<std::vector<int>> proxyPorts;
  std::string extraYaml;  // appended verbatim
};

std::string policyYaml(const PolicySpec& spec);

std::string probeBin();

struct SandboxOptions {
  bool ownNetns = false;  // the world's sandbox netns (egressd --netns, clients setns there)
  bool auditLog = false;  // egressd --audit-log (EgressdDaemon::auditRecords)
  bool metrics = false;   // egressd --metrics unix:... (EgressdDaemon::scrapeMetrics)
  std::vector<std::string> daemonArgs;  // appended to the daemon's command line
};

class Sandbox {
 public:
  // Creates the cgroup, starts egressd on it with `spec`; ownNetns puts the sandbox in the
  // world's sandbox netns (egressd --netns, probes setns there).
  static Result<std::unique_ptr<Sandbox>> start(const PolicySpec& spec, bool ownNetns = false);
  static Result<std::unique_ptr<Sandbox>> start(const PolicySpec& spec,
                                                const SandboxOptions& options);

  const test::TestCgroup& cgroup() const { return cgroup_; }
  test::EgressdDaemon& daemon() { return *daemon_; }
  const std::string& netnsPath() const { return netnsPath_; }

  // egressd-probe ARGS inside the sandbox (cgroup + its netns).
  RunResult probe(const std::vector<std::string>& args) const;
  // egressd-probe ARGS in the sandbox's netns but outside its cgroup.
  RunResult probeOutside(const std::vector<std::string>& args) const;
  // Any command inside the sandbox (cgroup `cgroupPath` if given, else the sandbox cgroup).
  RunResult runInside(const std::vector<std::string>& argv, const std::string& cgroupPath = "",
                      test::milliseconds timeout = test::milliseconds(15000)) const;

 private:
  Sandbox(test::TestCgroup cg, std::string netns)
      : cgroup_(std::move(cg)), netnsPath_(std::move(netns)) {}
  test::TestCgroup cgroup_;  // declared first: destroyed after the daemon detached
  std::string netnsPath_;
  std::unique_ptr<test::EgressdDaemon> daemon_;
};

// Runs argv (in `cgroup` and `netnsPath` when not empty) after checking that the test
// network still exists; spawn errors come back as a RunResult with the error in `err`.
RunResult runGuarded(const std::vector<std::string>& argv, const std::string& cgroup,
                     const std::string& netnsPath, test::milliseconds timeout);
// egressd-probe with `args` outside every sandbox, in the test's own netns.
RunResult probeHost(const std::vector<std::string>& args);

// "OK ..." and exit 0.
::testing::AssertionResult ProbeOk(const RunResult& r);
// "ERR <errnoName> ..." and exit 1.
::testing::AssertionResult ProbeErr(const RunResult& r, const std::string& errnoName);

// A base fixture: world() exists and its namespaces are present before each test.
class E2eTest : public ::testing::Test {
 protected:
  void SetUp() override;
  World& w() { return *world_; }
  World* world_ = nullptr;
};

}  // namespace egressd::e2e

#define EXPECT_PROBE_OK(r) EXPECT_TRUE(::egressd::e2e::ProbeOk(r))
#define ASSERT_PROBE_OK(r) ASSERT_TRUE(::egressd::e2e::ProbeOk(r))
#define EXPECT_PROBE_ERR(r, e) EXPECT_TRUE(::egressd::e2e::ProbeErr((r), (e)))
#define ASSERT_PROBE_ERR(r, e) ASSERT_TRUE(::egressd::e2e::ProbeErr((r), (e)))

namespace egressd::e2e {

// The world's sandbox netns exists and has no default route (IPv4 and IPv6): only the test
// subnets are reachable from it. Required before sending to special destinations there.
::testing::AssertionResult SandboxNetnsHasNoDefaultRoute(const World& w);

// Base for tests that send to special destinations from the sandbox netns: SetUp fails
// unless that netns has no default route. Subclasses call it first, then return if
// IsSkipped() || HasFatalFailure().
class RoutelessNetnsTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    if (!IsSkipped() && !HasFatalFailure()) {
      ASSERT_TRUE(SandboxNetnsHasNoDefaultRoute(w()));
    }
  }
};

// This sandbox's entry of `egressctl status --json`.
Result<nlohmann::json> sandboxStatus(Sandbox& sb);
// A per-reason counter of such an entry (0 when absent: only non-zero counters are listed).
uint64_t counterOf(const nlohmann::json& status, const std::string& reason);

// `bpftool -j ARGS...`, parsed.
Result<nlohmann::json> bpftoolJson(const std::vector<std::string>& args);
// `bpftool -j map dump pinned PATH`, parsed.
Result<nlohmann::json> bpftoolMapDump(const std::string& pinnedPath);

// `bpftool link show -j`: the number of links per attach type on the cgroup `cgroupId`.
Result<std::map<std::string, int>> cgroupLinks(uint64_t cgroupId);
// `dig` inside the sandbox with a short timeout; `tcp` selects +tcp.
RunResult digIn(const Sandbox& sb, const std::string& server, const std::string& name, bool tcp);

}  // namespace egressd::e2e
