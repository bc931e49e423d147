// Arming a sandbox: policy in, kernel enforcement (and a reserved proxy port) out. Shared by
// the single-sandbox daemon, `egressd apply` and the multi-sandbox control-plane daemon.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "daemon/commands.h"
#include "daemon/sandbox_request.h"
#include "loader/enforcer.h"
#include "policy/policy.h"
#include "proxy/listener_reservation.h"

namespace egressd::daemon {

struct Armed {
  std::optional<proxy::ListenerReservation> reservation;
  std::vector<std::string> ruleNames;
};

// Blocks SIGTERM, SIGINT and SIGHUP and returns a signalfd for them (invalid on failure,
// errno set): a daemon takes its signals synchronously, so it blocks them before it starts
// any thread.
UniqueFd blockDaemonSignals();

// loadPolicyFile, with its warnings logged.
Result<policy::Policy> loadPolicy(const std::string& file);

// Processes that already hold CAP_NET_RAW/CAP_NET_ADMIN can use socket families no
// cgroup hook sees: logged loudly, and EGRESSD_SB_CAPS_WARNING for `egressctl status`.
uint32_t capabilityWarningFlags(const std::string& id, const std::string& cgroup);

// Arms (first time) or updates (`reloadOnly`) the sandbox with a parsed policy. The proxy
// target is `keepProxy` when given, else a fresh reservation when `reserveProxy`.
Result<Armed> armWithPolicy(loader::Enforcer& enforcer, const SandboxOptions& o,
                            const std::string& cgroupPath, const policy::Policy& policy,
                            bool reserveProxy, const std::optional<ProxyTarget>& keepProxy,
                            bool reloadOnly);

// The proxy target already configured for this sandbox in the pinned maps, if any.
std::optional<ProxyTarget> currentProxy(const std::string& pinRoot, const std::string& id);

}  // namespace egressd::daemon
