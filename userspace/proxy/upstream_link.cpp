#include "proxy/upstream_link.h"

#include <chrono>
#include <utility>

#include "proxy/stream_ops.h"

namespace egressd::proxy {

template <typename Stream>
bool UpstreamLink<Stream>::reuse(const UpstreamTarget& target) {
  if (stream_.is_open() && target.key == key_ && target.mayUse(addr_)) {
    return true;
  }
  release();
  if (pool_ == nullptr) {
    return false;
  }
  while (auto pooled = pool_->take(poolPrefix_ + target.key)) {
    if (!target.mayUse(pooled->addr)) {
      closeStream(pooled->socket);
      continue;
    }
    stream_ = std::move(pooled->socket);
    endpointText_ = std::move(pooled->endpointText);
    addr_ = pooled->addr;
    key_ = target.key;
    return true;
  }
  return false;
}

template <typename Stream>
asio::awaitable<Status> UpstreamLink<Stream>::connect(
    const UpstreamTarget& target, const std::string& host, const ProxyConfig& config,
    const bool& timedOut, metrics::Histogram* connectTime, UpstreamEndpoint& endpoint) {
  const auto started = std::chrono::steady_clock::now();
  Status opened =
      co_await openUpstream(stream_, executor_, target, host, config, timedOut, endpoint);
  addr_ = endpoint.addr;
  if (!opened.ok()) {
    co_return opened;
  }
  endpointText_ = endpoint.text;
  key_ = target.key;
  if (connectTime != nullptr) {
    connectTime->observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }
  co_return okStatus();
}

template <typename Stream>
void UpstreamLink<Stream>::release() {
  if (pool_ != nullptr && stream_.is_open() && idle_ && !key_.empty() && buffer_.readable() == 0) {
    pool_->put(poolPrefix_ + key_, {std::move(stream_), endpointText_, addr_, {}});
    stream_ = Stream(executor_);
    key_.clear();
    idle_ = false;
    parser_.reset();
    return;
  }
  close();
}

template <typename Stream>
void UpstreamLink<Stream>::close() {
  idle_ = false;
  closeStream(stream_);
  key_.clear();
  buffer_.consume(buffer_.readable());
  parser_.reset();
}

template class UpstreamLink<asio::ip::tcp::socket>;
template class UpstreamLink<TlsStream>;

}  // namespace egressd::proxy
