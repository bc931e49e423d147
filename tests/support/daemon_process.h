// One run after another of an egressd process that prints "egressd ready" once it serves:
// the part the single-sandbox (EgressdDaemon) and the control-plane (ControlDaemon)
// fixtures share. Keeps the output of earlier runs so a failure after a restart still
// shows why the first run ended.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "process.h"

namespace egressd::test {

class DaemonProcess {
 public:
  // Spawns `argv` (+ `extraEnv` "K=V") and waits for "egressd ready"; the error names the
  // command and carries its output. The arguments are kept for restart().
  Status start(std::vector<std::string> argv, std::vector<std::string> extraEnv,
               milliseconds readyTimeout);
  // The same command again, once the previous run has exited (EBUSY while it runs).
  Status restart();
  // Sends `sig` and waits (bounded) for the exit.
  Result<RunResult> killAndWait(int sig, milliseconds timeout);
  Status signal(int sig);
  // SIGTERM, then SIGKILL after `grace`; `what` names the daemon in the message printed
  // when SIGTERM was not enough. No-op when not started.
  void stop(milliseconds grace, const char* what);

  bool running() { return proc_ && proc_->running(); }
  pid_t pid() const { return proc_ ? proc_->pid() : -1; }
  // stdout+stderr of every run so far.
  std::string logs() const;

 private:
  Status spawnAndWaitReady();
  // Ends the current run's record, keeping its output.
  void forget(const RunResult& r);

  std::vector<std::string> argv_;
  std::vector<std::string> extraEnv_;
  milliseconds readyTimeout_{20000};
  std::optional<Process> proc_;
  std::string pastLogs_;
};

}  // namespace egressd::test
