// The response side of one proxied request, judged one buffer at a time: how many of the
// upstream's buffered bytes may go to the client, where the final response ends, whether a
// 101 switches to a protocol the policy allows, and where "Connection: close" must be added
// to a head. Pure (the parser and bytes in, a verdict out); response_relay.h does the I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "http/http.h"

namespace egressd::proxy {

// Per request: what the client asked for, and what the policy allows.
struct ResponseRules {
  bool clientKeepAlive = true;  // false: the client's request said Connection: close
  bool upgradeRequested = false;
  // The Upgrade protocols the policy allows (lowercase); null: none.
  const std::vector<std::string>* upgradeAllow = nullptr;
};

// What to do with the bytes of one scan.
struct ResponseChunk {
  enum class Verdict {
    kRelay,           // send the first `forward` bytes on
    kMalformed,       // the upstream's framing is broken: the exchange fails
    kRefusedUpgrade,  // a 101 nobody asked for, or to a protocol the policy does not allow
  };
  Verdict verdict = Verdict::kRelay;
  size_t forward = 0;     // bytes the parser consumed (for kMalformed: before the error)
  bool ended = false;     // the final (non-1xx) response ends within `forward`
  bool upgraded = false;  // that final response is an allowed 101: a tunnel follows
  // != 0: the client asked to close but the upstream keeps the connection, so
  // "Connection: close" goes in at this offset (before the head's blank line).
  size_t announceCloseAt = 0;
  int status = 0;  // of the last head within `forward`; 0 when there is none
};

// Scans the responses to one request; `parser` is the upstream connection's (it persists
// across requests on that connection) and is told the request's method.
class ResponseScan {
 public:
  ResponseScan(http::ResponseParser& parser, std::string_view method, ResponseRules rules);

  // Feeds `data` (the bytes buffered and not yet forwarded) to the parser until the final
  // response ends or the parser needs more than is there.
  ResponseChunk scan(const char* data, size_t size);

  // Body bytes of the final response still to come, when its Content-Length says how many
  // (nullopt for chunked, until-close and bodiless responses, or before its head).
  std::optional<uint64_t> bodyRemaining() const;

 private:
  http::ResponseParser& parser_;
  ResponseRules rules_;
  // Of the final response: its Content-Length and the body bytes scanned so far.
  std::optional<uint64_t> contentLength_;
  uint64_t bodyScanned_ = 0;
};

// The value of a Content-Length the parser validated (one header, plain digits, no
// Transfer-Encoding); nullopt when there is none.
std::optional<uint64_t> contentLengthOf(const http::ResponseHead& head);

// `bytes` with "Connection: close\r\n" inserted at `at` (ResponseChunk::announceCloseAt).
std::string withConnectionClose(std::string_view bytes, size_t at);

}  // namespace egressd::proxy
