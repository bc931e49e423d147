// egressd: every mode (daemon/usage.h lists them and their options). Wiring only.
#include <spdlog/spdlog.h>

#include <sys/resource.h>

#include <cstring>
// --env NAME=VALUE is repeated, never split: a value may hold commas.
#define CXXOPTS_VECTOR_DELIMITER '\0'
#include <cxxopts.hpp>
#include <iostream>

#include "bpf/abi.h"
#include "daemon/commands.h"
#include "daemon/sandbox_files.h"
#include "daemon/service_manager.h"
#include "daemon/usage.h"
#include "host/features.h"
#include "verify/probe_main.h"
#include "verify/verify.h"

namespace {

using egressd::daemon::kExitUsage;

// One line per host feature probe (host/features.h): what this kernel and host offer
// egressd, so a report from the field says which features it ran with.
void logHostFeatures(spdlog::level::level_enum level) {
  if (!spdlog::should_log(level)) {
    return;
  }
  for (const auto& feature : egressd::host::probeAll()) {
    spdlog::log(level, "host feature {}", feature.describe());
  }
}

// cxxopts with only `mode`'s options: anything else is a usage error naming the mode's help.
cxxopts::Options optionsFor(egressd::daemon::Mode mode) {
  using egressd::daemon::OptionSpec;
  cxxopts::Options out("egressd");
  for (const OptionSpec* o : egressd::daemon::optionsOf(mode)) {
    const std::string name = std::string(o->name) == "help" ? "h,help" : o->name;
    switch (o->type) {
      case OptionSpec::Type::kFlag:
        out.add_options()(name, o->help);
        break;
      case OptionSpec::Type::kString:
        out.add_options()(name, o->help,
                          cxxopts::value<std::string>()->default_value(o->defaultValue));
        break;
      case OptionSpec::Type::kUnsigned:
        out.add_options()(name, o->help,
                          cxxopts::value<unsigned>()->default_value(o->defaultValue));
        break;
      case OptionSpec::Type::kStrings:
        out.add_options()(name, o->help, cxxopts::value<std::vector<std::string>>());
        break;
    }
  }
  out.add_options()("version", "print the version");
  return out;
}

bool modeHas(egressd::daemon::Mode mode, const std::string& name) {
  for (const egressd::daemon::OptionSpec* o : egressd::daemon::optionsOf(mode)) {
    if (name == o->name) {
      return true;
    }
  }
  return false;
}

void raiseFileLimit() {
  // The proxy holds two descriptors per sandbox connection: take the hard limit.
  struct rlimit nofile {};
  if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &nofile);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Hidden: the probe `egressd verify` runs inside its throw-away sandbox (verify/probe_main.h).
  if (argc > 1 && std::strcmp(argv[1], egressd::verify::kProbeSubcommand) == 0) {
    return egressd::verify::probeMain(std::vector<std::string>(argv + 2, argv + argc));
  }
  using egressd::daemon::Mode;
  // `egressd run ... -- CMD ARGS`: everything after "--" belongs to the command.
  std::vector<std::string> command;
  std::vector<std::string> own;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") == 0) {
      command.assign(argv + i + 1, argv + argc);
      break;
    }
    own.emplace_back(argv[i]);
  }
  for (const std::string& arg : own) {
    if (arg == "--version") {
      std::cout << egressd::daemon::versionText();
      return 0;
    }
  }
  // Help before a mode word is the overview (`egressd` alone is the daemon, not help).
  if (!own.empty() && (own[0] == "-h" || own[0] == "--help" || own[0] == "help")) {
    std::cout << egressd::daemon::overviewHelp();
    return 0;
  }
  std::string modeError;
  auto choice = egressd::daemon::chooseMode(own, &modeError);
  if (!choice) {
    std::cerr << "egressd: " << modeError << "\nsee egressd --help\n";
    return kExitUsage;
  }
  const Mode mode = choice->mode;
  const std::string see = egressd::daemon::seeHelp(mode);
  auto usageError = [&](const std::string& message) {
    std::cerr << "egressd: " << message << "\n" << see << "\n";
    return kExitUsage;
  };

  cxxopts::Options options = optionsFor(mode);
  cxxopts::ParseResult args;
  // A mode's own options only: cxxopts throws for a name it was not given.
  auto stringOr = [&](cxxopts::ParseResult& parsed, const char* name) -> std::string {
    return modeHas(mode, name) ? parsed[name].as<std::string>() : std::string();
  };
  std::vector<std::string> positionals;
  try {
    std::vector<char*> view;
    view.push_back(argv[0]);
    for (size_t i = choice->consumed; i < own.size(); ++i) {
      view.push_back(own[i].data());
    }
    int n = static_cast<int>(view.size());
    char** v = view.data();
    args = options.parse(n, v);
    positionals = args.unmatched();
  } catch (const std::exception& e) {
    return usageError(e.what());
  }
  if (args.count("help") != 0U) {
    std::cout << egressd::daemon::modeHelp(mode);
    return 0;
  }
  if (mode != Mode::kValidate && !positionals.empty()) {
    return usageError("unexpected argument '" + positionals[0] + "'" +
                      (mode == Mode::kRun ? " (the command goes after --)" : ""));
  }
  if (mode != Mode::kRun && !command.empty()) {
    return usageError("only egressd run takes a command after --");
  }
  // Logs go to stderr: stdout belongs to `egressd run`'s command and to the "ready" line.
  egressd::daemon::setupLogging(args["log-level"].as<std::string>());
  if (const std::string note = egressd::verify::buildNote(); !note.empty()) {
    spdlog::warn("{}", note);
  }

  egressd::daemon::SandboxOptions sandbox{stringOr(args, "sandbox"), stringOr(args, "cgroup"),
                                          stringOr(args, "policy"), stringOr(args, "netns"),
                                          stringOr(args, "pin-root")};

  egressd::daemon::ProxyOptions proxy;
  proxy.enabled = args.count("no-proxy") == 0U;
  proxy.auditLog = stringOr(args, "audit-log");
  if (proxy.auditLog == "none") {
    proxy.auditLog.clear();
  } else if (mode == Mode::kDaemon && args.count("audit-log") == 0U) {
    // A daemon always has an audit trail for `egressctl audit tail` unless told otherwise.
    proxy.auditLog = stringOr(args, "state-dir") + "/" + egressd::daemon::kDefaultAuditFile;
  }
  proxy.metrics = stringOr(args, "metrics");
  proxy.upstreamResolver = stringOr(args, "upstream-resolver");
  proxy.upstreamCaFile = stringOr(args, "upstream-ca-file");
  proxy.runDir = stringOr(args, "run-dir");
  if (proxy.runDir.empty()) {
    proxy.runDir = egressd::daemon::kDefaultRunDir;
  }
  if (modeHas(mode, "proxy-threads")) {
    proxy.threads = args["proxy-threads"].as<unsigned>();
    proxy.headerTimeoutMs = args["header-timeout-ms"].as<unsigned>();
    proxy.idleTimeoutMs = args["idle-timeout-ms"].as<unsigned>();
    proxy.ioTimeoutMs = args["io-timeout-ms"].as<unsigned>();
    proxy.maxConnections = args["max-connections"].as<unsigned>();
  }

  switch (mode) {
    case Mode::kDaemon: {
      raiseFileLimit();
      egressd::daemon::ControlDaemonOptions control{sandbox.pinRoot,
                                                    stringOr(args, "socket"),
                                                    stringOr(args, "state-dir"),
                                                    stringOr(args, "policy-dir"),
                                                    stringOr(args, "cgroup-parent"),
                                                    args.count("persist-secrets") != 0U,
                                                    {}};
      control.kubernetes = {args.count("kubernetes") != 0U, stringOr(args, "kube-node"),
                            stringOr(args, "kube-api"),     stringOr(args, "kube-token-file"),
                            stringOr(args, "kube-ca-file"), stringOr(args, "kube-cgroup-root")};
      if (!control.kubernetes.enabled) {
        for (const char* option :
             {"kube-node", "kube-api", "kube-token-file", "kube-ca-file", "kube-cgroup-root"}) {
          if (args.count(option) != 0U) {
            return usageError(std::string("--") + option + " goes with --kubernetes");
          }
        }
      }
      logHostFeatures(spdlog::level::info);
      return egressd::daemon::controlDaemonCommand(control, proxy);
    }
    case Mode::kServe:
    case Mode::kApply: {
      if (sandbox.id.empty() || sandbox.cgroup.empty() || sandbox.policyFile.empty()) {
        return usageError("--sandbox, --cgroup and --policy are required");
      }
      if (mode == Mode::kApply) {
        return egressd::daemon::applyCommand(sandbox);
      }
      raiseFileLimit();
      logHostFeatures(spdlog::level::info);
      return egressd::daemon::serveCommand(sandbox, proxy);
    }
    case Mode::kDetach:
      if (sandbox.id.empty()) {
        return usageError("--sandbox is required");
      }
      return egressd::daemon::detachCommand(sandbox.id, sandbox.pinRoot, proxy.runDir,
                                            args.count("if-exists") != 0U);
    case Mode::kValidate:
      if (positionals.empty()) {
        return usageError("validate needs at least one policy FILE");
      }
      return egressd::daemon::validateCommand(positionals, args.count("json") != 0U);
    case Mode::kVerify:
      return egressd::verify::verifyCommand(
          {stringOr(args, "policy"), args.count("json") != 0U, stringOr(args, "pin-root"),
           stringOr(args, "state-dir"), stringOr(args, "socket")});
    case Mode::kRun: {
      if (sandbox.policyFile.empty() || command.empty()) {
        return usageError("run needs --policy FILE and a command after --");
      }
      egressd::daemon::RunOptions run{sandbox.policyFile,
                                      sandbox.pinRoot,
                                      stringOr(args, "cgroup-parent"),
                                      args.count("allow-io-uring") != 0U,
                                      command,
                                      stringOr(args, "user"),
                                      {},
                                      {},
                                      proxy};
      if (args.count("env") != 0U) {
        run.env = args["env"].as<std::vector<std::string>>();
      }
      if (args.count("env-file") != 0U) {
        run.envFiles = args["env-file"].as<std::vector<std::string>>();
      }
      // The command's terminal is egressd run's stderr too: only with --log-level debug.
      logHostFeatures(spdlog::level::debug);
      return egressd::daemon::runCommand(run);
    }
  }
  return kExitUsage;
}
