// A TLS connection over an Asio TCP socket, driven by OpenSSL through memory BIOs and C++20
// coroutines. Written here rather than taken from asio::ssl::stream because the proxy needs
// three things that stream does not give: starting a server handshake from a ClientHello
// already read off the socket (the proxy reads it to decide before any TLS starts),
// writing the ciphertext synchronously first (as the plain path does: no reactor round
// trip when the socket buffer has room), and a best-effort close_notify that never waits
// for the peer's.
//
// One reader and one writer may run at once (the proxy streams a request body while it
// relays the response); ciphertext produced by either goes out in order through one
// flushing coroutine at a time.
//
// Without attach() the stream is plain: readSome/writeAll/shutdownSend go straight to the
// socket. An intercepted session's upstream is a TlsStream, and a handler may reroute its
// requests to a plain upstream (`host:port`, `unix:/path`); the session code stays one.
#pragma once

#include <openssl/ssl.h>

#include <asio/awaitable.hpp>
#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>

#include "tls/openssl_ptr.h"

namespace egressd::proxy {

class TlsStream {
 public:
  enum class Role { kServer, kClient };

  // Not connected, no TLS yet (an upstream before its connect).
  explicit TlsStream(const asio::any_io_executor& executor);
  // `socket` connected, TLS attached later with attach().
  explicit TlsStream(asio::ip::tcp::socket socket);
  TlsStream(TlsStream&&) noexcept;
  TlsStream& operator=(TlsStream&&) noexcept;
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;
  ~TlsStream();

  // Takes `ssl` (certificate or SNI/verification already set) for this connection.
  void attach(tls::SslPtr ssl, Role role);
  // Whether TLS is attached (false: plain mode).
  bool hasTls() const { return ssl_ != nullptr; }

  // Runs the handshake; `alreadyReceived` is ciphertext read off the socket before (the
  // ClientHello). On failure the error is std::errc::protocol_error (TLS) or the socket's,
  // and failureText() says what OpenSSL reported. Plain mode: protocol_error.
  asio::awaitable<std::error_code> handshake(std::string_view alreadyReceived = {});

  // Plaintext in. n == 0 without error: the peer closed (close_notify or TCP FIN).
  asio::awaitable<std::tuple<std::error_code, size_t>> readSome(asio::mutable_buffer buffer);
  // Returns once readSome() has something to work on (plaintext or ciphertext already here,
  // bytes on the socket, or its end), without a buffer of the caller's held meanwhile: an
  // idle connection waits here with its buffers released. Plain mode: the socket is readable.
  asio::awaitable<std::error_code> waitReadable();
  // Plaintext out, all of it.
  asio::awaitable<std::tuple<std::error_code, size_t>> writeAll(asio::const_buffer data);

  // close_notify if it fits the socket buffer now, then TCP FIN. Never waits.
  void shutdownSend();

  asio::ip::tcp::socket& socket() { return socket_; }
  SSL* ssl() const { return ssl_.get(); }
  bool is_open() const { return socket_.is_open(); }
  void cancel();
  void close();
  const std::string& failureText() const { return failureText_; }
  asio::any_io_executor get_executor() { return socket_.get_executor(); }

 private:
  std::error_code tlsError(const char* what);
  // Moves what OpenSSL wrote into the socket, in order, one flusher at a time.
  asio::awaitable<std::error_code> flush();
  // Reads ciphertext from the socket into OpenSSL's input; sets eof_ at TCP FIN.
  asio::awaitable<std::error_code> fill();
  void takeOutput();
  void trimBios();

  asio::ip::tcp::socket socket_;
  tls::SslPtr ssl_;
  BIO* input_ = nullptr;   // owned by ssl_
  BIO* output_ = nullptr;  // owned by ssl_
  bool eof_ = false;
  bool flushing_ = false;
  std::error_code flushError_;
  std::string pending_;  // ciphertext taken from output_, not yet handed to the socket
  std::string sending_;  // what the active flusher is writing
  std::unique_ptr<asio::steady_timer> flushDone_;  // waiters for the active flusher
  std::string failureText_;
};

}  // namespace egressd::proxy
