// A counted copy between two TCP sockets that never passes through userspace: socket ->
// pipe -> socket with splice(2). Used for large Content-Length response bodies on plain
// connections (response_relay.h).
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <chrono>
#include <cstdint>
#include <functional>

#include "proxy/pipe.h"
#include "proxy/watchdog.h"

namespace egressd::proxy {

// Moves exactly `length` bytes from `from` to `to` (both non-blocking) through `pipe`,
// refreshing the watchdog's deadline to `ioTimeout` while bytes move and calling
// `delivered(n)` for the bytes written to `to`. False when either side fails or `from`
// closes early; `pipe` may then hold bytes of the dead exchange and must not be reused.
asio::awaitable<bool> spliceExactly(asio::ip::tcp::socket& from, asio::ip::tcp::socket& to,
                                    SplicePipe& pipe, uint64_t length, Watchdog& watchdog,
                                    std::chrono::milliseconds ioTimeout,
                                    const std::function<void(uint64_t)>& delivered);

}  // namespace egressd::proxy
