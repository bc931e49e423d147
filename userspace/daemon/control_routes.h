// The control API's routes (/v1/...), each parsing its request body into the shape the
// sandbox manager takes. What every route does is documented in docs/control-api.md.
#pragma once

#include <memory>

#include "control/api.h"
#include "daemon/sandbox_manager.h"

namespace egressd::daemon {

// `manager` must outlive the router (and the server serving it).
std::shared_ptr<const control::Router> makeControlRouter(SandboxManager& manager);

}  // namespace egressd::daemon
