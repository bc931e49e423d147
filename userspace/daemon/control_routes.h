// The control API's routes (/v1/...): the adapter between HTTP and the sandbox manager.
// Each route parses its request into the shape the manager takes and turns the manager's
// result into a response (daemon/api_errors). What every route does is documented in
// docs/control-api.md.
#pragma once

#include <memory>

#include "control/api.h"
#include "daemon/sandbox_manager.h"

namespace egressd::daemon {

// `manager` must outlive the router (and the server serving it).
std::shared_ptr<const control::Router> makeControlRouter(SandboxManager& manager);

}  // namespace egressd::daemon
