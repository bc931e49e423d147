// The I/O of one HTTP/2 connection, client-facing or upstream: an nghttp2 session fed from a
// TlsStream by a reader coroutine and drained into it by a writer coroutine, on the
// connection's thread. nghttp2 does the framing, HPACK and flow control; the subclass sets up
// the session (callbacks, settings) and acts on its callbacks.
#pragma once

#include <nghttp2/nghttp2.h>

#include <asio/awaitable.hpp>
#include <memory>
#include <string>

#include "proxy/h2_stream.h"
#include "proxy/tls_stream.h"

namespace egressd::proxy::h2 {

// RAII for the nghttp2 objects a session is set up with.
struct CallbacksDeleter {
  void operator()(nghttp2_session_callbacks* c) const { nghttp2_session_callbacks_del(c); }
};
struct OptionDeleter {
  void operator()(nghttp2_option* o) const { nghttp2_option_del(o); }
};

class H2Connection {
 public:
  H2Connection(const H2Connection&) = delete;
  H2Connection& operator=(const H2Connection&) = delete;
  virtual ~H2Connection();

  // Has the writer send what nghttp2 has queued.
  void wakeWriter() { writeWake_.notify(); }
  nghttp2_session* session() const { return session_; }
  // Ends the connection: no more reads, the writer flushes what is queued (a GOAWAY) and
  // stops.
  void stop();
  bool stopped() const { return stopping_; }

 protected:
  H2Connection(TlsStream stream, size_t bufferBytes);

  // Runs the reader (spawned, holding `owner`) and the writer until both end; then the
  // stream is closed.
  asio::awaitable<void> serve(std::shared_ptr<void> owner);

  // After each chunk of input was handed to nghttp2 (frames received); after each write.
  virtual void afterInput() {}
  virtual void afterOutput(size_t /*bytes*/) {}
  // nghttp2 refused the input with `error` (NGHTTP2_ERR_*): the GOAWAY code to end with.
  virtual uint32_t onInputError(int /*error*/) { return NGHTTP2_PROTOCOL_ERROR; }
  // Why the connection ended, for the log: nghttp2's error text or the socket's.
  std::string endReason_;

  TlsStream stream_;
  nghttp2_session* session_ = nullptr;  // owned; the subclass creates it

 private:
  asio::awaitable<void> readLoop(std::shared_ptr<void> owner);
  asio::awaitable<void> writeLoop();
  asio::awaitable<void> lingerClose();

  size_t bufferBytes_;
  Signal writeWake_;
  Signal readerEnded_;
  bool readerDone_ = false;
  bool stopping_ = false;
};

}  // namespace egressd::proxy::h2
