// Chunked bodies: the input is what follows a "Transfer-Encoding: chunked" head, in a request
// (sandbox -> proxy, and egressctl -> control API) and in a response (origin -> proxy).
// Properties:
//   - the request and response parsers keep every split property of http_fuzz.h on
//     head + input (checkRequestParser / checkResponseParser);
//   - a body the request parser ends (kMessageEnd) decodes with control::decodeChunked (the
//     control server relies on the parser having validated the framing), to at most as
//     many bytes as it had, and the decoded bytes re-encoded as one chunk parse and decode
//     to the same bytes;
//   - decodeChunked on the raw input never throws and never returns more than it was given.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "control/wire.h"
#include "http/http.h"
#include "http_fuzz.h"
#include "property.h"

namespace {

using egressd::http::ParseStep;
using Kind = ParseStep::Kind;

constexpr std::string_view kRequestHead =
    "POST /v1/x HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\n\r\n";
constexpr std::string_view kResponseHead = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";

void check(bool condition, const char* what, const std::string& detail = "") {
  egressd::fuzz::check("http_chunked", condition, what, detail);
}

// The raw body bytes the parser hands over for the message after the head, and whether the
// message ended. Nothing after the end is looked at.
template <typename Parser>
bool rawBody(Parser& parser, std::string_view head, std::string_view body, std::string& raw) {
  std::string all = std::string(head) + std::string(body);
  ParseStep step = parser.feed(all.data(), all.size());
  check(step.kind == Kind::kHead && step.consumed == head.size() && !step.endsMessage,
        "fixed chunked head not parsed", step.reason);
  std::string_view rest = std::string_view(all).substr(step.consumed);
  step = parser.feed(rest.data(), rest.size());
  check(step.consumed <= rest.size(), "consumed more than given");
  raw.assign(rest.substr(0, step.consumed));
  return step.kind == Kind::kMessageEnd;
}

std::string oneChunk(std::string_view data) {
  static const char* kHex = "0123456789abcdef";
  std::string size;
  for (size_t n = data.size(); n > 0 || size.empty(); n /= 16) {
    size.insert(size.begin(), kHex[n % 16]);
  }
  std::string out = size + "\r\n" + std::string(data) + "\r\n";
  if (data.empty()) {
    out.clear();
  }
  return out + "0\r\n\r\n";
}

void checkDecoded(const std::string& raw, const char* side) {
  auto decoded = egressd::control::decodeChunked(raw);
  check(decoded.ok(), "a body the parser ended does not decode",
        std::string(side) + ": " + (decoded.ok() ? "" : decoded.error().message()));
  check(decoded->size() <= raw.size(), "decoded body larger than raw");
  egressd::http::RequestParser again;
  std::string reRaw;
  check(rawBody(again, kRequestHead, oneChunk(*decoded), reRaw), "re-encoded body does not end");
  auto reDecoded = egressd::control::decodeChunked(reRaw);
  check(reDecoded.ok() && *reDecoded == *decoded, "re-encoded body decodes differently");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  egressd::fuzz::InputScope scope(data, size);
  const std::string_view body(reinterpret_cast<const char*>(data), size);

  // Whatever the input, the framing-level contracts of both parsers.
  const std::string request = std::string(kRequestHead) + std::string(body);
  egressd::http::fuzz::checkRequestParser(reinterpret_cast<const uint8_t*>(request.data()),
                                          request.size());
  const std::string response = std::string(kResponseHead) + std::string(body);
  egressd::http::fuzz::checkResponseParser(reinterpret_cast<const uint8_t*>(response.data()),
                                           response.size());

  std::string raw;
  egressd::http::RequestParser requestParser;
  if (rawBody(requestParser, kRequestHead, body, raw)) {
    checkDecoded(raw, "request");
  }
  egressd::http::ResponseParser responseParser;
  if (rawBody(responseParser, kResponseHead, body, raw)) {
    checkDecoded(raw, "response");
  }

  auto direct = egressd::control::decodeChunked(body);
  check(!direct.ok() || direct->size() <= body.size(), "decodeChunked output larger than input");
  check(direct.ok() || !direct.error().message().empty(), "decodeChunked error without text");
  return 0;
}
