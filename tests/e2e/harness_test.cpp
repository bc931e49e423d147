// Proves the harness itself against the real kernel with no egressd attached: a probe in a
// bare test cgroup reaches every server directly, DNS answers come from dnsmasq, the
// fixtures clean up after themselves. If these fail, enforcement tests cannot be trusted.
#include <signal.h>
#include <sys/stat.h>

#include "common/fs.h"
#include "temp_dir.h"
#include "world.h"

namespace egressd::e2e {
namespace {

using test::TestCgroup;

class HarnessTest : public E2eTest {};

RunResult probeIn(const TestCgroup& cg, std::vector<std::string> args,
                  const std::string& netns = "") {
  args.insert(args.begin(), probeBin());
  return runGuarded(args, cg.path(), netns, test::milliseconds(15000));
}

TEST_F(HarnessTest, TcpServersAnswerDirectlyFromBareCgroup) {
  ASSERT_OK_AND_ASSIGN(TestCgroup cg, TestCgroup::create());
  auto r = probeIn(cg, {"tcp", w().ip4(3), "7001", "--send", "abc"});
  ASSERT_PROBE_OK(r);
  EXPECT_NE(r.out.find("peer=" + w().ip4(3) + ":7001"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("greeting=\"hello from " + w().ip4(3) + ":7001\""), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("echo=\"abc\""), std::string::npos) << r.out;

  r = probeIn(cg, {"tcp", w().ip6(4), "443"});
  ASSERT_PROBE_OK(r);
  EXPECT_NE(r.out.find("hello from [" + w().ip6(4) + "]:443"), std::string::npos) << r.out;

  r = probeIn(cg, {"tcp", "::ffff:" + w().ip4(2), "80"});
  ASSERT_PROBE_OK(r);
  EXPECT_NE(r.out.find("peer=[::ffff:" + w().ip4(2) + "]:80"), std::string::npos) << r.out;
}

TEST_F(HarnessTest, UdpVariantsEchoDirectly) {
  ASSERT_OK_AND_ASSIGN(TestCgroup cg, TestCgroup::create());
  for (const char* mode : {"udp", "udp-connected", "sendmmsg"}) {
    auto r = probeIn(cg, {mode, w().ip4(3), "7003"});
    ASSERT_PROBE_OK(r) << mode;
    EXPECT_NE(r.out.find("from=" + w().ip4(3) + ":7003"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("reply=\"udp " + w().ip4(3) + ":7003 "), std::string::npos) << r.out;
  }
  EXPECT_PROBE_OK(probeIn(cg, {"udp", w().ip6(4), "443"}));
}

TEST_F(HarnessTest, TfoAndIoUringConnectWork) {
  ASSERT_OK_AND_ASSIGN(TestCgroup cg, TestCgroup::create());
  auto r = probeIn(cg, {"tfo", w().ip4(3), "7002"});
  ASSERT_PROBE_OK(r);
  EXPECT_NE(r.out.find("echo=\"tfo\""), std::string::npos) << r.out;
  r = probeIn(cg, {"uring-connect", w().ip4(3), "7002"});
  ASSERT_PROBE_OK(r);
  EXPECT_NE(r.out.find("hello from " + w().ip4(3) + ":7002"), std::string::npos) << r.out;
  // Nobody listens on 7999: refused quickly, and the probe reports it by errno name.
  EXPECT_PROBE_ERR(probeIn(cg, {"uring-connect", w().ip4(3), "7999"}), "ECONNREFUSED");
  EXPECT_PROBE_ERR(probeIn(cg, {"tcp", w().ip4(3), "7999"}), "ECONNREFUSED");
}

TEST_F(HarnessTest, DnsmasqAnswersDigAndGetaddrinfo) {
  ASSERT_OK_AND_ASSIGN(TestCgroup cg, TestCgroup::create());
  for (const char* transport : {"+notcp", "+tcp"}) {
    auto r = runGuarded(
        {"dig", "+short", "+time=2", "+tries=1", transport, "@" + w().ip4(2), "allowed.test"},
        cg.path(), "", test::milliseconds(10000));
    ASSERT_EQ(r.exitCode, 0) << r.describe();
    EXPECT_EQ(r.out, w().ip4(3) + "\n") << transport;
  }
  ASSERT_OK_AND_ASSIGN(test::TempDir dir, test::TempDir::create());
  ASSERT_OK_AND_ASSIGN(std::string conf,
                       dir.writeFile("resolv.conf", "nameserver " + w().ip4(2) + "\n"));
  auto r = probeIn(cg, {"--resolv-conf", conf, "getaddrinfo", "allowed.test"});
  ASSERT_PROBE_OK(r);
  EXPECT_NE(r.out.find(w().ip4(3)), std::string::npos) << r.out;
  EXPECT_NE(r.out.find(w().ip6(3)), std::string::npos) << r.out;
}

TEST_F(HarnessTest, SocketKindsAndOptionsAllowedWithoutEnforcement) {
  ASSERT_OK_AND_ASSIGN(TestCgroup cg, TestCgroup::create());
  for (const char* cmd :
       {"raw", "raw6", "packet", "rthdr", "rthdr2292", "ipoptions", "tcprepair"}) {
    EXPECT_PROBE_OK(probeIn(cg, {cmd})) << cmd;
  }
  // Ping sockets need net.ipv4.ping_group_range, opened only in the sandbox netns.
  const std::string sbx = w().net->sandboxNetns()->path();
  EXPECT_PROBE_OK(probeIn(cg, {"ping"}, sbx));
  EXPECT_PROBE_OK(probeIn(cg, {"ping6"}, sbx));
}

TEST_F(HarnessTest, SandboxNetnsReachesInternetNetns) {
  ASSERT_OK_AND_ASSIGN(TestCgroup cg, TestCgroup::create());
  const std::string sbx = w().net->sandboxNetns()->path();
  auto r = probeIn(cg, {"tcp", w().ip4(4), "7001"}, sbx);
  ASSERT_PROBE_OK(r);
  EXPECT_NE(r.out.find("hello from " + w().ip4(4) + ":7001"), std::string::npos);
  EXPECT_PROBE_OK(probeIn(cg, {"tcp", w().ip6(4), "7001"}, sbx));
  EXPECT_PROBE_OK(probeIn(cg, {"udp", w().ip4(3), "7003"}, sbx));
  // Only the test subnets are routed from the sandbox netns (198.19.255.0/24 is never a
  // test subnet: N <= 250), so nothing can leave it by accident.
  EXPECT_PROBE_ERR(probeIn(cg, {"tcp", "198.19.255.1", "7001"}, sbx), "ENETUNREACH");
}

TEST_F(HarnessTest, ProcessJoinsCgroupBeforeExecAndCgroupCleanupKillsIt) {
  std::string path;
  pid_t pid = -1;
  {
    ASSERT_OK_AND_ASSIGN(TestCgroup cg, TestCgroup::create());
    path = cg.path();
    ASSERT_OK_AND_ASSIGN(std::string child, cg.createChild("a/b"));
    auto p = test::Process::spawn({.argv = {"sleep", "30"}, .cgroup = child});
    ASSERT_OK(p);
    pid = p->pid();
    auto procs = test::cgroupProcs(child);
    ASSERT_EQ(procs.size(), 1u);
    EXPECT_EQ(procs[0], pid);
    // ~TestCgroup kills it through cgroup.kill; ~Process reaps it.
  }
  EXPECT_FALSE(pathExists(path));
}

TEST_F(HarnessTest, ProbeMovesItselfIntoChildCgroup) {
  ASSERT_OK_AND_ASSIGN(TestCgroup cg, TestCgroup::create());
  const std::string child = cg.path() + "/escape";
  auto r = probeIn(cg, {"--join-cgroup", child, "tcp", w().ip4(3), "7001"});
  EXPECT_PROBE_OK(r);
  EXPECT_TRUE(pathExists(child));
}

TEST_F(HarnessTest, TimeoutKillsProcess) {
  auto r = test::run({.argv = {"sleep", "30"}}, test::milliseconds(200));
  ASSERT_OK(r);
  EXPECT_TRUE(r->timedOut);
  EXPECT_EQ(r->termSignal, SIGKILL);
}

}  // namespace
}  // namespace egressd::e2e
