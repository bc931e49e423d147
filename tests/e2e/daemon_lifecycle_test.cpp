// Daemon lifecycle: enforcement outlives the daemon (pinned links), a restart adopts it
// without attaching twice, a bad policy (apply or SIGHUP) leaves the rules in force while a
// good one changes them, detach removes everything, and egressctl reads the pinned state.
#include <signal.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "common/fs.h"
#include "world.h"

namespace egressd::e2e {
namespace {

const std::string kA = std::to_string(kTcpA);
const std::string kB = std::to_string(kTcpB);

class DaemonLifecycleTest : public E2eTest {
 protected:
  PolicySpec allowPort(int port) {
    PolicySpec s;
    s.name = "allow-" + std::to_string(port);
    s.allow = {{.cidr = w().ip4(3) + "/32", .ports = {port}, .protocol = "tcp"}};
    return s;
  }
  // A policy whose only problem is on line 4 (an IPv4 octet of 300).
  std::string badPolicy() const {
    return "name: bad\n"
           "enableInternet: false\n"
           "allow:\n"
           "  - cidr: 198.18.300.3/32\n"
           "    ports: [7002]\n";
  }
  void expectOnlyPortAllowed(Sandbox& sb, const std::string& open, const std::string& closed) {
    EXPECT_PROBE_OK(sb.probe({"tcp", w().ip4(3), open})) << "port " << open;
    EXPECT_PROBE_ERR(sb.probe({"tcp", w().ip4(3), closed}), "EPERM") << "port " << closed;
  }
  // Polls until `port` connects from the sandbox (a reload is asynchronous), bounded.
  bool eventuallyAllowed(Sandbox& sb, const std::string& port) {
    for (int i = 0; i < 50; ++i) {
      if (ProbeOk(sb.probe({"--timeout-ms", "1000", "tcp", w().ip4(3), port}))) {
        return true;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  Result<nlohmann::json> statusOf(Sandbox& sb) {
    auto r = sb.daemon().ctl({"status", "--json"});
    if (!r.ok()) {
      return std::move(r).error();
    }
    if (!r->succeeded()) {
      return Error(EIO, "egressctl status --json: " + r->describe());
    }
    try {
      auto j = nlohmann::json::parse(r->out);
      for (const auto& s : j.at("sandboxes")) {
        if (s.value("id", "") == sb.daemon().sandboxId()) {
          return s;
        }
      }
      return Error(ENOENT, "sandbox " + sb.daemon().sandboxId() + " not in status: " + r->out);
    } catch (const std::exception& e) {
      return Error(EINVAL, std::string("status JSON: ") + e.what() + "\n" + r->out);
    }
  }
};

TEST_F(DaemonLifecycleTest, SigkillLeavesEnforcementAndRestartAdoptsIt) {
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(allowPort(kTcpA)));
  ASSERT_OK_AND_ASSIGN(uint64_t cgid, sb->cgroup().id());
  ASSERT_OK_AND_ASSIGN(auto linksBefore, cgroupLinks(cgid));
  ASSERT_GT(linksBefore.count("cgroup_inet4_connect"), 0u)
      << "no connect4 link on the sandbox cgroup";
  for (const auto& [type, n] : linksBefore) {
    EXPECT_EQ(n, 1) << type << " attached " << n << " times";
  }
  expectOnlyPortAllowed(*sb, kA, kB);

  ASSERT_OK_AND_ASSIGN(auto killed, sb->daemon().killAndWait(SIGKILL));
  EXPECT_EQ(killed.termSignal, SIGKILL);
  // No daemon: the pinned links and maps still enforce.
  expectOnlyPortAllowed(*sb, kA, kB);
  EXPECT_PROBE_ERR(sb->probe({"raw"}), "EPERM");
  ASSERT_OK_AND_ASSIGN(auto linksOrphaned, cgroupLinks(cgid));
  EXPECT_EQ(linksOrphaned, linksBefore);

  ASSERT_OK(sb->daemon().restart());
  ASSERT_OK_AND_ASSIGN(auto linksAfter, cgroupLinks(cgid));
  EXPECT_EQ(linksAfter, linksBefore) << "restart attached programs again instead of adopting";
  expectOnlyPortAllowed(*sb, kA, kB);

  // The adopted sandbox is still under the restarted daemon's control.
  ASSERT_OK(sb->daemon().reload(policyYaml(allowPort(kTcpB))));
  EXPECT_TRUE(eventuallyAllowed(*sb, kB)) << sb->daemon().logs();
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(3), kA}), "EPERM");
}

TEST_F(DaemonLifecycleTest, SigtermKeepsEnforcementToo) {
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(allowPort(kTcpA)));
  ASSERT_OK_AND_ASSIGN(auto r, sb->daemon().killAndWait(SIGTERM));
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  expectOnlyPortAllowed(*sb, kA, kB);
}

TEST_F(DaemonLifecycleTest, BadPolicyViaApplyLeavesOldRulesInForce) {
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(allowPort(kTcpA)));
  ASSERT_OK_AND_ASSIGN(std::string bad, sb->daemon().dir().writeFile("bad.yaml", badPolicy()));
  ASSERT_OK_AND_ASSIGN(auto r, sb->daemon().apply(bad));
  EXPECT_EQ(r.exitCode, 2) << r.describe();
  EXPECT_TRUE(std::regex_search(r.err, std::regex("bad\\.yaml:4\\b"))) << r.err;
  expectOnlyPortAllowed(*sb, kA, kB);

  // A good policy through apply does change the rules (so "unchanged" above means something).
  ASSERT_OK_AND_ASSIGN(std::string good,
                       sb->daemon().dir().writeFile("good.yaml", policyYaml(allowPort(kTcpB))));
  ASSERT_OK_AND_ASSIGN(auto r2, sb->daemon().apply(good));
  ASSERT_EQ(r2.exitCode, 0) << r2.describe();
  expectOnlyPortAllowed(*sb, kB, kA);
}

TEST_F(DaemonLifecycleTest, BadPolicyViaSighupLeavesOldRulesInForce) {
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(allowPort(kTcpA)));
  ASSERT_OK(sb->daemon().reload(badPolicy()));
  // The rejection is logged with file:line.
  const std::string where = sb->daemon().policyPath() + ":4";
  bool logged = false;
  for (int i = 0; i < 50 && !logged; ++i) {
    logged = sb->daemon().logs().find(where) != std::string::npos;
    if (!logged) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  EXPECT_TRUE(logged) << "no '" << where << "' in the daemon log:\n" << sb->daemon().logs();
  EXPECT_TRUE(sb->daemon().running()) << "a bad policy killed the daemon:\n" << sb->daemon().logs();
  expectOnlyPortAllowed(*sb, kA, kB);

  ASSERT_OK(sb->daemon().reload(policyYaml(allowPort(kTcpB))));
  EXPECT_TRUE(eventuallyAllowed(*sb, kB)) << sb->daemon().logs();
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(3), kA}), "EPERM");
}

TEST_F(DaemonLifecycleTest, DetachRemovesEnforcement) {
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(allowPort(kTcpA)));
  ASSERT_OK_AND_ASSIGN(uint64_t cgid, sb->cgroup().id());
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(3), kB}), "EPERM");
  ASSERT_OK_AND_ASSIGN(auto stopped, sb->daemon().killAndWait(SIGTERM));
  ASSERT_OK_AND_ASSIGN(auto r, sb->daemon().detach());
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  ASSERT_OK_AND_ASSIGN(auto links, cgroupLinks(cgid));
  EXPECT_TRUE(links.empty()) << links.size() << " attach types still linked after detach";
  EXPECT_PROBE_OK(sb->probe({"tcp", w().ip4(3), kB}));
  EXPECT_PROBE_OK(sb->probe({"raw"}));
}

TEST_F(DaemonLifecycleTest, StatusJsonListsSandboxAndCountsDenials) {
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(allowPort(kTcpA)));
  ASSERT_OK_AND_ASSIGN(auto before, statusOf(*sb));
  ASSERT_OK_AND_ASSIGN(uint64_t cgid, sb->cgroup().id());
  EXPECT_EQ(before.value("cgroupId", uint64_t{0}), cgid) << before.dump(2);
  const uint64_t deniedBefore = before.value("denied", uint64_t{0});

  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(3), kB}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"tcp", w().ip4(4), kA}), "EPERM");
  EXPECT_PROBE_OK(sb->probe({"tcp", w().ip4(3), kA}));

  ASSERT_OK_AND_ASSIGN(auto after, statusOf(*sb));
  EXPECT_GE(after.value("denied", uint64_t{0}), deniedBefore + 2) << after.dump(2);
  ASSERT_TRUE(after.contains("counters")) << after.dump(2);
  EXPECT_GE(after["counters"].value("deny_default", uint64_t{0}), 2u) << after.dump(2);
  EXPECT_GE(after["counters"].value("allow_rule", uint64_t{0}), 1u) << after.dump(2);

  // Human output names the sandbox too.
  ASSERT_OK_AND_ASSIGN(auto text, sb->daemon().ctl({"status"}));
  EXPECT_EQ(text.exitCode, 0) << text.describe();
  EXPECT_NE(text.out.find(sb->daemon().sandboxId()), std::string::npos) << text.out;
}

TEST_F(DaemonLifecycleTest, MapsListsPinnedPathsUnderThePinRoot) {
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(allowPort(kTcpA)));
  ASSERT_OK_AND_ASSIGN(auto r, sb->daemon().ctl({"maps"}));
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  std::regex pinned(sb->daemon().pinRoot() + "/[A-Za-z0-9_./-]+");
  int found = 0;
  for (auto it = std::sregex_iterator(r.out.begin(), r.out.end(), pinned);
       it != std::sregex_iterator(); ++it) {
    EXPECT_TRUE(pathExists(it->str())) << it->str();
    ++found;
  }
  EXPECT_GT(found, 0) << r.out;
}

}  // namespace
}  // namespace egressd::e2e
