// egressd daemon / apply / detach.
#include <bpf/libbpf.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

#include <cstring>

#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <utility>
#include <variant>

#include "common/unique_fd.h"
#include "daemon/arming.h"
#include "daemon/commands.h"
#include "daemon/proxy_runtime.h"
#include "daemon/run_owner.h"
#include "daemon/sandbox_files.h"
#include "daemon/sandbox_request.h"
#include "daemon/service_manager.h"
#include "loader/bpffs.h"
#include "loader/enforcer.h"
#include "loader/maps.h"
#include "policy/compile.h"
#include "proxy/listener_reservation.h"
#include "sandbox/cgroup.h"

namespace egressd::daemon {

namespace {

// What both serve and apply start from: the cgroup's path and a valid policy. On failure
// the message is printed and the exit code returned.
struct Inputs {
  std::string cgroupPath;
  policy::Policy policy;
};
std::variant<Inputs, int> loadInputs(const SandboxOptions& o) {
  auto cgroupPath = sandbox::resolveCgroupPath(o.cgroup);
  if (!cgroupPath.ok()) {
    std::cerr << "egressd: " << cgroupPath.error().message() << "\n";
    return kExitFailure;
  }
  // Checked first, so the real error is not preceded by warnings about its processes.
  if (struct stat st{}; ::stat(cgroupPath->c_str(), &st) != 0) {
    std::cerr << "egressd: cgroup " << *cgroupPath << ": " << std::strerror(errno)
              << " (create it first, or use egressd run / egressctl sandbox create "
                 "--create-cgroup)\n";
    return kExitFailure;
  }
  auto policy = loadPolicy(o.policyFile);
  if (!policy.ok()) {
    std::cerr << "egressd: " << policy.error().message() << "\n";
    return kExitBadPolicy;
  }
  return Inputs{std::move(*cgroupPath), std::move(*policy)};
}

}  // namespace

int serveCommand(const SandboxOptions& o, const ProxyOptions& proxyOptions) {
  UniqueFd sigFd = blockDaemonSignals();
  if (!sigFd) {
    std::cerr << "egressd: signalfd: " << std::strerror(errno) << "\n";
    return kExitFailure;
  }

  // `egressd run`s killed before their cleanup (their owner process is gone).
  sweepOrphanRuns(proxyOptions.runDir);

  auto inputs = loadInputs(o);
  if (const int* code = std::get_if<int>(&inputs)) {
    return *code;
  }
  const std::string cgroupPath = std::get<Inputs>(inputs).cgroupPath;
  loader::Enforcer enforcer(o.pinRoot);
  auto armed = armWithPolicy(enforcer, o, cgroupPath, std::get<Inputs>(inputs).policy, true,
                             std::nullopt, false);
  if (!armed.ok()) {
    std::cerr << "egressd: " << armed.error().message() << "\n";
    return kExitFailure;
  }
  std::vector<std::string> ruleNames = armed->ruleNames;
  std::optional<proxy::ListenerReservation> reservation = std::move(armed->reservation);
  ProxyTarget target{reservation->addr4(), reservation->addr6(), reservation->port(),
                     reservation->netnsCookie(), reservation->dnsPort()};
  proxy::DnsSockets dnsSockets = reservation->takeDnsSockets();

  auto maps = loader::PinnedMaps::open(o.pinRoot);
  if (!maps.ok()) {
    std::cerr << "egressd: " << maps.error().message() << "\n";
    return kExitFailure;
  }
  auto slot = maps->findSlot(o.id);
  if (!slot.ok() || !slot->has_value()) {
    std::cerr << "egressd: sandbox " << o.id << " has no slot after arming\n";
    return kExitFailure;
  }
  auto runtime = ProxyRuntime::start(proxyOptions, o.pinRoot);
  if (!runtime.ok()) {
    std::cerr << "egressd: " << runtime.error().message() << "\n";
    return kExitFailure;
  }
  std::optional<proxy::ListenerReservation> listener;
  if (proxyOptions.enabled) {
    listener = std::exchange(reservation, std::nullopt);
  } else {
    // Kept, bound but not listening: proxied connections are refused, never direct.
    spdlog::info("sandbox {}: --no-proxy: proxied ports stay reserved and refuse connections",
                 o.id);
  }
  auto served = (*runtime)->addSandbox(o.id, **slot, std::get<Inputs>(inputs).policy, ruleNames,
                                       std::move(listener), nullptr, std::move(dnsSockets),
                                       cgroupPath, o.netns);
  if (!served.ok()) {
    std::cerr << "egressd: " << served.error().message() << "\n";
    return kExitFailure;
  }

  std::printf("egressd ready\n");
  std::fflush(stdout);
  const std::string readyStatus = "enforcing sandbox " + o.id;
  notifyReady(readyStatus);

  UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = sigFd.get();
  epoll_ctl(ep.get(), EPOLL_CTL_ADD, sigFd.get(), &ev);
  bool running = true;
  while (running) {
    epoll_event ready[4];
    int n = ::epoll_wait(ep.get(), ready, 4, -1);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    for (int i = 0; i < n; ++i) {
      signalfd_siginfo info{};
      if (::read(sigFd.get(), &info, sizeof(info)) != sizeof(info)) {
        continue;
      }
      if (info.ssi_signo == SIGHUP) {
        notifyReloading();
        auto newPolicy = loadPolicy(o.policyFile);
        Result<Armed> reloaded =
            newPolicy.ok() ? armWithPolicy(enforcer, o, cgroupPath, *newPolicy, false, target, true)
                           : Result<Armed>(newPolicy.error());
        if (!reloaded.ok()) {
          spdlog::error("reload rejected, the rules in force stay: {}", reloaded.error().message());
        } else {
          ruleNames = reloaded->ruleNames;
          if (auto updated = (*runtime)->updatePolicy(o.id, *newPolicy, ruleNames); !updated.ok()) {
            spdlog::error("proxy policy update: {}", updated.error().message());
          }
          spdlog::info("sandbox {}: policy {} reloaded", o.id, o.policyFile);
        }
        notifyReady(readyStatus);
      } else {
        notifyStopping();
        spdlog::info("signal {}: exiting; enforcement of sandbox {} stays pinned in {}",
                     info.ssi_signo, o.id, o.pinRoot);
        running = false;
      }
    }
  }
  (*runtime)->flush();
  return 0;
}

int applyCommand(const SandboxOptions& o) {
  auto inputs = loadInputs(o);
  if (const int* code = std::get_if<int>(&inputs)) {
    return *code;
  }
  const Inputs& in = std::get<Inputs>(inputs);
  loader::Enforcer enforcer(o.pinRoot);
  // Without a running daemon nothing holds a proxy port: keep the target already armed,
  // or take a free port now; connections to it are refused until a proxy listens.
  auto armed = armWithPolicy(enforcer, o, in.cgroupPath, in.policy, true,
                             currentProxy(o.pinRoot, o.id), false);
  if (!armed.ok()) {
    std::cerr << "egressd: " << armed.error().message() << "\n";
    return kExitFailure;
  }
  return 0;
}

int detachCommand(const std::string& id, const std::string& pinRoot, const std::string& runDir,
                  bool ifExists) {
  // Also the orphans of killed `egressd run`s, whichever sandbox was named.
  sweepOrphanRuns(runDir);
  if (auto valid = loader::validateSandboxId(id); !valid.ok()) {
    std::cerr << "egressd: detach: " << valid.error().message() << "\n";
    return kExitUsage;
  }
  bool pinned = !loader::pinnedLinks(pinRoot, id).empty();
  if (!pinned && loader::PinnedMaps::exist(pinRoot)) {
    auto maps = loader::PinnedMaps::open(pinRoot);
    auto slot = maps.ok() ? maps->findSlot(id) : Result<std::optional<uint32_t>>(maps.error());
    pinned = !slot.ok() || slot->has_value();  // unreadable maps: let detach say why
  }
  if (!pinned) {
    removeSandboxFiles(runDir, id);
    if (ifExists) {
      return 0;
    }
    std::cerr << "egressd: detach: no sandbox '" << id << "' is pinned under " << pinRoot
              << " (egressctl status lists them; --if-exists makes this exit 0)\n";
    return kExitFailure;
  }
  loader::Enforcer enforcer(pinRoot);
  auto status = enforcer.detach(id);
  if (!status.ok()) {
    std::cerr << "egressd: detach " << id << ": " << status.error().message() << "\n";
    return kExitFailure;
  }
  // A daemon that died without cleaning up left its sandbox's CA certificate behind; the
  // CA itself died with it, so the file names a CA nothing uses any more.
  removeSandboxFiles(runDir, id);
  return 0;
}

}  // namespace egressd::daemon
