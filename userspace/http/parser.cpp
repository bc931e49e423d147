#include "http/parser.h"

#include <llhttp.h>

#include "http/chars.h"
#include "http/head_guard.h"

namespace egressd::http {
namespace {

constexpr int kBadRequest = 400;
constexpr int kMethodNotAllowed = 405;
constexpr int kNotImplemented = 501;
constexpr int kBadGateway = 502;
constexpr int kVersionNotSupported = 505;

// llhttp computes data + len; a zero-length feed may come with a null pointer.
constexpr char kNoData[1] = {0};

using Kind = ParseStep::Kind;

ParseStep makeStep(Kind kind, size_t consumed) {
  ParseStep step;
  step.kind = kind;
  step.consumed = consumed;
  return step;
}

ParseStep makeError(int status, const std::string& reason) {
  ParseStep step = makeStep(Kind::kError, 0);
  step.status = status;
  step.reason = reason;
  return step;
}

void trimTrailingOws(std::string& value) {
  size_t end = value.size();
  while (end > 0 && (value[end - 1] == ' ' || value[end - 1] == '\t')) {
    --end;
  }
  value.resize(end);
}

bool startsWithIgnoreCase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && equalsIgnoreCase(text.substr(0, prefix.size()), prefix);
}

// Field names must be tokens (this also rejects "Host :" and empty names). Values need no
// check here: the head guard has already refused any CTL other than HTAB in header lines.
const char* checkFieldNames(const std::vector<Header>& headers) {
  for (const Header& header : headers) {
    if (!isToken(header.name)) {
      return "invalid header field name";
    }
  }
  return nullptr;
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

// The options of every Connection header (RFC 9110 7.6.1: a comma list of tokens, each
// trimmed of optional whitespace, case-insensitive), read from the values as collected -
// the same text serializeRequestHead sends on. llhttp's F_CONNECTION_* flags are not the
// meaning: it does not recognise "keep-alive<HTAB>" as a token, so a head and its
// re-serialization (trimmed) would differ in whether the connection persists.
struct ConnectionOptions {
  bool close = false;
  bool keepAlive = false;
  bool upgrade = false;
};

ConnectionOptions connectionOptions(const std::vector<Header>& headers) {
  ConnectionOptions options;
  for (const Header& header : headers) {
    // llhttp reads the legacy Proxy-Connection the same way; so do we, to agree with it.
    if (!equalsIgnoreCase(header.name, "Connection") &&
        !equalsIgnoreCase(header.name, "Proxy-Connection")) {
      continue;
    }
    std::string_view rest = header.value;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      std::string_view token = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) {
        token.remove_prefix(1);
      }
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) {
        token.remove_suffix(1);
      }
      options.close = options.close || equalsIgnoreCase(token, "close");
      options.keepAlive = options.keepAlive || equalsIgnoreCase(token, "keep-alive");
      options.upgrade = options.upgrade || equalsIgnoreCase(token, "upgrade");
    }
  }
  return options;
}

// The connection persists after this message (RFC 9112 9.3); computed here rather than with
// llhttp_should_keep_alive because the body decision is ours (HEAD, 204, 304 skip bodies
// that llhttp's EOF logic would otherwise count).
bool persistsConnection(const ConnectionOptions& options, int versionMinor, bool bodyUntilClose) {
  if (bodyUntilClose || options.close) {
    return false;
  }
  return versionMinor >= 1 || options.keepAlive;
}

// How a head ends, decided in on_headers_complete.
enum class HeadOutcome { kFail, kBody, kNoBody };

}  // namespace

namespace detail {

// The llhttp driver both parsers share: head gating, header collection, the pause protocol
// (pause at the end of the head and at the end of each message, so `consumed` is exact) and
// the phase machine. The subclasses validate heads and decide body framing.
class ParserCore {
 public:
  ParserCore(llhttp_type_t type, detail::HeadGuard::Kind kind, detail::HeadGuard::Limits limits)
      : guard_(kind, limits) {
    llhttp_init(&parser_, type, &settings());
    parser_.data = this;
  }
  virtual ~ParserCore() = default;
  ParserCore(const ParserCore&) = delete;
  ParserCore& operator=(const ParserCore&) = delete;

  ParseStep feed(const char* data, size_t len) {
    if (data == nullptr) {
      data = kNoData;
      len = 0;
    }
    switch (phase_) {
      case Phase::kHead:
        return feedHead(data, len);
      case Phase::kBody:
        return feedBody(data, len);
      case Phase::kClosed:
        if (len == 0) {
          return makeStep(Kind::kNeedMore, 0);
        }
        return fail(kBadRequest, "data after a message that closes the connection");
      case Phase::kUpgraded:
        if (len == 0) {
          return makeStep(Kind::kNeedMore, 0);
        }
        return fail(kBadRequest, "data after a protocol upgrade is not HTTP");
      case Phase::kError:
        break;
    }
    return makeError(errorStatus_, errorReason_);
  }

  bool upgraded() const { return phase_ == Phase::kUpgraded; }

  bool betweenMessages() const {
    return (phase_ == Phase::kHead && guard_.bytesSeen() == 0) || phase_ == Phase::kClosed ||
           phase_ == Phase::kUpgraded;
  }

  void resetCore() {
    llhttp_reset(&parser_);
    guard_.reset();
    phase_ = Phase::kHead;
    headDone_ = false;
    messageDone_ = false;
    fieldOpen_ = false;
    headerCount_ = 0;
    errorStatus_ = 0;
    errorReason_.clear();
  }

 protected:
  enum class Phase { kHead, kBody, kClosed, kUpgraded, kError };

  virtual void beginMessage() = 0;
  virtual std::vector<Header>& headerList() = 0;
  virtual HeadOutcome completeHead() = 0;  // on kFail, has called setFailure()
  virtual bool appendTarget(const char* /*at*/, size_t /*len*/) { return true; }
  virtual bool messageUpgrades() const = 0;
  virtual bool messageKeepsAlive() const = 0;
  // Requests answer with the status given; responses always map to 502.
  virtual int errorStatus(int requestStatus) const = 0;

  void setFailure(int status, std::string_view reason) {
    errorStatus_ = errorStatus(status);
    errorReason_.assign(reason);
  }

  ParseStep fail(int status, std::string_view reason) {
    setFailure(status, reason);
    phase_ = Phase::kError;
    return makeError(errorStatus_, errorReason_);
  }

  ParseStep failFromLlhttp(llhttp_errno_t err) {
    // Our own callbacks' failures come back as HPE_USER or HPE_CB_HEADERS_COMPLETE.
    if (errorStatus_ != 0) {
      phase_ = Phase::kError;
      return makeError(errorStatus_, errorReason_);
    }
    const std::string_view detail = llhttp_get_error_reason(&parser_) != nullptr
                                        ? std::string_view(llhttp_get_error_reason(&parser_))
                                        : std::string_view();
    switch (err) {
      case HPE_INVALID_METHOD:
        return fail(kNotImplemented, "unknown method");
      case HPE_INVALID_VERSION:
        return fail(kVersionNotSupported, "HTTP version not supported");
      case HPE_UNEXPECTED_CONTENT_LENGTH:
        return fail(kBadRequest, detail.find("Duplicate") != std::string_view::npos
                                     ? "duplicate Content-Length"
                                     : "both Content-Length and Transfer-Encoding");
      case HPE_INVALID_CONTENT_LENGTH:
        return fail(kBadRequest, "invalid Content-Length");
      case HPE_INVALID_TRANSFER_ENCODING:
        return fail(kBadRequest, "Transfer-Encoding must be exactly \"chunked\"");
      case HPE_INVALID_CHUNK_SIZE:
        return fail(kBadRequest, "invalid chunk framing");
      case HPE_STRICT:
      case HPE_CR_EXPECTED:
      case HPE_LF_EXPECTED:
        // In a body these come from chunk framing (strict llhttp: CRLF after chunk data).
        return fail(kBadRequest,
                    phase_ == Phase::kBody ? "invalid chunk framing" : "invalid line ending");
      case HPE_INVALID_HEADER_TOKEN:
        return fail(kBadRequest, "invalid header field");
      case HPE_INVALID_URL:
        return fail(kBadRequest, "invalid request-target");
      case HPE_INVALID_STATUS:
        return fail(kBadRequest, "invalid status code");
      case HPE_PAUSED_H2_UPGRADE:
        return fail(kBadRequest, "HTTP/2 is not supported (PRI * HTTP/2.0 preface)");
      case HPE_CLOSED_CONNECTION:
        return fail(kBadRequest, "data after a message that closes the connection");
      default: {
        std::string reason = "malformed HTTP message";
        if (!detail.empty()) {
          reason += " (";
          reason += detail;
          reason += ')';
        }
        return fail(kBadRequest, reason);
      }
    }
  }

  llhttp_t parser_;
  Phase phase_ = Phase::kHead;

 private:
  static const llhttp_settings_t& settings() {
    static const llhttp_settings_t kSettings = [] {
      llhttp_settings_t s;
      llhttp_settings_init(&s);
      s.on_message_begin = &ParserCore::onMessageBegin;
      s.on_url = &ParserCore::onUrl;
      s.on_header_field = &ParserCore::onHeaderField;
      s.on_header_field_complete = &ParserCore::onHeaderFieldComplete;
      s.on_header_value = &ParserCore::onHeaderValue;
      s.on_header_value_complete = &ParserCore::onHeaderValueComplete;
      s.on_headers_complete = &ParserCore::onHeadersComplete;
      s.on_message_complete = &ParserCore::onMessageComplete;
      return s;
    }();
    return kSettings;
  }

  static ParserCore& self(llhttp_t* parser) { return *static_cast<ParserCore*>(parser->data); }

  static int onMessageBegin(llhttp_t* parser) {
    ParserCore& core = self(parser);
    core.headDone_ = false;
    core.messageDone_ = false;
    core.fieldOpen_ = false;
    core.headerCount_ = 0;
    core.beginMessage();
    return 0;
  }

  static int onUrl(llhttp_t* parser, const char* at, size_t len) {
    return self(parser).appendTarget(at, len) ? 0 : HPE_USER;
  }

  // Header strings are reused from message to message: a new field reuses the slot (and
  // its capacity) of the previous message's field at the same index.
  static int onHeaderField(llhttp_t* parser, const char* at, size_t len) {
    ParserCore& core = self(parser);
    if (core.headDone_) {
      return 0;  // trailer fields: forwarded raw as body bytes, not part of the head
    }
    std::vector<Header>& headers = core.headerList();
    if (!core.fieldOpen_) {
      if (core.headerCount_ < headers.size()) {
        headers[core.headerCount_].name.clear();
        headers[core.headerCount_].value.clear();
      } else {
        headers.emplace_back();
      }
      ++core.headerCount_;
      core.fieldOpen_ = true;
    }
    headers[core.headerCount_ - 1].name.append(at, len);
    return 0;
  }

  static int onHeaderFieldComplete(llhttp_t* parser) {
    self(parser).fieldOpen_ = false;
    return 0;
  }

  static int onHeaderValue(llhttp_t* parser, const char* at, size_t len) {
    ParserCore& core = self(parser);
    if (core.headDone_ || core.headerCount_ == 0) {
      return 0;
    }
    core.headerList()[core.headerCount_ - 1].value.append(at, len);
    return 0;
  }

  static int onHeaderValueComplete(llhttp_t* parser) {
    ParserCore& core = self(parser);
    if (!core.headDone_ && core.headerCount_ > 0) {
      trimTrailingOws(core.headerList()[core.headerCount_ - 1].value);
    }
    return 0;
  }

  static int onHeadersComplete(llhttp_t* parser) {
    ParserCore& core = self(parser);
    core.headDone_ = true;
    core.headerList().resize(core.headerCount_);
    switch (core.completeHead()) {
      case HeadOutcome::kFail:
        return HPE_USER;
      case HeadOutcome::kNoBody:
        return 1;  // llhttp skips any body and completes the message right here
      case HeadOutcome::kBody:
        break;
    }
    return HPE_PAUSED;
  }

  static int onMessageComplete(llhttp_t* parser) {
    ParserCore& core = self(parser);
    core.messageDone_ = true;
    return core.finishing_ ? 0 : HPE_PAUSED;
  }

  ParseStep feedHead(const char* data, size_t len) {
    if (len == 0) {
      return makeStep(Kind::kNeedMore, 0);
    }
    const detail::HeadGuard::Scan scan = guard_.scan(data, len);
    if (scan.status != 0) {
      return fail(scan.status, scan.reason);
    }
    // llhttp only ever parses head bytes the guard approved, and stops at the head's end.
    const llhttp_errno_t err = llhttp_execute(&parser_, data, scan.consumed);
    if (err == HPE_OK) {
      if (scan.headEnded) {
        return fail(kBadRequest, "malformed message head");
      }
      return makeStep(Kind::kNeedMore, scan.consumed);
    }
    if (err != HPE_PAUSED) {
      return failFromLlhttp(err);
    }
    const auto consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
    llhttp_resume(&parser_);
    if (!headDone_ || !scan.headEnded || consumed != scan.consumed) {
      return fail(kBadRequest, "malformed message head");  // llhttp and the guard disagree
    }
    ParseStep step = makeStep(Kind::kHead, consumed);
    if (messageDone_) {
      step.endsMessage = true;
      endMessage();
    } else {
      phase_ = Phase::kBody;
    }
    return step;
  }

  ParseStep feedBody(const char* data, size_t len) {
    const llhttp_errno_t err = llhttp_execute(&parser_, data, len);
    if (err == HPE_OK) {
      return makeStep(Kind::kBody, len);
    }
    if (err == HPE_PAUSED && messageDone_) {
      const auto consumed = static_cast<size_t>(llhttp_get_error_pos(&parser_) - data);
      llhttp_resume(&parser_);
      endMessage();
      return makeStep(Kind::kMessageEnd, consumed);
    }
    return failFromLlhttp(err);
  }

 protected:
  void endMessage() {
    const bool upgrade = messageUpgrades();
    const bool keepAlive = messageKeepsAlive();
    // Each message starts llhttp afresh: what follows a message is decided here, not by
    // llhttp's after-message logic (which in its loose build silently discards bytes after
    // a non-persistent message, and pauses in front of whatever follows an upgrade).
    llhttp_reset(&parser_);
    headDone_ = false;
    messageDone_ = false;
    guard_.reset();
    if (upgrade) {
      phase_ = Phase::kUpgraded;
    } else if (!keepAlive) {
      phase_ = Phase::kClosed;
    } else {
      phase_ = Phase::kHead;
    }
  }

  // For EOF handling: on_message_complete must not pause inside llhttp_finish.
  bool finishing_ = false;
  bool messageDone_ = false;

 private:
  detail::HeadGuard guard_;
  bool headDone_ = false;
  bool fieldOpen_ = false;
  size_t headerCount_ = 0;
  int errorStatus_ = 0;
  std::string errorReason_;
};

}  // namespace detail

// ---------------------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------------------

struct ResponseParser::Impl final : detail::ParserCore {
  enum class RequestMethod { kOther, kHead, kConnect };

  explicit Impl(size_t maxHeadBytes)
      : ParserCore(HTTP_RESPONSE, detail::HeadGuard::Kind::kResponse, {maxHeadBytes}) {
    head_.headers.reserve(16);
  }

  void beginMessage() override {
    head_.status = 0;
    head_.versionMajor = 1;
    head_.versionMinor = 1;
    head_.keepAlive = true;
    upgrades_ = false;
  }

  std::vector<Header>& headerList() override { return head_.headers; }

  HeadOutcome completeHead() override {
    head_.status = parser_.status_code;
    head_.versionMajor = parser_.http_major;
    head_.versionMinor = parser_.http_minor;
    if (head_.versionMajor != 1 || head_.versionMinor > 1) {
      setFailure(kBadGateway, "response HTTP version not supported");
      return HeadOutcome::kFail;
    }
    if (head_.status < 100) {
      setFailure(kBadGateway, "invalid status code");
      return HeadOutcome::kFail;
    }
    if (const char* problem = checkFieldNames(head_.headers)) {
      setFailure(kBadGateway, problem);
      return HeadOutcome::kFail;
    }
    // RFC 9112 6.1: chunked in HTTP/1.0 is faulty framing; the client might read it
    // until close while egressd reads chunks.
    if (head_.versionMinor == 0 && (parser_.flags & F_TRANSFER_ENCODING) != 0) {
      setFailure(kBadGateway, "Transfer-Encoding in an HTTP/1.0 response");
      return HeadOutcome::kFail;
    }
    // RFC 9112 6.3: which responses have no body regardless of their framing headers.
    const int status = head_.status;
    bool noBody = status < 200 || status == 204 || status == 304 || method_ == RequestMethod::kHead;
    upgrades_ =
        status == 101 || (method_ == RequestMethod::kConnect && status >= 200 && status < 300);
    noBody = noBody || upgrades_;
    bool untilClose = false;
    if (!noBody && (parser_.flags & F_CHUNKED) == 0) {
      if (parser_.flags & F_TRANSFER_ENCODING) {
        untilClose = true;  // a coding other than chunked last: read until close
      } else if (parser_.flags & F_CONTENT_LENGTH) {
        noBody = parser_.content_length == 0;
      } else {
        untilClose = true;
      }
    }
    head_.keepAlive =
        persistsConnection(connectionOptions(head_.headers), head_.versionMinor, untilClose);
    return noBody ? HeadOutcome::kNoBody : HeadOutcome::kBody;
  }

  bool messageUpgrades() const override { return upgrades_; }
  // 1xx are interim: the final response decides about the connection.
  bool messageKeepsAlive() const override { return head_.informational() || head_.keepAlive; }
  int errorStatus(int /*requestStatus*/) const override { return kBadGateway; }

  bool finishAtEof() {
    switch (phase_) {
      case Phase::kHead:
        return betweenMessages();
      case Phase::kClosed:
      case Phase::kUpgraded:
        return true;
      case Phase::kError:
        return false;
      case Phase::kBody:
        break;
    }
    finishing_ = true;
    // Right after the head llhttp has not yet entered the body state (it paused first);
    // an empty execute gets it there so that llhttp_finish judges the right state.
    llhttp_errno_t err = llhttp_execute(&parser_, kNoData, 0);
    if (err == HPE_OK) {
      err = llhttp_finish(&parser_);
    }
    finishing_ = false;
    if (err == HPE_OK && messageDone_) {
      endMessage();
      phase_ = Phase::kClosed;
      return true;
    }
    return false;
  }

  void expect(std::string_view method) {
    if (method == "HEAD") {
      method_ = RequestMethod::kHead;
    } else if (method == "CONNECT") {
      method_ = RequestMethod::kConnect;
    } else {
      method_ = RequestMethod::kOther;
    }
  }

  RequestMethod method_ = RequestMethod::kOther;
  bool upgrades_ = false;
  ResponseHead head_;
};

ResponseParser::ResponseParser(size_t maxHeadBytes) : impl_(std::make_unique<Impl>(maxHeadBytes)) {}
ResponseParser::~ResponseParser() = default;
ResponseParser::ResponseParser(ResponseParser&&) noexcept = default;
ResponseParser& ResponseParser::operator=(ResponseParser&&) noexcept = default;

void ResponseParser::expectResponseTo(std::string_view method) {
  impl_->expect(method);
}
ResponseParser::Step ResponseParser::feed(const char* data, size_t len) {
  return impl_->feed(data, len);
}
bool ResponseParser::finishAtEof() {
  return impl_->finishAtEof();
}
const ResponseHead& ResponseParser::head() const {
  return impl_->head_;
}
bool ResponseParser::upgraded() const {
  return impl_->upgraded();
}
bool ResponseParser::betweenMessages() const {
  return impl_->betweenMessages();
}
void ResponseParser::reset() {
  impl_->resetCore();
  impl_->method_ = Impl::RequestMethod::kOther;
  impl_->upgrades_ = false;
}

}  // namespace egressd::http
