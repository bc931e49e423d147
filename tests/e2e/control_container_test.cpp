// Sandboxes for running processes and containers (issue 17, "containers by name"):
// `egressctl sandbox create ID --pid PID` and `--container ID`, on the shared multi-sandbox
// daemon, and the sandbox following its cgroup away.
//
// No container runtime runs on the test machines, so a "container" is a stand-in that
// mirrors one: a process in a cgroup named as Docker's systemd driver names it
// (<test cgroup>/docker-<64 hex>.scope) and in a network namespace of its own (the world's
// sandbox netns, which reaches only the test subnets). The real-runtime test at the end runs
// only where `docker` has a daemon and a local image; it says why it skipped otherwise.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <random>
#include <thread>

#include "common/fs.h"
#include "control_fixture.h"

namespace egressd::e2e {
namespace {

using nlohmann::json;
using test::CtlReply;
using test::milliseconds;

// 64 hex digits, starting with `head`, random after it (unique per run).
std::string containerId(const std::string& head) {
  static std::mt19937_64 rng(std::random_device{}() ^ static_cast<uint64_t>(::getpid()));
  std::string id = head;
  const char* digits = "0123456789abcdef";
  while (id.size() < 64) {
    id += digits[rng() % 16];
  }
  return id;
}

bool listed(const CtlReply& list, const std::string& id) {
  if (!list.body.contains("sandboxes")) {
    return false;
  }
  for (const json& s : list.body["sandboxes"]) {
    if (s.value("id", "") == id) {
      return true;
    }
  }
  return false;
}

class ControlContainer : public ControlPlaneNetnsTest {
 protected:
  // allowed.test through the proxy; everything else denied.
  std::string applyBasePolicy(const std::string& name) {
    PolicySpec s;
    s.name = name;
    s.allowedHosts = {"allowed.test"};
    applyPolicy(s.name, cpPolicy(s));
    return s.name;
  }

  // GET http://HOST:8080/whoami?tag=TAG from `cgroup` in the container's netns.
  CurlResult fetch(const std::string& cgroup, const std::string& host, const std::string& tag) {
    return fetchInNetns(cgroup, host, tag);
  }
  size_t reached(const std::string& tag) const { return origin_->requestsMatching(tag).size(); }

  // The policy is in force for `cgroup`: allowed.test served (through the proxy in the
  // container's netns), other.test refused by egressd and never at the origin.
  void expectEnforced(const std::string& cgroup) {
    const std::string ok = uniqueTag("allowed");
    CurlResult served = fetch(cgroup, "allowed.test", ok);
    EXPECT_EQ(served.status(), 200) << served.describe();
    EXPECT_EQ(reached(ok), 1u) << "the origin did not see " << ok;
    const std::string no = uniqueTag("denied");
    CurlResult denied = fetch(cgroup, "other.test", no);
    EXPECT_EQ(denied.status(), 403) << denied.describe();
    EXPECT_EQ(reached(no), 0u) << "other.test reached the origin:\n" << origin_->log();
  }

  CtlReply create(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"sandbox", "create"};
    argv.insert(argv.end(), args.begin(), args.end());
    return daemon().ctlJson(argv);
  }
};

// --pid: the process's cgroup and its network namespace; traffic from its cgroup is judged
// by the policy; delete drops the namespace pin.
TEST_F(ControlContainer, PidSandboxTakesCgroupAndNetnsFromTheProcess) {
  const std::string policy = applyBasePolicy("by-pid");
  ASSERT_OK_AND_ASSIGN(test::TestCgroup cg, test::TestCgroup::create());
  ASSERT_OK_AND_ASSIGN(test::Process proc, spawnInCgroup({"sleep", "300"}, cg.path(), netns_));

  const CtlReply made = create({"by-pid", "--policy", policy, "--pid", std::to_string(proc.pid())});
  ASSERT_CTL_OK(made);
  EXPECT_EQ(made.body.value("cgroup", ""), cg.path()) << made.body.dump();
  const std::string pin = daemon().runDir() + "/netns/by-pid";
  EXPECT_EQ(made.body.value("netns", ""), pin) << made.body.dump();
  EXPECT_TRUE(pathExists(pin));

  expectEnforced(cg.path());

  // `egressctl run` joins the pinned namespace: the command is in the container's netns.
  struct stat want {};
  ASSERT_EQ(::stat(netns_.c_str(), &want), 0) << netns_;
  ASSERT_OK(w().net->checkExists());
  const test::RunResult inside = daemon().ctl({"run", "-s", "by-pid", "--user", "nobody", "--",
                                               "stat", "-L", "-c", "%i", "/proc/self/ns/net"});
  EXPECT_EQ(inside.exitCode, 0) << inside.describe();
  EXPECT_EQ(inside.out, std::to_string(want.st_ino) + "\n") << inside.describe();

  ASSERT_CTL_OK(daemon().ctlJson({"sandbox", "delete", "by-pid"}));
  EXPECT_FALSE(pathExists(pin)) << "the netns pin outlived the sandbox";
}

// A process in the daemon's own network namespace (a host process): nothing is pinned and
// the sandbox uses the daemon's namespace, as --cgroup without --netns does.
TEST_F(ControlContainer, PidInTheHostNetnsPinsNothing) {
  const std::string policy = applyBasePolicy("by-pid-host");
  ASSERT_OK_AND_ASSIGN(test::TestCgroup cg, test::TestCgroup::create());
  ASSERT_OK_AND_ASSIGN(test::Process proc, spawnInCgroup({"sleep", "300"}, cg.path()));
  const CtlReply made =
      create({"by-pid-host", "--policy", policy, "--pid", std::to_string(proc.pid())});
  ASSERT_CTL_OK(made);
  EXPECT_EQ(made.body.value("netns", "?"), "") << made.body.dump();
  EXPECT_FALSE(pathExists(daemon().runDir() + "/netns/by-pid-host"));
  ASSERT_CTL_OK(daemon().ctlJson({"sandbox", "delete", "by-pid-host"}));
}

// Refusals name the pid and the reason: no such process, the daemon's own cgroup, the root
// cgroup. None of them leaves a sandbox behind.
TEST_F(ControlContainer, PidRefusals) {
  const std::string policy = applyBasePolicy("by-pid-refused");

  pid_t gone = 0;
  {
    ASSERT_OK_AND_ASSIGN(test::Process p, test::Process::spawn({.argv = {"true"}}));
    gone = p.pid();
    ASSERT_OK(p.wait(milliseconds(10000)));
  }
  CtlReply missing = create({"r1", "--policy", policy, "--pid", std::to_string(gone)});
  EXPECT_EQ(missing.errorStatus(), 400) << missing.describe();
  EXPECT_NE(missing.errorMessage().find("pid " + std::to_string(gone) + ": no such process"),
            std::string::npos)
      << missing.describe();

  // The daemon runs in this test's cgroup, which is the root cgroup when the tests are
  // started from one (then that is the reason given).
  ASSERT_OK_AND_ASSIGN(std::string daemonCgroup,
                       readFile("/proc/" + std::to_string(daemon().pid()) + "/cgroup"));
  const bool daemonAtRoot = daemonCgroup.find("0::/\n") != std::string::npos;
  CtlReply own = create({"r2", "--policy", policy, "--pid", std::to_string(daemon().pid())});
  EXPECT_EQ(own.errorStatus(), 400) << own.describe();
  EXPECT_NE(own.errorMessage().find("pid " + std::to_string(daemon().pid())), std::string::npos)
      << own.describe();
  EXPECT_NE(
      own.errorMessage().find(daemonAtRoot ? "is in the root cgroup" : "holds egressd itself"),
      std::string::npos)
      << own.describe();

  // A process of this test moved into the root cgroup (nothing is attached there: the
  // daemon refuses before it arms anything).
  ASSERT_OK_AND_ASSIGN(std::string root, test::cgroup2Root());
  ASSERT_OK_AND_ASSIGN(test::Process atRoot, test::Process::spawn({.argv = {"sleep", "300"}}));
  ASSERT_OK(writeFile(root + "/cgroup.procs", std::to_string(atRoot.pid())));
  CtlReply rooted = create({"r3", "--policy", policy, "--pid", std::to_string(atRoot.pid())});
  EXPECT_EQ(rooted.errorStatus(), 400) << rooted.describe();
  EXPECT_NE(
      rooted.errorMessage().find("pid " + std::to_string(atRoot.pid()) + " is in the root cgroup"),
      std::string::npos)
      << rooted.describe();

  const CtlReply list = daemon().ctlJson({"sandbox", "list"});
  ASSERT_CTL_OK(list);
  for (const char* id : {"r1", "r2", "r3"}) {
    EXPECT_FALSE(listed(list, id)) << list.body.dump();
  }
}

// --container: found by a 12-digit prefix in a cgroup laid out as Docker's systemd driver
// lays it out; an ambiguous prefix lists the candidates; when the container's cgroup goes,
// the daemon deletes the sandbox within seconds and audits it.
TEST_F(ControlContainer, ContainerByPrefixIsFollowedUntilItsCgroupGoes) {
  const std::string policy = applyBasePolicy("by-container");
  ASSERT_OK_AND_ASSIGN(test::TestCgroup parent, test::TestCgroup::create());
  const std::string id = containerId("e9d0");
  const std::string twin = id.substr(0, 12) + containerId("").substr(12);  // same 12 digits
  ASSERT_OK_AND_ASSIGN(std::string scope, parent.createChild("docker-" + id + ".scope"));
  ASSERT_OK_AND_ASSIGN(std::string twinScope, parent.createChild("docker-" + twin + ".scope"));
  ASSERT_OK_AND_ASSIGN(test::Process proc, spawnInCgroup({"sleep", "300"}, scope, netns_));

  const CtlReply ambiguous = create({"ctr", "--policy", policy, "--container", id.substr(0, 12)});
  EXPECT_EQ(ambiguous.errorStatus(), 400) << ambiguous.describe();
  EXPECT_NE(ambiguous.errorMessage().find(id + "  " + scope), std::string::npos)
      << ambiguous.describe();
  EXPECT_NE(ambiguous.errorMessage().find(twin + "  " + twinScope), std::string::npos)
      << ambiguous.describe();
  ASSERT_EQ(::rmdir(twinScope.c_str()), 0) << twinScope;

  const CtlReply made = create({"ctr", "--policy", policy, "--container", id.substr(0, 12)});
  ASSERT_CTL_OK(made);
  EXPECT_EQ(made.body.value("cgroup", ""), scope) << made.body.dump();
  const std::string pin = daemon().runDir() + "/netns/ctr";
  EXPECT_EQ(made.body.value("netns", ""), pin) << made.body.dump();
  expectEnforced(scope);

  // The container stops: its processes end and the runtime removes its cgroup.
  (void)proc.stop(milliseconds(0));
  ASSERT_OK(test::removeCgroupTree(scope));
  bool gone = false;
  for (int i = 0; i < 50 && !gone; ++i) {
    std::this_thread::sleep_for(milliseconds(100));
    const CtlReply list = daemon().ctlJson({"sandbox", "list"});
    ASSERT_CTL_OK(list);
    gone = !listed(list, "ctr");
  }
  EXPECT_TRUE(gone) << "sandbox ctr still listed 5 s after its cgroup went";
  auto event = daemon().waitForAudit(
      auditMatch({{"sandbox", "ctr"}, {"layer", "control"}, {"reason", "cgroup_gone"}}));
  ASSERT_OK(event);
  EXPECT_NE(event->value("detail", "").find(scope), std::string::npos) << event->dump();
  EXPECT_FALSE(pathExists(pin)) << "the netns pin outlived the sandbox";
  const CtlReply show = daemon().ctlJson({"sandbox", "show", "ctr"});
  EXPECT_EQ(show.errorStatus(), 404) << show.describe();
}

// A container restarted under the same name gets a new cgroup at the same path: the old
// sandbox enforced nothing on it and is deleted as well (the id changed, not the path).
TEST_F(ControlContainer, CgroupMadeAnewAtTheSamePathEndsTheSandbox) {
  const std::string policy = applyBasePolicy("by-container-again");
  ASSERT_OK_AND_ASSIGN(test::TestCgroup parent, test::TestCgroup::create());
  const std::string id = containerId("e9d1");
  ASSERT_OK_AND_ASSIGN(std::string scope, parent.createChild("docker-" + id + ".scope"));
  ASSERT_OK_AND_ASSIGN(test::Process proc, spawnInCgroup({"sleep", "300"}, scope));
  ASSERT_CTL_OK(create({"again", "--policy", policy, "--container", id}));

  (void)proc.stop(milliseconds(0));
  ASSERT_OK(test::removeCgroupTree(scope));
  ASSERT_OK_AND_ASSIGN(std::string remade, parent.createChild("docker-" + id + ".scope"));
  ASSERT_EQ(remade, scope);
  auto event = daemon().waitForAudit(
      auditMatch({{"sandbox", "again"}, {"layer", "control"}, {"reason", "cgroup_gone"}}));
  ASSERT_OK(event);
  EXPECT_TRUE(pathExists(scope)) << "the new cgroup is not egressd's to remove";
}

// With a real container runtime: `docker run` a container, `--container <its 12-digit id>`
// finds its cgroup, and `docker rm -f` ends the sandbox. Runs only where Docker works offline
// with a local image (not on the development machine: its `docker` is a client only).
TEST_F(ControlContainer, RealDockerContainer) {
  auto info = test::run({.argv = {"docker", "info", "--format", "{{.ServerVersion}}"}},
                        milliseconds(10000));
  if (!info.ok() || !info->succeeded()) {
    GTEST_SKIP() << "no usable Docker daemon here (`docker info` failed: "
                 << (info.ok() ? info->err : info.error().message())
                 << "); the stand-in tests above mirror its cgroup layout";
  }
  auto images =
      test::run({.argv = {"docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"}},
                milliseconds(10000));
  if (!images.ok() || !images->succeeded() || images->out.empty()) {
    GTEST_SKIP() << "Docker has no local image and there is no internet to pull one";
  }
  const std::string image = images->out.substr(0, images->out.find('\n'));
  auto started = test::run(
      {.argv = {"docker", "run", "-d", "--rm", "--network", "none", image, "sleep", "300"}},
      milliseconds(60000));
  ASSERT_TRUE(started.ok() && started->succeeded())
      << (started.ok() ? started->describe() : started.error().message());
  std::string cid = started->out.substr(0, started->out.find('\n'));
  const std::string policy = applyBasePolicy("real-docker");
  const CtlReply made = create({"docker1", "--policy", policy, "--container", cid.substr(0, 12)});
  (void)test::run({.argv = {"docker", "rm", "-f", cid}}, milliseconds(30000));
  EXPECT_CTL_OK(made);
  EXPECT_NE(made.body.value("cgroup", "").find(cid), std::string::npos) << made.body.dump();
  auto event = daemon().waitForAudit(
      auditMatch({{"sandbox", "docker1"}, {"layer", "control"}, {"reason", "cgroup_gone"}}),
      milliseconds(15000));
  EXPECT_TRUE(event.ok()) << (event.ok() ? "" : event.error().message());
}

}  // namespace
}  // namespace egressd::e2e
