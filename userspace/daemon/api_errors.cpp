#include "daemon/api_errors.h"

#include <cerrno>

#include "control_model/errors.h"

namespace egressd::daemon {

using control::apiError;

control::ApiResponse toApiResponse(const Error& error) {
  namespace model = control_model;
  switch (error.code()) {
    case model::kUnknownHandler:
      return apiError(400, "unknown_handler", error.message());
    case model::kInvalidPolicy:
      return apiError(400, "invalid_policy", error.message());
    case model::kUnknownPolicy:
      return apiError(400, "unknown_policy", error.message());
    case model::kPolicyNotFound:
      return apiError(404, "unknown_policy", error.message());
    case model::kUnknownSandbox:
      return apiError(404, "unknown_sandbox", error.message());
    case model::kNoAuditFile:
      return apiError(409, "no_audit_file", error.message());
    case EINVAL:
      return apiError(400, "invalid_request", error.message());
    case ENOENT:
      return apiError(404, "not_found", error.message());
    case EEXIST:
    case EBUSY:
      return apiError(409, "conflict", error.message());
    default:
      return apiError(500, "internal", error.message());
  }
}

control::ApiResponse toApiResponse(Result<nlohmann::json> result, int successStatus) {
  if (!result.ok()) {
    return toApiResponse(result.error());
  }
  return control::ApiResponse{successStatus, std::move(*result)};
}

}  // namespace egressd::daemon
