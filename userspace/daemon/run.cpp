// egressd run --policy FILE -- CMD ARGS: a transient sandbox around one command, with
// an embedded enforcer and no separate daemon. The cgroup is armed before the command
// starts (it is born inside the cgroup), and removed afterwards, also on Ctrl-C.
// If egressd itself is killed, the pinned links keep the cgroup enforced (fail closed), and
// the next run (or `egressd detach`, or a daemon's start) removes what it left (run_owner.h).
//
// The command cannot read what egressd injects for it: it runs as a non-root user (--user,
// default the sudo caller or nobody) without capabilities, with the policy's secret files
// and egressd's own directories hidden from its mount namespace, in a Landlock domain (no
// ptrace or /proc/PID/environ of egressd or any process outside), and with an environment
// built from an allowlist that never holds a secret-source variable.
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <iostream>
#include <set>

#include "common/scope_guard.h"
#include "daemon/commands.h"
#include "daemon/hardened_run.h"
#include "daemon/proxy_runtime.h"
#include "daemon/run_env.h"
#include "daemon/run_owner.h"
#include "daemon/sandbox_request.h"
#include "loader/enforcer.h"
#include "loader/maps.h"
#include "policy/policy.h"
#include "proxy/listener_reservation.h"
#include "sandbox/cgroup.h"
#include "sandbox/hide.h"
#include "sandbox/identity.h"
#include "sandbox/spawn.h"

extern char** environ;

namespace egressd::daemon {

namespace {

// Where the daemon keeps state (persisted secrets among it) unless told otherwise.
constexpr const char* kDefaultStateDir = "/var/lib/egressd";

}  // namespace

int runCommand(const RunOptions& o) {
  // Not dumpable: /proc/<egressd>/{environ,mem,root,fd} need CAP_SYS_PTRACE, which the command
  // lacks whatever its user (the Landlock domain refuses them too).
  ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  const std::string runDir = o.proxy.runDir;
  sweepOrphanRuns(runDir);

  auto policy = policy::loadPolicyFile(o.policyFile);
  if (!policy.ok()) {
    std::cerr << "egressd: " << policy.error().message() << "\n";
    return kExitBadPolicy;
  }
  for (const std::string& warning : policy->warnings) {
    spdlog::warn("{}", warning);
  }

  auto user = sandbox::resolveRunAsUser(o.user, ::getenv("SUDO_UID"), ::getenv("SUDO_GID"));
  if (!user.ok()) {
    std::cerr << "egressd: " << user.error().message() << "\n";
    return kExitUsage;
  }
  if (user->isRoot()) {
    spdlog::warn(
        "--user root: the command runs as root (without the capabilities that bypass "
        "enforcement); secret files stay hidden, but root can read any other root-only file "
        "and raw devices");
  }
  std::set<std::string> secretVariables;
  std::vector<std::string> secretFiles;
  for (const auto& [name, source] : policy->secrets) {
    if (source.kind == policy::SecretSource::Kind::kEnv) {
      secretVariables.insert(source.value);
    } else {
      secretFiles.push_back(source.value);
    }
  }
  RunEnvironmentInput envInput;
  for (char** e = environ; *e != nullptr; ++e) {
    envInput.inherited.emplace_back(*e);
  }
  envInput.secretVariables = secretVariables;
  envInput.userName = user->name;
  envInput.home = user->home;
  envInput.envArgs = o.env;
  envInput.envFiles = o.envFiles;
  auto commandEnv = buildRunEnvironment(envInput);
  if (!commandEnv.ok()) {
    std::cerr << "egressd: " << commandEnv.error().message() << "\n";
    return kExitUsage;
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
  // The record comes first: whatever is created after it can be found again if we die.
  auto startTime = processStartTime(::getpid());
  if (!startTime.ok()) {
    std::cerr << "egressd: " << startTime.error().message() << "\n";
    return kExitFailure;
  }
  if (auto recorded =
          writeRunOwner(runDir, RunOwner{id, ::getpid(), *startTime, cgroup, o.pinRoot});
      !recorded.ok()) {
    std::cerr << "egressd: " << recorded.error().message() << "\n";
    return kExitFailure;
  }
  ScopeGuard forgetOwner([&] { removeRunOwner(runDir, id); });
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
                     reservation->netnsCookie(), reservation->dnsPort()};
  proxy::DnsSockets dnsSockets = reservation->takeDnsSockets();
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
        (*runtime)->addSandbox(id, **slot, *policy, req->rules.ruleNames, std::move(listener),
                               nullptr, std::move(dnsSockets), cgroup);
    if (!served.ok()) {
      std::cerr << "egressd: " << served.error().message() << "\n";
      return kExitFailure;
    }
  }

  HardenedCommand hardened;
  hardened.sandboxId = id;
  hardened.cgroup = cgroup;
  hardened.argv = o.command;
  hardened.user = *user;
  hardened.env = std::move(*commandEnv);
  const SandboxCaFiles ca = (*runtime)->caFiles(id);
  hardened.caCertificate = ca.certificate;
  hardened.caBundle = ca.bundle;
  hardened.secretFiles = secretFiles;
  hardened.runDir = runDir;
  hardened.stateDir = kDefaultStateDir;
  hardened.allowIoUring = o.allowIoUring;
  auto status = runHardened(hardened);
  (*runtime)->flush();
  if (!status.ok()) {
    std::cerr << "egressd: " << status.error().message() << "\n";
    return kExitFailure;
  }
  return *status;
}

}  // namespace egressd::daemon
