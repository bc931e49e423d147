// Upstreams a `reroute` action sends a request to instead of the request's own host.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.h"

namespace egressd::handlers {

struct RerouteTarget {
  enum class Kind { kTcp, kTls, kUnix };
  Kind kind = Kind::kTcp;
  std::string host;  // lowercase name or IP literal (IPv6 without brackets); kTcp/kTls
  uint16_t port = 0;
  std::string path;  // kUnix: absolute socket path

  // Canonical form for audit lines and messages: "http://h:80", "https://[::1]:8443",
  // "unix:/run/kv.sock".
  std::string text() const;

  bool operator==(const RerouteTarget&) const = default;
};

// Accepts "host:port", "[v6]:port", "http://host[:port]" (80), "https://host[:port]" (443,
// TLS to the upstream), each with at most a trailing "/", and "unix:/abs/path". Errors (EINVAL)
// quote the text: "upstream \"unix:run.sock\" must be an absolute path".
Result<RerouteTarget> parseRerouteTarget(std::string_view text);

}  // namespace egressd::handlers
