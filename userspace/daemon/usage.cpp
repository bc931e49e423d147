#include "daemon/usage.h"

#include <algorithm>

#include "bpf/abi.h"
#include "daemon/sandbox_files.h"

namespace egressd::daemon {

namespace {

using T = OptionSpec::Type;
constexpr Mode kRun = Mode::kRun;
constexpr Mode kDaemon = Mode::kDaemon;
constexpr Mode kServe = Mode::kServe;
constexpr Mode kApply = Mode::kApply;
constexpr Mode kDetach = Mode::kDetach;
constexpr Mode kValidate = Mode::kValidate;
constexpr Mode kVerify = Mode::kVerify;

}  // namespace

const std::vector<ModeSpec>& modes() {
  static const std::vector<ModeSpec> kModes = {
      {kRun, "run", "run --policy FILE [OPTIONS] -- CMD [ARGS...]",
       "run one command in a fresh sandbox; exits with the command's status"},
      {kDaemon, "daemon", "daemon [OPTIONS]",
       "the multi-sandbox daemon with the control API (egressctl); the default mode"},
      {kServe, "serve", "serve --sandbox ID --cgroup PATH --policy FILE [OPTIONS]",
       "enforce one existing cgroup and serve its proxy until SIGTERM (also: egressd --sandbox "
       "ID ...)"},
      {kApply, "apply", "apply --sandbox ID --cgroup PATH --policy FILE",
       "arm or update one sandbox's kernel enforcement and exit (it stays pinned)"},
      {kDetach, "detach", "detach --sandbox ID [--if-exists]",
       "remove a sandbox's pinned enforcement"},
      {kValidate, "validate", "validate [--json] FILE...",
       "check policy files without a daemon: every error with FILE:LINE:COL"},
      {kVerify, "verify", "verify [--policy FILE] [--json]",
       "check this host and attack a throw-away sandbox (docs/verify.md)"},
  };
  return kModes;
}

const std::vector<OptionSpec>& options() {
  // Proxy options are shared by every mode that runs the proxy.
  static const std::vector<OptionSpec> kOptions = {
      {"policy", T::kString, "FILE", "", "policy file (YAML)", {kRun, kServe, kApply, kVerify}},
      {"sandbox", T::kString, "ID", "", "sandbox id", {kServe, kApply, kDetach}},
      {"cgroup",
       T::kString,
       "PATH",
       "",
       "the sandbox's cgroup (absolute, or relative to the cgroup v2 mount)",
       {kServe, kApply}},
      {"netns",
       T::kString,
       "PATH",
       "",
       "network namespace of a container sandbox (e.g. /var/run/netns/NAME)",
       {kServe, kApply}},
      {"if-exists",
       T::kFlag,
       nullptr,
       "",
       "exit 0, not 1, when there is no such sandbox (for scripts)",
       {kDetach}},
      {"json", T::kFlag, nullptr, "", "print the result as JSON", {kValidate, kVerify}},
      {"socket",
       T::kString,
       "PATH",
       "/run/egressd/egressd.sock",
       "control API socket",
       {kDaemon, kVerify}},
      {"state-dir",
       T::kString,
       "DIR",
       "/var/lib/egressd",
       "the daemon's sandboxes, overrides, applied policies and (by default) audit log",
       {kDaemon, kVerify}},
      {"policy-dir",
       T::kString,
       "DIR",
       "/etc/egressd/policies",
       "policy files (*.yaml), each named by its name: field",
       {kDaemon}},
      {"persist-secrets",
       T::kFlag,
       nullptr,
       "",
       "keep secret values set through the API in the state dir (0600 file)",
       {kDaemon}},
      {"cgroup-parent",
       T::kString,
       "PATH",
       "",
       "parent of the transient sandbox cgroup (default: the cgroup v2 mount)",
       {kRun}},
      {"cgroup-parent",
       T::kString,
       "PATH",
       "",
       "where `egressctl sandbox create --create-cgroup` makes cgroups (default: "
       "CGROUP2_MOUNT/egressd, created when missing)",
       {kDaemon}},
      {"kubernetes",
       T::kFlag,
       nullptr,
       "",
       "make and delete sandboxes for this node's pods annotated egressd.io/policy "
       "(docs/kubernetes.md)",
       {kDaemon}},
      {"kube-node",
       T::kString,
       "NAME",
       "",
       "the node whose pods are watched (default: $NODE_NAME)",
       {kDaemon}},
      {"kube-api",
       T::kString,
       "URL",
       "",
       "the API server (default: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT)",
       {kDaemon}},
      {"kube-token-file",
       T::kString,
       "FILE",
       "",
       "bearer token, read for every request (default: "
       "/var/run/secrets/kubernetes.io/serviceaccount/token)",
       {kDaemon}},
      {"kube-ca-file",
       T::kString,
       "FILE",
       "",
       "CA of the API server (default: /var/run/secrets/kubernetes.io/serviceaccount/ca.crt)",
       {kDaemon}},
      {"kube-cgroup-root",
       T::kString,
       "PATH",
       "",
       "the kubelet's cgroup root, above kubepods (default: the cgroup v2 mount)",
       {kDaemon}},
      {"allow-io-uring",
       T::kFlag,
       nullptr,
       "",
       "let the command use io_uring (its sockets bypass seccomp)",
       {kRun}},
      {"user",
       T::kString,
       "NAME|UID[:GID]",
       "",
       "run the command as this user (default: the sudo caller, else nobody; root only "
       "when named, with a warning)",
       {kRun}},
      {"env",
       T::kStrings,
       "NAME[=VALUE]",
       "",
       "pass NAME through, or set NAME=VALUE, for the command (repeatable); it otherwise "
       "gets PATH, TERM, LANG, LANGUAGE, LC_*, TZ, HOME, USER, LOGNAME",
       {kRun}},
      {"env-file",
       T::kStrings,
       "FILE",
       "",
       "NAME=VALUE lines for the command's environment (repeatable)",
       {kRun}},
      {"audit-log",
       T::kString,
       "FILE",
       "",
       "audit JSON lines to FILE (\"-\" = stdout, \"none\" = off); daemon default: "
       "STATE_DIR/audit.jsonl",
       {kRun, kDaemon, kServe}},
      {"metrics",
       T::kString,
       "ADDR",
       "",
       "Prometheus endpoint: unix:/PATH or 127.0.0.1:PORT",
       {kRun, kDaemon, kServe}},
      {"upstream-resolver",
       T::kString,
       "IP[:PORT]",
       "",
       "DNS server for allowed queries and upstream hosts (default: the policy's "
       "dns.upstream, else /etc/resolv.conf)",
       {kRun, kDaemon, kServe}},
      {"upstream-ca-file",
       T::kString,
       "FILE",
       "",
       "PEM bundle trusted for upstream TLS in addition to the system store",
       {kRun, kDaemon, kServe}},
      {"run-dir",
       T::kString,
       "DIR",
       kDefaultRunDir,
       "where per-sandbox files go (sandboxes/<id>/ca.crt)",
       {kRun, kDaemon, kServe, kDetach}},
      {"proxy-threads",
       T::kUnsigned,
       "N",
       "0",
       "proxy event-loop threads (0 = one per CPU)",
       {kRun, kDaemon, kServe}},
      {"no-proxy",
       T::kFlag,
       nullptr,
       "",
       "kernel enforcement only: proxied ports refuse connections",
       {kRun, kDaemon, kServe}},
      {"header-timeout-ms",
       T::kUnsigned,
       "MS",
       "15000",
       "a request head must arrive within this time (slowloris)",
       {kRun, kDaemon, kServe}},
      {"idle-timeout-ms",
       T::kUnsigned,
       "MS",
       "60000",
       "close keep-alive connections idle this long",
       {kRun, kDaemon, kServe}},
      {"io-timeout-ms",
       T::kUnsigned,
       "MS",
       "60000",
       "give up (504/close) when an upstream or body stalls this long",
       {kRun, kDaemon, kServe}},
      {"max-connections",
       T::kUnsigned,
       "N",
       "0",
       "proxied connections served at once; more get a 503 (0 = from RLIMIT_NOFILE)",
       {kRun, kDaemon, kServe}},
      {"pin-root",
       T::kString,
       "DIR",
       EGRESSD_PIN_ROOT_DEFAULT,
       "bpffs directory for pinned maps and links",
       {kRun, kDaemon, kServe, kApply, kDetach, kVerify}},
      {"log-level",
       T::kString,
       "LEVEL",
       "info",
       "trace|debug|info|warn|error",
       {kRun, kDaemon, kServe, kApply, kDetach, kValidate, kVerify}},
      {"help",
       T::kFlag,
       nullptr,
       "",
       "this help",
       {kRun, kDaemon, kServe, kApply, kDetach, kValidate, kVerify}},
  };
  return kOptions;
}

std::vector<const OptionSpec*> optionsOf(Mode mode) {
  std::vector<const OptionSpec*> out;
  for (const OptionSpec& option : options()) {
    if (std::find(option.modes.begin(), option.modes.end(), mode) != option.modes.end()) {
      out.push_back(&option);
    }
  }
  return out;
}

const ModeSpec& modeSpec(Mode mode) {
  for (const ModeSpec& spec : modes()) {
    if (spec.mode == mode) {
      return spec;
    }
  }
  return modes().front();
}

std::optional<ModeChoice> chooseMode(const std::vector<std::string>& args, std::string* error) {
  if (!args.empty() && !args[0].starts_with('-')) {
    for (const ModeSpec& spec : modes()) {
      if (args[0] == spec.name) {
        return ModeChoice{spec.mode, 1};
      }
    }
    if (error != nullptr) {
      *error = "unknown mode '" + args[0] + "'";
    }
    return std::nullopt;
  }
  for (const std::string& arg : args) {
    if (arg == "--") {
      break;
    }
    // The form before `serve` had a name: options of one sandbox and no mode word.
    for (const char* name : {"--sandbox", "--cgroup", "--policy"}) {
      if (arg == name || arg.starts_with(std::string(name) + "=")) {
        return ModeChoice{Mode::kServe, 0};
      }
    }
  }
  return ModeChoice{Mode::kDaemon, 0};
}

namespace {

std::string optionLines(Mode mode) {
  std::string out;
  for (const OptionSpec* option : optionsOf(mode)) {
    if (std::string(option->name) == "help" || std::string(option->name) == "log-level") {
      continue;  // shown once, in the overview's common part
    }
    std::string left = std::string("  --") + option->name;
    if (option->value != nullptr) {
      left += std::string(" ") + option->value;
    }
    std::string help = option->help;
    if (option->defaultValue[0] != '\0') {
      help += std::string(" (default ") + option->defaultValue + ")";
    }
    constexpr size_t kColumn = 30;
    constexpr size_t kWidth = 100;
    out += left + (left.size() < kColumn ? std::string(kColumn - left.size(), ' ')
                                         : "\n" + std::string(kColumn, ' '));
    // Word-wrapped to kWidth, continuation lines under the help column.
    size_t lineLength = kColumn;
    size_t start = 0;
    while (start < help.size()) {
      size_t end = help.find(' ', start);
      if (end == std::string::npos) {
        end = help.size();
      }
      const std::string word = help.substr(start, end - start);
      if (lineLength > kColumn && lineLength + 1 + word.size() > kWidth) {
        out += "\n" + std::string(kColumn, ' ');
        lineLength = kColumn;
      } else if (lineLength > kColumn) {
        out += ' ';
        ++lineLength;
      }
      out += word;
      lineLength += word.size();
      start = end + 1;
    }
    out += "\n";
  }
  return out;
}

std::string section(const ModeSpec& spec) {
  return std::string("egressd ") + spec.synopsis + "\n  " + spec.summary + "\n" +
         optionLines(spec.mode);
}

constexpr const char* kCommon =
    "common options:\n"
    "  --log-level LEVEL           trace|debug|info|warn|error (default info)\n"
    "  -h, --help                  help (egressd MODE --help: that mode only)\n"
    "  --version                   print the version\n";

}  // namespace

std::string overviewHelp() {
  std::string out =
      "egressd: kernel-level egress enforcer for Linux sandboxes\n"
      "\n"
      "usage: egressd MODE [OPTIONS]   (exit status: docs/design.md \"Exit codes\")\n";
  for (const ModeSpec& spec : modes()) {
    out += "\n" + section(spec);
  }
  return out + "\n" + kCommon;
}

std::string modeHelp(Mode mode) {
  return "usage: " + section(modeSpec(mode)) + "\n" + kCommon;
}

std::string seeHelp(Mode mode) {
  return std::string("see egressd ") + modeSpec(mode).name + " --help";
}

std::string versionText() {
#ifdef EGRESSD_VERSION
  return std::string("egressd ") + EGRESSD_VERSION + "\n";
#else
  return "egressd (unknown version)\n";
#endif
}

}  // namespace egressd::daemon
