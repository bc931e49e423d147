// egressd: the daemon (default), `apply`, `detach` and `run`. Wiring only.
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <sys/resource.h>

#include <cstring>
// --env NAME=VALUE is repeated, never split: a value may hold commas.
#define CXXOPTS_VECTOR_DELIMITER '\0'
#include <cxxopts.hpp>
#include <iostream>

#include "bpf/abi.h"
#include "daemon/commands.h"
#include "host/features.h"
#include "verify/probe_main.h"
#include "verify/verify.h"

namespace {

using egressd::daemon::kExitUsage;

// Logs go to stderr: stdout belongs to `egressd run`'s command and to the "ready" line.
void setLogLevel(const std::string& level) {
  spdlog::set_default_logger(spdlog::stderr_color_mt("egressd"));
  spdlog::set_pattern("egressd %^%l%$: %v");
  spdlog::set_level(spdlog::level::from_str(level));
}

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

}  // namespace

int main(int argc, char** argv) {
  // Hidden: the probe `egressd verify` runs inside its throw-away sandbox (verify/probe_main.h).
  if (argc > 1 && std::strcmp(argv[1], egressd::verify::kProbeSubcommand) == 0) {
    return egressd::verify::probeMain(std::vector<std::string>(argv + 2, argv + argc));
  }
  // `egressd run ... -- CMD ARGS`: everything after "--" belongs to the command.
  std::vector<std::string> command;
  int ownArgc = argc;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") == 0) {
      ownArgc = i;
      for (int j = i + 1; j < argc; ++j) {
        command.emplace_back(argv[j]);
      }
      break;
    }
  }
  std::string sub;
  int first = 1;
  if (ownArgc > 1 && argv[1][0] != '-') {
    sub = argv[1];
    first = 2;
  }

  cxxopts::Options options("egressd", "kernel-level egress enforcer for Linux sandboxes");
  options.custom_help(
      "[daemon|apply|detach|run|verify] [OPTIONS] [-- CMD ARGS...]\n\n"
      "  egressd daemon [--socket S --state-dir D --policy-dir P]   the multi-sandbox daemon\n"
      "                                                     with the control API (egressctl)\n"
      "  egressd --sandbox ID --cgroup PATH --policy FILE   enforce one sandbox and serve\n"
      "  egressd apply  --sandbox ID --cgroup PATH --policy FILE   enforce and exit\n"
      "  egressd detach --sandbox ID                        remove a sandbox's enforcement\n"
      "  egressd run --policy FILE -- CMD ARGS...           run CMD in a fresh sandbox\n"
      "  egressd verify [--policy FILE] [--json]            check this host and attack a\n"
      "                                                     throw-away sandbox (docs/verify.md)");
  options.add_options()("sandbox", "sandbox id", cxxopts::value<std::string>()->default_value(""))(
      "cgroup", "sandbox cgroup (absolute, or relative to the cgroup v2 mount)",
      cxxopts::value<std::string>()->default_value(""))(
      "policy", "policy file (YAML)", cxxopts::value<std::string>()->default_value(""))(
      "netns", "network namespace of a container sandbox (e.g. /var/run/netns/NAME)",
      cxxopts::value<std::string>()->default_value(""))(
      "pin-root", "bpffs directory for pinned maps and links",
      cxxopts::value<std::string>()->default_value(EGRESSD_PIN_ROOT_DEFAULT))(
      "socket", "daemon: control API socket",
      cxxopts::value<std::string>()->default_value("/run/egressd/egressd.sock"))(
      "state-dir", "daemon: where sandboxes, overrides and applied policies are kept",
      cxxopts::value<std::string>()->default_value("/var/lib/egressd"))(
      "policy-dir", "daemon: policy files (*.yaml), each named by its name: field",
      cxxopts::value<std::string>()->default_value("/etc/egressd/policies"))(
      "persist-secrets",
      "daemon: keep secret values set through the API in the state dir (0600 file)")(
      "cgroup-parent",
      "run: parent cgroup of the transient sandbox; daemon: where --create-cgroup makes them",
      cxxopts::value<std::string>()->default_value(""))(
      "allow-io-uring", "run: let the command use io_uring (its sockets bypass seccomp)")(
      "user",
      "run: run the command as NAME|UID[:GID] (default: the sudo caller, else nobody; "
      "root only when named, with a warning)",
      cxxopts::value<std::string>()->default_value(""))(
      "env",
      "run: NAME (pass egressd's value through) or NAME=VALUE for the command (repeatable); "
      "the command otherwise gets PATH, TERM, LANG, LANGUAGE, LC_*, TZ, HOME, USER, LOGNAME",
      cxxopts::value<std::vector<std::string>>())(
      "env-file", "run: NAME=VALUE lines for the command's environment (repeatable)",
      cxxopts::value<std::vector<std::string>>())("audit-log",
                                                  "audit JSON lines to FILE (\"-\" = stdout)",
                                                  cxxopts::value<std::string>()->default_value(""))(
      "metrics", "Prometheus endpoint: unix:/PATH or 127.0.0.1:PORT",
      cxxopts::value<std::string>()->default_value(""))(
      "upstream-resolver",
      "DNS server egressd forwards sandboxes' allowed queries to and resolves upstream hosts "
      "with (default: the policy's dns.upstream, else /etc/resolv.conf)",
      cxxopts::value<std::string>()->default_value(""))(
      "upstream-ca-file", "PEM bundle trusted for upstream TLS in addition to the system store",
      cxxopts::value<std::string>()->default_value(""))(
      "run-dir", "where per-sandbox files go (sandboxes/<id>/ca.crt)",
      cxxopts::value<std::string>()->default_value(egressd::daemon::kDefaultRunDir))(
      "proxy-threads", "proxy event-loop threads (0 = one per CPU)",
      cxxopts::value<unsigned>()->default_value("0"))(
      "no-proxy", "kernel enforcement only: proxied ports refuse connections")(
      "header-timeout-ms", "a request head must arrive within this time (slowloris)",
      cxxopts::value<unsigned>()->default_value("15000"))(
      "idle-timeout-ms", "close keep-alive connections idle this long",
      cxxopts::value<unsigned>()->default_value("60000"))(
      "io-timeout-ms", "give up (504/close) when an upstream or body stalls this long",
      cxxopts::value<unsigned>()->default_value("60000"))("json",
                                                          "verify: print the results as JSON")(
      "max-connections",
      "proxied connections served at once; more get a 503 (0 = from RLIMIT_NOFILE)",
      cxxopts::value<uint64_t>()->default_value("0"))(
      "log-level", "trace|debug|info|warn|error",
      cxxopts::value<std::string>()->default_value("info"))("h,help", "this help");

  cxxopts::ParseResult args;
  try {
    std::vector<char*> own(argv + first, argv + ownArgc);
    own.insert(own.begin(), argv[0]);
    int n = static_cast<int>(own.size());
    char** v = own.data();
    args = options.parse(n, v);
  } catch (const std::exception& e) {
    std::cerr << "egressd: " << e.what() << "\n" << options.help() << "\n";
    return kExitUsage;
  }
  if (args.count("help") != 0U) {
    std::cout << options.help() << "\n";
    return 0;
  }
  setLogLevel(args["log-level"].as<std::string>());
  if (const std::string note = egressd::verify::buildNote(); !note.empty()) {
    spdlog::warn("{}", note);
  }
  if (sub == "verify") {
    return egressd::verify::verifyCommand(
        {args["policy"].as<std::string>(), args.count("json") != 0U,
         args["pin-root"].as<std::string>(), args["state-dir"].as<std::string>(),
         args["socket"].as<std::string>()});
  }

  egressd::daemon::SandboxOptions sandbox{
      args["sandbox"].as<std::string>(), args["cgroup"].as<std::string>(),
      args["policy"].as<std::string>(), args["netns"].as<std::string>(),
      args["pin-root"].as<std::string>()};

  egressd::daemon::ProxyOptions proxy;
  proxy.enabled = args.count("no-proxy") == 0U;
  proxy.auditLog = args["audit-log"].as<std::string>();
  proxy.metrics = args["metrics"].as<std::string>();
  proxy.upstreamResolver = args["upstream-resolver"].as<std::string>();
  proxy.threads = args["proxy-threads"].as<unsigned>();
  proxy.upstreamCaFile = args["upstream-ca-file"].as<std::string>();
  proxy.runDir = args["run-dir"].as<std::string>();
  proxy.headerTimeoutMs = args["header-timeout-ms"].as<unsigned>();
  proxy.idleTimeoutMs = args["idle-timeout-ms"].as<unsigned>();
  proxy.ioTimeoutMs = args["io-timeout-ms"].as<unsigned>();
  proxy.maxConnections = args["max-connections"].as<uint64_t>();

  auto require = [&](bool ok, const char* what) {
    if (!ok) {
      std::cerr << "egressd: " << what << "\n" << options.help() << "\n";
    }
    return ok;
  };

  const bool singleSandbox =
      !sandbox.id.empty() || !sandbox.cgroup.empty() || !sandbox.policyFile.empty();
  if ((sub.empty() || sub == "daemon") && !singleSandbox) {
    struct rlimit nofile {};
    if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
      nofile.rlim_cur = nofile.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &nofile);
    }
    egressd::daemon::ControlDaemonOptions control{sandbox.pinRoot,
                                                  args["socket"].as<std::string>(),
                                                  args["state-dir"].as<std::string>(),
                                                  args["policy-dir"].as<std::string>(),
                                                  args["cgroup-parent"].as<std::string>(),
                                                  args.count("persist-secrets") != 0U};
    logHostFeatures(spdlog::level::info);
    return egressd::daemon::controlDaemonCommand(control, proxy);
  }
  if (sub.empty() || sub == "daemon" || sub == "apply") {
    if (!require(!sandbox.id.empty() && !sandbox.cgroup.empty() && !sandbox.policyFile.empty(),
                 "--sandbox, --cgroup and --policy are required")) {
      return kExitUsage;
    }
    if (sub == "apply") {
      return egressd::daemon::applyCommand(sandbox);
    }
    // The proxy holds two descriptors per sandbox connection: take the hard limit.
    struct rlimit nofile {};
    if (::getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
      nofile.rlim_cur = nofile.rlim_max;
      ::setrlimit(RLIMIT_NOFILE, &nofile);
    }
    logHostFeatures(spdlog::level::info);
    return egressd::daemon::serveCommand(sandbox, proxy);
  }
  if (sub == "detach") {
    if (!require(!sandbox.id.empty(), "--sandbox is required")) {
      return kExitUsage;
    }
    return egressd::daemon::detachCommand(sandbox.id, sandbox.pinRoot, proxy.runDir);
  }
  if (sub == "run") {
    if (!require(!sandbox.policyFile.empty() && !command.empty(),
                 "run needs --policy FILE and a command after --")) {
      return kExitUsage;
    }
    egressd::daemon::RunOptions run{sandbox.policyFile,
                                    sandbox.pinRoot,
                                    args["cgroup-parent"].as<std::string>(),
                                    args.count("allow-io-uring") != 0U,
                                    command,
                                    args["user"].as<std::string>(),
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
  std::cerr << "egressd: unknown command '" << sub << "'\n" << options.help() << "\n";
  return kExitUsage;
}
