// egressd as a systemd service (packaging/egressd.service, Type=notify), without systemd:
// the test plays the service manager. It owns the NOTIFY_SOCKET datagram socket the daemon
// reports to, and checks that READY=1 comes only once a persisted sandbox is enforced again
// (its links pinned) and the control socket listens, STOPPING=1 on SIGTERM, RELOADING=1 and
// READY=1 around a SIGHUP reload; and that with stderr on "the journal" (JOURNAL_STREAM
// naming it) log lines carry syslog priorities instead of egressd's own prefix.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "cgroup.h"
#include "common/unique_fd.h"
#include "egressd.h"
#include "process.h"
#include "temp_dir.h"

namespace egressd::e2e {
namespace {

using test::milliseconds;
using test::Process;
using test::RunResult;

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

// argv's outcome; a spawn failure becomes a failed RunResult that says why.
RunResult runCommand(const std::vector<std::string>& argv,
                     milliseconds timeout = milliseconds(20000)) {
  auto r = test::run({.argv = argv}, timeout);
  if (!r.ok()) {
    RunResult failed;
    failed.err = test::joinArgv(argv) + ": " + r.error().message();
    return failed;
  }
  return std::move(*r);
}

// The service manager's end of NOTIFY_SOCKET: a unix datagram socket in the test's dir.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = UniqueFd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof(addr.sun_path) - 1);
    bound_ = fd_ && ::bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  }
  bool bound() const { return bound_; }
  const std::string& path() const { return path_; }

  // The next datagram, or nullopt after `timeout`.
  std::optional<std::string> next(milliseconds timeout) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) {
      return std::nullopt;
    }
    char buf[4096];
    const ssize_t n = ::recv(fd_.get(), buf, sizeof(buf), 0);
    if (n < 0) {
      return std::nullopt;
    }
    return std::string(buf, static_cast<size_t>(n));
  }
  // Datagrams until one has the line `field` ("READY=1"); all of them, for messages.
  bool waitFor(const std::string& field, milliseconds timeout, std::string* seen) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return false;
      }
      auto message = next(left);
      if (!message) {
        return false;
      }
      *seen += "[" + *message + "] ";
      std::istringstream lines(*message);
      for (std::string line; std::getline(lines, line);) {
        if (line == field) {
          return true;
        }
      }
    }
  }

 private:
  std::string path_;
  UniqueFd fd_;
  bool bound_ = false;
};

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(test::requireBinaries().ok()) << test::requireBinaries().error().message();
    auto cg = test::TestCgroup::create();
    ASSERT_TRUE(cg.ok()) << cg.error().message();
    parent_.emplace(std::move(*cg));
    for (const char* sub : {"policies", "state", "run"}) {
      std::filesystem::create_directories(dir_.path() + "/" + sub);
    }
    auto written = dir_.writeFile("policies/svc.yaml",
                                  "name: svc-policy\nenableInternet: false\n"
                                  "allowedHosts: [\"192.0.2.1\"]\n");
    ASSERT_TRUE(written.ok()) << written.error().message();
  }
  void TearDown() override {
    if (daemon_ && daemon_->running()) {
      (void)runCommand(ctl({"sandbox", "delete", sandboxId_}));
      daemon_->stop(milliseconds(5000));
    }
    daemon_.reset();
    // Whatever a failed test left: the pins (PinRoot) and cgroups (TestCgroup) go too.
    (void)runCommand({test::egressdBin(), "detach", "--sandbox", sandboxId_, "--pin-root",
                      pinRoot_.path(), "--run-dir", dir_.path() + "/run", "--if-exists"});
  }

  std::string socketPath() const { return dir_.path() + "/egressd.sock"; }
  std::string linksDir() const { return pinRoot_.path() + "/links/" + sandboxId_; }
  bool linksPinned() const {
    std::error_code ec;
    return std::filesystem::is_directory(linksDir(), ec) &&
           !std::filesystem::is_empty(linksDir(), ec);
  }
  std::vector<std::string> daemonArgv() const {
    return {test::egressdBin(), "daemon",
            "--socket",         socketPath(),
            "--state-dir",      dir_.path() + "/state",
            "--policy-dir",     dir_.path() + "/policies",
            "--run-dir",        dir_.path() + "/run",
            "--pin-root",       pinRoot_.path(),
            "--cgroup-parent",  parent_->path(),
            "--audit-log",      "none",
            "--log-level",      "debug"};
  }
  std::vector<std::string> ctl(std::vector<std::string> args) const {
    args.insert(args.begin(), {test::egressctlBin(), "--socket", socketPath()});
    return args;
  }
  void startDaemon(std::vector<std::string> extraEnv, std::vector<std::string> prefix = {}) {
    std::vector<std::string> argv = prefix;
    for (const std::string& arg : daemonArgv()) {
      argv.push_back(arg);
    }
    auto p = Process::spawn({.argv = argv, .extraEnv = std::move(extraEnv)});
    ASSERT_TRUE(p.ok()) << p.error().message();
    daemon_.emplace(std::move(*p));
  }
  std::string daemonLogs() const {
    return daemon_ ? daemon_->stdoutText() + daemon_->stderrText() : std::string();
  }

  test::TempDir dir_ = test::TempDir::createOrThrow();
  test::PinRoot pinRoot_;
  std::optional<test::TestCgroup> parent_;
  std::optional<Process> daemon_;
  const std::string sandboxId_ = "svc-" + std::to_string(::getpid());
};

TEST_F(ServiceTest, ReadyOnlyOnceRestoredSandboxesAreEnforcedStoppingOnSigterm) {
  NotifySocket notify(dir_.path() + "/notify.sock");
  ASSERT_TRUE(notify.bound()) << notify.path();
  const std::string env = "NOTIFY_SOCKET=" + notify.path();

  // First run: READY=1 on an empty state, then a sandbox that the state file keeps.
  startDaemon({env});
  std::string seen;
  ASSERT_TRUE(notify.waitFor("READY=1", milliseconds(30000), &seen))
      << "no READY=1; got " << seen << "\n"
      << daemonLogs();
  RunResult created = runCommand(
      ctl({"sandbox", "create", sandboxId_, "--policy", "svc-policy", "--create-cgroup"}));
  ASSERT_TRUE(created.succeeded()) << created.describe() << daemonLogs();
  ASSERT_TRUE(linksPinned()) << linksDir();

  // SIGTERM: STOPPING=1, and the daemon exits keeping enforcement and state.
  ASSERT_TRUE(daemon_->signal(SIGTERM).ok());
  seen.clear();
  EXPECT_TRUE(notify.waitFor("STOPPING=1", milliseconds(10000), &seen))
      << "no STOPPING=1 after SIGTERM; got " << seen << "\n"
      << daemonLogs();
  auto exited = daemon_->wait(milliseconds(10000));
  ASSERT_TRUE(exited.ok()) << exited.error().message();
  EXPECT_EQ(exited->exitCode, 0) << exited->describe();
  daemon_.reset();

  // Unpin its enforcement so that only the restore can bring it back: the sandbox stays
  // in the state file, nothing of it in the kernel.
  RunResult detached =
      runCommand({test::egressdBin(), "detach", "--sandbox", sandboxId_, "--pin-root",
                  pinRoot_.path(), "--run-dir", dir_.path() + "/run"});
  ASSERT_TRUE(detached.succeeded()) << detached.describe();
  ASSERT_FALSE(linksPinned()) << linksDir() << " still pinned after egressd detach";

  // Second run: at the moment READY=1 arrives the sandbox is enforced again and the control
  // socket accepts connections (checked before anything else happens).
  startDaemon({env});
  seen.clear();
  ASSERT_TRUE(notify.waitFor("READY=1", milliseconds(30000), &seen))
      << "no READY=1 after the restart; got " << seen << "\n"
      << daemonLogs();
  const bool pinnedAtReady = linksPinned();
  const std::string logsAtReady = daemon_->stderrText();
  UniqueFd client(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  socketPath().copy(addr.sun_path, sizeof(addr.sun_path) - 1);
  const bool listeningAtReady =
      ::connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  client.reset();
  EXPECT_TRUE(pinnedAtReady) << "READY=1 came before " << linksDir() << " was pinned again\n"
                             << logsAtReady;
  EXPECT_TRUE(contains(logsAtReady, "sandbox " + sandboxId_ + " restored")) << logsAtReady;
  EXPECT_TRUE(listeningAtReady) << "READY=1 came before " << socketPath() << " listened";
  EXPECT_TRUE(contains(seen, "STATUS=control API on " + socketPath())) << seen;

  // SIGHUP: RELOADING=1, then READY=1 again once the policy files are re-read.
  ASSERT_TRUE(daemon_->signal(SIGHUP).ok());
  seen.clear();
  EXPECT_TRUE(notify.waitFor("RELOADING=1", milliseconds(10000), &seen)) << seen;
  EXPECT_TRUE(notify.waitFor("READY=1", milliseconds(10000), &seen))
      << "no READY=1 after the reload; got " << seen << "\n"
      << daemonLogs();
}

TEST_F(ServiceTest, UnderJournaldLogLinesCarryPrioritiesNotEgressdsPrefix) {
  // systemd sets JOURNAL_STREAM to "DEV:INODE" of the stream it gives the service as
  // stderr; here the daemon's stderr (the test's capture file) is named the same way.
  startDaemon({}, {"/bin/sh", "-c",
                   "JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2); export JOURNAL_STREAM; "
                   "exec \"$0\" \"$@\""});
  ASSERT_TRUE(daemon_->waitForOutput("egressd ready", milliseconds(30000))) << daemonLogs();
  const std::string journal = daemon_->stderrText();
  daemon_->stop(milliseconds(5000));
  daemon_.reset();
  EXPECT_TRUE(contains(journal, "<6>control API on " + socketPath())) << journal;
  // Every line, not just some: a line without "<N>" would be stored at the unit's default
  // priority with the prefix as text.
  std::istringstream lines(journal);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_TRUE(line.size() > 3 && line[0] == '<' && line[1] >= '0' && line[1] <= '7' &&
                line[2] == '>')
        << "no syslog priority: " << line;
  }
  EXPECT_FALSE(contains(journal, "egressd info:")) << journal;

  // The same daemon on a terminal-like stderr (no JOURNAL_STREAM): egressd's own prefix.
  startDaemon({});
  ASSERT_TRUE(daemon_->waitForOutput("egressd ready", milliseconds(30000))) << daemonLogs();
  const std::string plain = daemon_->stderrText();
  EXPECT_TRUE(contains(plain, "egressd info: control API on " + socketPath())) << plain;
  EXPECT_FALSE(contains(plain, "<6>")) << plain;
}

}  // namespace
}  // namespace egressd::e2e
