// ResponseParser: validates response heads on the shared llhttp driver (parser_core.h) and
// decides which responses have a body (RFC 9112 6.3: 1xx, 204, 304, HEAD, CONNECT tunnels),
// when a body runs until close, and whether an upstream close ends the message validly.
#include <llhttp.h>

#include "http/parser.h"
#include "http/parser_core.h"

namespace egressd::http {
namespace {

using detail::checkFieldNames;
using detail::connectionOptions;
using detail::HeadOutcome;
using detail::kBadGateway;
using detail::kNoData;
using detail::persistsConnection;

}  // namespace

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
void ResponseParser::setBodySink(BodySink sink, void* arg) {
  impl_->setBodySink(sink, arg);
}

void ResponseParser::reset() {
  impl_->resetCore();
  impl_->method_ = Impl::RequestMethod::kOther;
  impl_->upgrades_ = false;
}

}  // namespace egressd::http
