// Driving the system under test: paths of the built binaries and the EgressdDaemon
// fixture (policy file in a temp dir, `egressd --sandbox ... --pin-root <test pin root>`,
// readiness on the "egressd ready" line, SIGTERM + `egressd detach` + rm -rf of the pin
// root on destruction), with its audit log and metrics endpoint when asked for.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "daemon_process.h"
#include "process.h"
#include "temp_dir.h"

namespace egressd::test {

// Built binaries (CMake compile definitions); empty when the target was not built.
// EGRESSD_TEST_EGRESSD_BIN / EGRESSD_TEST_EGRESSCTL_BIN override them (an installed build,
// or a do-nothing stand-in to check that the tests fail without enforcement).
std::string egressdBin();
std::string egressctlBin();
// Fails with a clear message when a binary is missing.
Status requireBinaries();

class EgressdDaemon {
 public:
  struct Options {
    std::string sandboxId;   // default: a fresh egressd-test-<pid>-<n>
    std::string cgroup;      // the sandbox cgroup (required)
    std::string policyYaml;  // written to <tempdir>/policy.yaml
    std::string netnsPath;   // --netns when not empty
    std::vector<std::string> extraArgs{"--log-level", "debug"};
    milliseconds readyTimeout{20000};
    bool auditLog = false;  // --audit-log <dir>/audit.jsonl
    bool metrics = false;   // --metrics unix:<dir>/metrics.sock
  };

  // Starts the daemon and waits for "egressd ready"; the error carries its stderr.
  static Result<std::unique_ptr<EgressdDaemon>> start(Options opts);
  ~EgressdDaemon();
  EgressdDaemon(const EgressdDaemon&) = delete;
  EgressdDaemon& operator=(const EgressdDaemon&) = delete;

  const std::string& sandboxId() const { return opts_.sandboxId; }
  const std::string& pinRoot() const { return pinRoot_.path(); }
  const std::string& policyPath() const { return policyPath_; }
  const TempDir& dir() const { return dir_; }
  bool running() { return process_.running(); }
  pid_t pid() const { return process_.pid(); }

  // Sends `sig` and waits (bounded) for the daemon to exit.
  Result<RunResult> killAndWait(int sig, milliseconds timeout = milliseconds(10000)) {
    return process_.killAndWait(sig, timeout);
  }
  // Starts the daemon again with the same arguments and waits for readiness.
  Status restart() { return process_.restart(); }
  // Rewrites the policy file (atomically).
  Status writePolicy(const std::string& yaml);
  // Rewrites the policy file and sends SIGHUP.
  Status reload(const std::string& yaml);
  // `egressd apply` for this sandbox with `policyFile` (default: the current policy file).
  Result<RunResult> apply(const std::string& policyFile = "");
  // `egressd detach --sandbox <id> --pin-root <root>`.
  // `egressd detach`; an unknown sandbox exits 1 unless ifExists.
  Result<RunResult> detach(bool ifExists = false);
  // `egressctl <args...> --pin-root <root>`.
  Result<RunResult> ctl(std::vector<std::string> args);
  // stdout+stderr of every run of the daemon so far.
  std::string logs() const { return process_.logs(); }

  // "" unless started with Options::auditLog / Options::metrics.
  std::string auditLogPath() const;
  std::string metricsSocketPath() const;
  // Every audit line so far, parsed; a line that is not a JSON object is an error (the
  // audit log promises valid JSON whatever the sandbox sent).
  Result<std::vector<nlohmann::json>> auditRecords() const;
  // Polls the audit log (written in batches) until a record satisfies `match`; the error
  // lists every record seen.
  Result<nlohmann::json> waitForAudit(const std::function<bool(const nlohmann::json&)>& match,
                                      milliseconds timeout = milliseconds(5000)) const;
  // Polls until at least `count` records satisfy `match` or the timeout passes; returns how
  // many do (more than `count` is not waited for, but is reported).
  Result<size_t> waitForAuditCount(const std::function<bool(const nlohmann::json&)>& match,
                                   size_t count, milliseconds timeout = milliseconds(5000)) const;
  // GET /metrics on the unix socket (curl, outside every sandbox).
  Result<std::string> scrapeMetrics() const;

  // Common argument tail: --sandbox, --cgroup, --policy, [--netns], --pin-root.
  std::vector<std::string> sandboxArgs(const std::string& policyFile) const;

 private:
  EgressdDaemon(Options opts, TempDir dir) : opts_(std::move(opts)), dir_(std::move(dir)) {}
  Status startProcess();

  Options opts_;
  TempDir dir_;
  PinRoot pinRoot_;
  std::string policyPath_;
  DaemonProcess process_;
};

}  // namespace egressd::test
