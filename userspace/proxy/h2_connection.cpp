#include "proxy/h2_connection.h"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <memory>

#include <spdlog/spdlog.h>

namespace egressd::proxy::h2 {

namespace {
// Output is gathered up to this size before one TLS write (several frames, one record run).
constexpr size_t kOutputBatchBytes = 64 * 1024;
}  // namespace

H2Connection::H2Connection(TlsStream stream, size_t bufferBytes)
    : stream_(std::move(stream)),
      bufferBytes_(bufferBytes),
      writeWake_(stream_.get_executor()),
      readerEnded_(stream_.get_executor()) {}

H2Connection::~H2Connection() {
  if (session_ != nullptr) {
    nghttp2_session_del(session_);
  }
}

void H2Connection::stop() {
  stopping_ = true;
  stream_.cancel();
  wakeWriter();
}

asio::awaitable<void> H2Connection::serve(std::shared_ptr<void> owner) {
  asio::co_spawn(stream_.get_executor(), readLoop(owner), asio::detached);
  co_await writeLoop();
  spdlog::debug("h2 connection: writer ended ({})", endReason_);
  // The writer is done (nothing more will be sent): stop the reader and wait for it.
  stopping_ = true;
  stream_.cancel();
  while (!readerDone_) {
    co_await readerEnded_.wait();
  }
  stream_.shutdownSend();
  co_await lingerClose();
  stream_.close();
}

// A close with the peer's bytes unread makes the kernel answer with a TCP reset, and the
// peer may lose our last frames (a GOAWAY saying why) with it. So what still comes is read
// and dropped, for a bounded time, until the peer closes too.
asio::awaitable<void> H2Connection::lingerClose() {
  asio::ip::tcp::socket& socket = stream_.socket();
  if (!socket.is_open()) {
    co_return;
  }
  constexpr int kRounds = 20;  // x 50 ms
  constexpr size_t kMaxBytes = 4 * 1024 * 1024;
  std::error_code ignored;
  socket.non_blocking(true, ignored);
  asio::steady_timer timer(stream_.get_executor());
  std::unique_ptr<char[]> sink(new char[4096]);  // (no array in a coroutine frame: GCC 12)
  size_t dropped = 0;
  for (int round = 0; round < kRounds && dropped < kMaxBytes; ++round) {
    for (;;) {
      std::error_code ec;
      const size_t n = socket.read_some(asio::buffer(sink.get(), 4096), ec);
      if (ec == asio::error::would_block || ec == asio::error::try_again) {
        break;
      }
      if (ec || n == 0) {
        co_return;  // the peer closed (or the socket failed): nothing left to protect
      }
      dropped += n;
    }
    timer.expires_after(std::chrono::milliseconds(50));
    co_await timer.async_wait(kNoThrow);
  }
}

asio::awaitable<void> H2Connection::readLoop(std::shared_ptr<void> owner) {
  while (!stopping_) {
    // An idle connection holds no read buffer: one is taken only once bytes are there.
    if (const std::error_code wec = co_await stream_.waitReadable(); wec) {
      if (endReason_.empty()) {
        endReason_ = wec.message();
      }
      break;
    }
    std::unique_ptr<uint8_t[]> buffer(new uint8_t[bufferBytes_]);
    auto [ec, n] = co_await stream_.readSome(asio::buffer(buffer.get(), bufferBytes_));
    if (ec || n == 0) {
      if (endReason_.empty()) {
        endReason_ = ec ? ec.message() : "closed by the peer";
      }
      break;
    }
    const ssize_t taken = nghttp2_session_mem_recv(session_, buffer.get(), n);
    if (taken < 0) {
      if (endReason_.empty()) {
        endReason_ = nghttp2_strerror(static_cast<int>(taken));
      }
      // A fatal error does not always queue a GOAWAY (a flood, too many CONTINUATIONs):
      // the peer is told why all the same (a second GOAWAY request is ignored).
      nghttp2_session_terminate_session(session_, onInputError(static_cast<int>(taken)));
      afterInput();
      break;
    }
    afterInput();
    wakeWriter();
    if (!nghttp2_session_want_read(session_)) {
      break;  // GOAWAY both ways, or the session was terminated
    }
  }
  spdlog::debug("h2 connection: reader ended ({})", endReason_);
  readerDone_ = true;
  // Nothing more is read: only what is queued still goes out.
  stopping_ = true;
  readerEnded_.notify();
  wakeWriter();
  (void)owner;
}

asio::awaitable<void> H2Connection::writeLoop() {
  std::string batch;
  for (;;) {
    batch.clear();
    while (batch.size() < kOutputBatchBytes) {
      const uint8_t* data = nullptr;
      const ssize_t n = nghttp2_session_mem_send(session_, &data);
      if (n < 0) {
        if (endReason_.empty()) {
          endReason_ = nghttp2_strerror(static_cast<int>(n));
        }
        co_return;
      }
      if (n == 0) {
        break;
      }
      batch.append(reinterpret_cast<const char*>(data), static_cast<size_t>(n));
    }
    if (!batch.empty()) {
      auto [ec, written] = co_await stream_.writeAll(asio::buffer(batch));
      if (ec) {
        if (endReason_.empty()) {
          endReason_ = ec.message();
        }
        co_return;
      }
      afterOutput(written);
      continue;
    }
    if (stopping_ ||
        (!nghttp2_session_want_read(session_) && !nghttp2_session_want_write(session_))) {
      co_return;
    }
    co_await writeWake_.wait();
  }
}

}  // namespace egressd::proxy::h2
