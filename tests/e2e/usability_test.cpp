// What a newcomer meets first (issue "egressd as a tool people like to use"), end to end:
// `egressctl run` starting a command inside a daemon sandbox with egressd run's hardening,
// the one-shot `sandbox create --run`, `audit tail` (filters, -f), `--create-cgroup` on this
// host's cgroup layout (hybrid here), and egressd's own command line: validate, --version,
// per-mode help, short usage errors, detach's exit codes.
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "common/fs.h"
#include "control_fixture.h"
#include "egressd.h"

namespace egressd::e2e {
namespace {

using nlohmann::json;
using test::milliseconds;

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

size_t lineCount(const std::string& text) {
  return static_cast<size_t>(std::count(text.begin(), text.end(), '\n'));
}

class Usability : public ControlPlaneTest {
 protected:
  // A policy that lets the sandbox reach the world's origin but denies one name.
  void applyRunPolicy() {
    PolicySpec s;
    s.name = "usab-run";
    s.enableInternet = true;
    s.deniedHosts = {"blocked.allowed.test"};
    applyPolicy(s.name, cpPolicy(s));
  }
  // curl inside a shell inside the sandbox; prints status=NNN.
  std::string curlLine(const std::string& host, const std::string& tag) {
    const std::string port = std::to_string(kHttpOrigin);
    return "curl --noproxy '*' -s -o /dev/null -w 'status=%{http_code}\\n' --max-time 10 "
           "--resolve " +
           host + ":" + port + ":" + w().ip4(3) + " http://" + host + ":" + port +
           "/whoami?tag=" + tag;
  }
  test::RunResult ctlGuarded(const std::vector<std::string>& args) {
    // The command sends to the test network: only while it exists.
    if (Status st = w().net->checkExists(); !st.ok()) {
      test::RunResult r;
      r.err = st.error().message();
      return r;
    }
    return daemon().ctl(args);
  }
};

TEST_F(Usability, EgressctlRunStartsTheCommandHardenedInsideTheSandbox) {
  applyRunPolicy();
  auto sb = sandbox("usab-run", "usab-run");
  ASSERT_TRUE(sb);
  const std::string tag = uniqueTag("run");
  const std::string script =
      "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; "
      "echo sandbox=$EGRESSD_SANDBOX uid=$(id -u); "
      "ls /sys/fs/bpf | wc -l | sed 's/^/bpffs=/'; " +
      curlLine("blocked.allowed.test", tag) + "; " + curlLine("free.allowed.test", tag) +
      "; exit 7";
  const test::RunResult r =
      ctlGuarded({"run", "-s", sb->id(), "--user", "nobody", "--", "sh", "-c", script});
  // The command's exit status is egressctl's.
  EXPECT_EQ(r.exitCode, 7) << r.describe();
  EXPECT_TRUE(contains(r.out, "CapEff:\t0000000000000000")) << r.out;
  EXPECT_TRUE(contains(r.out, "NoNewPrivs:\t1")) << r.out;
  EXPECT_TRUE(contains(r.out, "Seccomp:\t2")) << r.out;
  EXPECT_TRUE(contains(r.out, "sandbox=usab-run uid=65534")) << r.out;
  EXPECT_TRUE(contains(r.out, "bpffs=0")) << "bpffs is hidden from the command: " << r.out;
  // Policed as the sandbox from its first instruction: the proxy judged it by its policy.
  EXPECT_TRUE(contains(r.out, "status=403\nstatus=200\n")) << r.out;
  auto denied = daemon().waitForAudit(auditMatch(
      {{"sandbox", "usab-run"}, {"decision", "deny"}, {"host", "blocked.allowed.test"}}));
  EXPECT_TRUE(denied.ok()) << denied.error().message();

  // The denial, found with the CLI's filters, in columns.
  const test::RunResult tail =
      daemon().ctl({"audit", "tail", "--sandbox", "usab-run", "--decision", "deny"});
  EXPECT_TRUE(tail.succeeded()) << tail.describe();
  EXPECT_TRUE(contains(tail.out, "TIME ")) << tail.out;
  EXPECT_TRUE(contains(tail.out, "blocked.allowed.test")) << tail.out;
  EXPECT_FALSE(contains(tail.out, "free.allowed.test")) << "--decision deny: " << tail.out;
  const test::RunResult kernelOnly =
      daemon().ctl({"audit", "tail", "--sandbox", "usab-run", "--layer", "kernel"});
  EXPECT_TRUE(kernelOnly.succeeded()) << kernelOnly.describe();
  EXPECT_FALSE(contains(kernelOnly.out, "blocked.allowed.test")) << kernelOnly.out;

  // An unknown sandbox: refused with its name, nothing started.
  const test::RunResult asUser = daemon().ctl({"run", "-s", "no-such-sandbox", "--", "true"});
  EXPECT_EQ(asUser.exitCode, 1) << asUser.describe();
  EXPECT_TRUE(contains(asUser.err, "no-such-sandbox")) << asUser.err;
}

TEST_F(Usability, AuditTailFollowPrintsNewDenialsAsTheyHappen) {
  applyRunPolicy();
  auto sb = sandbox("usab-follow", "usab-run");
  ASSERT_TRUE(sb);
  auto follower = test::Process::spawn(
      {.argv = {test::egressctlBin(), "--socket", daemon().socketPath(), "audit", "tail", "-f",
                "--sandbox", "usab-follow", "--decision", "deny"}});
  ASSERT_TRUE(follower.ok()) << follower.error().message();
  ASSERT_TRUE(follower->waitForOutput("TIME ", milliseconds(5000))) << follower->stderrText();
  const std::string tag = uniqueTag("follow");
  const CurlResult r =
      sb->get("blocked.allowed.test", kHttpOrigin, w().ip4(3), "/whoami?tag=" + tag);
  EXPECT_EQ(r.status(), 403) << r.describe();
  EXPECT_TRUE(follower->waitForOutput("blocked.allowed.test/whoami", milliseconds(10000)))
      << follower->stdoutText() << follower->stderrText();
  const CurlResult allowed = sb->get("free.allowed.test", kHttpOrigin, w().ip4(3), "/whoami");
  EXPECT_EQ(allowed.status(), 200) << allowed.describe();
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  EXPECT_FALSE(contains(follower->stdoutText(), "free.allowed.test"))
      << "--decision deny: " << follower->stdoutText();
  follower->stop(milliseconds(0));
}

TEST_F(Usability, OneShotSandboxCreateRunDeletesTheSandboxAfterwards) {
  applyRunPolicy();
  if (Status st = w().net->checkExists(); !st.ok()) {
    GTEST_SKIP() << st.error().message();
  }
  const test::RunResult r =
      daemon().ctl({"sandbox", "create", "usab-once", "--policy", "usab-run", "--create-cgroup",
                    "--run", "--", "sh", "-c", "echo in=$EGRESSD_SANDBOX; exit 3"});
  EXPECT_EQ(r.exitCode, 3) << r.describe();
  EXPECT_TRUE(contains(r.out, "in=usab-once")) << r.out;
  EXPECT_TRUE(contains(r.err, "created sandbox usab-once")) << r.err;
  const test::CtlReply gone = daemon().ctlJson({"sandbox", "show", "usab-once"});
  EXPECT_EQ(gone.errorStatus(), 404) << gone.describe();
}

// The default --cgroup-parent (MOUNT/egressd) is made on first use on this host's layout
// (hybrid: /sys/fs/cgroup/unified); a named parent that does not exist is an error that
// says which option to fix.
TEST_F(Usability, CreateCgroupMakesTheDefaultParentOrNamesTheOption) {
  auto mount = test::cgroup2Root();
  ASSERT_TRUE(mount.ok()) << mount.error().message();
  const std::string parent = *mount + "/egressd";
  struct stat st {};
  const bool parentExisted = ::stat(parent.c_str(), &st) == 0;
  auto base = worldDaemonOptions();
  ASSERT_TRUE(base.ok()) << base.error().message();
  test::ControlDaemon::Options opts;
  opts.upstreamResolver = base->upstreamResolver;
  opts.cgroupParent = "";  // the default
  opts.auditLog = false;   // the default location under the state dir
  auto own = test::ControlDaemon::start(opts);
  ASSERT_TRUE(own.ok()) << own.error().message();
  PolicySpec s;
  s.name = "usab-cg";
  ASSERT_CTL_OK((*own)->policyApply("cg.yaml", cpPolicy(s)));
  const std::string id = "egressd-test-usab-" + std::to_string(::getpid());
  const test::CtlReply created =
      (*own)->ctlJson({"sandbox", "create", id, "--policy", "usab-cg", "--create-cgroup"});
  EXPECT_TRUE(created.ok()) << created.describe();
  EXPECT_EQ(created.body.value("cgroup", ""), parent + "/" + id) << created.describe();
  EXPECT_TRUE(pathExists(parent + "/" + id));
  // The daemon's audit log is under its state dir without --audit-log.
  const test::RunResult tail = (*own)->ctl({"audit", "tail"});
  EXPECT_TRUE(tail.succeeded()) << tail.describe();
  EXPECT_CTL_OK((*own)->ctlJson({"sandbox", "delete", id}));
  EXPECT_FALSE(pathExists(parent + "/" + id));
  own->reset();
  if (!parentExisted) {
    EXPECT_EQ(::rmdir(parent.c_str()), 0) << parent << ": " << std::strerror(errno);
  }

  test::ControlDaemon::Options missing = opts;
  missing.cgroupParent = *mount + "/egressd-test-missing-" + std::to_string(::getpid());
  auto other = test::ControlDaemon::start(missing);
  ASSERT_TRUE(other.ok()) << other.error().message();
  ASSERT_CTL_OK((*other)->policyApply("cg.yaml", cpPolicy(s)));
  const test::CtlReply refused =
      (*other)->ctlJson({"sandbox", "create", "usab-x", "--policy", "usab-cg", "--create-cgroup"});
  EXPECT_FALSE(refused.ok());
  EXPECT_TRUE(contains(refused.errorMessage(), "--cgroup-parent")) << refused.describe();
  EXPECT_FALSE(pathExists(missing.cgroupParent));
}

// --- egressd's own command line (no daemon) ------------------------------------------------

test::RunResult egressd(const std::vector<std::string>& args) {
  std::vector<std::string> argv{test::egressdBin()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = test::run(test::SpawnOptions{.argv = argv}, milliseconds(15000));
  if (!r.ok()) {
    test::RunResult failed;
    failed.err = r.error().message();
    return failed;
  }
  return *r;
}

TEST(EgressdCommandLine, ValidateReportsEveryErrorAndExits2) {
  auto dir = test::TempDir::create();
  ASSERT_TRUE(dir.ok());
  const std::string bad = dir->path() + "/bad.yaml";
  const std::string good = dir->path() + "/good.yaml";
  ASSERT_TRUE(writeFileAtomic(bad,
                              "name: bad\nenableInternt: false\nallow:\n  - cidr: 10.0.0.0/33\n"
                              "  - cidr: 10.0.0.1\n    prots: [80]\n")
                  .ok());
  ASSERT_TRUE(writeFileAtomic(good, "name: good\nenableInternet: false\n").ok());
  const test::RunResult r = egressd({"validate", good, bad});
  EXPECT_EQ(r.exitCode, 2) << r.describe();
  EXPECT_TRUE(contains(r.out, good + ": valid (policy good)")) << r.out;
  EXPECT_TRUE(contains(r.err, bad + ":2:1: unknown key 'enableInternt'")) << r.err;
  EXPECT_TRUE(contains(r.err, bad + ":4:11: allow[0].cidr:")) << r.err;
  EXPECT_TRUE(contains(r.err, bad + ":6:5: allow[1]: unknown key 'prots'")) << r.err;
  EXPECT_TRUE(contains(r.err, bad + ": 3 errors")) << r.err;
  const test::RunResult j = egressd({"validate", "--json", bad});
  EXPECT_EQ(j.exitCode, 2);
  const json report = json::parse(j.out, nullptr, false);
  ASSERT_TRUE(report.is_object()) << j.out;
  EXPECT_FALSE(report["valid"].get<bool>());
  EXPECT_EQ(report["files"][0]["errors"].size(), 3U) << j.out;
  EXPECT_EQ(report["files"][0]["errors"][2]["line"], 6);
  EXPECT_EQ(egressd({"validate", good}).exitCode, 0);
  // Handler chains are compiled as egressd run and the daemon do.
  const std::string handler = dir->path() + "/handler.yaml";
  ASSERT_TRUE(writeFileAtomic(handler,
                              "name: h\noutbound: x\noutboundHandlers:\n  x:\n"
                              "    - setHeader: { name: A, value: \"${secret:}\" }\n")
                  .ok());
  const test::RunResult h = egressd({"validate", handler});
  EXPECT_EQ(h.exitCode, 2) << h.describe();
  EXPECT_TRUE(h.err.starts_with(handler + ":5:7: outboundHandlers.x[0]")) << h.err;
  EXPECT_EQ(egressd({"validate", dir->path() + "/absent.yaml"}).exitCode, 1);
}

TEST(EgressdCommandLine, VersionHelpAndShortUsageErrors) {
  for (const std::string& bin : {test::egressdBin(), test::egressctlBin()}) {
    auto r = test::run(test::SpawnOptions{.argv = {bin, "--version"}}, milliseconds(5000));
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->exitCode, 0) << r->describe();
    EXPECT_TRUE(contains(r->out, "0.")) << r->out;
  }
  const test::RunResult help = egressd({"--help"});
  EXPECT_EQ(help.exitCode, 0);
  for (const char* mode : {"run", "daemon", "serve", "apply", "detach", "validate", "verify"}) {
    EXPECT_TRUE(contains(help.out, std::string("\negressd ") + mode)) << mode;
  }
  EXPECT_FALSE(contains(help.out, "(default: \"\")"));
  const test::RunResult runHelp = egressd({"run", "--help"});
  EXPECT_TRUE(contains(runHelp.out, "--user")) << runHelp.out;
  EXPECT_FALSE(contains(runHelp.out, "--state-dir")) << runHelp.out;
  // One useful line and where to look, not the whole option list.
  const test::RunResult usage = egressd({"run", "--socket", "/x", "--", "true"});
  EXPECT_EQ(usage.exitCode, 64);
  EXPECT_LE(lineCount(usage.err), 2U) << usage.err;
  EXPECT_TRUE(contains(usage.err, "see egressd run --help")) << usage.err;
  const test::RunResult missing = egressd({"run", "--", "true"});
  EXPECT_EQ(missing.exitCode, 64);
  EXPECT_TRUE(contains(missing.err, "run needs --policy FILE")) << missing.err;
  // The real error first: no warnings about processes of a cgroup that does not exist.
  auto mount = test::cgroup2Root();
  ASSERT_TRUE(mount.ok());
  auto dir = test::TempDir::create();
  ASSERT_TRUE(dir.ok());
  ASSERT_TRUE(writeFileAtomic(dir->path() + "/p.yaml", "name: p\nenableInternet: false\n").ok());
  const test::RunResult apply =
      egressd({"apply", "--sandbox", "usab-none", "--cgroup",
               *mount + "/egressd-test-absent-" + std::to_string(::getpid()), "--policy",
               dir->path() + "/p.yaml"});
  EXPECT_EQ(apply.exitCode, 1) << apply.describe();
  EXPECT_TRUE(apply.err.starts_with("egressd: cgroup ")) << apply.err;
  EXPECT_EQ(lineCount(apply.err), 1U) << apply.err;
}

TEST(EgressdCommandLine, DetachOfAnUnknownSandboxExits1UnlessIfExists) {
  test::PinRoot pins;
  const test::RunResult r =
      egressd({"detach", "--sandbox", "usab-unknown", "--pin-root", pins.path()});
  EXPECT_EQ(r.exitCode, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "no sandbox 'usab-unknown'")) << r.err;
  EXPECT_EQ(
      egressd({"detach", "--sandbox", "usab-unknown", "--if-exists", "--pin-root", pins.path()})
          .exitCode,
      0);
}

}  // namespace
}  // namespace egressd::e2e
