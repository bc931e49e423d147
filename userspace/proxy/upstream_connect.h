// Upstreams a handler's `reroute` can name besides an ordinary TCP address: a unix stream
// socket (`unix:/run/kv.sock`) and, for a plain-HTTP session, a TLS server
// (`https://host`). Both come back as an asio::ip::tcp::socket, the type the plain session
// reads and writes: Asio's reactor does the same readiness waits and read/write calls on any
// stream fd, so the session (its relay, its pool, its splice of large bodies) needs no
// second code path. TCP-only socket options do not apply to them (the session ignores the
// failure).
#pragma once

#include <openssl/ssl.h>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <chrono>
#include <string>

#include "common/result.h"

namespace egressd::proxy {

// Connects a non-blocking AF_UNIX stream socket to `path` (absolute). A listener whose
// backlog is full makes connect() fail with EAGAIN on unix sockets (there is no
// EINPROGRESS to wait for): that is retried every few milliseconds until `timeout`.
// Errors name the path and the reason ("connect to unix:/run/kv.sock: No such file or
// directory"); ETIMEDOUT when the backlog stayed full.
asio::awaitable<Result<asio::ip::tcp::socket>> connectUnix(const asio::any_io_executor& executor,
                                                           const std::string& path,
                                                           std::chrono::milliseconds timeout);

// TLS origination for a plain session: runs a verified TLS client handshake for `name`
// (SNI unless an IP literal, certificate checked against `ctx`'s trust store and the name)
// on `connected` within `timeout`, and only then returns one end of a socketpair whose
// other end a detached coroutine pumps to and from the TLS connection (plaintext in,
// records out). So a handshake or verification failure is the caller's 502 with the reason
// (EPROTO, "certificate has expired", "handshake timed out"), never a half-set-up relay.
//
// The pump lives as long as the returned socket: closing it ends the TLS connection
// (close_notify, then FIN; if the server does not close within `linger`, it is cut). The
// server ending its side shows as the end of the stream on the returned socket.
asio::awaitable<Result<asio::ip::tcp::socket>> originateTls(asio::ip::tcp::socket connected,
                                                            SSL_CTX* ctx, const std::string& name,
                                                            std::chrono::milliseconds timeout,
                                                            std::chrono::milliseconds linger);

}  // namespace egressd::proxy
