// ControlClient: one blocking request to the control API per call (egressctl, tests).
// A connection per call keeps it simple and stateless; the API is not a hot path.
#pragma once

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "control/api.h"

namespace egressd::control {

class ControlClient {
 public:
  explicit ControlClient(std::string socketPath,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // Blocking; `timeout` bounds the whole exchange. Errors: "cannot connect to PATH: <errno
  // text> (is the egressd daemon running?)", a timeout, a response that is not HTTP or whose
  // body is not JSON. Non-2xx is NOT an error here: it comes back as ApiResponse (an empty
  // body as {}). `path` may carry a query; its segments must already be percent-encoded.
  // A null `body` sends no body.
  Result<ApiResponse> call(const std::string& method, const std::string& path,
                           const nlohmann::json& body = nullptr) const;

  const std::string& socketPath() const { return socketPath_; }

 private:
  std::string socketPath_;
  std::chrono::milliseconds timeout_;
};

}  // namespace egressd::control
