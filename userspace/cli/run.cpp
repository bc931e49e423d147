#include "cli/run.h"

#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <iostream>
#include <set>

#include "control/client.h"
#include "daemon/hardened_run.h"
#include "daemon/run_env.h"
#include "sandbox/identity.h"

extern char** environ;

namespace egressd::cli {

namespace {

std::vector<std::string> strings(const nlohmann::json& body, const char* key) {
  std::vector<std::string> out;
  if (body.contains(key) && body[key].is_array()) {
    for (const auto& item : body[key]) {
      if (item.is_string()) {
        out.push_back(item.get<std::string>());
      }
    }
  }
  return out;
}

std::string text(const nlohmann::json& body, const char* key) {
  return body.contains(key) && body[key].is_string() ? body[key].get<std::string>() : "";
}

}  // namespace

int runInSandbox(const Command& command, const std::string& sandboxId) {
  if (!command.run) {
    return kExitFailure;
  }
  const RunRequest& run = *command.run;
  if (::geteuid() != 0) {
    std::cerr << "egressctl: run needs root: it starts the command inside sandbox " << sandboxId
              << "'s cgroup and drops the command to --user (default: the sudo caller)\n";
    return kExitFailure;
  }
  // Like egressd run: /proc/<egressctl> is not the command's to read.
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  spdlog::set_pattern("egressctl %^%l%$: %v");
  control::ControlClient client(command.socket);
  auto response =
      client.call("GET", "/v1/sandboxes/" + control::percentEncode(sandboxId) + "/spawn");
  if (!response.ok()) {
    std::cerr << "egressctl: " << response.error().message() << "\n";
    return kExitFailure;
  }
  if (!response->ok()) {
    std::cerr << "egressctl: " << control::errorMessage(*response) << "\n";
    return kExitFailure;
  }
  const nlohmann::json& info = response->body;

  auto user = sandbox::resolveRunAsUser(run.user, ::getenv("SUDO_UID"), ::getenv("SUDO_GID"));
  if (!user.ok()) {
    std::cerr << "egressctl: " << user.error().message() << "\n";
    return kExitUsage;
  }
  if (user->isRoot()) {
    spdlog::warn(
        "--user root: the command runs as root (without the capabilities that bypass "
        "enforcement); secret files stay hidden, but root can read any other root-only file");
  }
  daemon::RunEnvironmentInput envInput;
  for (char** e = environ; *e != nullptr; ++e) {
    envInput.inherited.emplace_back(*e);
  }
  for (const std::string& variable : strings(info, "secretVariables")) {
    envInput.secretVariables.insert(variable);
  }
  envInput.userName = user->name;
  envInput.home = user->home;
  envInput.envArgs = run.env;
  envInput.envFiles = run.envFiles;
  auto env = daemon::buildRunEnvironment(envInput);
  if (!env.ok()) {
    std::cerr << "egressctl: " << env.error().message() << "\n";
    return kExitUsage;
  }

  daemon::HardenedCommand hardened;
  hardened.sandboxId = sandboxId;
  hardened.cgroup = text(info, "cgroup");
  hardened.netns = text(info, "netns");
  hardened.argv = run.argv;
  hardened.user = *user;
  hardened.env = std::move(*env);
  hardened.caCertificate = text(info, "caCert");
  hardened.caBundle = text(info, "caBundle");
  hardened.secretFiles = strings(info, "secretFiles");
  hardened.runDir = text(info, "runDir");
  hardened.stateDir = text(info, "stateDir");
  hardened.allowIoUring = run.allowIoUring;
  if (hardened.cgroup.empty() || hardened.runDir.empty()) {
    std::cerr << "egressctl: the daemon's answer for sandbox " << sandboxId
              << " names no cgroup or run dir\n";
    return kExitFailure;
  }
  auto status = daemon::runHardened(hardened);
  if (!status.ok()) {
    std::cerr << "egressctl: run in sandbox " << sandboxId << ": " << status.error().message()
              << "\n";
    return kExitFailure;
  }
  return *status;
}

}  // namespace egressd::cli
