// The TLS gate: a connection that opened with a TLS handshake record. It reads the whole
// ClientHello (however it is split), judges the server name it carries with the host
// policy - or, without a name or with the name hidden by ECH, the original destination by
// the CIDR rules - and then either passes the connection through untouched to an upstream
// egressd chose itself (bytes moved socket to socket with splice(2)), or intercepts it
// with the sandbox's CA and serves the HTTP inside (http_session.h), or refuses it with a
// TLS alert.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <memory>
#include <string>

#include "proxy/orig_dst.h"
#include "proxy/sandbox_context.h"
#include "proxy/server.h"

namespace egressd::proxy {

struct UpstreamPools;

// `received`: what the HTTP reader took off the socket (at least the first record byte).
asio::awaitable<void> serveTlsConnection(asio::ip::tcp::socket client, std::string received,
                                         OrigDst orig, std::shared_ptr<SandboxContext> sandbox,
                                         const ProxyConfig& config, UpstreamPools* pools);

}  // namespace egressd::proxy
