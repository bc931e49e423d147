#include "proxy/splice_copy.h"

#include <fcntl.h>

#include <algorithm>
#include <asio/experimental/awaitable_operators.hpp>
#include <cerrno>
#include <tuple>
#include <variant>

#include "proxy/stream_ops.h"

namespace egressd::proxy {

using asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;

asio::awaitable<bool> spliceExactly(tcp::socket& from, tcp::socket& to, SplicePipe& pipe,
                                    uint64_t length, Watchdog& watchdog,
                                    std::chrono::milliseconds ioTimeout,
                                    const std::function<void(uint64_t)>& delivered) {
  uint64_t remaining = length;
  size_t inPipe = 0;
  while (remaining > 0 || inPipe > 0) {
    watchdog.setDeadline(ioTimeout);
    bool progressed = false;
    if (remaining > 0 && inPipe < pipe.capacity) {
      const size_t want =
          static_cast<size_t>(std::min<uint64_t>(remaining, pipe.capacity - inPipe));
      const ssize_t n = ::splice(from.native_handle(), nullptr, pipe.write.get(), nullptr, want,
                                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n == 0) {
        break;  // `from` closed before the end
      }
      if (n > 0) {
        remaining -= static_cast<uint64_t>(n);
        inPipe += static_cast<size_t>(n);
        progressed = true;
      } else if (errno != EAGAIN) {
        break;
      }
    }
    if (inPipe > 0) {
      const ssize_t n = ::splice(pipe.read.get(), nullptr, to.native_handle(), nullptr, inPipe,
                                 SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        inPipe -= static_cast<size_t>(n);
        delivered(static_cast<uint64_t>(n));
        progressed = true;
      } else if (n < 0 && errno != EAGAIN) {
        break;
      }
    }
    if (progressed) {
      continue;
    }
    // Neither side could move: wait for the side that can unblock us (either, when both can).
    asio::error_code ec;
    if (inPipe > 0 && (remaining == 0 || inPipe >= pipe.capacity)) {
      std::tie(ec) = co_await to.async_wait(tcp::socket::wait_write, kNoThrow);
    } else if (inPipe == 0) {
      std::tie(ec) = co_await from.async_wait(tcp::socket::wait_read, kNoThrow);
    } else {
      auto either = co_await (to.async_wait(tcp::socket::wait_write, kNoThrow) ||
                              from.async_wait(tcp::socket::wait_read, kNoThrow));
      ec =
          either.index() == 0 ? std::get<0>(std::get<0>(either)) : std::get<0>(std::get<1>(either));
    }
    if (ec) {
      break;
    }
  }
  co_return remaining == 0 && inPipe == 0;
}

}  // namespace egressd::proxy
