// Opens the upstream connection for an UpstreamTarget: the request's own host (TLS for it in
// an intercepted session) or a handler's reroute target (TLS only for `https://`, whichever
// kind the session is; a plain session gets it through originateTls()); a unix socket for
// `unix:`. TLS is verified for the name, never a plaintext or unverified fallback. For plain
// (tcp::socket) and intercepted TLS (TlsStream) sessions alike.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <string>

#include "common/ip_address.h"
#include "common/result.h"
#include "proxy/server.h"
#include "proxy/tls_stream.h"
#include "proxy/upstream_target.h"

namespace egressd::proxy {

// What openUpstream() connected to, or tried last when it failed (for the audit line).
struct UpstreamEndpoint {
  std::string text;  // "198.18.3.3:443", or the reroute target ("https://h:443", "unix:/p")
  IpAddress addr;    // unset for a unix socket
};

// Replaces `upstream` with a fresh connection (on `executor`) to `target`; `host` is the
// request's (the TLS name when it is not rerouted). Stops early once `timedOut` is set (the
// session's watchdog, whose deadline the caller set). Errors with code EPROTO are TLS
// failures.
template <typename Stream>
asio::awaitable<Status> openUpstream(Stream& upstream, const asio::any_io_executor& executor,
                                     const UpstreamTarget& target, const std::string& host,
                                     const ProxyConfig& config, const bool& timedOut,
                                     UpstreamEndpoint& endpoint);

extern template asio::awaitable<Status> openUpstream(asio::ip::tcp::socket&,
                                                     const asio::any_io_executor&,
                                                     const UpstreamTarget&, const std::string&,
                                                     const ProxyConfig&, const bool&,
                                                     UpstreamEndpoint&);
extern template asio::awaitable<Status> openUpstream(TlsStream&, const asio::any_io_executor&,
                                                     const UpstreamTarget&, const std::string&,
                                                     const ProxyConfig&, const bool&,
                                                     UpstreamEndpoint&);

}  // namespace egressd::proxy
