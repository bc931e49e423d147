#include "daemon/sandbox_lifecycle.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "control_model/errors.h"
#include "daemon/arming.h"
#include "loader/maps.h"
#include "sandbox/cgroup.h"
#include "sandbox/socket_reaper.h"

namespace egressd::daemon {

using control_model::kInvalidPolicy;

namespace {

bool isLoopback(const IpAddress& a) {
  if (a.family == AF_INET) {
    return a.bytes[0] == 127;
  }
  static const uint8_t kV6Loopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  static const uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(a.bytes.begin(), a.bytes.end(), kV6Loopback)) {
    return true;
  }
  return std::equal(a.bytes.begin(), a.bytes.begin() + 12, kMappedPrefix) && a.bytes[12] == 127;
}

}  // namespace

Result<CompiledSandbox> compileSandbox(const SandboxRecord& record,
                                       const control_model::PolicyEntry& entry) {
  for (const auto& [host, ref] : record.overrides.outboundByHost) {
    auto checked = control_model::checkHandlerRef(entry, ref);
    if (!checked.ok()) {
      return Error(checked.error().code(),
                   "outboundByHost " + host + ": " + checked.error().message());
    }
  }
  if (record.overrides.outbound) {
    EGRESSD_TRY(control_model::checkHandlerRef(entry, *record.overrides.outbound));
  }
  auto effective = policy::applyHostOverrides(entry.policy, record.overrides);
  if (!effective.ok()) {
    return Error(EINVAL, effective.error().message());
  }
  // The kernel's half must build too (rule counts, CIDR forms) before anything is applied.
  auto request = buildSandboxRequest(record.id, record.cgroupPath, *effective, record.proxy, 0);
  if (!request.ok()) {
    return Error(EINVAL, request.error().message());
  }
  auto view = proxy::makePolicyView(*effective, entry.handlers, &record.overrides);
  if (!view.ok()) {
    return Error(kInvalidPolicy, view.error().message());
  }
  return CompiledSandbox{std::move(*effective), std::move(*view)};
}

Result<PlacedCgroup> placeCgroup(const std::string& sandboxId, const CgroupChoice& choice) {
  auto mount = sandbox::findCgroup2Mount();
  if (!mount.ok()) {
    return std::move(mount).error();
  }
  PlacedCgroup placed;
  if (choice.create) {
    const bool defaultParent = choice.parent.empty();
    auto resolvedParent =
        sandbox::resolveCgroupPath(defaultParent ? *mount + "/egressd" : choice.parent);
    if (!resolvedParent.ok()) {
      return std::move(resolvedParent)
          .error()
          .wrap("cgroup parent (egressd daemon --cgroup-parent)");
    }
    // The default parent is egressd's own and made on first use, on any layout (unified,
    // or hybrid with cgroup2 at /sys/fs/cgroup/unified). The hooks need no controllers, so
    // none are delegated to it. A parent named with --cgroup-parent must exist: a typo
    // should not create cgroups somewhere unexpected.
    if (defaultParent) {
      if (auto made = sandbox::createCgroup(*resolvedParent, true); !made.ok()) {
        return std::move(made).error().wrap(
            "create the default cgroup parent " + *resolvedParent +
            " (or start egressd daemon with --cgroup-parent PATH, an existing cgroup)");
      }
    } else if (struct stat st{}; ::stat(resolvedParent->c_str(), &st) != 0) {
      return Error(EINVAL, "cgroup parent " + *resolvedParent +
                               " (egressd daemon --cgroup-parent): " + std::strerror(errno));
    }
    placed.path = *resolvedParent + "/" + sandboxId;
    if (::mkdir(placed.path.c_str(), 0755) != 0) {
      return lastSystemError("create cgroup " + placed.path);
    }
    placed.created = true;
  } else {
    auto resolved = sandbox::resolveCgroupPath(choice.existing.value_or(""));
    if (!resolved.ok()) {
      return Error(EINVAL, resolved.error().message());
    }
    placed.path = *resolved;
  }
  std::error_code ec;
  if (std::filesystem::equivalent(placed.path, *mount, ec)) {
    return Error(EINVAL, "refusing the root cgroup: a sandbox is a cgroup of its own");
  }
  return placed;
}

void removeCreatedCgroup(const std::string& path) {
  {
    std::ofstream kill(path + "/cgroup.kill");
    if (kill) {
      kill << "1";
    }
  }
  for (int attempt = 0; attempt < 100; ++attempt) {
    if (::rmdir(path.c_str()) == 0 || errno == ENOENT) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  spdlog::warn("cgroup {} could not be removed: {}", path, std::strerror(errno));
}

SandboxLifecycle::SandboxLifecycle(std::string pinRoot, bool proxyEnabled,
                                   loader::Enforcer& enforcer, ProxyRuntime& runtime)
    : pinRoot_(std::move(pinRoot)),
      proxyEnabled_(proxyEnabled),
      enforcer_(enforcer),
      runtime_(runtime) {}

Status SandboxLifecycle::armNew(SandboxRecord& record, const control_model::PolicyEntry& entry) {
  SandboxOptions o{record.id, record.cgroupPath, "", record.netns, pinRoot_};
  auto compiled = compileSandbox(record, entry);  // checks overrides; the proxy target next
  if (!compiled.ok()) {
    return std::move(compiled).error();
  }
  auto armed = armWithPolicy(enforcer_, o, record.cgroupPath, compiled->effective, true,
                             std::nullopt, false);
  if (!armed.ok()) {
    return std::move(armed).error();
  }
  proxy::ListenerReservation& r = *armed->reservation;
  record.proxy = ProxyTarget{r.addr4(), r.addr6(), r.port(), r.netnsCookie(), r.dnsPort()};
  proxy::DnsSockets dnsSockets = r.takeDnsSockets();
  auto maps = loader::PinnedMaps::open(pinRoot_);
  if (!maps.ok()) {
    return std::move(maps).error();
  }
  auto slot = maps->findSlot(record.id);
  if (!slot.ok() || !slot->has_value()) {
    return Error(EIO, "sandbox " + record.id + " has no slot after arming");
  }
  std::optional<proxy::ListenerReservation> listener;
  if (proxyEnabled_) {
    listener = std::move(armed->reservation);
  }
  return runtime_.addSandbox(record.id, **slot, compiled->effective, armed->ruleNames,
                             std::move(listener), compiled->view, std::move(dnsSockets),
                             record.cgroupPath, record.netns);
}

Status SandboxLifecycle::apply(SandboxRecord& record, const CompiledSandbox& compiled) {
  SandboxOptions o{record.id, record.cgroupPath, "", record.netns, pinRoot_};
  auto armed =
      armWithPolicy(enforcer_, o, record.cgroupPath, compiled.effective, false, record.proxy, true);
  if (!armed.ok()) {
    return std::move(armed).error().wrap("sandbox " + record.id + ": kernel rules");
  }
  EGRESSD_TRY(runtime_.updateView(record.id, compiled.view, armed->ruleNames));
  reapDeniedSockets(record, compiled);
  return okStatus();
}

void SandboxLifecycle::stopServing(const std::string& id) {
  runtime_.removeSandbox(id);
}

Status SandboxLifecycle::detachKernel(const std::string& id) {
  return enforcer_.detach(id);
}

void SandboxLifecycle::reapDeniedSockets(SandboxRecord& record, const CompiledSandbox& compiled) {
  auto ids = sandbox::cgroupTreeIds(record.cgroupPath);
  if (!ids.ok()) {
    spdlog::warn("sandbox {}: cannot list its cgroups to end denied sockets: {}", record.id,
                 ids.error().message());
    return;
  }
  const policy::HostPolicy& hosts = compiled.view->hosts;
  const uint16_t proxyPort = record.proxy.port;
  const uint16_t dnsPort = record.proxy.dnsPort;
  auto denied = [&](const sandbox::SocketInfo& s) {
    // Proxied connections (the kernel sent them to the proxy's loopback port) are judged
    // per request by the proxy; DNS (sent to egressd's resolver port) per query.
    if (s.remotePort == 53 ||
        (proxyPort != 0 && s.remotePort == proxyPort && isLoopback(s.remote)) ||
        (dnsPort != 0 && s.remotePort == dnsPort && isLoopback(s.remote))) {
      return false;
    }
    const auto protocol =
        s.protocol == IPPROTO_UDP ? policy::Protocol::kUdp : policy::Protocol::kTcp;
    return !hosts.decideAddress(s.unmappedRemote(), s.remotePort, protocol).allowed();
  };
  auto destroyed = sandbox::destroySockets(record.netns, *ids, denied);
  if (!destroyed.ok()) {
    spdlog::error("sandbox {}: ending sockets the new rules deny: {}", record.id,
                  destroyed.error().message());
    return;
  }
  for (const sandbox::SocketInfo& s : *destroyed) {
    spdlog::info("sandbox {}: ended {} (denied by the new rules)", record.id, sandbox::describe(s));
  }
  record.closedSockets += destroyed->size();
}

}  // namespace egressd::daemon
