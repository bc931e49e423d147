// egressctl's command line, pure: argv -> the control-API request it stands for, and the
// API's JSON answers -> short human text. main.cpp does the I/O (socket, pinned maps);
// everything here is unit-tested (tests/unit/control/cli_commands_test.cpp).
//
// Global options, anywhere on the line: --socket PATH (env EGRESSD_SOCKET, default
// /run/egressd/egressd.sock), --json, --pin-root DIR (status, maps), -h/--help.
// Per-sandbox verbs name the sandbox with -s/--sandbox ID (env EGRESSD_SANDBOX).
#pragma once

#include <functional>
#include <optional>
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

struct Command {
  enum class Kind { kHelp, kStatus, kMaps, kApi };
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
};

// `args` without argv[0]. Errors carry the message to print after "egressctl: "; their
// code() is kExitUsage for usage errors (print usageText() too) and something else for
// inputs that could not be read (exit kExitFailure): see exitCodeFor().
Result<Command> parseCommand(const std::vector<std::string>& args, const Inputs& inputs);
int exitCodeFor(const Error& error);

std::string usageText();

// Human rendering of a 2xx answer to `command` (ends with '\n').
std::string renderHuman(const Command& command, const nlohmann::json& body);
// The daemon part of `egressctl status`, from GET /v1/status.
std::string renderDaemonStatus(const nlohmann::json& status);

}  // namespace egressd::cli
