// Incremental HTTP/1.1 framing for the transparent proxy, built on llhttp (no lenient flags)
// plus egressd's own byte-level head guard, which also covers what llhttp's loose build (the one
// Debian ships and we compile) lets through. The proxy re-serializes request heads
// (serializeRequestHead) but forwards bodies and responses raw, so what matters most is that
// egressd and the upstream agree on where every message ends. Anything that two HTTP
// implementations could frame differently is rejected rather than repaired:
//   - Content-Length together with Transfer-Encoding, duplicate Content-Length (even equal),
//     Content-Length that is not plain decimal digits or overflows;
//   - request Transfer-Encoding other than exactly one "chunked", or any in HTTP/1.0 (also
//     in responses); Content_Length / Transfer_Encoding names (CGI maps '_' and '-' alike);
//   - bare LF or bare CR anywhere in a head or in chunk framing, obs-fold, whitespace before
//     a colon, non-token field names, CTL characters (other than HTAB) in field values;
//   - request lines other than "METHOD SP target SP HTTP/1.x" (double spaces, HTAB, RTSP/ICE
//     protocols), targets with CTL, SP, non-ASCII or '#', userinfo in absolute-form;
//   - HTTP/1.1 without exactly one non-empty, well-formed Host; an absolute-form target whose
//     authority differs from Host;
//   - data after a message that closes the connection (Connection: close, HTTP/1.0).
//
// Status codes in a request kError: 400 for malformed or ambiguous requests, 405 for CONNECT
// (a transparent proxy has nothing to tunnel to: the sandbox already chose the destination),
// 414 for a target over the limit, 431 for a head or header count over the limit, 501 for an
// unknown method, 505 for HTTP versions other than 1.0/1.1 (including HTTP/0.9 and HTTP/2.0
// request lines), 400 for HTTP/2 (the "PRI * HTTP/2.0" preface or an HTTP2-Settings header).
// ResponseParser errors always carry 502: the client gets a gateway error, never the garbage.
//
// Bodiless messages: a message without a body ends with its head. Such a kHead has
// `endsMessage` true, no kMessageEnd follows, and the next feed starts the next message.
// A kHead with `endsMessage` false is followed by kBody steps and one kMessageEnd.
//
// Limits are counted across feeds, so a head trickling in one byte at a time hits them at
// exactly the same byte as one arriving in a single buffer. Body bytes are never buffered.
// The parsers keep pointers into themselves: they are movable (pimpl) but not copyable.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "http/message.h"

namespace egressd::http {

struct RequestLimits {
  size_t maxHeadBytes = 32 * 1024;   // request line + headers; over -> 431
  size_t maxHeaders = 100;           // over -> 431
  size_t maxTargetBytes = 8 * 1024;  // request-target; over -> 414
};

struct ParseStep {
  enum class Kind { kNeedMore, kHead, kBody, kMessageEnd, kError };
  Kind kind = Kind::kNeedMore;
  size_t consumed = 0;       // bytes of the input that this step took
  int status = 0;            // kError: 400, 405, 414, 431, 501, 505 (requests); 502 (responses)
  std::string reason;        // kError: short human text, e.g. "both Content-Length and ..."
  bool endsMessage = false;  // kHead: the message has no body; no kMessageEnd follows
};

class RequestParser {
 public:
  using Step = ParseStep;

  explicit RequestParser(RequestLimits limits = {});
  ~RequestParser();
  RequestParser(RequestParser&&) noexcept;
  RequestParser& operator=(RequestParser&&) noexcept;

  // Head phase: takes bytes until the end of the head -> kHead (consumed = bytes up to and
  // including the blank line; the head is then in head()), or kNeedMore (all consumed), or
  // kError. Body phase (after a kHead without endsMessage): the consumed bytes are raw body
  // bytes, chunk framing and trailers included, that the caller forwards as is: kBody (all of
  // the input was body, message not finished) or kMessageEnd (consumed ends exactly at the end
  // of this message; the rest of the input belongs to the next request).
  // After the end of a message the parser is ready for the next request on the connection,
  // unless that message closes the connection (then further bytes are a kError) or is an
  // upgrade (see refuseUpgrade()). kError is final: every later feed repeats it with
  // consumed 0; how much of the failing input was consumed is unspecified.
  // A feed with len 0 is allowed and returns kNeedMore (or kBody) with consumed 0.
  Step feed(const char* data, size_t len);

  // The last head; valid from its kHead until the next message's first byte is fed.
  const RequestHead& head() const;

  // After an upgrade request (head().upgrade, e.g. WebSocket) has ended, the remaining bytes
  // are not HTTP and feed() returns kError. When the upstream did not switch protocols
  // (answered anything but 101), call this to parse the next request on the connection.
  void refuseUpgrade();

  // True when no byte of a next message has been seen: a client closing now loses nothing.
  bool betweenMessages() const;

  // Back to the initial state (a new connection).
  void reset();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

class ResponseParser {
 public:
  using Step = ParseStep;  // kHead after each head (incl. 1xx); kMessageEnd ends a body

  explicit ResponseParser(size_t maxHeadBytes = 64 * 1024);
  ~ResponseParser();
  ResponseParser(ResponseParser&&) noexcept;
  ResponseParser& operator=(ResponseParser&&) noexcept;

  // The method of the request the next response answers; it stays in effect until the next
  // call (GET semantics before the first). HEAD -> responses without body even with
  // Content-Length or chunked; CONNECT -> a 2xx switches the stream to a tunnel.
  void expectResponseTo(std::string_view method);

  // Same contract as RequestParser::feed. 1xx (other than 101), 204, 304 and responses to HEAD
  // end with their head (endsMessage). A 101 also ends with its head and upgraded() turns
  // true: the bytes after it are not HTTP and further feeds are kError.
  Step feed(const char* data, size_t len);

  // The upstream closed: true when that is a valid end, i.e. the current message's body runs
  // until close (it has now ended), or no message was in progress (nothing started, or the
  // last one was complete or upgraded). False for a truncated head, Content-Length or chunked
  // body, or after an error.
  bool finishAtEof();

  const ResponseHead& head() const;
  bool upgraded() const;  // a 101 was parsed: the rest of the stream is not HTTP
  bool betweenMessages() const;

  // Back to the initial state: call for each new upstream connection.
  void reset();

  // The body's bytes without their framing (chunk sizes, extensions and trailers removed)
  // also go to `sink(arg, data, len)` as they are fed: for a relay that re-frames the body
  // (an HTTP/2 stream answered by an HTTP/1.1 upstream). Null: off. Kept across reset().
  using BodySink = void (*)(void* arg, const char* data, size_t len);
  void setBodySink(BodySink sink, void* arg);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace egressd::http
