// MetricsServer: serves the registry's text on GET /metrics for Prometheus.
//
// Listens only where sandboxes and the network cannot reach it by accident: a unix socket
// ("unix:/run/egressd/metrics.sock", mode 0600) or a loopback TCP address ("127.0.0.1:9464",
// "[::1]:9464"). Note that a sandbox sharing the host's network namespace can still reach
// host loopback unless its policy denies it; the unix socket is the safe default.
//
// Runs one thread with its own asio::io_context (independent of the proxy's); requests are
// parsed with llhttp, every response closes the connection, and a client that does not send
// a complete request within a few seconds is disconnected.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/result.h"
#include "metrics/metrics.h"

namespace egressd::metrics {

struct MetricsAddress {
  std::string unixPath;  // set for "unix:/path"
  std::string ip;        // "127.0.0.1", "::1" (no brackets) otherwise
  uint16_t port = 0;     // 0 = let the kernel choose

  bool isUnix() const { return !unixPath.empty(); }
};

// Accepts "unix:/path", "127.x.y.z:PORT" and "[::1]:PORT"; anything else, including
// non-loopback addresses and host names, is refused with an error that says why.
Result<MetricsAddress> parseMetricsAddress(std::string_view address);

class MetricsServer {
 public:
  // A unix socket's parent directory is created (0755) when missing; a stale socket file
  // (nobody accepting on it) is replaced, a live one or a non-socket file is an error.
  // `registry` must outlive the server.
  static Result<std::unique_ptr<MetricsServer>> start(const std::string& address,
                                                      const Registry& registry);

  // "unix:/path", "127.0.0.1:PORT" or "[::1]:PORT" with the port actually bound.
  std::string boundAddress() const;

  // Stops the thread, closes every connection and removes the unix socket file.
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

 private:
  struct Impl;
  explicit MetricsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace egressd::metrics
