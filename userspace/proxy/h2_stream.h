// The state one HTTP/2 request stream shares between the client session (h2_session.cpp),
// which receives its request and sends its response, and whichever upstream carries it: an
// HTTP/1.1 connection of its own, or a stream of an HTTP/2 upstream (h2_upstream.h). Both
// sides run on the connection's one thread; nothing here locks.
//
// Memory per stream is bounded by flow control in both directions: request body bytes are
// acknowledged to the client (WINDOW_UPDATE) only once the upstream took them, response
// bytes to the upstream only once the client took them, so neither queue holds more than
// a stream window.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "http/message.h"
#include "proxy/h2_frames.h"
#include "proxy/request_decision.h"
#include "proxy/request_rules.h"
#include "proxy/stream_ops.h"

namespace egressd::proxy::h2 {

// A wake-up for one waiting coroutine; a notify() with nobody waiting is kept for the next
// wait().
class Signal {
 public:
  explicit Signal(const asio::any_io_executor& executor)
      : timer_(executor, std::chrono::steady_clock::time_point::max()) {}
  void notify() {
    pending_ = true;
    timer_.cancel();
  }
  asio::awaitable<void> wait() {
    if (!pending_) {
      timer_.expires_at(std::chrono::steady_clock::time_point::max());
      co_await timer_.async_wait(kNoThrow);
    }
    pending_ = false;
  }

 private:
  asio::steady_timer timer_;
  bool pending_ = false;
};

// Bytes queued from one side to the other.
class ByteQueue {
 public:
  void append(std::string_view data) {
    if (offset_ == bytes_.size()) {
      bytes_.clear();
      offset_ = 0;
    }
    bytes_.append(data);
  }
  size_t size() const { return bytes_.size() - offset_; }
  std::string_view peek() const { return std::string_view(bytes_).substr(offset_); }
  void consume(size_t n) {
    offset_ += n;
    if (offset_ == bytes_.size()) {
      bytes_.clear();
      offset_ = 0;
      if (bytes_.capacity() > kKeepCapacity) {
        bytes_.shrink_to_fit();  // an idle stream keeps no large buffer
      }
    }
  }

 private:
  static constexpr size_t kKeepCapacity = 16 * 1024;
  std::string bytes_;
  size_t offset_ = 0;
};

class H2Upstream;
struct H2Stream;

// What an upstream reports back about a stream to the client session that owns it.
class ResponseSink {
 public:
  virtual ~ResponseSink() = default;
  // The response head (status and fields) is in; `endsStream`: no body or trailers follow.
  virtual void respond(H2Stream& stream, int status, const std::vector<http::Header>& headers,
                       bool endsStream) = 0;
  // responseBody grew, or responseEnded / responseTrailers were set.
  virtual void responseData(H2Stream& stream) = 0;
  // The upstream side failed: a 502 if nothing was sent yet, else RST_STREAM `code`.
  virtual void upstreamFailed(H2Stream& stream, uint32_t code, const std::string& why) = 0;
};

struct H2Stream {
  explicit H2Stream(const asio::any_io_executor& executor, int32_t streamId)
      : id(streamId), requestSignal(executor), responseSignal(executor) {}

  const int32_t id;

  // --- request (client -> egressd)
  RequestFields fields;    // collected while the header block arrives
  size_t headerBytes = 0;  // RFC 9113 6.5.2 counting: name + value + 32 per field
  bool headerOverflow = false;
  http::RequestHead head;     // once the block is complete
  bool trailersOk = false;    // "te: trailers"
  ByteQueue requestBody;      // received, not yet taken by the upstream
  bool requestEnded = false;  // END_STREAM seen
  std::vector<http::Header> requestTrailers;
  Signal requestSignal;         // request bytes, its end, or the stream's close
  bool discardRequest = false;  // nothing takes more request bytes (answered, upstream done)
  // Called with the bytes the upstream took of requestBody (the client's window reopens).
  std::function<void(size_t)> requestConsumed;

  // --- response (egressd -> client)
  bool responseSubmitted = false;  // HEADERS sent (or queued) to the client
  ByteQueue responseBody;
  bool responseEnded = false;
  std::vector<http::Header> responseTrailers;
  bool dataDeferred = false;  // the data source said DEFERRED; resume when bytes come
  Signal responseSignal;      // room in responseBody again, or the stream's close
  SecretRedactor redactor;

  // Response body bytes from the upstream, through the redactor when the request carried
  // injected secrets (it masks in place: lengths stay as the upstream sent them).
  void appendResponse(std::string_view data) {
    responseBody.append(redactor.scanning() || redactor.holding() ? redactor.push(data) : data);
  }
  void endResponse() {
    if (redactor.holding()) {
      responseBody.append(redactor.flush());
    }
    responseEnded = true;
  }

  // --- the upstream side, when it is an HTTP/2 stream
  H2Upstream* upstream = nullptr;
  int32_t upstreamStreamId = -1;

  // --- the end
  bool closed = false;     // the client's stream is closed (reset, or answered and done)
  uint32_t resetCode = 0;  // the client's RST_STREAM code, if it reset
  bool upstreamFailed = false;

  // --- audit
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  RequestOutcome outcome;
  std::string host;
  std::string upstreamText;
  int status = 0;
  uint64_t bytesIn = 0;
  uint64_t bytesOut = 0;
};

}  // namespace egressd::proxy::h2
