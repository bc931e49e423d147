// The transparent proxy: one Asio io_context per thread (no locks on the hot path; the
// kernel spreads accepted connections over the threads, each of which accepts on its own
// duplicate of every listening socket), a listener per sandbox on the proxy target the
// kernel redirects that sandbox's proxied ports to, and an HttpSession per connection.
//
// The proxy runs in the daemon's process, outside every sandbox cgroup: its own upstream
// connections never pass the sandbox's BPF programs, with no UID or mark the sandbox could
// imitate.
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "http/http.h"
#include "proxy/listener_reservation.h"
#include "proxy/sandbox_context.h"

namespace egressd::audit {
class AuditLog;
}
namespace egressd::metrics {
class Registry;
}

namespace egressd::proxy {

struct ProxyConfig {
  unsigned threads = 0;  // 0: one per CPU the daemon may run on
  int origDstMapFd = -1;
  audit::AuditLog* audit = nullptr;      // may be null
  metrics::Registry* metrics = nullptr;  // may be null
  http::RequestLimits limits;
  // Slowloris: the whole request head must arrive within this time of its first byte
  // (and of the connection's accept, for the first request).
  std::chrono::milliseconds headerTimeout{15000};
  // A keep-alive connection with no request in flight is closed after this.
  std::chrono::milliseconds idleTimeout{60000};
  std::chrono::milliseconds connectTimeout{10000};
  // No byte from the upstream (or from the sandbox while its body streams) for this long.
  std::chrono::milliseconds ioTimeout{60000};
  size_t bufferBytes = 16 * 1024;  // per direction, per connection
  // Connections served at once, all sandboxes together; one more is answered with a 503
  // (X-Egressd-Reason: connection_limit) and closed, instead of stalling in the listen
  // queue once the process runs out of descriptors. 0: derived from RLIMIT_NOFILE at start
  // (kFdsPerConnection each, kReservedFds kept for everything else).
  uint64_t maxConnections = 0;
  // TLS (owned by the caller, shared by every thread; null: TLS is refused). The server
  // side of intercepted connections, and the client side to upstreams (verifying).
  SSL_CTX* interceptTls = nullptr;
  SSL_CTX* upstreamTls = nullptr;
  // The client side for the upstreams of HTTP/2 sessions: offers h2 and http/1.1 (null: those
  // upstreams get upstreamTls, HTTP/1.1 only).
  SSL_CTX* upstreamTlsH2 = nullptr;
  // HTTP/2 sessions (h2_session.h): limits against the attacks specific to HTTP/2.
  struct Http2Limits {
    uint32_t maxConcurrentStreams = 100;    // SETTINGS_MAX_CONCURRENT_STREAMS
    size_t maxHeaderListBytes = 64 * 1024;  // decoded, per request (RFC 9113 6.5.2 counting)
    uint32_t maxContinuationFrames = 4;     // per header block (nghttp2 itself stops at 8)
    uint32_t resetsPerSecond = 100;         // client RST_STREAMs, sustained; then GOAWAY
    uint32_t resetBurst = 400;
    size_t streamWindowBytes = 256 * 1024;     // what one stream may have buffered in egressd
    unsigned maxHttp1UpstreamsPerSession = 8;  // parallel HTTP/1.1 upstream connections
  } http2;
};

// A proxied connection holds up to four descriptors: the sandbox's socket, the upstream
// socket and a splice pipe (two ends).
inline constexpr uint64_t kFdsPerConnection = 4;
inline constexpr uint64_t kReservedFds = 256;
// maxConnections for a descriptor limit of `nofile`: what fits besides kReservedFds, at
// least 16.
uint64_t connectionLimitFor(uint64_t nofile);

class ProxyServer {
 public:
  static Result<std::unique_ptr<ProxyServer>> start(ProxyConfig config);
  ~ProxyServer();
  ProxyServer(const ProxyServer&) = delete;
  ProxyServer& operator=(const ProxyServer&) = delete;

  // Starts listening on the reservation's sockets (127.0.0.1:P and [::1]:P in the sandbox's
  // network namespace) and serving them for `sandbox`. The reservation's fds are kept.
  Status addSandbox(const std::shared_ptr<SandboxContext>& sandbox, ListenerReservation listener);
  // Stops accepting for the sandbox; connections in flight finish.
  void removeSandbox(const std::string& id);

  unsigned threads() const;
  const ProxyConfig& config() const;
  uint64_t openConnections() const;

  struct Impl;

 private:
  explicit ProxyServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace egressd::proxy
