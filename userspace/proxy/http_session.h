// One accepted connection from a sandbox, served as HTTP/1.1: every request is judged on
// its own Host, sent to an upstream egressd resolved itself, and answered with the
// upstream's bytes as they come (bodies stream both ways; memory per connection is the
// two fixed buffers).
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <memory>

#include "proxy/orig_dst.h"
#include "proxy/sandbox_context.h"
#include "proxy/server.h"

namespace egressd::proxy {

class UpstreamPool;

// Serves `client` until it closes, times out or fails. `orig` is the destination the
// sandbox asked for (from the kernel); `pool` is the calling thread's idle upstreams.
asio::awaitable<void> serveHttpConnection(asio::ip::tcp::socket client, OrigDst orig,
                                          std::shared_ptr<SandboxContext> sandbox,
                                          const ProxyConfig& config, UpstreamPool* pool);

}  // namespace egressd::proxy
