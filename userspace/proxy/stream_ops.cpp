#include "proxy/stream_ops.h"

#include <asio/write.hpp>

namespace egressd::proxy {

asio::awaitable<std::tuple<std::error_code, size_t>> writeAll(asio::ip::tcp::socket& socket,
                                                              asio::const_buffer data) {
  std::error_code ec;
  const size_t done = socket.write_some(data, ec);
  if ((!ec && done == data.size()) ||
      (ec && ec != asio::error::would_block && ec != asio::error::try_again)) {
    co_return std::tuple<std::error_code, size_t>{ec, done};
  }
  auto [rest, n] = co_await asio::async_write(socket, asio::buffer(data + done), kNoThrow);
  co_return std::tuple<std::error_code, size_t>{rest, done + n};
}

}  // namespace egressd::proxy
