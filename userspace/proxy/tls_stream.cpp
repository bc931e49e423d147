#include "proxy/tls_stream.h"

#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/err.h>

#include <asio/experimental/as_tuple.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>
#include <chrono>

namespace egressd::proxy {

namespace {

constexpr auto kNoThrow = asio::experimental::as_tuple(asio::use_awaitable);
// One TLS record (16 KiB of plaintext plus header, padding and tag) per socket read.
constexpr size_t kReadBufferBytes = 16 * 1024 + 512;

std::unique_ptr<asio::steady_timer> makeFlushTimer(const asio::any_io_executor& executor) {
  auto timer = std::make_unique<asio::steady_timer>(executor);
  // Waiters wait on a timer that never expires; the flusher wakes them with cancel().
  timer->expires_at(std::chrono::steady_clock::time_point::max());
  return timer;
}

}  // namespace

TlsStream::TlsStream(const asio::any_io_executor& executor)
    : socket_(executor), flushDone_(makeFlushTimer(executor)) {}

TlsStream::TlsStream(asio::ip::tcp::socket socket)
    : socket_(std::move(socket)), flushDone_(makeFlushTimer(socket_.get_executor())) {}

TlsStream::TlsStream(TlsStream&&) noexcept = default;
TlsStream& TlsStream::operator=(TlsStream&&) noexcept = default;
TlsStream::~TlsStream() = default;

void TlsStream::attach(tls::SslPtr ssl, Role role) {
  ssl_ = std::move(ssl);
  input_ = BIO_new(BIO_s_mem());
  output_ = BIO_new(BIO_s_mem());
  // An empty input means "wait for more", never end of stream: the socket decides that.
  BIO_set_mem_eof_return(input_, -1);
  SSL_set_bio(ssl_.get(), input_, output_);
  if (role == Role::kServer) {
    SSL_set_accept_state(ssl_.get());
  } else {
    SSL_set_connect_state(ssl_.get());
  }
  eof_ = false;
  pending_.clear();
}

// A memory BIO never gives back what it grew to: once one is empty and larger than an idle
// connection needs, it is swapped for a fresh one (what lets an idle connection cost little).
void TlsStream::trimBios() {
  constexpr size_t kKeepBytes = 4096;
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(input_, &mem);
  if (mem != nullptr && mem->max > kKeepBytes && BIO_ctrl_pending(input_) == 0) {
    BIO* fresh = BIO_new(BIO_s_mem());
    if (fresh != nullptr) {
      BIO_set_mem_eof_return(fresh, -1);
      SSL_set0_rbio(ssl_.get(), fresh);  // frees the old one
      input_ = fresh;
    }
  }
  mem = nullptr;
  BIO_get_mem_ptr(output_, &mem);
  if (mem != nullptr && mem->max > kKeepBytes && BIO_ctrl_pending(output_) == 0) {
    BIO* fresh = BIO_new(BIO_s_mem());
    if (fresh != nullptr) {
      SSL_set0_wbio(ssl_.get(), fresh);
      output_ = fresh;
    }
  }
  if (pending_.empty() && pending_.capacity() > kKeepBytes) {
    std::string().swap(pending_);
  }
  if (sending_.empty() && sending_.capacity() > kKeepBytes) {
    std::string().swap(sending_);
  }
}

std::error_code TlsStream::tlsError(const char* what) {
  failureText_ = what;
  const std::string detail = tls::drainOpenSslErrors();
  if (!detail.empty()) {
    failureText_ += ": " + detail;
  }
  return std::make_error_code(std::errc::protocol_error);
}

void TlsStream::takeOutput() {
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(output_, &mem);
  if (mem != nullptr && mem->length > 0) {
    pending_.append(mem->data, mem->length);
    (void)BIO_reset(output_);
  }
}

asio::awaitable<std::error_code> TlsStream::flush() {
  if (flushing_) {
    // The active flusher sends what we produced too (it loops until nothing is pending);
    // wait for it, so a writer never runs ahead of the socket.
    takeOutput();
    while (flushing_) {
      co_await flushDone_->async_wait(kNoThrow);
    }
    co_return flushError_;
  }
  BUF_MEM* mem = nullptr;
  BIO_get_mem_ptr(output_, &mem);
  if (pending_.empty() && mem != nullptr && mem->length > 0) {
    // The usual case: the records fit the socket buffer and go out without a copy.
    std::error_code ec;
    const size_t n = socket_.write_some(asio::buffer(mem->data, mem->length), ec);
    if (!ec && n == mem->length) {
      (void)BIO_reset(output_);
      trimBios();
      co_return std::error_code();
    }
    if (ec && ec != asio::error::would_block && ec != asio::error::try_again) {
      (void)BIO_reset(output_);
      co_return ec;
    }
    pending_.append(mem->data + n, mem->length - n);
    (void)BIO_reset(output_);
  } else {
    takeOutput();
  }
  flushing_ = true;
  flushError_.clear();
  while (!pending_.empty()) {
    sending_.swap(pending_);
    pending_.clear();
    auto [ec, n] = co_await asio::async_write(socket_, asio::buffer(sending_), kNoThrow);
    sending_.clear();
    if (ec) {
      flushError_ = ec;
      break;
    }
    takeOutput();
  }
  flushing_ = false;
  flushDone_->cancel();
  trimBios();
  co_return flushError_;
}

asio::awaitable<std::error_code> TlsStream::fill() {
  // One read buffer per thread, not per connection: the bytes go into OpenSSL's input BIO
  // before anything else runs on the thread, so a connection waiting for its peer holds no
  // read buffer. Read first (data is usually there already), wait only when there is none.
  thread_local const std::unique_ptr<char[]> scratch(new char[kReadBufferBytes]);
  std::error_code ec;
  if (!socket_.non_blocking()) {
    socket_.non_blocking(true, ec);
  }
  for (;;) {
    const size_t n = socket_.read_some(asio::buffer(scratch.get(), kReadBufferBytes), ec);
    if (ec == asio::error::would_block || ec == asio::error::try_again) {
      auto [wec] = co_await socket_.async_wait(asio::ip::tcp::socket::wait_read, kNoThrow);
      if (wec) {
        co_return wec;
      }
      continue;
    }
    if (ec == asio::error::eof || (!ec && n == 0)) {
      eof_ = true;
      co_return std::error_code();
    }
    if (ec) {
      co_return ec;
    }
    BIO_write(input_, scratch.get(), static_cast<int>(n));
    co_return std::error_code();
  }
}

asio::awaitable<std::error_code> TlsStream::handshake(std::string_view alreadyReceived) {
  if (!ssl_) {
    failureText_ = "no TLS attached to the connection";
    co_return std::make_error_code(std::errc::protocol_error);
  }
  if (!alreadyReceived.empty()) {
    BIO_write(input_, alreadyReceived.data(), static_cast<int>(alreadyReceived.size()));
  }
  for (;;) {
    ERR_clear_error();
    const int r = SSL_do_handshake(ssl_.get());
    const int err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_.get(), r);
    // Whatever the handshake produced goes out first, a fatal alert included.
    const std::error_code sent = co_await flush();
    if (r == 1) {
      co_return sent;
    }
    if (err != SSL_ERROR_WANT_READ) {
      co_return tlsError("TLS handshake failed");
    }
    if (sent) {
      co_return sent;
    }
    if (eof_) {
      failureText_ = "the peer closed the connection during the TLS handshake";
      co_return asio::error::eof;
    }
    if (auto ec = co_await fill(); ec) {
      co_return ec;
    }
  }
}

asio::awaitable<std::error_code> TlsStream::waitReadable() {
  if (eof_) {
    co_return std::error_code();
  }
  if (!ssl_) {
    std::error_code ec;
    if (socket_.available(ec) > 0 || ec) {
      co_return ec;
    }
    auto [wec] = co_await socket_.async_wait(asio::ip::tcp::socket::wait_read, kNoThrow);
    co_return wec;
  }
  if (SSL_pending(ssl_.get()) > 0 || BIO_ctrl_pending(input_) > 0) {
    co_return std::error_code();
  }
  co_return co_await fill();
}

asio::awaitable<std::tuple<std::error_code, size_t>> TlsStream::readSome(
    asio::mutable_buffer buffer) {
  if (!ssl_) {
    // The same contract as with TLS: the end of the stream is n == 0 without error, also
    // when read again (the reactor, edge-triggered, would not report the FIN a second time).
    if (eof_) {
      co_return std::tuple<std::error_code, size_t>{std::error_code(), 0};
    }
    auto [ec, n] = co_await socket_.async_read_some(buffer, kNoThrow);
    if (ec == asio::error::eof || (!ec && n == 0)) {
      eof_ = true;
      co_return std::tuple<std::error_code, size_t>{std::error_code(), 0};
    }
    co_return std::tuple<std::error_code, size_t>{ec, n};
  }
  for (;;) {
    size_t n = 0;
    ERR_clear_error();
    const int r = SSL_read_ex(ssl_.get(), buffer.data(), buffer.size(), &n);
    const int err = r == 1 ? SSL_ERROR_NONE : SSL_get_error(ssl_.get(), r);
    // Reading may produce records of its own (a KeyUpdate answer, an alert). With a
    // writer's flush under way they join its queue: a reader never waits for the writer,
    // or a peer that sends before it reads (an upload answered early) would deadlock us.
    if (BIO_ctrl_pending(output_) > 0) {
      if (flushing_) {
        takeOutput();
      } else if (auto ec = co_await flush(); ec) {
        co_return std::tuple<std::error_code, size_t>{ec, 0};
      }
    }
    if (r == 1) {
      trimBios();
      co_return std::tuple<std::error_code, size_t>{std::error_code(), n};
    }
    if (err == SSL_ERROR_ZERO_RETURN) {
      co_return std::tuple<std::error_code, size_t>{std::error_code(), 0};  // close_notify
    }
    if (err != SSL_ERROR_WANT_READ) {
      co_return std::tuple<std::error_code, size_t>{tlsError("TLS read failed"), 0};
    }
    if (eof_) {
      // TCP FIN without close_notify: the HTTP layer's framing tells whether anything
      // was cut short.
      co_return std::tuple<std::error_code, size_t>{std::error_code(), 0};
    }
    if (auto ec = co_await fill(); ec) {
      co_return std::tuple<std::error_code, size_t>{ec, 0};
    }
  }
}

asio::awaitable<std::tuple<std::error_code, size_t>> TlsStream::writeAll(asio::const_buffer data) {
  if (!ssl_) {
    // As the plain path does: synchronously first, the reactor only for what does not fit.
    std::error_code ec;
    const size_t done = socket_.write_some(data, ec);
    if ((!ec && done == data.size()) ||
        (ec && ec != asio::error::would_block && ec != asio::error::try_again)) {
      co_return std::tuple<std::error_code, size_t>{ec, done};
    }
    auto [rest, n] = co_await asio::async_write(socket_, asio::buffer(data + done), kNoThrow);
    co_return std::tuple<std::error_code, size_t>{rest, done + n};
  }
  size_t done = 0;
  while (done < data.size()) {
    size_t n = 0;
    ERR_clear_error();
    const int r = SSL_write_ex(ssl_.get(), static_cast<const char*>(data.data()) + done,
                               data.size() - done, &n);
    if (r != 1) {
      co_return std::tuple<std::error_code, size_t>{tlsError("TLS write failed"), done};
    }
    done += n;
    if (auto ec = co_await flush(); ec) {
      co_return std::tuple<std::error_code, size_t>{ec, done};
    }
  }
  co_return std::tuple<std::error_code, size_t>{std::error_code(), done};
}

void TlsStream::shutdownSend() {
  if (ssl_ && SSL_is_init_finished(ssl_.get()) != 0 && !flushing_) {
    ERR_clear_error();
    SSL_shutdown(ssl_.get());
    BUF_MEM* mem = nullptr;
    BIO_get_mem_ptr(output_, &mem);
    if (pending_.empty() && mem != nullptr && mem->length > 0) {
      std::error_code ignored;
      socket_.write_some(asio::buffer(mem->data, mem->length), ignored);
    }
    (void)BIO_reset(output_);
    ERR_clear_error();
  }
  std::error_code ignored;
  socket_.shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
}

void TlsStream::cancel() {
  std::error_code ignored;
  socket_.cancel(ignored);
  if (flushDone_) {
    flushDone_->cancel();
  }
}

void TlsStream::close() {
  std::error_code ignored;
  socket_.close(ignored);
  if (flushDone_) {
    flushDone_->cancel();
  }
}

}  // namespace egressd::proxy
