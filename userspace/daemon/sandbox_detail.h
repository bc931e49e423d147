// What GET /v1/sandboxes/{id} shows of one control-plane sandbox: its record, what its
// instance overrides changed, the effective host lists and handlers (each marked "policy"
// or "instance"), the kernel's denial counters, the live name-rule entries, and warnings
// about secret files its processes could read.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "control_model/policy_registry.h"
#include "daemon/proxy_runtime.h"
#include "daemon/sandbox_lifecycle.h"

namespace egressd::daemon {

// `entry`: the sandbox's policy (null: the "effective" part stays empty).
nlohmann::json sandboxDetailJson(const SandboxRecord& record,
                                 const control_model::PolicyEntry* entry,
                                 const std::string& pinRoot, const ProxyRuntime& runtime);

}  // namespace egressd::daemon
