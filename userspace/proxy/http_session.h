// One accepted connection from a sandbox. Plain HTTP/1.1 is served here: every request is
// judged on its own Host, sent to an upstream egressd resolved itself, and answered with
// the upstream's bytes as they come (bodies stream both ways; memory per connection is the
// two fixed buffers). A connection that opens with a TLS ClientHello goes to the TLS gate
// (tls_session.h), which passes it through or hands it back here, intercepted, to be
// served as HTTP inside TLS with the same code.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <memory>
#include <string>

#include "proxy/orig_dst.h"
#include "proxy/sandbox_context.h"
#include "proxy/server.h"
#include "proxy/tls_session.h"
#include "proxy/tls_stream.h"

namespace egressd::proxy {

struct UpstreamPools;

// Serves `client` until it closes, times out or fails. `orig` is the destination the
// sandbox asked for (from the kernel); `pools` are the calling thread's idle upstreams.
asio::awaitable<void> serveConnection(asio::ip::tcp::socket client, OrigDst orig,
                                      std::shared_ptr<SandboxContext> sandbox,
                                      const ProxyConfig& config, UpstreamPools* pools);

// HTTP inside an intercepted TLS connection: `client` has its SSL attached (the leaf for
// `serverName` set); the handshake starts from `clientHello`, the bytes already read. Every
// request's Host must be `serverName` (else 421); upstreams are TLS, verified.
asio::awaitable<void> serveInterceptedConnection(TlsStream client, std::string clientHello,
                                                 std::string serverName, OrigDst orig,
                                                 std::shared_ptr<SandboxContext> sandbox,
                                                 const ProxyConfig& config, UpstreamPools* pools);

}  // namespace egressd::proxy
