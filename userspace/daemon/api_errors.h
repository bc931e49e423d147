// The API adapter's one mapping from the model's results to control API responses: an
// Error's code (errno, or control_model/errors.h) becomes the HTTP status and the stable
// error code clients branch on; its message goes to the client as is.
#pragma once

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "control/api.h"

namespace egressd::daemon {

// kUnknownHandler, kInvalidPolicy, kUnknownPolicy, EINVAL -> 400 (unknown_handler,
// invalid_policy, unknown_policy, invalid_request); kPolicyNotFound, kUnknownSandbox,
// ENOENT -> 404 (unknown_policy, unknown_sandbox, not_found); kNoAuditFile, EEXIST, EBUSY
// -> 409 (no_audit_file, conflict); anything else -> 500 internal.
control::ApiResponse toApiResponse(const Error& error);

// A body with `successStatus`, or the error's response.
control::ApiResponse toApiResponse(Result<nlohmann::json> result, int successStatus = 200);

}  // namespace egressd::daemon
