// The multi-sandbox daemon under test (`egressd daemon` without --sandbox) and its client:
// ControlDaemon starts egressd with its own control socket, state, policy and run
// directories (all in one TempDir) and its own bpffs pin root, waits for "egressd ready",
// and drives it only through `egressctl` (or, for malformed input egressctl cannot send,
// raw HTTP over the unix socket with curl). On destruction it deletes every sandbox the
// daemon still has (so the daemon detaches them), stops it, and removes the pin root.
#pragma once

#include <chrono>
#include <functional>
#include <map>
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

// One `egressctl --json ...` run: its outcome and its stdout parsed (null when stdout is not
// JSON). On an API error egressctl exits 1 and prints {"error": {status, code, message}}.
struct CtlReply {
  RunResult run;
  nlohmann::json body;

  bool ok() const { return run.succeeded() && !body.is_null(); }
  // error.status / error.code / error.message of a failed call (0 / "" when absent).
  int errorStatus() const;
  std::string errorCode() const;
  std::string errorMessage() const;
  // argv, exit code, stdout, stderr: for assertion messages.
  std::string describe() const;
};

// One raw HTTP exchange with the control socket.
struct ApiReply {
  int status = 0;       // 0 when curl got no response
  nlohmann::json body;  // null when the body is not JSON
  std::string text;     // the raw body
  RunResult run;
  std::string describe() const;
};

class ControlDaemon {
 public:
  struct Options {
    std::string cgroupParent;  // --cgroup-parent when not empty
    bool persistSecrets = false;
    bool auditLog = true;          // --audit-log <dir>/audit.jsonl
    std::string upstreamResolver;  // --upstream-resolver when not empty
    std::string upstreamCaFile;    // --upstream-ca-file when not empty
    // Written into the policy directory before the first start: file name -> YAML.
    std::map<std::string, std::string> policyFiles;
    // "K=V" added to the daemon's environment (policy `secrets: X: {env: K}`).
    std::vector<std::string> extraEnv;
    std::vector<std::string> extraArgs{"--log-level", "debug"};
    milliseconds readyTimeout{30000};
  };

  // Starts the daemon and waits for "egressd ready"; the error carries its output.
  static Result<std::unique_ptr<ControlDaemon>> start(Options opts);
  ~ControlDaemon();
  ControlDaemon(const ControlDaemon&) = delete;
  ControlDaemon& operator=(const ControlDaemon&) = delete;

  const TempDir& dir() const { return dir_; }
  std::string socketPath() const { return dir_.path() + "/egressd.sock"; }
  std::string stateDir() const { return dir_.path() + "/state"; }
  std::string policyDir() const { return dir_.path() + "/policies"; }
  std::string runDir() const { return dir_.path() + "/run"; }
  const std::string& pinRoot() const { return pinRoot_.path(); }
  std::string auditLogPath() const { return opts_.auditLog ? dir_.path() + "/audit.jsonl" : ""; }
  const Options& options() const { return opts_; }

  bool running() { return process_.running(); }
  pid_t pid() const { return process_.pid(); }
  // Sends `sig` and waits (bounded) for the daemon to exit.
  Result<RunResult> killAndWait(int sig, milliseconds timeout = milliseconds(10000)) {
    return process_.killAndWait(sig, timeout);
  }
  // Starts the daemon again with the same arguments (state dir included) and waits.
  Status restart() { return process_.restart(); }
  Status signal(int sig) { return process_.signal(sig); }

  // Writes (atomically) / removes a file in the policy directory.
  Result<std::string> writePolicyFile(const std::string& fileName, const std::string& yaml) const;
  Status removePolicyFile(const std::string& fileName) const;

  // `egressctl --socket SOCK ARGS...` (no --json): human output.
  RunResult ctl(const std::vector<std::string>& args) const;
  // `egressctl --socket SOCK --json ARGS...`, stdout parsed.
  CtlReply ctlJson(const std::vector<std::string>& args) const;
  // The same for a per-sandbox verb: `... --json -s ID ARGS...`.
  CtlReply sandboxCtl(const std::string& sandboxId, const std::vector<std::string>& args) const;
  // `printf '%s\n' VALUE | egressctl --json secret set NAME`: the value goes through stdin
  // (never argv, where ps would show it), with the trailing newline egressctl strips.
  CtlReply secretSet(const std::string& name, const std::string& value) const;
  // `egressctl --json policy apply FILE` for `yaml` written to <dir>/applied/<fileName>.
  CtlReply policyApply(const std::string& fileName, const std::string& yaml) const;
  // Raw HTTP on the control socket with curl: `rawBody` (nullopt: no body) sent verbatim.
  ApiReply api(const std::string& method, const std::string& path,
               const std::optional<std::string>& rawBody = std::nullopt) const;

  // stdout+stderr of every run of the daemon so far.
  std::string logs() const { return process_.logs(); }
  // Every file of the state directory with its content, for messages about a failed restart.
  std::string stateDump() const;

  // Every complete audit line so far, parsed; a line that is not a JSON object is an error.
  Result<std::vector<nlohmann::json>> auditRecords() const;
  // Polls the audit log until a record satisfies `match`; the error lists what was seen.
  Result<nlohmann::json> waitForAudit(const std::function<bool(const nlohmann::json&)>& match,
                                      milliseconds timeout = milliseconds(5000)) const;

 private:
  ControlDaemon(Options opts, TempDir dir) : opts_(std::move(opts)), dir_(std::move(dir)) {}
  std::vector<std::string> daemonArgv() const;
  std::vector<std::string> ctlPrefix(bool json) const;
  // Best effort: deletes every sandbox the running daemon lists.
  void deleteAllSandboxes();

  Options opts_;
  TempDir dir_;
  PinRoot pinRoot_;
  DaemonProcess process_;
};

}  // namespace egressd::test
