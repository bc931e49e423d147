#include "daemon_process.h"

#include <csignal>
#include <cstdio>

namespace egressd::test {

Status DaemonProcess::start(std::vector<std::string> argv, std::vector<std::string> extraEnv,
                            milliseconds readyTimeout) {
  argv_ = std::move(argv);
  extraEnv_ = std::move(extraEnv);
  readyTimeout_ = readyTimeout;
  return spawnAndWaitReady();
}

Status DaemonProcess::spawnAndWaitReady() {
  auto p = Process::spawn(SpawnOptions{.argv = argv_, .extraEnv = extraEnv_});
  if (!p.ok()) {
    return std::move(p).error();
  }
  proc_.emplace(std::move(p).value());
  if (!proc_->waitForOutput("egressd ready", readyTimeout_)) {
    std::string why = proc_->running() ? "no 'egressd ready' within " +
                                             std::to_string(readyTimeout_.count()) + " ms"
                                       : "exited before 'egressd ready'";
    RunResult r = proc_->stop(milliseconds(2000));
    forget(r);
    return Error(EIO, "'" + joinArgv(argv_) + "': " + why + ": " + r.describe());
  }
  return okStatus();
}

void DaemonProcess::forget(const RunResult& r) {
  pastLogs_ += r.out + r.err;
  proc_.reset();
}

Status DaemonProcess::restart() {
  if (proc_ && proc_->running()) {
    return Error(EBUSY, "restart: daemon still running (pid " + std::to_string(proc_->pid()) + ")");
  }
  if (proc_) {
    forget(proc_->stop(milliseconds(0)));
  }
  return spawnAndWaitReady();
}

Result<RunResult> DaemonProcess::killAndWait(int sig, milliseconds timeout) {
  if (!proc_) {
    return Error(ESRCH, "daemon not running");
  }
  EGRESSD_TRY(proc_->signal(sig));
  auto r = proc_->wait(timeout);
  if (r.ok()) {
    forget(*r);
  }
  return r;
}

Status DaemonProcess::signal(int sig) {
  if (!proc_) {
    return Error(ESRCH, "daemon not running");
  }
  return proc_->signal(sig);
}

void DaemonProcess::stop(milliseconds grace, const char* what) {
  if (!proc_) {
    return;
  }
  RunResult r = proc_->stop(grace);
  if (r.termSignal == SIGKILL) {
    std::fprintf(stderr, "[egressd-test] %s did not exit on SIGTERM within %lld ms\n", what,
                 static_cast<long long>(grace.count()));
  }
  forget(r);
}

std::string DaemonProcess::logs() const {
  std::string s = pastLogs_;
  if (proc_) {
    s += proc_->stdoutText() + proc_->stderrText();
  }
  return s;
}

}  // namespace egressd::test
