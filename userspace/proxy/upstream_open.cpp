#include "proxy/upstream_open.h"

#include <algorithm>
#include <chrono>
#include <type_traits>
#include <utility>

#include "proxy/stream_ops.h"
#include "proxy/upstream_choice.h"
#include "proxy/upstream_connect.h"
#include "tls/contexts.h"

namespace egressd::proxy {

namespace {

// After the session closes a TLS-originated upstream (plain session, `reroute: https://`):
// how long the server gets to answer our close_notify before its connection is cut.
constexpr int64_t kOriginationLingerMs = 5000;

}  // namespace

template <typename Stream>
asio::awaitable<Status> openUpstream(Stream& upstream, const asio::any_io_executor& executor,
                                     const UpstreamTarget& target, const std::string& host,
                                     const ProxyConfig& config, const bool& timedOut,
                                     UpstreamEndpoint& endpoint) {
  using Kind = handlers::RerouteTarget::Kind;
  constexpr bool kTls = std::is_same_v<Stream, TlsStream>;
  const handlers::RerouteTarget* reroute = target.reroute ? &*target.reroute : nullptr;
  const bool wantTls = reroute != nullptr ? reroute->kind == Kind::kTls : kTls;
  const std::string& tlsName = reroute != nullptr ? reroute->host : host;
  const std::string what = reroute != nullptr ? reroute->text() : host;

  // A fresh stream: one that carried TLS before must not keep its SSL for a plain upstream.
  closeStream(upstream);
  upstream = Stream(executor);

  if (reroute != nullptr && reroute->kind == Kind::kUnix) {
    auto socket = co_await connectUnix(executor, reroute->path, config.connectTimeout);
    endpoint = UpstreamEndpoint{reroute->text(), IpAddress{}};
    if (!socket.ok()) {
      co_return std::move(socket).error();
    }
    upstream = Stream(std::move(*socket));
    prepareSocket(lowestLayer(upstream));
    co_return okStatus();
  }
  asio::ip::tcp::socket& socket = lowestLayer(upstream);
  const ConnectOutcome connected =
      co_await connectFirst(socket, target.addrs, target.port, timedOut);
  endpoint = UpstreamEndpoint{reroute != nullptr ? reroute->text() : connected.endpointText,
                              connected.addr};
  if (!connected.connected) {
    co_return Error(ECONNREFUSED, "cannot connect to " + what + " (" + connected.errors + ")");
  }
  prepareSocket(socket);
  if (!wantTls) {
    co_return okStatus();
  }
  // Verified against the system store plus --upstream-ca-file, for this very name:
  // a failure is the client's 502, never a plaintext or unverified fallback.
  if constexpr (kTls) {
    tls::SslPtr ssl(SSL_new(config.upstreamTls));
    Status prepared = ssl ? tls::prepareUpstreamSsl(ssl.get(), tlsName)
                          : Status(Error(ENOMEM, "SSL_new: " + tls::drainOpenSslErrors()));
    if (!prepared.ok()) {
      closeStream(upstream);
      co_return Error(EPROTO, "TLS to " + what + " (" + connected.endpointText +
                                  ") failed: " + prepared.error().message());
    }
    upstream.attach(std::move(ssl), TlsStream::Role::kClient);
    const std::error_code hec = co_await upstream.handshake();
    if (hec) {
      std::string why =
          timedOut ? std::string("handshake timed out") : tls::upstreamFailureText(upstream.ssl());
      if (why.empty()) {
        why = upstream.failureText().empty() ? hec.message() : upstream.failureText();
      }
      closeStream(upstream);
      co_return Error(EPROTO,
                      "TLS to " + what + " (" + connected.endpointText + ") failed: " + why);
    }
  } else {
    // The linger bounds how long a server that ignores our close_notify keeps the
    // pump (and its connection) alive after the session let go of it.
    auto originated = co_await originateTls(
        std::move(upstream), config.upstreamTls, tlsName, config.connectTimeout,
        std::min(config.ioTimeout, std::chrono::milliseconds(kOriginationLingerMs)));
    upstream = asio::ip::tcp::socket(executor);
    if (!originated.ok()) {
      co_return Error(EPROTO, "TLS to " + what + " (" + connected.endpointText +
                                  ") failed: " + originated.error().message());
    }
    upstream = std::move(*originated);
    prepareSocket(upstream);
  }
  co_return okStatus();
}

template asio::awaitable<Status> openUpstream(asio::ip::tcp::socket&, const asio::any_io_executor&,
                                              const UpstreamTarget&, const std::string&,
                                              const ProxyConfig&, const bool&, UpstreamEndpoint&);
template asio::awaitable<Status> openUpstream(TlsStream&, const asio::any_io_executor&,
                                              const UpstreamTarget&, const std::string&,
                                              const ProxyConfig&, const bool&, UpstreamEndpoint&);

}  // namespace egressd::proxy
