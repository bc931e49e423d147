#include "daemon/hardened_run.h"

#include <spdlog/spdlog.h>

#include <utility>

#include "common/unique_fd.h"
#include "daemon/run_env.h"
#include "sandbox/hide.h"
#include "sandbox/spawn.h"

namespace egressd::daemon {

Result<int> runHardened(const HardenedCommand& c) {
  sandbox::SpawnOptions spawn;
  spawn.argv = c.argv;
  spawn.cgroupPath = c.cgroup;
  spawn.netnsPath = c.netns;
  spawn.allowIoUring = c.allowIoUring;
  spawn.env = c.env;
  setVariable(spawn.env, "EGRESSD_SANDBOX", c.sandboxId);
  // The command trusts the sandbox's interception CA without being told: variables that
  // add to the trust store get the CA, those that replace it get the system bundle + CA.
  if (!c.caCertificate.empty()) {
    const std::vector<std::pair<std::string, std::string>> trust = {
        {"SSL_CERT_FILE", c.caBundle},
        {"REQUESTS_CA_BUNDLE", c.caBundle},
        {"CURL_CA_BUNDLE", c.caBundle},
        {"GIT_SSL_CAINFO", c.caBundle},
        {"NODE_EXTRA_CA_CERTS", c.caCertificate},
        {"EGRESSD_CA_CERT", c.caCertificate}};
    for (const auto& [name, value] : trust) {
      setVariable(spawn.env, name, value);
    }
  }
  spawn.user = c.user;
  // Hidden from the command: each secret file of the policy (its directory is re-created
  // without it), egressd's run directory but for this sandbox's CA files (the owner records
  // and other sandboxes' files are not its business) and the daemon's state directory.
  std::vector<sandbox::KeepOnly> keepOnly = {
      sandbox::KeepOnly{c.runDir, {"sandboxes/" + c.sandboxId}}};
  if (!c.stateDir.empty()) {
    keepOnly.push_back(sandbox::KeepOnly{c.stateDir, {}});
  }
  auto hidden = sandbox::planHiding(c.secretFiles, keepOnly);
  if (!hidden.ok()) {
    return std::move(hidden).error();
  }
  for (const std::string& warning : hidden->warnings) {
    spdlog::warn("{}", warning);
  }
  spawn.hiddenDirs = std::move(hidden->dirs);
  UniqueFd landlock;
  if (auto ruleset = sandbox::createLandlockIsolation(); ruleset.ok()) {
    landlock = std::move(*ruleset);
    spawn.landlockRulesetFd = landlock.get();
  } else {
    spdlog::warn(
        "{}: the command can read /proc/PID/root and /proc/PID/environ of processes of its "
        "own user outside the sandbox",
        ruleset.error().message());
  }

  // Installed before the spawn so a Ctrl-C in between is delivered, not lost.
  auto forwarder = sandbox::SignalForwarder::create();
  if (!forwarder.ok()) {
    return std::move(forwarder).error();
  }
  auto child = sandbox::spawnInCgroup(spawn);
  if (!child.ok()) {
    return std::move(child).error();
  }
  (*forwarder)->setTarget(*child);
  // Stops forwarding before reaping, so a late signal never reaches a reused pid.
  return (*forwarder)->waitForTargetExit();
}

}  // namespace egressd::daemon
