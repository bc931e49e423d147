#include "daemon/arming.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/signalfd.h>

#include <atomic>

#include "bpf/abi.h"
#include "handlers/handler.h"
#include "loader/maps.h"
#include "sandbox/cgroup.h"

namespace egressd::daemon {

UniqueFd blockDaemonSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  sigprocmask(SIG_BLOCK, &signals, nullptr);
  return UniqueFd(::signalfd(-1, &signals, SFD_CLOEXEC));
}

Result<policy::Policy> loadPolicy(const std::string& file) {
  auto policy = policy::loadPolicyFile(file);
  if (!policy.ok()) {
    return policy;
  }
  // Handler chains are checked at load too, so a bad one rejects the file with its line.
  auto handlers = handlers::HandlerSet::compile(*policy);
  if (!handlers.ok()) {
    return std::move(handlers).error();
  }
  policy->warnings.insert(policy->warnings.end(), (*handlers)->warnings().begin(),
                          (*handlers)->warnings().end());
  for (const std::string& warning : policy->warnings) {
    spdlog::warn("{}", warning);
  }
  return policy;
}

// Processes that already hold CAP_NET_RAW/CAP_NET_ADMIN can use socket families no
// cgroup hook sees (AF_PACKET, ...): say so loudly, and record it for `egressctl status`.
uint32_t capabilityWarningFlags(const std::string& id, const std::string& cgroup) {
  auto capable = sandbox::findNetworkCapableProcesses(cgroup);
  if (!capable.ok()) {
    spdlog::warn("sandbox {}: could not check process capabilities: {}", id,
                 capable.error().message());
    return 0;
  }
  // Once per process: it is about the host's mount, not about one sandbox.
  static std::atomic<bool> nsdelegateWarned{false};
  auto nsdelegate = sandbox::cgroup2HasNsDelegate();
  if (nsdelegate.ok() && !*nsdelegate && !nsdelegateWarned.exchange(true)) {
    spdlog::warn(
        "sandbox {}: the cgroup2 mount lacks nsdelegate: a root process inside the "
        "sandbox could move itself to another cgroup (egressd run closes this with "
        "its own cgroup namespace and mount)",
        id);
  }
  for (const auto& p : *capable) {
    spdlog::warn(
        "sandbox {}: process {} ({}) holds{}{}: it can open packet/netlink sockets that no "
        "cgroup hook sees; run it without those capabilities (egressd run drops them)",
        id, p.pid, p.comm, p.netRaw ? " CAP_NET_RAW" : "", p.netAdmin ? " CAP_NET_ADMIN" : "");
  }
  return capable->empty() ? 0 : EGRESSD_SB_CAPS_WARNING;
}

// Arms (first time) or updates (reload) the sandbox with a parsed policy.
Result<Armed> armWithPolicy(loader::Enforcer& enforcer, const SandboxOptions& o,
                            const std::string& cgroupPath, const policy::Policy& policy,
                            bool reserveProxy, const std::optional<ProxyTarget>& keepProxy,
                            bool reloadOnly) {
  Armed armed;
  ProxyTarget target;
  if (keepProxy) {
    target = *keepProxy;
  } else if (reserveProxy) {
    auto reservation = proxy::ListenerReservation::reserve(o.netns);
    if (!reservation.ok()) {
      return std::move(reservation).error().wrap("sandbox " + o.id);
    }
    target = {reservation->addr4(), reservation->addr6(), reservation->port(),
              reservation->netnsCookie(), reservation->dnsPort()};
    armed.reservation = std::move(*reservation);
  }
  uint32_t extraFlags = capabilityWarningFlags(o.id, cgroupPath);
  auto req = buildSandboxRequest(o.id, cgroupPath, policy, target, extraFlags);
  if (!req.ok()) {
    return std::move(req).error();
  }
  armed.ruleNames = req->rules.ruleNames;
  auto result = reloadOnly ? enforcer.updatePolicy(*req) : enforcer.arm(*req);
  if (!result.ok()) {
    return std::move(result).error();
  }
  return armed;
}

// The proxy target already configured for this sandbox (apply keeps it).
std::optional<ProxyTarget> currentProxy(const std::string& pinRoot, const std::string& id) {
  if (!loader::PinnedMaps::exist(pinRoot)) {
    return std::nullopt;
  }
  auto maps = loader::PinnedMaps::open(pinRoot);
  if (!maps.ok()) {
    return std::nullopt;
  }
  auto slot = maps->findSlot(id);
  if (!slot.ok() || !slot->has_value()) {
    return std::nullopt;
  }
  auto config = maps->liveConfig(**slot);
  if (!config.ok() || !config->has_value() || !((*config)->flags & EGRESSD_SB_HAS_PROXY)) {
    return std::nullopt;
  }
  const egressd_sandbox_config& c = **config;
  return ProxyTarget{c.proxy4, c.proxy6, c.proxy_port, c.netns_cookie,
                     (c.flags & EGRESSD_SB_HAS_RESOLVER) != 0 ? c.resolver_port : uint16_t{0}};
}

}  // namespace egressd::daemon
