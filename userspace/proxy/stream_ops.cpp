#include "proxy/stream_ops.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

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

void prepareSocket(asio::ip::tcp::socket& s) {
  int on = 1;
  (void)::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  asio::error_code ignored;
  s.non_blocking(true, ignored);
}

}  // namespace egressd::proxy
