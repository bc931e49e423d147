// After a genuine 101 Switching Protocols: the client and upstream connections joined as a
// tunnel, bytes copied both ways unparsed until both ends have closed. For plain
// (tcp::socket) and intercepted TLS (TlsStream) sessions alike.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>

#include "proxy/byte_window.h"
#include "proxy/tls_stream.h"
#include "proxy/watchdog.h"

namespace egressd::proxy {

// Bytes each way, for the audit line.
struct TunnelBytes {
  uint64_t fromClient = 0;
  uint64_t toClient = 0;
};

// Runs the tunnel; `clientBuf` and `upstreamBuf` may already hold bytes read from each side
// (they go first). Each direction ends on its side's close or error (passing the half-close
// on); the watchdog's deadline moves to `idleTimeout` before every read.
template <typename Stream>
asio::awaitable<TunnelBytes> runTunnel(Stream& client, Stream& upstream, ByteWindow& clientBuf,
                                       ByteWindow& upstreamBuf, Watchdog& watchdog,
                                       std::chrono::milliseconds idleTimeout);

extern template asio::awaitable<TunnelBytes> runTunnel(asio::ip::tcp::socket&,
                                                       asio::ip::tcp::socket&, ByteWindow&,
                                                       ByteWindow&, Watchdog&,
                                                       std::chrono::milliseconds);
extern template asio::awaitable<TunnelBytes> runTunnel(TlsStream&, TlsStream&, ByteWindow&,
                                                       ByteWindow&, Watchdog&,
                                                       std::chrono::milliseconds);

}  // namespace egressd::proxy
