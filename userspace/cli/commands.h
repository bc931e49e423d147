// egressctl's command line, pure: argv -> the control-API request it stands for, and the
// API's JSON answers -> short human text. Every verb is one entry of verbTable() holding its
// arguments, options, synopsis, request builder and human renderer; help (usageText) and
// shell completion (completion.h) are generated from that table, so a new verb is one entry.
// main.cpp does the I/O (socket, pinned maps, spawning); everything here is unit-tested
// (tests/unit/cli/).
//
// Global options, anywhere on the line: --socket PATH (env EGRESSD_SOCKET, default
// /run/egressd/egressd.sock), --json, --pin-root DIR (status, maps), -h/--help, --version.
// Per-sandbox verbs name the sandbox with -s/--sandbox ID (env EGRESSD_SANDBOX).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace egressd::cli {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // API error (non-2xx), connection failure, bad file
inline constexpr int kExitUsage = 64;   // EX_USAGE: unknown verb, missing or bad arguments

// Where a command's inputs come from; tests substitute their own.
struct Inputs {
  std::function<std::optional<std::string>(const std::string& name)> env;
  std::function<Result<std::string>(const std::string& path)> readFile;
  std::function<Result<std::string>()> readStdin;

  static Inputs system();  // getenv, the file system, std::cin
};

// `egressctl run` and `sandbox create --run`: how to start the command (see
// daemon/hardened_run.h; egressctl spawns it itself, as root, into the sandbox's cgroup).
struct RunRequest {
  std::vector<std::string> argv;  // after "--"
  std::string user;               // --user; "" = the sudo caller, else nobody
  std::vector<std::string> env;   // --env NAME / NAME=VALUE (repeatable)
  std::vector<std::string> envFiles;
  bool allowIoUring = false;
  bool deleteAfter = false;  // sandbox create --run: the sandbox lives as long as the command
};

struct Command {
  enum class Kind { kHelp, kVersion, kStatus, kMaps, kApi, kRun, kCompletion, kCompleteIds };
  Kind kind = Kind::kHelp;
  std::string verb;     // "sandbox create", "allow-host", "status", ...: selects the rendering
  std::string socket;   // resolved: --socket, EGRESSD_SOCKET or the default
  std::string pinRoot;  // --pin-root; empty = the build's default
  bool json = false;
  std::string sandbox;  // per-sandbox verbs, and audit tail's filter
  std::string subject;  // what the verb acts on, for messages: secret name, policy file, ...
  // kApi (and the daemon part of kStatus): the request.
  std::string method;
  std::string path;  // percent-encoded, query included
  nlohmann::json body = nullptr;
  bool follow = false;            // audit tail -f: repeat the request with after=<next>
  std::optional<RunRequest> run;  // kRun, and kApi for sandbox create --run
};

// What a positional argument or an option value is, for completion.
enum class ValueKind { kNone, kFile, kDir, kSandbox, kPolicy, kUser, kLayer, kDecision, kShell };

struct OptionInfo {
  std::string name;       // long name without "--"
  std::string shortName;  // "-s", or ""
  bool takesValue;
  ValueKind value;
  bool repeatable = false;
};

struct VerbContext;
struct Verb {
  std::string name;  // "sandbox create": a group word and a sub-command, or one word
  size_t minArgs = 0;
  long maxArgs = 0;               // -1: any
  std::set<std::string> options;  // its own, beyond the global ones
  bool perSandbox = false;        // takes -s ID (or EGRESSD_SANDBOX)
  std::string synopsis;           // after "egressctl "
  ValueKind args = ValueKind::kNone;
  bool takesCommand = false;  // "-- CMD ARGS" is a command, not positionals
  Command::Kind kind = Command::Kind::kApi;
  // Fills the request (method, path, body, subject); errors are usage errors unless an
  // input could not be read.
  std::function<Status(VerbContext&)> build;
  // The human text of a 2xx answer; null: the JSON, indented.
  std::function<std::string(const Command&, const nlohmann::json&)> render;
};

// In the order an operator meets them (help lists them so).
const std::vector<Verb>& verbTable();
const std::vector<OptionInfo>& optionTable();
const std::vector<std::string>& verbGroups();  // "sandbox", "secret", "policy", "audit", ...
const std::set<std::string>& globalOptions();

// `args` without argv[0]. Errors carry the message to print after "egressctl: "; their
// code() is kExitUsage for usage errors (print usageHint() too) and something else for
// inputs that could not be read (exit kExitFailure): see exitCodeFor().
Result<Command> parseCommand(const std::vector<std::string>& args, const Inputs& inputs);
int exitCodeFor(const Error& error);

std::string usageText();
std::string usageHint();  // the line after a usage error

// Human rendering of a 2xx answer to `command` (ends with '\n').
std::string renderHuman(const Command& command, const nlohmann::json& body);
// The daemon part of `egressctl status`, from GET /v1/status.
std::string renderDaemonStatus(const nlohmann::json& status);
// One audit record as a line of fixed columns (TIME SANDBOX LAYER DECISION, then what was
// asked and why), and the header line for them: `audit tail`, also while following.
std::string renderAuditRecord(const nlohmann::json& record);
std::string auditHeader();
// The request after one that ended at byte `next` of the log, for audit tail -f: the same
// filters, no line count (only what is written from now on), after=next.
std::string auditFollowPath(const std::string& firstPath, uint64_t next);

}  // namespace egressd::cli
