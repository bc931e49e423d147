// Internal to egressd_http. The llhttp driver that RequestParser and ResponseParser share
// (head gating through the HeadGuard, header collection, the pause protocol and the phase
// machine), plus the readings of header fields that both parsers apply to a finished head.
// The parsers subclass ParserCore to validate heads and decide body framing.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "http/head_guard.h"
#include "http/message.h"
#include "http/parser.h"

namespace egressd::http::detail {

constexpr int kBadRequest = 400;
constexpr int kMethodNotAllowed = 405;
constexpr int kNotImplemented = 501;
constexpr int kBadGateway = 502;
constexpr int kVersionNotSupported = 505;

// llhttp computes data + len; a zero-length feed may come with a null pointer.
constexpr char kNoData[1] = {0};

// Field names must be tokens (this also rejects "Host :" and empty names). Values need no
// check here: the head guard has already refused any CTL other than HTAB in header lines.
const char* checkFieldNames(const std::vector<Header>& headers);

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

ConnectionOptions connectionOptions(const std::vector<Header>& headers);

// The connection persists after this message (RFC 9112 9.3); computed here rather than with
// llhttp_should_keep_alive because the body decision is ours (HEAD, 204, 304 skip bodies
// that llhttp's EOF logic would otherwise count).
bool persistsConnection(const ConnectionOptions& options, int versionMinor, bool bodyUntilClose);

// How a head ends, decided in on_headers_complete.
enum class HeadOutcome { kFail, kBody, kNoBody };

// The llhttp driver both parsers share: head gating, header collection, the pause protocol
// (pause at the end of the head and at the end of each message, so `consumed` is exact) and
// the phase machine. The subclasses validate heads and decide body framing.
class ParserCore {
 public:
  ParserCore(llhttp_type_t type, detail::HeadGuard::Kind kind, detail::HeadGuard::Limits limits);
  virtual ~ParserCore() = default;
  ParserCore(const ParserCore&) = delete;
  ParserCore& operator=(const ParserCore&) = delete;

  ParseStep feed(const char* data, size_t len);

  bool upgraded() const { return phase_ == Phase::kUpgraded; }

  bool betweenMessages() const {
    return (phase_ == Phase::kHead && guard_.bytesSeen() == 0) || phase_ == Phase::kClosed ||
           phase_ == Phase::kUpgraded;
  }

  void resetCore();

  // Decoded body bytes (chunk framing removed) go to `sink` as llhttp finds them, besides
  // the raw bytes feed() reports; null: none (the default; the hot path pays nothing).
  using BodySink = void (*)(void* arg, const char* data, size_t len);
  void setBodySink(BodySink sink, void* arg);

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

  ParseStep fail(int status, std::string_view reason);
  ParseStep failFromLlhttp(llhttp_errno_t err);

  llhttp_t parser_;
  Phase phase_ = Phase::kHead;

 private:
  static const llhttp_settings_t& settings();
  static const llhttp_settings_t& settingsWithBody();
  static int onBody(llhttp_t* parser, const char* at, size_t len);
  BodySink bodySink_ = nullptr;
  void* bodySinkArg_ = nullptr;
  static ParserCore& self(llhttp_t* parser) { return *static_cast<ParserCore*>(parser->data); }

  static int onMessageBegin(llhttp_t* parser);
  static int onUrl(llhttp_t* parser, const char* at, size_t len);
  // Header strings are reused from message to message: a new field reuses the slot (and
  // its capacity) of the previous message's field at the same index.
  static int onHeaderField(llhttp_t* parser, const char* at, size_t len);
  static int onHeaderFieldComplete(llhttp_t* parser);
  static int onHeaderValue(llhttp_t* parser, const char* at, size_t len);
  static int onHeaderValueComplete(llhttp_t* parser);
  static int onHeadersComplete(llhttp_t* parser);
  static int onMessageComplete(llhttp_t* parser);

  ParseStep feedHead(const char* data, size_t len);
  ParseStep feedBody(const char* data, size_t len);

 protected:
  void endMessage();

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

}  // namespace egressd::http::detail
