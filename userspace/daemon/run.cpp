// egressd run --policy FILE -- CMD ARGS: a transient sandbox around one command, with
// an embedded enforcer and no separate daemon. The cgroup is armed before the command
// starts (it is born inside the cgroup), and removed afterwards, also on Ctrl-C.
// If egressd itself is killed, the pinned links keep the cgroup enforced (fail closed).
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <iostream>

#include "common/scope_guard.h"
#include "daemon/commands.h"
#include "daemon/proxy_runtime.h"
#include "daemon/sandbox_request.h"
#include "loader/enforcer.h"
#include "loader/maps.h"
#include "policy/policy.h"
#include "proxy/listener_reservation.h"
#include "sandbox/cgroup.h"
#include "sandbox/spawn.h"

extern char** environ;

namespace egressd::daemon {

int runCommand(const RunOptions& o) {
  auto policy = policy::loadPolicyFile(o.policyFile);
  if (!policy.ok()) {
    std::cerr << "egressd: " << policy.error().message() << "\n";
    return kExitBadPolicy;
  }
  for (const std::string& warning : policy->warnings) {
    spdlog::warn("{}", warning);
  }

  std::string parent = o.cgroupParent;
  if (parent.empty()) {
    auto mount = sandbox::findCgroup2Mount();
    if (!mount.ok()) {
      std::cerr << "egressd: " << mount.error().message() << "\n";
      return kExitFailure;
    }
    parent = *mount;
  } else {
    auto resolved = sandbox::resolveCgroupPath(parent);
    if (!resolved.ok()) {
      std::cerr << "egressd: " << resolved.error().message() << "\n";
      return kExitFailure;
    }
    parent = *resolved;
  }
  const std::string id = "run-" + std::to_string(::getpid());
  const std::string cgroup = parent + "/egressd-" + id;
  if (auto created = sandbox::createCgroup(cgroup); !created.ok()) {
    std::cerr << "egressd: " << created.error().message() << "\n";
    return kExitFailure;
  }
  loader::Enforcer enforcer(o.pinRoot);
  ScopeGuard cleanup([&] {
    if (auto removed = sandbox::removeCgroupTree(cgroup); !removed.ok()) {
      spdlog::error("removing {}: {}", cgroup, removed.error().message());
    }
    if (auto detached = enforcer.detach(id); !detached.ok()) {
      spdlog::error("detaching {}: {}", id, detached.error().message());
    }
  });

  auto reservation = proxy::ListenerReservation::reserve("");
  if (!reservation.ok()) {
    std::cerr << "egressd: " << reservation.error().message() << "\n";
    return kExitFailure;
  }
  ProxyTarget target{reservation->addr4(), reservation->addr6(), reservation->port(),
                     reservation->netnsCookie()};
  auto req = buildSandboxRequest(id, cgroup, *policy, target, 0);
  if (!req.ok()) {
    std::cerr << "egressd: " << req.error().message() << "\n";
    return kExitBadPolicy;
  }
  auto armed = enforcer.arm(*req);
  if (!armed.ok()) {
    std::cerr << "egressd: " << armed.error().message() << "\n";
    return kExitFailure;
  }
  // The proxy listens before the command exists, so its first request is served.
  auto runtime = ProxyRuntime::start(o.proxy, o.pinRoot);
  if (!runtime.ok()) {
    std::cerr << "egressd: " << runtime.error().message() << "\n";
    return kExitFailure;
  }
  {
    auto maps = loader::PinnedMaps::open(o.pinRoot);
    auto slot = maps.ok() ? maps->findSlot(id) : Result<std::optional<uint32_t>>(maps.error());
    if (!slot.ok() || !slot->has_value()) {
      std::cerr << "egressd: sandbox " << id << " has no slot after arming\n";
      return kExitFailure;
    }
    std::optional<proxy::ListenerReservation> listener;
    if (o.proxy.enabled) {
      listener = std::move(*reservation);
    }
    auto served =
        (*runtime)->addSandbox(id, **slot, *policy, req->rules.ruleNames, std::move(listener));
    if (!served.ok()) {
      std::cerr << "egressd: " << served.error().message() << "\n";
      return kExitFailure;
    }
  }

  sandbox::SpawnOptions spawn;
  spawn.argv = o.command;
  spawn.cgroupPath = cgroup;
  spawn.allowIoUring = o.allowIoUring;
  for (char** e = environ; *e != nullptr; ++e) {
    spawn.env.emplace_back(*e);
  }
  spawn.env.push_back("EGRESSD_SANDBOX=" + id);
  // The command trusts the sandbox's interception CA without being told: variables that
  // add to the trust store get the CA, those that replace it get the system bundle + CA.
  if (const SandboxCaFiles ca = (*runtime)->caFiles(id); !ca.certificate.empty()) {
    const std::vector<std::pair<std::string, std::string>> trust = {
        {"SSL_CERT_FILE", ca.bundle},
        {"REQUESTS_CA_BUNDLE", ca.bundle},
        {"CURL_CA_BUNDLE", ca.bundle},
        {"GIT_SSL_CAINFO", ca.bundle},
        {"NODE_EXTRA_CA_CERTS", ca.certificate},
        {"EGRESSD_CA_CERT", ca.certificate}};
    for (const auto& [key, value] : trust) {
      const std::string& name = key;  // clang 14 cannot capture a structured binding
      std::erase_if(spawn.env, [&name](const std::string& e) {
        return e.size() > name.size() && e.compare(0, name.size(), name) == 0 &&
               e[name.size()] == '=';
      });
      spawn.env.push_back(name + "=" + value);
    }
  }

  // Installed before the spawn so a Ctrl-C in between is delivered, not lost.
  auto forwarder = sandbox::SignalForwarder::create();
  if (!forwarder.ok()) {
    std::cerr << "egressd: " << forwarder.error().message() << "\n";
    return kExitFailure;
  }
  auto child = sandbox::spawnInCgroup(spawn);
  if (!child.ok()) {
    std::cerr << "egressd: " << child.error().message() << "\n";
    return kExitFailure;
  }
  (*forwarder)->setTarget(*child);
  // Stops forwarding before reaping, so a late signal never reaches a reused pid.
  auto status = (*forwarder)->waitForTargetExit();
  (*runtime)->flush();
  if (!status.ok()) {
    std::cerr << "egressd: " << status.error().message() << "\n";
    return kExitFailure;
  }
  return *status;
}

}  // namespace egressd::daemon
