#include "proxy/request_body_relay.h"

#include "proxy/stream_ops.h"

namespace egressd::proxy {

template <typename Stream>
asio::awaitable<bool> RequestBodyRelay<Stream>::relay(uint64_t& bytesIn) {
  for (;;) {
    if (clientBuf_.readable() > 0) {
      auto step = parser_.feed(clientBuf_.readPtr(), clientBuf_.readable());
      if (step.kind == http::RequestParser::Step::Kind::kError) {
        co_return false;
      }
      if (step.consumed > 0) {
        auto [ec, n] =
            co_await writeAll(upstream_, asio::buffer(clientBuf_.readPtr(), step.consumed));
        if (ec) {
          co_return false;
        }
        bytesIn += step.consumed;
        if (bytesFromSandbox_ != nullptr) {
          bytesFromSandbox_->inc(step.consumed);
        }
        clientBuf_.consume(step.consumed);
      }
      if (step.kind == http::RequestParser::Step::Kind::kMessageEnd) {
        co_return true;
      }
    }
    watchdog_.setDeadline(ioTimeout_);
    auto [ec, n] = co_await readSome(client_, clientBuf_.writable());
    if (ec || n == 0) {
      co_return false;
    }
    clientBuf_.commit(n);
  }
}

template class RequestBodyRelay<asio::ip::tcp::socket>;
template class RequestBodyRelay<TlsStream>;

}  // namespace egressd::proxy
