// `egressd run --policy P -- CMD`: a transient sandbox (under a test cgroup given as
// --cgroup-parent) that is armed before CMD runs, passes CMD's exit code through, refuses
// socket families no cgroup hook sees (AF_PACKET via seccomp; io_uring), hides bpffs, and
// removes its cgroup afterwards, also on SIGINT.
#include <signal.h>

#include <thread>

#include "cgroup.h"
#include "common/fs.h"
#include "host_features.h"
#include "temp_dir.h"
#include "world.h"

namespace egressd::e2e {
namespace {

const std::string kA = std::to_string(kTcpA);
const std::string kB = std::to_string(kTcpB);

// The probe's own line in the output of `egressd run` (egressd may log around it).
std::string probeLine(const std::string& out) {
  size_t pos = 0;
  while (pos < out.size()) {
    size_t end = out.find('\n', pos);
    std::string line = out.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (line.starts_with("OK ") || line.starts_with("ERR ")) {
      return line;
    }
    if (end == std::string::npos) {
      break;
    }
    pos = end + 1;
  }
  return "";
}

class RunCommandTest : public E2eTest {
 protected:
  void SetUp() override {
    E2eTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) {
      return;
    }
    ASSERT_OK(test::requireBinaries());
    ASSERT_OK_AND_ASSIGN(auto dir, test::TempDir::create());
    dir_.emplace(std::move(dir));
    PolicySpec spec;
    spec.allow = {{.cidr = w().ip4(3) + "/32", .ports = {kTcpA}, .protocol = "tcp"}};
    ASSERT_OK_AND_ASSIGN(policy_, dir_->writeFile("policy.yaml", policyYaml(spec)));
    ASSERT_OK_AND_ASSIGN(auto cg, test::TestCgroup::create());
    parent_.emplace(std::move(cg));
  }

  std::vector<std::string> runArgv(const std::vector<std::string>& cmd,
                                   const std::vector<std::string>& flags = {}) const {
    std::vector<std::string> argv{
        test::egressdBin(), "run",       "--policy",        policy_,
        "--pin-root",       pin_.path(), "--cgroup-parent", parent_->path()};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.push_back("--");
    argv.insert(argv.end(), cmd.begin(), cmd.end());
    return argv;
  }
  RunResult runEgressd(const std::vector<std::string>& cmd,
                       const std::vector<std::string>& flags = {}) {
    return runGuarded(runArgv(cmd, flags), "", "", test::milliseconds(30000));
  }
  std::vector<std::string> probe(std::vector<std::string> args) const {
    args.insert(args.begin(), probeBin());
    return args;
  }

  std::optional<test::TempDir> dir_;
  std::string policy_;
  std::optional<test::TestCgroup> parent_;
  test::PinRoot pin_;
};

TEST_F(RunCommandTest, PassesExitCodeAndRemovesItsCgroup) {
  auto r = runEgressd({"/bin/sh", "-c", "exit 7"});
  EXPECT_EQ(r.exitCode, 7) << r.describe();
  EXPECT_TRUE(test::cgroupChildren(parent_->path()).empty()) << "transient cgroup left behind";
  r = runEgressd({"/bin/true"});
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_TRUE(test::cgroupChildren(parent_->path()).empty());
}

TEST_F(RunCommandTest, CommandIsEnforcedFromItsFirstSocket) {
  auto r = runEgressd(probe({"tcp", w().ip4(3), kB}));
  EXPECT_EQ(r.exitCode, 1) << r.describe();
  EXPECT_TRUE(probeLine(r.out).starts_with("ERR EPERM")) << r.describe();
  r = runEgressd(probe({"tcp", w().ip4(3), kA}));
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_TRUE(probeLine(r.out).starts_with("OK ")) << r.describe();
  r = runEgressd(probe({"raw"}));
  EXPECT_TRUE(probeLine(r.out).starts_with("ERR EPERM")) << r.describe();
}

TEST_F(RunCommandTest, RefusesPacketSocketsAndIoUring) {
  auto r = runEgressd(probe({"packet"}));
  EXPECT_EQ(r.exitCode, 1) << r.describe();
  std::string line = probeLine(r.out);
  EXPECT_TRUE(line.starts_with("ERR EPERM") || line.starts_with("ERR EACCES") ||
              line.starts_with("ERR EAFNOSUPPORT"))
      << r.describe();
  r = runEgressd(probe({"uring-connect", w().ip4(3), kA}));
  EXPECT_EQ(r.exitCode, 1) << r.describe();
  line = probeLine(r.out);
  EXPECT_TRUE(line.starts_with("ERR EPERM ") && line.find("io_uring_setup") != std::string::npos)
      << r.describe();
  // Outside `egressd run` both work (root), so the refusals are egressd's.
  EXPECT_PROBE_OK(probeHost({"packet"}));
  // With io_uring off in the kernel its EPERM would be the kernel's, not egressd's.
  EGRESSD_SKIP_UNLESS_HOST_FEATURE(host::kIoUring);
  EXPECT_PROBE_OK(probeHost({"uring-connect", w().ip4(3), kA}));
}

// --allow-io-uring lifts the seccomp refusal, not the kernel's judgement: io_uring's
// connect still goes through cgroup/connect4.
TEST_F(RunCommandTest, AllowIoUringStillJudgesItsConnects) {
  // The command runs without CAP_SYS_ADMIN: it needs kernel.io_uring_disabled=0.
  EGRESSD_SKIP_UNLESS_HOST_FEATURE(host::kIoUring);
  const std::vector<std::string> allow{"--allow-io-uring"};
  auto r = runEgressd(probe({"uring-connect", w().ip4(3), kA}), allow);
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  std::string line = probeLine(r.out);
  EXPECT_TRUE(line.starts_with("OK ") &&
              line.find("hello from " + w().ip4(3) + ":" + kA) != std::string::npos)
      << r.describe();
  for (const auto& [host, port] : {std::pair{w().ip4(3), kB}, std::pair{w().ip4(4), kA}}) {
    r = runEgressd(probe({"uring-connect", host, port}), allow);
    EXPECT_EQ(r.exitCode, 1) << r.describe();
    line = probeLine(r.out);
    EXPECT_TRUE(line.starts_with("ERR EPERM ") &&
                line.find("io_uring connect") != std::string::npos)
        << host << ":" << port << " " << r.describe();
  }
}

TEST_F(RunCommandTest, HidesBpffs) {
  ASSERT_OK(test::ensureBpffs());
  // Exit 3 when anything of bpffs (e.g. egressd's own pins) is visible to the command.
  auto r = runEgressd(
      {"/bin/sh", "-c",
       "[ -z \"$(ls -A /sys/fs/bpf)\" ] || exit 3; [ ! -e " + pin_.path() + " ] || exit 4"});
  EXPECT_EQ(r.exitCode, 0) << "bpffs visible inside egressd run: " << r.describe();
}

// `egressd run -- CMD` is used in pipelines: CMD's stdout must be CMD's alone.
TEST_F(RunCommandTest, CommandStdoutIsNotMixedWithEgressdLogs) {
  auto r = runEgressd({"/bin/echo", "hello"});
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out, "hello\n") << "egressd wrote to the command's stdout: " << r.describe();
}

TEST_F(RunCommandTest, SigintRemovesTheCgroupAndEndsTheCommand) {
  auto p = test::Process::spawn({.argv = runArgv({"/bin/sleep", "60"})});
  ASSERT_OK(p);
  std::string child;
  for (int i = 0; i < 100 && child.empty(); ++i) {
    auto kids = test::cgroupChildren(parent_->path());
    if (!kids.empty() && !test::cgroupProcs(parent_->path() + "/" + kids[0]).empty()) {
      child = parent_->path() + "/" + kids[0];
    } else {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  ASSERT_FALSE(child.empty()) << "no transient cgroup with a process appeared: " << p->stderrText();
  auto pids = test::cgroupProcs(child);
  ASSERT_OK(p->signal(SIGINT));
  auto r = p->wait(test::milliseconds(10000));
  ASSERT_OK(r);
  EXPECT_FALSE(pathExists(child)) << "transient cgroup left after SIGINT";
  for (pid_t pid : pids) {
    EXPECT_NE(::kill(pid, 0), 0) << "command pid " << pid << " survived SIGINT";
  }
}

}  // namespace
}  // namespace egressd::e2e
