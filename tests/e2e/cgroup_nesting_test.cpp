// No escape by cgroup games: cgroups below the sandbox (made before or after arming, or by
// the sandboxed process itself) get the same rules; processes elsewhere are unaffected.
#include "common/fs.h"
#include "world.h"

namespace egressd::e2e {
namespace {

const std::string kA = std::to_string(kTcpA);
const std::string kB = std::to_string(kTcpB);

class CgroupNestingTest : public E2eTest {
 protected:
  PolicySpec spec() {
    PolicySpec s;
    s.allow = {{.cidr = w().ip4(3) + "/32", .ports = {kTcpA}, .protocol = "tcp"}};
    return s;
  }
  RunResult probeIn(const std::string& cgroup, std::vector<std::string> args) {
    args.insert(args.begin(), probeBin());
    return runGuarded(args, cgroup, "", test::milliseconds(15000));
  }
};

TEST_F(CgroupNestingTest, ChildCgroupCreatedAfterArmingInheritsRules) {
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec()));
  ASSERT_OK_AND_ASSIGN(std::string child, sb->cgroup().createChild("a/b"));
  EXPECT_PROBE_OK(probeIn(child, {"tcp", w().ip4(3), kA}));
  EXPECT_PROBE_ERR(probeIn(child, {"tcp", w().ip4(3), kB}), "EPERM");
  EXPECT_PROBE_ERR(probeIn(child, {"tcp", w().ip4(4), kA}), "EPERM");
  EXPECT_PROBE_ERR(probeIn(child, {"udp", w().ip4(4), std::to_string(kUdp)}), "EPERM");
  EXPECT_PROBE_ERR(probeIn(child, {"raw"}), "EPERM");
  EXPECT_PROBE_ERR(probeIn(child, {"rthdr"}), "EPERM");
}

TEST_F(CgroupNestingTest, ChildCgroupCreatedBeforeArmingInheritsRules) {
  ASSERT_OK_AND_ASSIGN(test::TestCgroup cg, test::TestCgroup::create());
  ASSERT_OK_AND_ASSIGN(std::string child, cg.createChild("pre"));
  test::EgressdDaemon::Options opts;
  opts.cgroup = cg.path();
  opts.policyYaml = policyYaml(spec());
  ASSERT_OK_AND_ASSIGN(auto daemon, test::EgressdDaemon::start(opts));
  EXPECT_PROBE_OK(probeIn(child, {"tcp", w().ip4(3), kA}));
  EXPECT_PROBE_ERR(probeIn(child, {"tcp", w().ip4(3), kB}), "EPERM");
}

TEST_F(CgroupNestingTest, ProcessMovingItselfBelowTheSandboxIsStillEnforced) {
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec()));
  const std::string escape = sb->cgroup().path() + "/escape";
  EXPECT_PROBE_ERR(sb->probe({"--join-cgroup", escape, "tcp", w().ip4(3), kB}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"--join-cgroup", escape + "/deeper", "tcp", w().ip4(4), kA}),
                   "EPERM");
  EXPECT_PROBE_OK(sb->probe({"--join-cgroup", escape, "tcp", w().ip4(3), kA}));
  EXPECT_TRUE(pathExists(escape + "/deeper")) << "the probe did not create its cgroup";
}

TEST_F(CgroupNestingTest, ProcessesOutsideTheSandboxAreUnaffected) {
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec()));
  ASSERT_OK_AND_ASSIGN(test::TestCgroup sibling, test::TestCgroup::create());
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(4), kB}), "EPERM");
  EXPECT_PROBE_OK(probeIn(sibling.path(), {"tcp", w().ip4(4), kB}));
  EXPECT_PROBE_OK(probeIn(sibling.path(), {"udp", w().ip4(4), std::to_string(kUdp)}));
  EXPECT_PROBE_OK(probeIn(sibling.path(), {"raw"}));
  EXPECT_PROBE_OK(probeHost({"tcp", w().ip4(4), kB}));
}

}  // namespace
}  // namespace egressd::e2e
