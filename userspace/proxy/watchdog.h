// The one timer of a proxied connection. Deadlines move with what the connection is doing
// (head, idle, I/O, connect); moving a deadline later is a plain store, and the watcher
// re-arms lazily when the timer fires early, so the hot path never touches the timer.
// When the deadline passes the watcher marks the connection timed out and calls
// `onExpiry` (which cancels its sockets: every pending operation ends with an error).
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <memory>

#include "proxy/stream_ops.h"

namespace egressd::proxy {

class Watchdog {
 public:
  using Clock = std::chrono::steady_clock;

  explicit Watchdog(const asio::any_io_executor& executor) : timer_(executor) {}

  // Starts watching; `owner` (the connection) is kept alive until stop().
  void start(std::shared_ptr<void> owner, std::function<void()> onExpiry) {
    asio::co_spawn(timer_.get_executor(), watch(std::move(owner), std::move(onExpiry)),
                   asio::detached);
  }
  void stop() {
    finished_ = true;
    timer_.cancel();
  }

  void setDeadline(std::chrono::milliseconds fromNow) {
    const Clock::time_point d = Clock::now() + fromNow;
    const bool earlier = d < deadline_;
    deadline_ = d;
    if (earlier) {
      timer_.cancel();  // re-armed by the watcher at the new, earlier deadline
    }
  }
  // Moves the deadline to `d` only if that is earlier.
  void tighten(Clock::time_point d) {
    if (d < deadline_) {
      deadline_ = d;
      timer_.cancel();
    }
  }

  // Set when a deadline passed; the connection reads and clears it to say why it failed.
  bool timedOut = false;

 private:
  // `owner` lives in the coroutine frame: the connection outlives its watcher.
  asio::awaitable<void> watch([[maybe_unused]] std::shared_ptr<void> owner,
                              std::function<void()> onExpiry) {
    while (!finished_) {
      timer_.expires_at(deadline_);
      co_await timer_.async_wait(kNoThrow);
      if (finished_) {
        break;
      }
      if (Clock::now() >= deadline_) {
        timedOut = true;
        deadline_ = Clock::time_point::max();
        onExpiry();
      }
    }
  }

  asio::steady_timer timer_;
  Clock::time_point deadline_ = Clock::time_point::max();
  bool finished_ = false;
};

}  // namespace egressd::proxy
