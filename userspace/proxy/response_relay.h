// Relays the upstream's response(s) to one request to the client: informational 1xx heads,
// then the final response, byte for byte as the upstream framed them (response_scan.h
// judges them), through the secret redactor while it scans, and a large Content-Length
// body of a plain connection spliced socket to socket in the kernel. One per session, for
// plain (Stream = tcp::socket) and intercepted TLS (Stream = TlsStream) sessions alike.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "http/http.h"
#include "metrics/metrics.h"
#include "proxy/byte_window.h"
#include "proxy/pipe.h"
#include "proxy/request_rules.h"
#include "proxy/response_scan.h"
#include "proxy/tls_stream.h"
#include "proxy/watchdog.h"

namespace egressd::proxy {

// What the client has been sent of the response to the request in flight, by the relay or
// by an answer of egressd's own. The session starts it afresh for each request.
struct ResponseProgress {
  int status = 0;                  // of the last response head sent
  bool started = false;            // response bytes reached the client
  bool upstreamKeepAlive = false;  // the upstream connection may carry another request
  uint64_t bytesToClient = 0;
};

enum class ResponseEnd {
  kComplete,            // the final response was relayed whole
  kCompleteUntilClose,  // ... and it ended with the upstream's close
  kUpgraded,            // an allowed 101 was relayed: the connection is now a tunnel
  kFailedBeforeBytes,   // nothing reached the client (the request may be retried)
  kFailed,              // the exchange broke mid-response
};

template <typename Stream>
class ResponseRelay {
 public:
  // Every reference is the session's and outlives the relay; `upstream` may be replaced
  // (reassigned) between requests. `bytesToSandbox` may be null.
  ResponseRelay(Stream& client, Stream& upstream, ByteWindow& upstreamBuf,
                http::ResponseParser& parser, SecretRedactor& redactor, Watchdog& watchdog,
                std::chrono::milliseconds ioTimeout, metrics::Counter* bytesToSandbox)
      : client_(client),
        upstream_(upstream),
        upstreamBuf_(upstreamBuf),
        parser_(parser),
        redactor_(redactor),
        watchdog_(watchdog),
        ioTimeout_(ioTimeout),
        bytesToSandbox_(bytesToSandbox) {}

  // Relays the response(s) to the request whose method is `method`.
  asio::awaitable<ResponseEnd> relay(std::string_view method, ResponseRules rules,
                                     ResponseProgress& progress);

 private:
  asio::awaitable<bool> sendToClient(char* data, size_t size, bool last,
                                     ResponseProgress& progress);
  asio::awaitable<bool> spliceToClient(uint64_t length, ResponseProgress& progress);
  void countToClient(uint64_t bytes, ResponseProgress& progress);

  Stream& client_;
  Stream& upstream_;
  ByteWindow& upstreamBuf_;
  http::ResponseParser& parser_;
  SecretRedactor& redactor_;
  Watchdog& watchdog_;
  const std::chrono::milliseconds ioTimeout_;
  metrics::Counter* const bytesToSandbox_;
  // For splice: created on the first large body, kept for the connection's life.
  std::optional<SplicePipe> pipe_;
};

extern template class ResponseRelay<asio::ip::tcp::socket>;
extern template class ResponseRelay<TlsStream>;

}  // namespace egressd::proxy
