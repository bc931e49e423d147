// Child processes for tests: spawn with argv/env, optionally inside a cgroup and/or a
// network namespace (both joined by the child itself after fork and before exec, so the
// program's very first socket is already policed), output captured in memfds (no pipe
// can fill up and block a chatty daemon), bounded waits, and SIGKILL + reap on
// destruction. Processes are addressed by pid (held via a pidfd), never by name.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"

namespace egressd::test {

using std::chrono::milliseconds;

struct SpawnOptions {
  std::vector<std::string> argv;  // argv[0] without '/' is looked up in PATH
  // Full environment; nullopt inherits the test's environment.
  std::optional<std::vector<std::string>> env;
  // Extra "K=V" entries appended to the (inherited or given) environment.
  std::vector<std::string> extraEnv;
  // cgroup v2 directory to join before exec (empty: stay in the test's cgroup).
  std::string cgroup;
  // Network namespace file (e.g. /var/run/netns/NAME) to join before exec.
  std::string netnsPath;
  std::string cwd;
};

// Outcome of a finished (or killed) process.
struct RunResult {
  int exitCode = -1;      // exit status, or -1 when killed by a signal
  int termSignal = 0;     // signal that ended it, 0 if it exited
  bool timedOut = false;  // we killed it because it overran its timeout
  std::string out;
  std::string err;

  bool succeeded() const { return exitCode == 0 && !timedOut; }
  // One human-readable paragraph for assertion messages.
  std::string describe() const;
};

class Process {
 public:
  static Result<Process> spawn(const SpawnOptions& opts);

  Process(Process&& other) noexcept;
  Process& operator=(Process&& other) noexcept;
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  // SIGKILLs the process if it still runs, and reaps it.
  ~Process();

  pid_t pid() const { return pid_; }
  const std::vector<std::string>& argv() const { return argv_; }
  // Not yet reaped and not a zombie.
  bool running();
  Status signal(int sig);
  // Waits up to `timeout` for exit; Error(ETIMEDOUT) if it still runs.
  Result<RunResult> wait(milliseconds timeout);
  // SIGTERM, wait up to `grace`, then SIGKILL (grace 0: SIGKILL at once); always reaps.
  RunResult stop(milliseconds grace = milliseconds(5000));
  // Everything written so far.
  std::string stdoutText() const;
  std::string stderrText() const;
  // Polls stdout (or stderr) until it contains `needle`, the process exits, or timeout.
  bool waitForOutput(const std::string& needle, milliseconds timeout, bool onStderr = false);

 private:
  Process() = default;
  RunResult collect(int waitStatus) const;
  void killAndReap();

  pid_t pid_ = -1;
  bool reaped_ = false;
  int waitStatus_ = 0;
  UniqueFd pidfd_;
  UniqueFd out_;
  UniqueFd err_;
  std::vector<std::string> argv_;
};

// Spawns, waits up to `timeout` (killing it on overrun; result.timedOut is then set).
Result<RunResult> run(const SpawnOptions& opts, milliseconds timeout);
// Runs argv and fails with its stderr when it does not exit 0.
Status runChecked(const std::vector<std::string>& argv, milliseconds timeout = milliseconds(10000));

// Runs argv inside the sandbox: joins `cgroup` (and `netnsPath` when not empty) before exec.
Result<RunResult> runInSandbox(const std::string& cgroup, const std::vector<std::string>& argv,
                               const std::string& netnsPath = "",
                               milliseconds timeout = milliseconds(15000));

// A "<Field>: <n> kB" line of /proc/<pid>/status ("VmHWM", "VmRSS"), in KiB.
Result<uint64_t> procStatusKib(pid_t pid, const std::string& field);

// "a b 'c d'" for messages.
std::string joinArgv(const std::vector<std::string>& argv);

}  // namespace egressd::test
