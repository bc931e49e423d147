// Warnings about a valid policy: what it says is probably not what its author meant (an
// allow rule for a port the proxy or the pinned resolver always takes first; an allowed
// name on a CDN that permits domain fronting under passthrough). Loading still succeeds;
// the daemon logs them and `egressd validate` prints them.
#pragma once

#include "policy/policy.h"
#include "yaml/strict_reader.h"

namespace egressd::policy {

// Adds each warning ("FILE:LINE:COL: PATH: MESSAGE") for `policy` to `diagnostics`.
void addPolicyWarnings(const Policy& policy, yaml::Diagnostics& diagnostics);

}  // namespace egressd::policy
