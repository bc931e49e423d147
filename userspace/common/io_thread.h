// The thread a small side server (metrics endpoint, control API) runs its io_context on.
// Header-only: only the servers that already use Asio and spdlog include it.
#pragma once

#include <spdlog/spdlog.h>

#include <asio/io_context.hpp>
#include <exception>
#include <string>
#include <thread>

namespace egressd {

// Runs `io` until it stops. Connection coroutines are detached and catch what their handlers
// throw; this only keeps an unexpected exception from terminating the daemon over a side
// server: it is logged as "`what`: ..." and the loop goes on.
inline std::thread startIoThread(asio::io_context& io, std::string what) {
  return std::thread([&io, what = std::move(what)] {
    for (;;) {
      try {
        io.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("{}: {}", what, e.what());
      }
    }
  });
}

}  // namespace egressd
