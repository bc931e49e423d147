// The Kubernetes API server as the pod watcher needs it: GET of a list and a streamed GET of
// a watch, over HTTPS with libcurl, authenticated by a bearer token and verified against the
// cluster's CA (the in-cluster service-account configuration by default).
//
// The token file is read for every request: service-account tokens are projected volumes
// the kubelet rotates (about hourly), so a token read once would expire under a long-running
// daemon. Plain http:// is accepted only to a loopback address (the tests' fake API server):
// the bearer token must not cross a network in clear text.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace egressd::kubernetes {

inline constexpr const char* kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";

struct ApiConfig {
  std::string server;     // "https://10.96.0.1:443" (no trailing '/')
  std::string tokenFile;  // "" = no Authorization header
  std::string caFile;     // "" = the system's CA store
};

// The configuration from the options, each empty one taken from the in-cluster defaults:
// https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, kServiceAccountDir/token and
// kServiceAccountDir/ca.crt. EINVAL names what is missing or refused.
Result<ApiConfig> resolveApiConfig(const std::string& server, const std::string& tokenFile,
                                   const std::string& caFile);

struct ApiResponse {
  long status = 0;
  std::string body;  // for a stream: only what did not go to the line callback (an error)
};

class ApiClient {
 public:
  explicit ApiClient(ApiConfig config);

  const ApiConfig& config() const { return config_; }

  // GET `pathAndQuery` ("/api/v1/pods?..."), the whole body; bounded by `timeoutSeconds`.
  // `onTick` as for stream() (nullptr: none): returning false abandons the request (EINTR).
  Result<ApiResponse> get(const std::string& pathAndQuery, const std::function<bool()>* onTick,
                          long timeoutSeconds = 60) const;

  // GET of a stream of newline-separated documents (a watch): each complete line of a 2xx
  // answer goes to `onLine` as it arrives (returning false ends the stream). `onTick` runs
  // about once a second while the stream is open, also when nothing arrives; returning false
  // ends it. A stream ended by a callback is not an error. A non-2xx answer's body is
  // returned in ApiResponse::body. `timeoutSeconds` bounds the whole stream (a watch asks the
  // server to end it sooner; this is for a connection that went silent).
  Result<ApiResponse> stream(const std::string& pathAndQuery,
                             const std::function<bool(std::string_view)>& onLine,
                             const std::function<bool()>& onTick, long timeoutSeconds) const;

 private:
  ApiConfig config_;
};

// `text` percent-encoded for a query value (RFC 3986 unreserved characters kept).
std::string queryEscape(std::string_view text);

}  // namespace egressd::kubernetes
