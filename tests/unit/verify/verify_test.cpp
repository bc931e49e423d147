#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <fstream>
#include <set>

#include "policy/policy.h"
#include "verify/battery.h"
#include "verify/cases.h"
#include "verify/host_checks.h"
#include "verify/listeners.h"
#include "verify/probe_main.h"
#include "verify/report.h"

namespace egressd::verify {
namespace {

Observation refusedWith(int err) {
  Observation o;
  o.call = ActionResult::failure(err, "connect");
  return o;
}

Observation succeeded(bool atSink = false) {
  Observation o;
  o.call = ActionResult::success("done");
  o.tokenAtSink = atSink;
  return o;
}

TEST(Judge, CallCaseIsPassOnlyWhenRefusedWithARefusalErrno) {
  const Case& c = *findBuiltinCase("tcp-denied");
  EXPECT_EQ(judge(c, refusedWith(EPERM)), Verdict::kPass);
  EXPECT_EQ(judge(c, succeeded()), Verdict::kHole);
  // Not refused by the enforcer: the network answered instead.
  EXPECT_EQ(judge(c, refusedWith(ENETUNREACH)), Verdict::kHole);
  EXPECT_EQ(judge(c, refusedWith(ETIMEDOUT)), Verdict::kHole);
  // The token at the sink is a hole whatever the client saw.
  Observation lying = refusedWith(EPERM);
  lying.tokenAtSink = true;
  EXPECT_EQ(judge(c, lying), Verdict::kHole);
}

TEST(Judge, UnsupportedProtocolIsSkippedNotPassed) {
  const Case& sctp = *findBuiltinCase("socket-sctp");
  EXPECT_EQ(judge(sctp, refusedWith(EPROTONOSUPPORT)), Verdict::kSkip);
  EXPECT_EQ(judge(sctp, refusedWith(EPERM)), Verdict::kPass);
  EXPECT_EQ(judge(sctp, succeeded()), Verdict::kHole);
  // A destination case has no "unsupported" escape.
  EXPECT_EQ(judge(*findBuiltinCase("tcp-denied"), refusedWith(EPROTONOSUPPORT)), Verdict::kHole);
}

TEST(Judge, SinkCasesAreJudgedByTheListenerNotTheClient) {
  const Case& spoof = *findBuiltinCase("http-host-spoof");
  EXPECT_EQ(judge(spoof, succeeded(false)), Verdict::kPass);
  EXPECT_EQ(judge(spoof, succeeded(true)), Verdict::kHole);
  const Case& control = *findBuiltinCase("control-http-allowed");
  EXPECT_EQ(judge(control, succeeded(true)), Verdict::kPass);
  EXPECT_EQ(judge(control, succeeded(false)), Verdict::kControlFailed);
}

TEST(Judge, PolicySamplesFailAsHoleOrWarning) {
  std::string error;
  Case denied = sampleCase("deny-cidr", "203.0.113.1", &error);
  ASSERT_EQ(error, "");
  EXPECT_EQ(judge(denied, refusedWith(EPERM)), Verdict::kPass);
  EXPECT_EQ(judge(denied, refusedWith(ENETUNREACH)), Verdict::kHole);
  Case allowed = sampleCase("allow-cidr", "192.0.2.1:5432", &error);
  ASSERT_EQ(error, "");
  EXPECT_EQ(judge(allowed, refusedWith(ENETUNREACH)), Verdict::kPass);
  EXPECT_EQ(judge(allowed, refusedWith(EPERM)), Verdict::kWarn);
  Case host = sampleCase("allow-host", "api.example.test", &error);
  EXPECT_EQ(judge(host, succeeded(false)), Verdict::kWarn);
  sampleCase("bogus", "x", &error);
  EXPECT_NE(error, "");
}

TEST(CaseTable, IdsAreUniqueAndEveryCaseIsComplete) {
  std::set<std::string> ids;
  for (const Case& c : builtinCases()) {
    EXPECT_TRUE(ids.insert(c.id).second) << c.id;
    EXPECT_NE(c.action, nullptr) << c.id;
    EXPECT_FALSE(c.attempt.empty()) << c.id;
    EXPECT_FALSE(c.refusedErrnos.empty()) << c.id;
    EXPECT_EQ(c.id.find(' '), std::string::npos) << c.id;
    if (c.evidence == Evidence::kSink) {
      EXPECT_FALSE(c.sink.empty()) << c.id;
    }
  }
  // The issue's list of bypasses, each present.
  for (const char* id : {"socket-packet",
                         "socket-raw4",
                         "socket-ping4",
                         "sockopt-ipv6-rthdr",
                         "sockopt-ip-options",
                         "v4-mapped",
                         "nat64",
                         "6to4",
                         "teredo",
                         "connect-0.0.0.0",
                         "loopback4",
                         "udp-unconnected",
                         "udp-connected",
                         "quic",
                         "tcp-fastopen",
                         "dns-other-server",
                         "dns-tcp-other-server",
                         "http-direct-origin",
                         "http-host-spoof",
                         "tls-sni-spoof",
                         "child-cgroup",
                         "leave-cgroup",
                         "io-uring"}) {
    EXPECT_NE(findBuiltinCase(id), nullptr) << id;
  }
  EXPECT_EQ(findBuiltinCase("no-such-case"), nullptr);
}

TEST(Tokens, NoTokenIsContainedInAnother) {
  for (size_t i = 0; i < 120; ++i) {
    for (size_t j = 0; j < 120; ++j) {
      if (i != j) {
        ASSERT_EQ(caseToken("vfyabcu0", j).find(caseToken("vfyabcu0", i)), std::string::npos)
            << i << " in " << j;
      }
    }
  }
}

TEST(ActionResult, WireFormatRoundTrips) {
  ActionResult r = ActionResult::failure(EPERM, "connect", "198.18.1.4:7001\nsecond line");
  ActionResult back = ActionResult::parse(r.serialize());
  EXPECT_FALSE(back.ok);
  EXPECT_EQ(back.err, EPERM);
  EXPECT_EQ(back.step, "connect");
  EXPECT_EQ(back.detail, "198.18.1.4:7001 second line");
  ActionResult ok = ActionResult::parse(ActionResult::success("HTTP/1.1 200 OK").serialize());
  EXPECT_TRUE(ok.ok);
  EXPECT_EQ(ok.detail, "HTTP/1.1 200 OK");
  EXPECT_FALSE(ActionResult::parse("garbage").ok);
}

TEST(ProbeArguments, NameBuiltinCasesAndSamples) {
  Targets t{"198.18.1.3", "198.18.1.4", "198.18.1.2", 4242};
  std::string error;
  std::vector<Case> cases = {*findBuiltinCase("quic"), sampleCase("deny-host", "x.evil", &error)};
  auto args = probeArguments(t, "vfyT", cases);
  ASSERT_GE(args.size(), 2U);
  EXPECT_EQ(args[args.size() - 2], "quic");
  EXPECT_EQ(args.back(), "sample:deny-host:x.evil");
}

TEST(PolicySamples, DeniedAndAllowedDestinationsOfThePolicy) {
  auto p = policy::parsePolicy(
      "name: s\n"
      "allowedHosts: [\"*.npmjs.org\"]\n"
      "deniedHosts: [\"*.evil.test\", \"203.0.113.0/24\"]\n"
      "allow:\n"
      "  - { cidr: 192.0.2.0/24, ports: [5432], protocol: tcp }\n"
      "  - { cidr: 198.51.100.7/32, ports: [53000], protocol: udp }\n",
      "test");
  ASSERT_TRUE(p.ok()) << p.error().message();
  std::set<std::string> got;
  for (const Case& c : policySamples(*p)) {
    got.insert(c.sampleKind + " " + c.param);
  }
  EXPECT_EQ(
      got, (std::set<std::string>{"deny-cidr 203.0.113.1", "deny-host verify-sample.evil.test",
                                  "unlisted-host not-allowed.verify-sample.test",
                                  "allow-host verify-sample.npmjs.org", "allow-cidr 192.0.2.1:5432",
                                  "allow-cidr 198.51.100.7:53000/udp"}));
}

TEST(Listeners, LabelMatching) {
  EXPECT_TRUE(Listeners::labelMatches("other:80/tcp", "other", 80, false));
  EXPECT_FALSE(Listeners::labelMatches("other:80/tcp", "other", 80, true));
  EXPECT_FALSE(Listeners::labelMatches("other:8080/tcp", "other", 80, false));
  EXPECT_FALSE(Listeners::labelMatches("origin:80/tcp", "other", 80, false));
  EXPECT_TRUE(Listeners::labelMatches("loopback:41234/tcp", "loopback", 0, false));
}

TEST(HostChecks, FeaturesAreJudgedWithAdvice) {
  auto kernel = judgeFeature({"kernel_version", host::FeatureStatus::kMissing, "Linux 5.4"});
  EXPECT_EQ(kernel.level, Level::kFail);
  EXPECT_FALSE(kernel.advice.empty());
  auto ns = judgeFeature({"cgroup2_nsdelegate", host::FeatureStatus::kMissing, "no"});
  EXPECT_EQ(ns.level, Level::kWarn);
  auto uring = judgeFeature({"io_uring", host::FeatureStatus::kOk, "enabled"});
  EXPECT_EQ(uring.level, Level::kWarn);
  auto uringOff = judgeFeature({"io_uring", host::FeatureStatus::kMissing, "disabled"});
  EXPECT_EQ(uringOff.level, Level::kPass);
  auto unknown = judgeFeature({"ipv6", host::FeatureStatus::kUnknown, "?"});
  EXPECT_EQ(unknown.level, Level::kWarn);
}

TEST(DaemonChecks, SandboxInStateButNotArmedIsAFail) {
  char dir[] = "/tmp/egressd-verify-unit-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  const std::string state = std::string(dir) + "/state.json";
  std::ofstream(state) << R"({"sandboxes":[{"id":"ghost","cgroup":"/nonexistent/ghost"}]})";
  DaemonPaths paths{std::string(dir) + "/no-pins", state, std::string(dir) + "/no.sock"};
  auto checks = daemonChecks(paths);
  bool ghost = false;
  for (const Check& c : checks) {
    if (c.name == "sandbox ghost") {
      ghost = true;
      EXPECT_EQ(c.level, Level::kFail);
      EXPECT_NE(c.detail.find("NOT ENFORCED"), std::string::npos) << c.detail;
    }
  }
  EXPECT_TRUE(ghost);
  std::ofstream(state) << "{ truncated";
  checks = daemonChecks(paths);
  ASSERT_FALSE(checks.empty());
  EXPECT_EQ(checks.front().level, Level::kFail);
  std::remove(state.c_str());
  ::rmdir(dir);
}

TEST(DaemonChecks, NothingRunningNothingPinnedPasses) {
  DaemonPaths paths{"/nonexistent/pins", "/nonexistent/state.json", "/nonexistent/sock"};
  auto checks = daemonChecks(paths);
  ASSERT_EQ(checks.size(), 1U);
  EXPECT_EQ(checks[0].level, Level::kPass);
}

TEST(ExitCode, HoleBeatsEverythingControlsMakeItInconclusive) {
  VerifyResult r;
  EXPECT_EQ(exitCodeOf(r), kExitInconclusive);  // the battery did not run
  r.battery = BatteryReport{};
  EXPECT_EQ(exitCodeOf(r), kExitClean);
  CaseRow row;
  row.c = *findBuiltinCase("control-tcp-allowed");
  row.verdict = Verdict::kControlFailed;
  r.battery->rows.push_back(row);
  EXPECT_EQ(exitCodeOf(r), kExitInconclusive);
  row.c = *findBuiltinCase("quic");
  row.user = "nobody";
  row.verdict = Verdict::kHole;
  r.battery->rows.push_back(row);
  EXPECT_EQ(exitCodeOf(r), kExitHole);
  EXPECT_EQ(holesSummary(r), "quic (nobody)");
  VerifyResult failedCheck;
  failedCheck.battery = BatteryReport{};
  failedCheck.checks.push_back({"kernel_version", Level::kFail, "old", "upgrade"});
  EXPECT_EQ(exitCodeOf(failedCheck), kExitHole);
}

}  // namespace
}  // namespace egressd::verify
