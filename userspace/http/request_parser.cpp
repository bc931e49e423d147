// RequestParser: validates request heads on the shared llhttp driver (parser_core.h) - method,
// version, framing headers, request-target forms and Host - and decides body framing and
// whether the connection persists. The status codes and reasons are listed in parser.h.
#include <llhttp.h>

#include "http/chars.h"
#include "http/parser.h"
#include "http/parser_core.h"

namespace egressd::http {
namespace {

using detail::checkFieldNames;
using detail::ConnectionOptions;
using detail::connectionOptions;
using detail::HeadOutcome;
using detail::kBadRequest;
using detail::kMethodNotAllowed;
using detail::kVersionNotSupported;
using detail::persistsConnection;

bool startsWithIgnoreCase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && equalsIgnoreCase(text.substr(0, prefix.size()), prefix);
}

// Decimal digits only, no sign, no list, no overflow (RFC 9110 8.6).
std::optional<uint64_t> parseContentLength(std::string_view text) {
  if (text.empty() || text.size() > 19) {
    return std::nullopt;
  }
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return std::nullopt;
    }
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

}  // namespace

struct RequestParser::Impl final : detail::ParserCore {
  explicit Impl(RequestLimits limits)
      : ParserCore(HTTP_REQUEST, detail::HeadGuard::Kind::kRequest,
                   {limits.maxHeadBytes, limits.maxHeaders, limits.maxTargetBytes}),
        limits_(limits) {
    head_.headers.reserve(16);
  }

  void beginMessage() override {
    head_.method.clear();
    head_.target.clear();
    head_.authority.clear();
    head_.path.clear();
    head_.host.clear();
    head_.versionMajor = 1;
    head_.versionMinor = 1;
    head_.keepAlive = true;
    head_.chunked = false;
    head_.contentLength.reset();
    head_.hasBody = false;
    head_.expectContinue = false;
    head_.upgrade = false;
    head_.upgradeProtocol.clear();
  }

  std::vector<Header>& headerList() override { return head_.headers; }

  bool appendTarget(const char* at, size_t len) override {
    if (head_.target.size() + len > limits_.maxTargetBytes) {
      setFailure(414, "request-target too long");
      return false;
    }
    head_.target.append(at, len);
    return true;
  }

  HeadOutcome completeHead() override {
    auto reject = [this](int status, std::string_view reason) {
      setFailure(status, reason);
      return HeadOutcome::kFail;
    };
    head_.versionMajor = parser_.http_major;
    head_.versionMinor = parser_.http_minor;
    head_.method = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
    if (parser_.method == HTTP_CONNECT) {
      return reject(kMethodNotAllowed, "CONNECT is not supported by a transparent proxy");
    }
    if (parser_.method == HTTP_PRI) {
      return reject(kBadRequest, "HTTP/2 is not supported (PRI * HTTP/2.0 preface)");
    }
    if (head_.versionMajor != 1 || head_.versionMinor > 1) {
      return reject(kVersionNotSupported, "HTTP version not supported (only 1.0 and 1.1)");
    }
    if (const char* problem = checkFieldNames(head_.headers)) {
      return reject(kBadRequest, problem);
    }

    const Header* host = nullptr;
    const Header* contentLength = nullptr;
    const Header* transferEncoding = nullptr;
    const Header* upgrade = nullptr;
    for (const Header& header : head_.headers) {
      // Dispatch on length first: most fields are none of these.
      switch (header.name.size()) {
        case 4:
          if (equalsIgnoreCase(header.name, "Host")) {
            if (host != nullptr) {
              return reject(kBadRequest, "more than one Host header");
            }
            host = &header;
          }
          break;
        case 6:
          if (equalsIgnoreCase(header.name, "Expect") &&
              equalsIgnoreCase(header.value, "100-continue")) {
            head_.expectContinue = true;
          }
          break;
        case 7:
          if (equalsIgnoreCase(header.name, "Upgrade") && upgrade == nullptr) {
            upgrade = &header;
          }
          break;
        case 14:
          if (equalsIgnoreCase(header.name, "Content-Length")) {
            if (contentLength != nullptr) {
              return reject(kBadRequest, "duplicate Content-Length");
            }
            contentLength = &header;
          } else if (equalsIgnoreCase(header.name, "HTTP2-Settings")) {
            return reject(kBadRequest, "HTTP/2 is not supported (HTTP2-Settings upgrade)");
          } else if (equalsIgnoreCase(header.name, "Content_Length")) {
            // CGI-style servers map '-' and '_' to the same variable name.
            return reject(kBadRequest, "Content_Length header (ambiguous framing)");
          }
          break;
        case 17:
          if (equalsIgnoreCase(header.name, "Transfer-Encoding")) {
            if (transferEncoding != nullptr) {
              return reject(kBadRequest, "more than one Transfer-Encoding header");
            }
            transferEncoding = &header;
          } else if (equalsIgnoreCase(header.name, "Transfer_Encoding")) {
            return reject(kBadRequest, "Transfer_Encoding header (ambiguous framing)");
          }
          break;
        default:
          break;
      }
    }

    // Framing (RFC 9112 6.1-6.3), strictest reading: one way to frame a body, no guessing.
    if (contentLength != nullptr && transferEncoding != nullptr) {
      return reject(kBadRequest, "both Content-Length and Transfer-Encoding");
    }
    if (transferEncoding != nullptr) {
      if (head_.versionMinor == 0) {
        return reject(kBadRequest, "Transfer-Encoding in an HTTP/1.0 request");
      }
      if (!equalsIgnoreCase(transferEncoding->value, "chunked") ||
          (parser_.flags & F_CHUNKED) == 0) {
        return reject(kBadRequest, "Transfer-Encoding must be exactly \"chunked\"");
      }
      head_.chunked = true;
    }
    if (contentLength != nullptr) {
      head_.contentLength = parseContentLength(contentLength->value);
      if (!head_.contentLength || *head_.contentLength != parser_.content_length) {
        return reject(kBadRequest, "invalid Content-Length");
      }
    }
    head_.hasBody = head_.chunked || head_.contentLength.value_or(0) > 0;

    uint16_t defaultPort = 80;
    if (!classifyTarget(defaultPort)) {
      return HeadOutcome::kFail;
    }

    if (host == nullptr) {
      if (head_.versionMinor >= 1) {
        return reject(kBadRequest, "missing Host header");
      }
    } else {
      head_.host = host->value;
      if (head_.host.empty()) {
        return reject(kBadRequest, "empty Host header");
      }
      if (!parseAuthority(head_.host).ok()) {
        return reject(kBadRequest, "invalid Host header");
      }
      if (!head_.authority.empty() && !sameAuthority(head_.authority, head_.host, defaultPort)) {
        return reject(kBadRequest, "absolute-form target does not match the Host header");
      }
    }

    if (upgrade != nullptr) {
      head_.upgradeProtocol = upgrade->value;
    }
    const ConnectionOptions connection = connectionOptions(head_.headers);
    // llhttp decides where the message ends from its own reading of Connection (an upgrade
    // stops it after the head): where that differs from the trimmed tokens the origin will
    // read, two parties would frame the stream differently. Refused, like other ambiguity.
    if (connection.upgrade != ((parser_.flags & F_CONNECTION_UPGRADE) != 0) ||
        connection.close != ((parser_.flags & F_CONNECTION_CLOSE) != 0) ||
        connection.keepAlive != ((parser_.flags & F_CONNECTION_KEEP_ALIVE) != 0)) {
      return reject(kBadRequest, "ambiguous Connection header");
    }
    // RFC 9110 7.8: Upgrade needs "Connection: upgrade" and is ignored in HTTP/1.0.
    head_.upgrade =
        parser_.upgrade != 0 && !head_.upgradeProtocol.empty() && head_.versionMinor == 1;
    head_.keepAlive = persistsConnection(connection, head_.versionMinor, false);
    // An upgrade with a body (rare, but legal) switches protocols after the body.
    return head_.hasBody ? HeadOutcome::kBody : HeadOutcome::kNoBody;
  }

  // origin-form "/p?q", absolute-form "http://authority/p?q", asterisk-form "*" for OPTIONS.
  // CONNECT's authority-form never gets here.
  // False (failure set) when the target is unusable.
  bool classifyTarget(uint16_t& defaultPort) {
    auto reject = [this](std::string_view reason) {
      setFailure(kBadRequest, reason);
      return false;
    };
    const std::string_view target = head_.target;
    if (target.empty()) {
      return reject("empty request-target");
    }
    if (target.find('#') != std::string_view::npos) {
      return reject("fragment in request-target");
    }
    if (target.front() == '/') {
      head_.path = head_.target;
      return true;
    }
    if (target == "*") {
      if (parser_.method != HTTP_OPTIONS) {
        return reject("asterisk-form request-target is only valid for OPTIONS");
      }
      head_.path = "*";
      return true;
    }
    size_t schemeLen = 0;
    if (startsWithIgnoreCase(target, "http://")) {
      schemeLen = 7;
      defaultPort = 80;
    } else if (startsWithIgnoreCase(target, "https://")) {
      schemeLen = 8;
      defaultPort = 443;
    } else {
      return reject("malformed request-target");
    }
    const std::string_view rest = target.substr(schemeLen);
    const size_t pathStart = rest.find_first_of("/?");
    const std::string_view authority = rest.substr(0, pathStart);
    if (authority.empty()) {
      return reject("absolute-form request-target without a host");
    }
    if (authority.find('@') != std::string_view::npos) {
      return reject("userinfo in request-target");
    }
    if (!parseAuthority(authority).ok()) {
      return reject("invalid host in request-target");
    }
    head_.authority.assign(authority);
    if (pathStart == std::string_view::npos) {
      head_.path = "/";
    } else {
      if (rest[pathStart] == '?') {
        head_.path = "/";
      }
      head_.path.append(rest.substr(pathStart));
    }
    return true;
  }

  bool messageUpgrades() const override { return head_.upgrade; }
  bool messageKeepsAlive() const override { return head_.keepAlive; }
  int errorStatus(int requestStatus) const override { return requestStatus; }

  void refuseUpgrade() {
    if (phase_ != Phase::kUpgraded) {
      return;
    }
    phase_ = head_.keepAlive ? Phase::kHead : Phase::kClosed;
  }

  RequestLimits limits_;
  RequestHead head_;
};

RequestParser::RequestParser(RequestLimits limits) : impl_(std::make_unique<Impl>(limits)) {}
RequestParser::~RequestParser() = default;
RequestParser::RequestParser(RequestParser&&) noexcept = default;
RequestParser& RequestParser::operator=(RequestParser&&) noexcept = default;

RequestParser::Step RequestParser::feed(const char* data, size_t len) {
  return impl_->feed(data, len);
}
const RequestHead& RequestParser::head() const {
  return impl_->head_;
}
void RequestParser::refuseUpgrade() {
  impl_->refuseUpgrade();
}
bool RequestParser::betweenMessages() const {
  return impl_->betweenMessages();
}
void RequestParser::reset() {
  impl_->resetCore();
}

}  // namespace egressd::http
