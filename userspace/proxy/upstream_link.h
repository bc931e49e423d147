// A session's connection to its upstream, kept across the requests of one client
// connection: the one the previous request left open when it serves the next request's
// target, else an idle one of the thread's pool (upstream_pool.h), else a new one
// (upstream_open.h); back to the pool after a clean response, closed otherwise. For plain
// (tcp::socket) and intercepted TLS (TlsStream) sessions alike.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <string>

#include "common/ip_address.h"
#include "common/result.h"
#include "http/parser.h"
#include "metrics/metrics.h"
#include "proxy/byte_window.h"
#include "proxy/server.h"
#include "proxy/tls_stream.h"
#include "proxy/upstream_open.h"
#include "proxy/upstream_pool.h"
#include "proxy/upstream_target.h"

namespace egressd::proxy {

template <typename Stream>
class UpstreamLink {
 public:
  // `pool` may be null (no reuse across client connections); its keys start with
  // `poolPrefix` (the sandbox's). `buffer` and `parser` hold what was read of the upstream:
  // emptied when its connection goes; both are the session's and outlive the link.
  UpstreamLink(const asio::any_io_executor& executor, BasicUpstreamPool<Stream>* pool,
               std::string poolPrefix, ByteWindow& buffer, http::ResponseParser& parser)
      : executor_(executor),
        pool_(pool),
        poolPrefix_(std::move(poolPrefix)),
        buffer_(buffer),
        parser_(parser),
        stream_(executor) {}

  // The connection; the same object for the link's life (its contents are replaced).
  Stream& stream() { return stream_; }
  // What the open connection goes to ("198.18.3.3:443", a reroute target), for audit lines.
  const std::string& endpointText() const { return endpointText_; }

  // Keeps the open connection when it serves `target` (its key) and its address is still
  // one `target` may use; else lets it go and takes such a connection from the pool.
  // False: there is none, connect() must open one.
  bool reuse(const UpstreamTarget& target);

  // A new connection to `target` (see openUpstream(): `host`, `config`, `timedOut`), its
  // time observed by `connectTime` (may be null). `endpoint`: what it went to, or tried
  // last when it failed.
  asio::awaitable<Status> connect(const UpstreamTarget& target, const std::string& host,
                                  const ProxyConfig& config, const bool& timedOut,
                                  metrics::Histogram* connectTime, UpstreamEndpoint& endpoint);

  // Between responses (the last one ended cleanly): the connection may go back to the pool.
  void setIdle(bool idle) { idle_ = idle; }
  // Never to be pooled or reused for another request (after an Upgrade request).
  void keepFromReuse() { key_.clear(); }

  // Back to the pool when idle with nothing unread; closed otherwise.
  void release();
  void close();

 private:
  asio::any_io_executor executor_;
  BasicUpstreamPool<Stream>* const pool_;
  const std::string poolPrefix_;
  ByteWindow& buffer_;
  http::ResponseParser& parser_;
  Stream stream_;
  bool idle_ = false;
  IpAddress addr_;
  std::string key_;  // "host|port" the open connection serves ("" = none, or not reusable)
  std::string endpointText_;
};

extern template class UpstreamLink<asio::ip::tcp::socket>;
extern template class UpstreamLink<TlsStream>;

}  // namespace egressd::proxy
