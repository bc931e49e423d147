// The egressd subcommands. Each returns the process exit code; errors are printed
// by the command itself (file, sandbox, errno text), so main() only dispatches.
#pragma once

#include <string>
#include <vector>

#include "daemon/proxy_runtime.h"

namespace egressd::daemon {

inline constexpr int kExitUsage = 64;
inline constexpr int kExitBadPolicy = 2;
inline constexpr int kExitFailure = 1;

struct SandboxOptions {
  std::string id;
  std::string cgroup;  // path, absolute or relative to the cgroup v2 mount
  std::string policyFile;
  std::string netns;  // optional network namespace path (container sandboxes)
  std::string pinRoot;
};

// Arms the sandbox, prints "egressd ready", then serves until SIGTERM/SIGINT;
// SIGHUP re-reads the policy. Enforcement stays pinned when it exits.
int serveCommand(const SandboxOptions& options, const ProxyOptions& proxy);
// Arms (or updates) the sandbox and exits; enforcement stays pinned.
int applyCommand(const SandboxOptions& options);
// Removes a sandbox's links, rules and slot. A sandbox with nothing pinned is an error
// (kExitFailure) unless ifExists.
int detachCommand(const std::string& id, const std::string& pinRoot, const std::string& runDir,
                  bool ifExists = false);
// `egressd validate FILE...`: every error of every file on stderr (or one JSON document on
// stdout); kExitBadPolicy when any file has an error, kExitFailure when one cannot be read.
int validateCommand(const std::vector<std::string>& files, bool json);

// `egressd daemon --kubernetes` (daemon/kube_sandboxes.h, docs/kubernetes.md).
struct KubernetesOptions {
  bool enabled = false;
  std::string nodeName;    // "" = $NODE_NAME
  std::string apiServer;   // "" = https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT
  std::string tokenFile;   // "" = the service account's token
  std::string caFile;      // "" = the service account's ca.crt
  std::string cgroupRoot;  // "" = the cgroup2 mount
};

struct ControlDaemonOptions {
  std::string pinRoot;
  std::string socketPath;
  std::string stateDir;
  std::string policyDir;
  std::string cgroupParent;  // where `sandbox create --create-cgroup` makes cgroups
  bool persistSecrets = false;
  KubernetesOptions kubernetes;  // --kubernetes: sandboxes for this node's annotated pods
};
// The multi-sandbox daemon: restores its state, serves the control API on a unix socket,
// prints "egressd ready"; SIGHUP reloads the policy files; SIGTERM/SIGINT exit with
// enforcement and state kept.
int controlDaemonCommand(const ControlDaemonOptions& options, const ProxyOptions& proxy);

struct RunOptions {
  std::string policyFile;
  std::string pinRoot;
  std::string cgroupParent;  // default: the cgroup v2 root
  bool allowIoUring = false;
  std::vector<std::string> command;
  // --user NAME|UID[:GID]; empty: SUDO_UID's user, else nobody.
  std::string user;
  // --env NAME / NAME=VALUE and --env-file FILE, applied in that order (files first).
  std::vector<std::string> env;
  std::vector<std::string> envFiles;
  ProxyOptions proxy;
};
// A transient sandbox around one command; returns the command's exit code.
int runCommand(const RunOptions& options);

}  // namespace egressd::daemon
