// `egressd run --policy P -- CMD`: a transient sandbox (under a test cgroup given as
// --cgroup-parent) that is armed before CMD runs, passes CMD's exit code through, refuses
// socket families no cgroup hook sees (AF_PACKET via seccomp; io_uring), hides bpffs, and
// removes its cgroup afterwards, also on SIGINT. Issue 12: the command cannot read the secrets
// egressd injects for it (files, environment, egressd's /proc), runs as a non-root user, and a
// run killed before its cleanup is swept by the next one.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "cgroup.h"
#include "common/fs.h"
#include "host_features.h"
#include "servers.h"
#include "temp_dir.h"
#include "test_util.h"
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

// --- issue 12: secrets stay out of the command ----------------------------------------------

constexpr uid_t kNobody = 65534;
const std::string kRunDir = "/run/egressd";

// "label=value" lines of the command's output.
std::map<std::string, std::string> labelled(const std::string& out) {
  std::map<std::string, std::string> lines;
  size_t pos = 0;
  while (pos < out.size()) {
    size_t end = out.find('\n', pos);
    std::string line = out.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (size_t eq = line.find('='); eq != std::string::npos) {
      lines[line.substr(0, eq)] = line.substr(eq + 1);
    }
    if (end == std::string::npos) {
      break;
    }
    pos = end + 1;
  }
  return lines;
}

void writeOwned(const std::string& path, const std::string& content, uid_t uid, mode_t mode) {
  {
    std::ofstream f(path, std::ios::trunc);
    f << content << "\n";
  }
  ASSERT_EQ(::chown(path.c_str(), uid, uid), 0) << path;
  ASSERT_EQ(::chmod(path.c_str(), mode), 0) << path;
}

class RunSecretsTest : public RunCommandTest {
 protected:
  void SetUp() override {
    RunCommandTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) {
      return;
    }
    const std::string tag = std::to_string(::getpid()) + "-" + std::to_string(++counter_);
    ownSecret_ = "egressd-own-secret-" + tag;
    rootSecret_ = "egressd-root-secret-" + tag;
    sandboxSecret_ = "egressd-sandbox-secret-" + tag;
    envSecret_ = "egressd-env-secret-" + tag;
    // mkdtemp made it 0700: the command's user must be able to reach what is not secret.
    ASSERT_EQ(::chmod(dir_->path().c_str(), 0755), 0);
    secrets_ = dir_->path() + "/secrets";
    elsewhere_ = dir_->path() + "/elsewhere";
    shared_ = dir_->path() + "/shared";
    for (const auto& [d, mode] : {std::pair{secrets_, 0755}, {elsewhere_, 0755}, {shared_, 0777}}) {
      ASSERT_EQ(::mkdir(d.c_str(), 0755), 0) << d;
      ASSERT_EQ(::chmod(d.c_str(), static_cast<mode_t>(mode)), 0) << d;
    }
    // The hardest case first: a secret the command's own user owns (a sudo caller's token
    // in their home): only hiding protects it.
    writeOwned(secrets_ + "/token", ownSecret_, kNobody, 0600);
    writeOwned(secrets_ + "/root-token", rootSecret_, 0, 0600);
    writeOwned(secrets_ + "/per-sb1", sandboxSecret_, kNobody, 0600);
    writeOwned(secrets_ + "/notes.txt", "not a secret", 0, 0644);
    // Other names of the same files: a backup next to it (hidden: same inode) and a hard
    // link elsewhere (not hidden: only its permissions protect it, documented).
    ASSERT_EQ(::link((secrets_ + "/token").c_str(), (secrets_ + "/token.bak").c_str()), 0);
    ASSERT_EQ(::link((secrets_ + "/root-token").c_str(), (elsewhere_ + "/root-link").c_str()), 0);
    PolicySpec spec;
    spec.allow = {{.cidr = w().ip4(3) + "/32", .ports = {kTcpA}, .protocol = "tcp"}};
    spec.extraYaml = "secrets:\n  TOK: {file: " + secrets_ +
                     "/token}\n  ROOTTOK: {file: " + secrets_ + "/root-token}\n  PERSB: {file: \"" +
                     secrets_ + "/per-${sandbox}\"}\n  ENVTOK: {env: RT_ENV_SECRET}\n";
    ASSERT_OK_AND_ASSIGN(policy_, dir_->writeFile("secrets-policy.yaml", policyYaml(spec)));
  }

  // egressd run with RT_ENV_SECRET in its environment (and `extraEnv`), from `cwd`.
  RunResult runWithSecrets(const std::vector<std::string>& cmd,
                           const std::vector<std::string>& flags = {},
                           std::vector<std::string> extraEnv = {}, const std::string& cwd = "") {
    extraEnv.push_back("RT_ENV_SECRET=" + envSecret_);
    auto r = test::run({.argv = runArgv(cmd, flags), .extraEnv = extraEnv, .cwd = cwd},
                       test::milliseconds(30000));
    if (!r.ok()) {
      RunResult failed;
      failed.err = r.error().message();
      return failed;
    }
    return *r;
  }

  void expectNoSecretIn(const RunResult& r, bool rootFileReadable = false) {
    for (const std::string& secret : {ownSecret_, rootSecret_, sandboxSecret_, envSecret_}) {
      if (rootFileReadable && secret == rootSecret_) {
        continue;
      }
      EXPECT_EQ(r.out.find(secret), std::string::npos) << "secret leaked: " << r.describe();
      EXPECT_EQ(r.err.find(secret), std::string::npos) << "secret leaked: " << r.describe();
    }
  }

  // A shell script printing "label=denied" or "label=READ:<content>" for each way to the
  // secrets; `outside` is a process of the command's user outside the sandbox.
  std::string leakScript(pid_t outside) const {
    const std::string s = secrets_;
    return "t() { l=$1; shift; if o=$(\"$@\" 2>/dev/null) && [ -n \"$o\" ]; then echo "
           "\"$l=READ:$o\"; "
           "else echo \"$l=denied\"; fi; }\n"
           "t direct cat " +
           s +
           "/token\n"
           "t root-file cat " +
           s +
           "/root-token\n"
           "t per-sandbox cat " +
           s +
           "/per-sb1\n"
           "t proc-self-root cat /proc/self/root" +
           s +
           "/token\n"
           "t backup-link cat " +
           s +
           "/token.bak\n"
           "t link-elsewhere cat " +
           elsewhere_ +
           "/root-link\n"
           "t cwd cat ./token\n"
           "t parent-environ cat /proc/$PPID/environ\n"
           "t parent-root cat /proc/$PPID/root" +
           s +
           "/token\n"
           "t parent-mem sh -c \"exec 3</proc/$PPID/mem && echo OPENED\"\n"
           // Controls: the same probes on the command's own /proc succeed.
           "t control-mem sh -c \"exec 3</proc/$$/mem && echo OPENED\"\n"
           "t control-root sh -c \"ls /proc/$$/root/ | head -1\"\n"
           "t outside-root cat /proc/" +
           std::to_string(outside) + "/root" + s +
           "/token\n"
           "t outside-environ cat /proc/" +
           std::to_string(outside) +
           "/environ\n"
           "t init-environ cat /proc/1/environ\n"
           "if kill -0 $PPID 2>/dev/null; then echo signal-parent=ALLOWED; else echo "
           "signal-parent=denied; fi\n"
           "if kill -0 " +
           std::to_string(outside) +
           " 2>/dev/null; then echo signal-outside=ALLOWED; "
           "else echo signal-outside=denied; fi\n"
           "t run-dir ls " +
           kRunDir +
           "/runs\n"
           "echo ptrace=$(" +
           test::python3Bin() +
           " -c 'import ctypes,os,sys; c=ctypes.CDLL(None,use_errno=True); "
           "r=c.ptrace(16,int(sys.argv[1]),0,0); "
           "print(\"ATTACHED\" if r==0 else \"denied:\"+os.strerror(ctypes.get_errno()))' $PPID)\n"
           "echo listing=$(ls -A " +
           s +
           " | tr '\\n' ' ')\n"
           "echo notes=$(cat " +
           s +
           "/notes.txt)\n"
           "echo uid=$(id -u) caps=$(grep CapEff /proc/self/status | tr -d ' \\t')\n"
           "echo done=1\n";
  }

  static inline int counter_ = 0;
  std::string ownSecret_, rootSecret_, sandboxSecret_, envSecret_;
  std::string secrets_, elsewhere_, shared_;
};

const std::vector<std::string> kLeakLabels = {
    "direct",       "root-file",      "per-sandbox",   "proc-self-root",
    "backup-link",  "link-elsewhere", "cwd",           "parent-environ",
    "parent-root",  "parent-mem",     "outside-root",  "outside-environ",
    "init-environ", "run-dir",        "signal-parent", "signal-outside"};

// Every way to a secret file or egressd's environment from inside the command, as the
// default user (nobody here: no SUDO_UID) and as an explicit `--user root`. Old code ran the
// command as root with CAP_DAC_OVERRIDE: `direct` read the token.
TEST_F(RunSecretsTest, SecretFilesAndEgressdProcAreOutOfReach) {
  // A process of the command's user outside the sandbox, holding the env secret too.
  auto outside = test::Process::spawn(
      {.argv = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sleep", "60"},
       .extraEnv = {"RT_ENV_SECRET=" + envSecret_}});
  ASSERT_OK(outside);
  // Control: outside egressd run, the same user does reach the token through that process's
  // /proc/PID/root (what the Landlock domain closes inside).
  auto control = test::run(
      {.argv = {"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "cat",
                "/proc/" + std::to_string(outside->pid()) + "/root" + secrets_ + "/token"}},
      test::milliseconds(5000));
  ASSERT_OK(control);
  EXPECT_NE(control->out.find(ownSecret_), std::string::npos) << control->describe();
  for (const std::vector<std::string>& flags :
       {std::vector<std::string>{}, std::vector<std::string>{"--user", "root"}}) {
    const std::string who = flags.empty() ? "default user" : "--user root";
    auto r = runWithSecrets({"/bin/sh", "-c", leakScript(outside->pid())}, flags,
                            {"SUDO_UID=", "SUDO_GID="}, secrets_);
    auto lines = labelled(r.out);
    ASSERT_EQ(lines["done"], "1") << who << ": " << r.describe();
    for (const std::string& label : kLeakLabels) {
      if (label == "link-elsewhere" && !flags.empty()) {
        // The documented limit of --user root: another name of a root-only secret file,
        // outside its directory, is readable by root (CAP_DAC_OVERRIDE stays with root).
        EXPECT_EQ(lines[label], "READ:" + rootSecret_) << who << ": " << r.describe();
        continue;
      }
      EXPECT_EQ(lines[label], "denied") << who << ": " << label << ": " << r.describe();
    }
    EXPECT_TRUE(lines["ptrace"].starts_with("denied")) << who << ": " << r.describe();
    EXPECT_EQ(lines["control-mem"], "READ:OPENED") << who << ": " << r.describe();
    EXPECT_TRUE(lines["control-root"].starts_with("READ:")) << who << ": " << r.describe();
    // The rest of the directory is still there; the secret, its backup and every name the
    // ${sandbox} path could take are not.
    EXPECT_EQ(lines["notes"], "not a secret") << who << ": " << r.describe();
    EXPECT_NE(lines["listing"].find("notes.txt"), std::string::npos) << r.describe();
    for (const char* gone : {"token ", "token.bak", "root-token", "per-"}) {
      EXPECT_EQ(lines["listing"].find(gone), std::string::npos) << who << ": " << r.describe();
    }
    expectNoSecretIn(r, /*rootFileReadable=*/!flags.empty());
  }
}

TEST_F(RunSecretsTest, NonRootCommandHasNoCapabilitiesAndRootIsOnlyByName) {
  const std::string script =
      "echo id=$(id -u):$(id -g):$(id -G | tr ' ' ,); grep -E '^(Cap|NoNewPrivs)' "
      "/proc/self/status | tr -d ' \\t' | tr ':' '='";
  auto r = runWithSecrets({"/bin/sh", "-c", script}, {}, {"SUDO_UID=", "SUDO_GID="});
  auto lines = labelled(r.out);
  EXPECT_EQ(lines["id"], "65534:65534:65534") << r.describe();
  for (const char* set : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
    EXPECT_EQ(lines[set], "0000000000000000") << set << ": " << r.describe();
  }
  EXPECT_EQ(lines["NoNewPrivs"], "1") << r.describe();
  // The sudo caller is the default (uid 1, "daemon" on Debian, with its groups).
  r = runWithSecrets({"/bin/sh", "-c", script}, {}, {"SUDO_UID=1", "SUDO_GID=1"});
  EXPECT_TRUE(labelled(r.out)["id"].starts_with("1:1:")) << r.describe();
  // sudo from root is not a reason to run as root.
  r = runWithSecrets({"/bin/sh", "-c", script}, {}, {"SUDO_UID=0", "SUDO_GID=0"});
  EXPECT_EQ(labelled(r.out)["id"], "65534:65534:65534") << r.describe();
  r = runWithSecrets({"/bin/sh", "-c", script}, {"--user", "daemon:65534"});
  EXPECT_TRUE(labelled(r.out)["id"].starts_with("1:65534:")) << r.describe();
  r = runWithSecrets({"/bin/sh", "-c", script}, {"--user", "4242:4343"});
  EXPECT_EQ(labelled(r.out)["id"], "4242:4343:4343") << r.describe();
  r = runWithSecrets({"/bin/sh", "-c", script}, {"--user", "root"});
  EXPECT_EQ(labelled(r.out)["id"], "0:0:0") << r.describe();
  EXPECT_NE(r.err.find("--user root"), std::string::npos) << "no warning: " << r.describe();
  r = runWithSecrets({"/bin/true"}, {"--user", "no-such-user-egressd"});
  EXPECT_EQ(r.exitCode, 64) << r.describe();
}

// Secrets are rotated by renaming a new file over the old one: the new one must stay hidden
// too (a bind mount over the file alone would be dropped by the kernel at the rename).
TEST_F(RunSecretsTest, RotatedSecretFileStaysHidden) {
  const std::string started = shared_ + "/started";
  const std::string rotated = shared_ + "/rotated";
  const std::string script = "touch " + started + "; i=0; while [ ! -e " + rotated +
                             " ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; "
                             "echo after=$(cat " +
                             secrets_ + "/token 2>&1); echo done=1";
  auto p = test::Process::spawn({.argv = runArgv({"/bin/sh", "-c", script}, {"--user", "nobody"}),
                                 .extraEnv = {"RT_ENV_SECRET=" + envSecret_}});
  ASSERT_OK(p);
  for (int i = 0; i < 200 && !pathExists(started); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(pathExists(started)) << p->stderrText();
  const std::string fresh = "egressd-rotated-secret-" + std::to_string(::getpid());
  writeOwned(secrets_ + "/token.new", fresh, kNobody, 0600);
  ASSERT_EQ(::rename((secrets_ + "/token.new").c_str(), (secrets_ + "/token").c_str()), 0);
  writeOwned(rotated, "", 0, 0644);
  auto r = p->wait(test::milliseconds(20000));
  ASSERT_OK(r);
  EXPECT_EQ(labelled(r->out)["done"], "1") << r->describe();
  EXPECT_EQ(r->out.find(fresh), std::string::npos) << "rotated secret visible: " << r->describe();
  EXPECT_NE(labelled(r->out)["after"].find("No such file"), std::string::npos) << r->describe();
}

// A Kubernetes-style secret volume: `token` -> `..data/token`, `..data` -> `..<timestamp>`,
// rotated by swapping `..data` to a new directory. Neither the secret (under any of its names)
// nor the rotated one is visible; the volume's other files are.
TEST_F(RunSecretsTest, SymlinkedSecretVolumeStaysHiddenAcrossASwap) {
  const std::string vol = secrets_ + "/vol";
  ASSERT_EQ(::mkdir(vol.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((vol + "/..2024").c_str(), 0755), 0);
  writeOwned(vol + "/..2024/token", ownSecret_, kNobody, 0600);
  writeOwned(vol + "/..2024/ca.crt", "public", 0, 0644);
  ASSERT_EQ(::symlink("..2024", (vol + "/..data").c_str()), 0);
  ASSERT_EQ(::symlink("..data/token", (vol + "/token").c_str()), 0);
  ASSERT_EQ(::symlink("..data/ca.crt", (vol + "/ca.crt").c_str()), 0);
  PolicySpec spec;
  spec.extraYaml = "secrets:\n  K8S: {file: " + vol + "/token}\n";
  ASSERT_OK_AND_ASSIGN(policy_, dir_->writeFile("k8s-policy.yaml", policyYaml(spec)));
  const std::string started = shared_ + "/started";
  const std::string rotated = shared_ + "/rotated";
  const std::string probe =
      "for f in token ..data/token ..2024/token ..2025/token; do "
      "if v=$(cat " +
      vol +
      "/$f 2>/dev/null); then echo \"$1$f=READ:$v\"; "
      "else echo \"$1$f=denied\"; fi; done; echo \"$1ca=$(cat " +
      vol + "/ca.crt)\"";
  const std::string script = "p() { " + probe + "; }; p before-; touch " + started +
                             "; i=0; while [ ! -e " + rotated +
                             " ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; p after-; "
                             "echo done=1";
  auto p = test::Process::spawn({.argv = runArgv({"/bin/sh", "-c", script}, {"--user", "nobody"})});
  ASSERT_OK(p);
  for (int i = 0; i < 200 && !pathExists(started); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(pathExists(started)) << p->stderrText();
  const std::string fresh = "egressd-swapped-secret-" + std::to_string(::getpid());
  ASSERT_EQ(::mkdir((vol + "/..2025").c_str(), 0755), 0);
  writeOwned(vol + "/..2025/token", fresh, kNobody, 0600);
  writeOwned(vol + "/..2025/ca.crt", "public", 0, 0644);
  ASSERT_EQ(::symlink("..2025", (vol + "/..data_tmp").c_str()), 0);
  ASSERT_EQ(::rename((vol + "/..data_tmp").c_str(), (vol + "/..data").c_str()), 0);
  writeOwned(rotated, "", 0, 0644);
  auto r = p->wait(test::milliseconds(20000));
  ASSERT_OK(r);
  auto lines = labelled(r->out);
  ASSERT_EQ(lines["done"], "1") << r->describe();
  for (const char* when : {"before-", "after-"}) {
    for (const char* f : {"token", "..data/token", "..2024/token", "..2025/token"}) {
      EXPECT_EQ(lines[std::string(when) + f], "denied") << when << f << ": " << r->describe();
    }
  }
  EXPECT_EQ(lines["before-ca"], "public") << r->describe();
  EXPECT_EQ(lines["after-ca"], "public") << r->describe();
  EXPECT_EQ(r->out.find(ownSecret_), std::string::npos) << r->describe();
  EXPECT_EQ(r->out.find(fresh), std::string::npos) << r->describe();
}

// Item 2: the env secret's variable never reaches the command, which starts from an
// allowlist; --env / --env-file add to it, and naming a secret source is refused.
TEST_F(RunSecretsTest, EnvironmentIsAnAllowlistWithoutSecretSources) {
  auto r = runWithSecrets({"/usr/bin/env"}, {}, {"NOT_LISTED=1", "LC_TIME=C", "TZ=UTC"});
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  auto env = labelled(r.out);
  EXPECT_EQ(env.count("RT_ENV_SECRET"), 0u) << r.describe();
  EXPECT_EQ(env.count("NOT_LISTED"), 0u) << r.describe();
  EXPECT_EQ(env["LC_TIME"], "C") << r.describe();
  EXPECT_EQ(env["TZ"], "UTC") << r.describe();
  EXPECT_TRUE(env.count("PATH") == 1 && env.count("HOME") == 1 && env.count("USER") == 1)
      << r.describe();
  EXPECT_TRUE(env["EGRESSD_SANDBOX"].starts_with("run-")) << r.describe();
  expectNoSecretIn(r);

  ASSERT_OK_AND_ASSIGN(std::string envFile,
                       dir_->writeFile("run.env", "# comment\n\nFROM_FILE=a=b\nLATER=file\n"));
  r = runWithSecrets({"/usr/bin/env"},
                     {"--env", "NOT_LISTED", "--env", "WITH_COMMA=x,y", "--env-file", envFile,
                      "--env", "LATER=flag"},
                     {"NOT_LISTED=passed"});
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  env = labelled(r.out);
  EXPECT_EQ(env["NOT_LISTED"], "passed") << r.describe();
  EXPECT_EQ(env["WITH_COMMA"], "x,y") << r.describe();
  EXPECT_EQ(env["FROM_FILE"], "a=b") << r.describe();
  EXPECT_EQ(env["LATER"], "flag") << r.describe();
  expectNoSecretIn(r);

  ASSERT_OK_AND_ASSIGN(std::string badFile, dir_->writeFile("bad.env", "RT_ENV_SECRET=x\n"));
  for (const std::vector<std::string>& flags :
       {std::vector<std::string>{"--env", "RT_ENV_SECRET"},
        std::vector<std::string>{"--env", "RT_ENV_SECRET=chosen"},
        std::vector<std::string>{"--env-file", badFile}}) {
    r = runWithSecrets({"/usr/bin/env"}, flags);
    EXPECT_EQ(r.exitCode, 64) << test::joinArgv(flags) << ": " << r.describe();
    EXPECT_NE(r.err.find("RT_ENV_SECRET is a secret source"), std::string::npos) << r.describe();
    expectNoSecretIn(r);
  }
}

// What the command cannot read, egressd still injects: the hidden file (read by egressd in its
// own mount namespace) and the variable removed from the command's environment.
TEST_F(RunSecretsTest, HiddenSecretsAreStillInjected) {
  ASSERT_OK(httpOrigin());
  PolicySpec spec;
  spec.proxyPorts = std::vector<int>{kHttp, kHttps, kHttpOrigin};
  spec.extraYaml =
      "secrets:\n  TOK: {file: " + secrets_ + "/token}\n  ENVTOK: {env: RT_ENV_SECRET}\n" +
      "outboundByHost:\n  inject.allowed.test: inject\noutboundHandlers:\n  inject:\n" +
      "    - setHeader: { name: Authorization, value: \"Bearer ${secret:TOK}\", "
      "allowPlaintext: true }\n" +
      "    - setHeader: { name: X-Env-Token, value: \"${secret:ENVTOK}\", allowPlaintext: true }\n";
  ASSERT_OK_AND_ASSIGN(policy_, dir_->writeFile("inject-policy.yaml", policyYaml(spec)));
  const std::string port = std::to_string(kHttpOrigin);
  const std::string script =
      "cat " + secrets_ +
      "/token 2>/dev/null && echo LEAK; env | grep -q RT_ENV_SECRET && echo LEAK; " +
      "curl --noproxy '*' -sS --max-time 10 --resolve inject.allowed.test:" + port + ":" +
      w().ip4(3) + " http://inject.allowed.test:" + port + "/whoami";
  auto r = runWithSecrets({"/bin/sh", "-c", script}, {"--user", "nobody"});
  ASSERT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_EQ(r.out.find("LEAK"), std::string::npos) << r.describe();
  const size_t brace = r.out.find('{');
  ASSERT_NE(brace, std::string::npos) << r.describe();
  auto who = nlohmann::json::parse(r.out.substr(brace), nullptr, false);
  ASSERT_TRUE(who.is_object()) << r.describe();
  // The origin reports what it got hex-encoded: egressd redacts the echoed secret values.
  const auto hex = who.value("headers_hex", nlohmann::json::object());
  EXPECT_EQ(test::unhex(hex.value("authorization", "")), "Bearer " + ownSecret_) << who.dump();
  EXPECT_EQ(test::unhex(hex.value("x-env-token", "")), envSecret_) << who.dump();
  EXPECT_EQ(r.out.find(ownSecret_), std::string::npos) << "the echo is redacted";
  EXPECT_EQ(r.out.find(envSecret_), std::string::npos) << "the echo is redacted";
}

// Item 3: an `egressd run` killed before its cleanup leaves cgroup, pins and files (fail
// closed); the next run and `egressd detach` remove them, never a live run's.
TEST_F(RunCommandTest, KilledRunIsSweptByTheNextRunButALiveOneIsNot) {
  auto live = test::Process::spawn({.argv = runArgv({"/bin/sleep", "60"})});
  ASSERT_OK(live);
  auto killed = test::Process::spawn({.argv = runArgv({"/bin/sleep", "60"})});
  ASSERT_OK(killed);
  const std::string liveCg = parent_->path() + "/egressd-run-" + std::to_string(live->pid());
  const std::string deadId = "run-" + std::to_string(killed->pid());
  const std::string deadCg = parent_->path() + "/egressd-" + deadId;
  for (int i = 0; i < 200; ++i) {
    if (pathExists(liveCg + "/cgroup.procs") && !test::cgroupProcs(liveCg).empty() &&
        pathExists(deadCg + "/cgroup.procs") && !test::cgroupProcs(deadCg).empty()) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(test::cgroupProcs(deadCg).empty()) << killed->stderrText();
  ASSERT_OK(killed->signal(SIGKILL));
  ASSERT_OK(killed->wait(test::milliseconds(5000)));
  // Left behind, still enforced (fail closed).
  EXPECT_TRUE(pathExists(deadCg));
  EXPECT_TRUE(pathExists(pin_.path() + "/links/" + deadId));
  EXPECT_TRUE(pathExists(kRunDir + "/sandboxes/" + deadId));

  auto r = runEgressd({"/bin/true"});
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_FALSE(pathExists(deadCg)) << "orphaned cgroup not swept: " << r.describe();
  EXPECT_FALSE(pathExists(pin_.path() + "/links/" + deadId)) << r.describe();
  EXPECT_FALSE(pathExists(kRunDir + "/sandboxes/" + deadId)) << r.describe();
  EXPECT_FALSE(pathExists(kRunDir + "/runs/" + deadId + ".json")) << r.describe();
  EXPECT_NE(r.err.find(deadId + ": owner pid"), std::string::npos) << r.describe();
  // The live run is untouched and still enforced.
  EXPECT_TRUE(live->running());
  EXPECT_FALSE(test::cgroupProcs(liveCg).empty()) << "a live run was swept";
  EXPECT_TRUE(pathExists(pin_.path() + "/links/run-" + std::to_string(live->pid())));
  ASSERT_OK(live->signal(SIGINT));
  ASSERT_OK(live->wait(test::milliseconds(10000)));
}

// A daemon's start sweeps too (the single-sandbox daemon here; the control-plane daemon calls
// the same sweep before restoring its state).
TEST_F(RunCommandTest, DaemonStartSweepsAKilledRun) {
  auto killed = test::Process::spawn({.argv = runArgv({"/bin/sleep", "60"})});
  ASSERT_OK(killed);
  const std::string deadId = "run-" + std::to_string(killed->pid());
  const std::string deadCg = parent_->path() + "/egressd-" + deadId;
  for (int i = 0;
       i < 200 && !(pathExists(deadCg + "/cgroup.procs") && !test::cgroupProcs(deadCg).empty());
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_FALSE(test::cgroupProcs(deadCg).empty()) << killed->stderrText();
  ASSERT_OK(killed->signal(SIGKILL));
  ASSERT_OK(killed->wait(test::milliseconds(5000)));
  ASSERT_TRUE(pathExists(deadCg));

  ASSERT_OK_AND_ASSIGN(auto cg, test::TestCgroup::create());
  PolicySpec spec;
  ASSERT_OK_AND_ASSIGN(auto daemon, test::EgressdDaemon::start(
                                        {.cgroup = cg.path(), .policyYaml = policyYaml(spec)}));
  EXPECT_FALSE(pathExists(deadCg)) << daemon->logs();
  EXPECT_FALSE(pathExists(pin_.path() + "/links/" + deadId)) << daemon->logs();
  EXPECT_FALSE(pathExists(kRunDir + "/sandboxes/" + deadId)) << daemon->logs();
  EXPECT_FALSE(pathExists(kRunDir + "/runs/" + deadId + ".json")) << daemon->logs();
}

// The owner is a pid AND its start time: a record whose pid now belongs to another process
// (here: this test, with another start time) is an orphan; a record naming a cgroup that is
// not egressd-<id> is never acted on. `egressd detach` sweeps too.
TEST_F(RunCommandTest, DetachSweepsOrphansByPidAndStartTimeOnly) {
  ASSERT_OK_AND_ASSIGN(std::string statText, readFile("/proc/self/stat"));
  const std::string afterComm = statText.substr(statText.rfind(')') + 2);
  std::istringstream fields(afterComm);
  std::string field;
  uint64_t startTime = 0;
  for (int i = 3; i <= 22 && fields >> field; ++i) {
    if (i == 22) {
      startTime = std::stoull(field);
    }
  }
  ASSERT_GT(startTime, 0u);
  // Ids that no real run of this host can have (pids are below 2^22).
  const std::string reused = "run-9" + std::to_string(100000000 + ::getpid());
  const std::string alive = "run-8" + std::to_string(100000000 + ::getpid());
  const std::string foreign = "run-7" + std::to_string(100000000 + ::getpid());
  auto record = [&](const std::string& id, uint64_t start, const std::string& cgroup) {
    nlohmann::json j{{"id", id},
                     {"pid", ::getpid()},
                     {"startTime", start},
                     {"cgroup", cgroup},
                     {"pinRoot", pin_.path()}};
    ASSERT_OK(writeFileAtomic(kRunDir + "/runs/" + id + ".json", j.dump(), 0600));
  };
  ASSERT_OK(makeDirs(kRunDir + "/runs", 0700));
  const std::string reusedCg = parent_->path() + "/egressd-" + reused;
  const std::string aliveCg = parent_->path() + "/egressd-" + alive;
  const std::string foreignCg = parent_->path() + "/not-egressd";
  for (const std::string& cg : {reusedCg, aliveCg, foreignCg}) {
    ASSERT_EQ(::mkdir(cg.c_str(), 0755), 0) << cg;
  }
  record(reused, startTime + 1, reusedCg);
  record(alive, startTime, aliveCg);
  record(foreign, startTime + 1, foreignCg);

  auto r = runGuarded({test::egressdBin(), "detach", "--sandbox", "nothing-here", "--if-exists",
                       "--pin-root", pin_.path()},
                      "", "", test::milliseconds(20000));
  EXPECT_EQ(r.exitCode, 0) << r.describe();
  EXPECT_FALSE(pathExists(reusedCg)) << "pid reused by another process: still an orphan";
  EXPECT_FALSE(pathExists(kRunDir + "/runs/" + reused + ".json"));
  EXPECT_TRUE(pathExists(aliveCg)) << "swept although its owner lives";
  EXPECT_TRUE(pathExists(kRunDir + "/runs/" + alive + ".json"));
  EXPECT_TRUE(pathExists(foreignCg)) << "removed a cgroup egressd did not create";
  for (const std::string& id : {reused, alive, foreign}) {
    ::unlink((kRunDir + "/runs/" + id + ".json").c_str());
  }
  for (const std::string& cg : {reusedCg, aliveCg, foreignCg}) {
    ::rmdir(cg.c_str());
  }
}

}  // namespace
}  // namespace egressd::e2e
