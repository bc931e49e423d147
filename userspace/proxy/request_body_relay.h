// Streams a request's body from the client to the upstream, raw as the client framed it
// (the request parser validates the framing as the bytes pass; its head is already read).
// The request side of what response_relay.h does for responses. One per session, for plain
// (Stream = tcp::socket) and intercepted TLS (Stream = TlsStream) sessions alike.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>

#include "http/parser.h"
#include "metrics/metrics.h"
#include "proxy/byte_window.h"
#include "proxy/tls_stream.h"
#include "proxy/watchdog.h"

namespace egressd::proxy {

template <typename Stream>
class RequestBodyRelay {
 public:
  // Every reference is the session's and outlives the relay; `upstream` may be replaced
  // (reassigned) between requests. `bytesFromSandbox` may be null.
  RequestBodyRelay(Stream& client, Stream& upstream, ByteWindow& clientBuf,
                   http::RequestParser& parser, Watchdog& watchdog,
                   std::chrono::milliseconds ioTimeout, metrics::Counter* bytesFromSandbox)
      : client_(client),
        upstream_(upstream),
        clientBuf_(clientBuf),
        parser_(parser),
        watchdog_(watchdog),
        ioTimeout_(ioTimeout),
        bytesFromSandbox_(bytesFromSandbox) {}

  // Until the body's end; the body bytes sent are added to `bytesIn`. False: the client or
  // the upstream failed mid-body, or the framing turned out malformed.
  asio::awaitable<bool> relay(uint64_t& bytesIn);

 private:
  Stream& client_;
  Stream& upstream_;
  ByteWindow& clientBuf_;
  http::RequestParser& parser_;
  Watchdog& watchdog_;
  const std::chrono::milliseconds ioTimeout_;
  metrics::Counter* const bytesFromSandbox_;
};

extern template class RequestBodyRelay<asio::ip::tcp::socket>;
extern template class RequestBodyRelay<TlsStream>;

}  // namespace egressd::proxy
