#include "proxy/response_scan.h"

#include <charconv>

#include "proxy/request_rules.h"

namespace egressd::proxy {

ResponseScan::ResponseScan(http::ResponseParser& parser, std::string_view method,
                           ResponseRules rules)
    : parser_(parser), rules_(rules) {
  parser_.expectResponseTo(method);
}

ResponseChunk ResponseScan::scan(const char* data, size_t size) {
  using Kind = http::ParseStep::Kind;
  ResponseChunk chunk;
  while (chunk.forward < size && !chunk.ended) {
    const auto step = parser_.feed(data + chunk.forward, size - chunk.forward);
    if (step.kind == Kind::kError) {
      chunk.verdict = ResponseChunk::Verdict::kMalformed;
      return chunk;
    }
    chunk.forward += step.consumed;
    if (step.kind == Kind::kHead) {
      const http::ResponseHead& head = parser_.head();
      chunk.status = head.status;
      // The client asked to close (its Connection header stayed on this hop) but the
      // upstream keeps the connection: tell the client the connection ends here.
      if (!rules_.clientKeepAlive && head.keepAlive && !head.informational() &&
          head.status != 101 && step.consumed >= 2) {
        chunk.announceCloseAt = chunk.forward - 2;
      }
      if (head.status == 101) {
        // The protocol the upstream switched to must be one the policy allows too.
        const auto chosen = upgradeProtocols(head.headers);
        if (!rules_.upgradeRequested || chosen.empty() || rules_.upgradeAllow == nullptr ||
            firstUnlisted(chosen, *rules_.upgradeAllow)) {
          chunk.verdict = ResponseChunk::Verdict::kRefusedUpgrade;
          return chunk;
        }
        chunk.upgraded = true;
        chunk.ended = true;
      } else if (step.endsMessage) {
        chunk.ended = !head.informational();
      } else if (!head.informational()) {
        contentLength_ = contentLengthOf(head);
        bodyScanned_ = 0;
      }
    } else if (step.kind == Kind::kBody) {
      bodyScanned_ += step.consumed;
    } else if (step.kind == Kind::kMessageEnd) {
      chunk.ended = !parser_.head().informational();
    } else if (step.kind == Kind::kNeedMore && step.consumed == 0) {
      break;
    }
  }
  return chunk;
}

std::optional<uint64_t> ResponseScan::bodyRemaining() const {
  if (!contentLength_) {
    return std::nullopt;
  }
  return *contentLength_ - bodyScanned_;
}

std::optional<uint64_t> contentLengthOf(const http::ResponseHead& head) {
  const http::Header* h = head.find("Content-Length");
  if (h == nullptr) {
    return std::nullopt;
  }
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(h->value.data(), h->value.data() + h->value.size(), value);
  if (ec != std::errc() || end != h->value.data() + h->value.size()) {
    return std::nullopt;
  }
  return value;
}

std::string withConnectionClose(std::string_view bytes, size_t at) {
  std::string out(bytes.substr(0, at));
  out += "Connection: close\r\n";
  out.append(bytes.substr(at));
  return out;
}

}  // namespace egressd::proxy
