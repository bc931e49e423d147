#include "http/head_guard.h"

#include <algorithm>

#include "http/chars.h"

namespace egressd::http::detail {
namespace {

constexpr int kBadRequest = 400;
constexpr int kUriTooLong = 414;
constexpr int kFieldsTooLarge = 431;
constexpr int kVersionNotSupported = 505;
constexpr int kBadGateway = 502;

bool isDigit(char c) {
  return c >= '0' && c <= '9';
}

}  // namespace

void HeadGuard::reset() {
  const Kind kind = kind_;
  const Limits limits = limits_;
  *this = HeadGuard(kind, limits);
}

HeadGuard::Scan HeadGuard::reject(size_t at, int status, std::string_view reason) const {
  Scan scan;
  scan.consumed = at;
  // Whatever is wrong with a response head, the client is owed a gateway error.
  scan.status = kind_ == Kind::kResponse ? kBadGateway : status;
  scan.reason = reason;
  return scan;
}

HeadGuard::Scan HeadGuard::scan(const char* data, size_t len) {
  size_t i = 0;
  while (i < len) {
    if (seen_ >= limits_.maxHeadBytes) {
      return reject(i, kFieldsTooLarge,
                    kind_ == Kind::kRequest ? "request head too large" : "response head too large");
    }
    // Fast paths over the bulk of a head: the rest of a header line, and a request-target.
    // Both stop at the head limit, so limits still trip at the same byte as byte by byte.
    if (!prevCr_ && lineLen_ > 0) {
      const size_t room = std::min(len - i, limits_.maxHeadBytes - seen_);
      size_t run = 0;
      if (lineNo_ > 0) {
        // A header line is token ":" OWS value OWS: no CTL but HTAB anywhere in it. Checking
        // that here covers every field value, so the parser need not look again.
        run = findCtl(data + i, room);
        if (run < room) {
          const char c = data[i + run];
          if (c == '\t') {
            ++run;
          } else if (c == '\n') {
            return reject(i + run, kBadRequest, "bare LF as line ending");
          } else if (c != '\r') {
            return reject(i + run, kBadRequest, "invalid character in header field");
          }
        }
      } else if (kind_ == Kind::kRequest && spaces_ == 1 && targetLen_ > 0) {
        run = findNonVisible(data + i, room);
        if (targetLen_ + run > limits_.maxTargetBytes) {
          return reject(i + (limits_.maxTargetBytes - targetLen_), kUriTooLong,
                        "request-target too long");
        }
        targetLen_ += run;
      }
      if (run > 0) {
        i += run;
        seen_ += run;
        lineLen_ += run;
        continue;
      }
    }
    ++seen_;
    const auto c = static_cast<unsigned char>(data[i]);
    if (prevCr_) {
      if (c != '\n') {
        return reject(i, kBadRequest, "CR not followed by LF");
      }
      prevCr_ = false;
      ++i;
      if (lineNo_ == 0) {
        if (lineLen_ == 0) {
          continue;  // empty lines before the start line are ignored (RFC 9112 2.2)
        }
        if (int status = onStartLineEnd(); status != 0) {
          return reject(i - 1, status, failReason_);
        }
        lineNo_ = 1;
        lineLen_ = 0;
        continue;
      }
      if (lineLen_ == 0) {
        Scan scan;
        scan.consumed = i;
        scan.headEnded = true;
        return scan;
      }
      lineLen_ = 0;
      ++lineNo_;
      continue;
    }
    if (c == '\r') {
      prevCr_ = true;
      ++i;
      continue;
    }
    if (c == '\n') {
      return reject(i, kBadRequest, "bare LF as line ending");
    }
    if (lineNo_ == 0) {
      if (int status = onStartLineByte(c); status != 0) {
        return reject(i, status, failReason_);
      }
    } else if (lineLen_ == 0) {
      if (c == ' ' || c == '\t') {
        return reject(i, kBadRequest, "obsolete line folding (header line starts with whitespace)");
      }
      if (c < 0x20 || c == 0x7f) {
        return reject(i, kBadRequest, "invalid character in header field");
      }
      if (++headerLines_ > limits_.maxHeaders) {
        return reject(i, kFieldsTooLarge, "too many header fields");
      }
    }
    ++lineLen_;
    ++i;
  }
  Scan scan;
  scan.consumed = len;
  return scan;
}

int HeadGuard::onStartLineByte(unsigned char c) {
  if (kind_ == Kind::kResponse) {
    if (lineLen_ < sizeof(statusPrefix_)) {
      statusPrefix_[lineLen_] = static_cast<char>(c);
      if (lineLen_ + 1 == sizeof(statusPrefix_)) {
        const std::string_view prefix(statusPrefix_, sizeof(statusPrefix_));
        if (prefix != "HTTP/1.1 " && prefix != "HTTP/1.0 ") {
          failReason_ = "status line does not start with HTTP/1.0 or HTTP/1.1";
          return kBadGateway;
        }
      }
    }
    if ((c < 0x20 && c != '\t') || c == 0x7f) {
      failReason_ = "invalid character in status line";
      return kBadGateway;
    }
    return 0;
  }

  if (c == ' ') {
    if (++spaces_ > 2) {
      failReason_ = "malformed request line (more than two spaces)";
      return kBadRequest;
    }
    return 0;
  }
  // The whole request line is visible ASCII: no HTAB, no CTL, no raw UTF-8 in targets.
  if (c < 0x21 || c > 0x7e) {
    failReason_ = "invalid character in request line";
    return kBadRequest;
  }
  const char ch = static_cast<char>(c);
  if (spaces_ == 0) {
    if (!isTokenChar(ch)) {
      failReason_ = "invalid character in method";
      return kBadRequest;
    }
    if (methodLen_ < sizeof(method_)) {
      method_[methodLen_] = ch;
    }
    ++methodLen_;
  } else if (spaces_ == 1) {
    if (targetLen_ == 0) {
      targetFirst_ = ch;
    }
    if (++targetLen_ > limits_.maxTargetBytes) {
      failReason_ = "request-target too long";
      return kUriTooLong;
    }
  } else {
    if (protocolLen_ == sizeof(protocol_)) {
      failReason_ = "malformed HTTP version in request line";
      return kBadRequest;
    }
    protocol_[protocolLen_++] = ch;
  }
  return 0;
}

int HeadGuard::onStartLineEnd() {
  if (kind_ == Kind::kResponse) {
    if (lineLen_ < 12) {  // "HTTP/1.1 200"
      failReason_ = "malformed status line";
      return kBadGateway;
    }
    return 0;
  }
  if (spaces_ == 1 && methodLen_ > 0 && targetFirst_ == '/') {
    failReason_ = "HTTP/0.9 requests are not supported";
    return kVersionNotSupported;
  }
  if (spaces_ != 2 || methodLen_ == 0 || targetLen_ == 0 || protocolLen_ == 0) {
    failReason_ = "malformed request line";
    return kBadRequest;
  }
  const std::string_view protocol(protocol_, protocolLen_);
  if (protocol == "HTTP/1.1" || protocol == "HTTP/1.0") {
    return 0;
  }
  const std::string_view method(method_, methodLen_ < sizeof(method_) ? methodLen_ : 0);
  if (method == "PRI" && protocol == "HTTP/2.0") {
    failReason_ = "HTTP/2 is not supported (PRI * HTTP/2.0 preface)";
    return kBadRequest;
  }
  if (protocol.starts_with("HTTP/")) {
    const std::string_view version = protocol.substr(5);
    if ((version.size() == 1 && isDigit(version[0])) ||
        (version.size() == 3 && isDigit(version[0]) && version[1] == '.' && isDigit(version[2]))) {
      failReason_ = "HTTP version not supported (only HTTP/1.0 and HTTP/1.1)";
      return kVersionNotSupported;
    }
  }
  failReason_ = "request line does not end in HTTP/1.0 or HTTP/1.1";
  return kBadRequest;
}

}  // namespace egressd::http::detail
