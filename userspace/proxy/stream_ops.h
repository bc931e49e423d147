// The handful of operations the proxy's sessions use on a connection, for both kinds of
// connection: a plain TCP socket and a TlsStream. Sessions are templates over the kind,
// so the plain path keeps its direct calls (no virtual dispatch, no extra coroutine
// frame per read) and the TLS path shares every line of HTTP handling with it.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/use_awaitable.hpp>
#include <system_error>
#include <tuple>

#include "proxy/tls_stream.h"

namespace egressd::proxy {

inline constexpr auto kNoThrow = asio::experimental::as_tuple(asio::use_awaitable);

inline asio::ip::tcp::socket& lowestLayer(asio::ip::tcp::socket& s) {
  return s;
}
inline asio::ip::tcp::socket& lowestLayer(TlsStream& s) {
  return s.socket();
}

inline auto readSome(asio::ip::tcp::socket& s, asio::mutable_buffer buffer) {
  return s.async_read_some(buffer, kNoThrow);
}
inline asio::awaitable<std::tuple<std::error_code, size_t>> readSome(TlsStream& s,
                                                                     asio::mutable_buffer buffer) {
  return s.readSome(buffer);
}

// Writes all of `data`: first synchronously on the non-blocking socket (a small head or
// response almost always fits the socket buffer), then asynchronously for the rest. An
// async_write that completes at once still posts its completion, and posting wakes the
// reactor with an epoll_ctl: a system call per write saved.
asio::awaitable<std::tuple<std::error_code, size_t>> writeAll(asio::ip::tcp::socket& socket,
                                                              asio::const_buffer data);
inline asio::awaitable<std::tuple<std::error_code, size_t>> writeAll(TlsStream& s,
                                                                     asio::const_buffer data) {
  return s.writeAll(data);
}

// TCP_NODELAY (heads and small bodies go out at once) and a non-blocking user mode, so a
// synchronous read_some after readiness returns would_block instead of waiting. Also called
// on the unix stream sockets a reroute yields (held as tcp::socket): TCP_NODELAY then fails
// with EOPNOTSUPP, which is harmless and ignored; the non-blocking mode is what matters.
void prepareSocket(asio::ip::tcp::socket& s);

inline void shutdownSend(asio::ip::tcp::socket& s) {
  std::error_code ignored;
  s.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
}
inline void shutdownSend(TlsStream& s) {
  s.shutdownSend();
}

inline void cancelStream(asio::ip::tcp::socket& s) {
  std::error_code ignored;
  s.cancel(ignored);
}
inline void cancelStream(TlsStream& s) {
  s.cancel();
}

inline void closeStream(asio::ip::tcp::socket& s) {
  std::error_code ignored;
  s.close(ignored);
}
inline void closeStream(TlsStream& s) {
  s.close();
}

}  // namespace egressd::proxy
