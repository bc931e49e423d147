// The shared llhttp driver of the HTTP parsers (see parser_core.h): the phase machine, the
// llhttp callbacks that collect the head, the pause protocol that makes `consumed` exact,
// the mapping of llhttp errors to statuses, and the header readings both parsers share.
#include "http/parser_core.h"

#include "http/chars.h"

namespace egressd::http::detail {
namespace {

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

}  // namespace

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

bool persistsConnection(const ConnectionOptions& options, int versionMinor, bool bodyUntilClose) {
  if (bodyUntilClose || options.close) {
    return false;
  }
  return versionMinor >= 1 || options.keepAlive;
}

ParserCore::ParserCore(llhttp_type_t type, detail::HeadGuard::Kind kind,
                       detail::HeadGuard::Limits limits)
    : guard_(kind, limits) {
  llhttp_init(&parser_, type, &settings());
  parser_.data = this;
}

ParseStep ParserCore::feed(const char* data, size_t len) {
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

void ParserCore::resetCore() {
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

ParseStep ParserCore::fail(int status, std::string_view reason) {
  setFailure(status, reason);
  phase_ = Phase::kError;
  return makeError(errorStatus_, errorReason_);
}

ParseStep ParserCore::failFromLlhttp(llhttp_errno_t err) {
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

const llhttp_settings_t& ParserCore::settings() {
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

const llhttp_settings_t& ParserCore::settingsWithBody() {
  static const llhttp_settings_t kSettings = [] {
    llhttp_settings_t s = settings();
    s.on_body = &ParserCore::onBody;
    return s;
  }();
  return kSettings;
}

void ParserCore::setBodySink(BodySink sink, void* arg) {
  bodySink_ = sink;
  bodySinkArg_ = arg;
  parser_.settings =
      const_cast<llhttp_settings_t*>(sink != nullptr ? &settingsWithBody() : &settings());
}

int ParserCore::onBody(llhttp_t* parser, const char* at, size_t len) {
  ParserCore& core = self(parser);
  if (core.bodySink_ != nullptr) {
    core.bodySink_(core.bodySinkArg_, at, len);
  }
  return 0;
}

int ParserCore::onMessageBegin(llhttp_t* parser) {
  ParserCore& core = self(parser);
  core.headDone_ = false;
  core.messageDone_ = false;
  core.fieldOpen_ = false;
  core.headerCount_ = 0;
  core.beginMessage();
  return 0;
}

int ParserCore::onUrl(llhttp_t* parser, const char* at, size_t len) {
  return self(parser).appendTarget(at, len) ? 0 : HPE_USER;
}

// Header strings are reused from message to message: a new field reuses the slot (and
// its capacity) of the previous message's field at the same index.
int ParserCore::onHeaderField(llhttp_t* parser, const char* at, size_t len) {
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

int ParserCore::onHeaderFieldComplete(llhttp_t* parser) {
  self(parser).fieldOpen_ = false;
  return 0;
}

int ParserCore::onHeaderValue(llhttp_t* parser, const char* at, size_t len) {
  ParserCore& core = self(parser);
  if (core.headDone_ || core.headerCount_ == 0) {
    return 0;
  }
  core.headerList()[core.headerCount_ - 1].value.append(at, len);
  return 0;
}

int ParserCore::onHeaderValueComplete(llhttp_t* parser) {
  ParserCore& core = self(parser);
  if (!core.headDone_ && core.headerCount_ > 0) {
    trimTrailingOws(core.headerList()[core.headerCount_ - 1].value);
  }
  return 0;
}

int ParserCore::onHeadersComplete(llhttp_t* parser) {
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

int ParserCore::onMessageComplete(llhttp_t* parser) {
  ParserCore& core = self(parser);
  core.messageDone_ = true;
  return core.finishing_ ? 0 : HPE_PAUSED;
}

ParseStep ParserCore::feedHead(const char* data, size_t len) {
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

ParseStep ParserCore::feedBody(const char* data, size_t len) {
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

void ParserCore::endMessage() {
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

}  // namespace egressd::http::detail
