// HTTP/2 inside an intercepted TLS connection (ALPN h2, offered when the sandbox's policy has
// http.http2): nghttp2 frames the connection; every stream is one request, judged by the same
// decideRequest() as an HTTP/1.1 request (Host rules on :authority, 421 when it is not the
// TLS server name, handlers and secrets per stream, denials as the stream's response with
// the same status, headers and body), audited and counted per stream. Forwarded streams go
// to the upstream over HTTP/2 when it offers h2 (streams of one session to one origin share
// a connection), else over HTTP/1.1, one connection per stream in flight.
//
// Limits against HTTP/2's own attacks (docs/http2.md): concurrent streams, client resets
// per second (rapid reset), CONTINUATION frames per header block, decoded header list size
// (HPACK bombs), per-stream and per-connection windows (memory per stream is bounded by
// flow control), nghttp2's own bounds on queued control frames and SETTINGS.
#pragma once

#include <asio/awaitable.hpp>
#include <memory>
#include <string>

#include "proxy/orig_dst.h"
#include "proxy/sandbox_context.h"
#include "proxy/server.h"
#include "proxy/tls_stream.h"

namespace egressd::proxy {

struct UpstreamPools;

// `client`: the handshake done, ALPN h2. `serverName`: what the TLS session was judged for.
asio::awaitable<void> serveHttp2Connection(TlsStream client, std::string serverName, OrigDst orig,
                                           std::shared_ptr<SandboxContext> sandbox,
                                           const ProxyConfig& config, UpstreamPools* pools);

}  // namespace egressd::proxy
