#include "proxy/byte_tunnel.h"

#include <asio/experimental/awaitable_operators.hpp>

#include "proxy/stream_ops.h"

namespace egressd::proxy {

namespace {

using namespace asio::experimental::awaitable_operators;

// One direction: `from` to `to` through `buf`, counted in `counter`.
template <typename Stream>
asio::awaitable<void> copyOneWay(Stream& from, Stream& to, ByteWindow& buf, uint64_t& counter,
                                 Watchdog& watchdog, std::chrono::milliseconds idleTimeout) {
  for (;;) {
    if (buf.readable() > 0) {
      auto [ec, n] = co_await writeAll(to, asio::buffer(buf.readPtr(), buf.readable()));
      if (ec) {
        cancelStream(from);
        co_return;
      }
      counter += buf.readable();
      buf.consume(buf.readable());
    }
    watchdog.setDeadline(idleTimeout);
    auto [ec, n] = co_await readSome(from, buf.writable());
    if (ec || n == 0) {
      // Half-close: pass the end of this direction on and let the other one finish.
      shutdownSend(to);
      co_return;
    }
    buf.commit(n);
  }
}

}  // namespace

template <typename Stream>
asio::awaitable<TunnelBytes> runTunnel(Stream& client, Stream& upstream, ByteWindow& clientBuf,
                                       ByteWindow& upstreamBuf, Watchdog& watchdog,
                                       std::chrono::milliseconds idleTimeout) {
  TunnelBytes bytes;
  co_await (copyOneWay(client, upstream, clientBuf, bytes.fromClient, watchdog, idleTimeout) &&
            copyOneWay(upstream, client, upstreamBuf, bytes.toClient, watchdog, idleTimeout));
  co_return bytes;
}

template asio::awaitable<TunnelBytes> runTunnel(asio::ip::tcp::socket&, asio::ip::tcp::socket&,
                                                ByteWindow&, ByteWindow&, Watchdog&,
                                                std::chrono::milliseconds);
template asio::awaitable<TunnelBytes> runTunnel(TlsStream&, TlsStream&, ByteWindow&, ByteWindow&,
                                                Watchdog&, std::chrono::milliseconds);

}  // namespace egressd::proxy
