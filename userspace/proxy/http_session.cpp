#include "proxy/http_session.h"

#include <type_traits>

#include "proxy/pipe.h"
#include "proxy/request_rules.h"
#include "proxy/stream_ops.h"
#include "proxy/upstream_choice.h"
#include "proxy/upstream_connect.h"
#include "proxy/upstream_pool.h"
#include "proxy/watchdog.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <algorithm>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/write.hpp>
#include <charconv>
#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "audit/audit_log.h"
#include "common/unique_fd.h"
#include "metrics/metrics.h"
#include "tls/contexts.h"

namespace egressd::proxy {

namespace {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace asio::experimental::awaitable_operators;

// The first byte of a TLS record carrying a handshake.
constexpr unsigned char kTlsHandshake = 0x16;

// TCP_NODELAY (heads and small bodies go out at once) and a non-blocking user mode, so a
// synchronous read_some after readiness returns would_block instead of waiting. Also called
// on the unix stream sockets a reroute yields (held as tcp::socket): TCP_NODELAY then fails
// with EOPNOTSUPP, which is harmless and ignored; the non-blocking mode is what matters.
void prepareSocket(tcp::socket& s) {
  int on = 1;
  (void)::setsockopt(s.native_handle(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  asio::error_code ignored;
  s.non_blocking(true, ignored);
}

std::vector<http::Header> reasonHeaders(const std::string& reason,
                                        const std::string* rule = nullptr) {
  std::vector<http::Header> h;
  if (rule != nullptr) {
    h.push_back(http::Header{"X-Egressd-Rule", rule->empty() ? std::string("default") : *rule});
  }
  h.push_back(http::Header{"X-Egressd-Reason", reason});
  return h;
}

// A fixed byte buffer with a window of unread data [begin, end).
class ByteWindow {
 public:
  explicit ByteWindow(size_t capacity) : data_(new char[capacity]), capacity_(capacity) {}
  const char* readPtr() const { return data_.get() + begin_; }
  char* mutableReadPtr() { return data_.get() + begin_; }
  size_t readable() const { return end_ - begin_; }
  void consume(size_t n) {
    begin_ += n;
    if (begin_ == end_) {
      begin_ = end_ = 0;
    }
  }
  // Space after the data; compacts first when the data does not start at 0.
  asio::mutable_buffer writable() {
    if (begin_ != 0 && end_ == capacity_) {
      std::memmove(data_.get(), data_.get() + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    return asio::buffer(data_.get() + end_, capacity_ - end_);
  }
  void commit(size_t n) { end_ += n; }
  bool full() const { return begin_ == 0 && end_ == capacity_; }

 private:
  std::unique_ptr<char[]> data_;
  size_t capacity_;
  size_t begin_ = 0;
  size_t end_ = 0;
};

// Connection management is per hop (RFC 9110 7.6.1): an HTTP/1.1 client's `Connection:
// close` must not close the pooled upstream connection. Upgrade requests keep theirs (the
// upstream must see `Connection: upgrade`), and HTTP/1.0 requests keep their keep-alive
// signalling, since they are forwarded as HTTP/1.0.
std::vector<std::string> hopByHopHeaders(const http::RequestHead& head) {
  if (head.upgrade || head.versionMinor == 0) {
    return {};
  }
  std::vector<std::string> names = {"Connection", "Keep-Alive", "Proxy-Connection", "TE"};
  if (const http::Header* connection = head.find("Connection")) {
    std::string_view rest = connection->value;
    while (!rest.empty()) {
      const size_t comma = rest.find(',');
      std::string_view token = rest.substr(0, comma);
      while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) {
        token.remove_prefix(1);
      }
      while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) {
        token.remove_suffix(1);
      }
      // Never let a client strip what the request's framing or routing depends on; a '*'
      // would read as a prefix to dropHeaders (http::fieldNameMatches).
      if (!token.empty() && token.find('*') == std::string_view::npos &&
          !http::equalsIgnoreCase(token, "Host") &&
          !http::equalsIgnoreCase(token, "Content-Length") &&
          !http::equalsIgnoreCase(token, "Transfer-Encoding")) {
        names.emplace_back(token);
      }
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    }
  }
  return names;
}

// After the session closes a TLS-originated upstream (plain session, `reroute: https://`):
// how long the server gets to answer our close_notify before its connection is cut.
constexpr int64_t kOriginationLingerMs = 5000;

// Bodies at least this large (what remains of them) are spliced instead of copied.
constexpr uint64_t kSpliceThreshold = 64 * 1024;

// The parser has validated Content-Length (one header, plain digits, no Transfer-Encoding).
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

// Why a request ended the way it did, for the audit line and the metrics.
struct Outcome {
  std::string decision = "allow";  // allow | deny | error
  std::string reason;
  std::string rule;
  std::string handler;  // the handler that ran, if one did
  int status = 0;
  std::string detail;
};

// Where a request goes: the addresses of its own host (or of a reroute target) on `port`,
// or a reroute target's unix socket; `key` names the upstream connections it may reuse.
struct UpstreamTarget {
  std::string key;
  std::vector<IpAddress> addrs;
  uint16_t port = 0;
  std::optional<handlers::RerouteTarget> reroute;
};

// The audit rule of a handler's own decision: the action that ended the chain
// ("outboundHandlers.kv[1] reroute"), or the handler when the chain ran out.
std::string handlerRule(const handlers::HostBinding& binding, const handlers::Verdict& verdict) {
  return verdict.rule.empty() ? "handler " + binding.handler : verdict.rule;
}

// Resolves secrets when the daemon gave the sandbox no store: the policy's file and env
// sources still work, API-set values do not exist.
const handlers::SecretStore& policyOnlySecrets() {
  static const handlers::SecretStore store;
  return store;
}

// One client connection: plain HTTP (Stream = tcp::socket) or HTTP inside intercepted TLS
// (Stream = TlsStream, both to the client and to the upstreams).
template <typename Stream>
class HttpSession : public std::enable_shared_from_this<HttpSession<Stream>> {
 public:
  static constexpr bool kTls = std::is_same_v<Stream, TlsStream>;

  // `tlsServerName`: the name the client's TLS session is for (the SNI, or the original
  // destination's address without one); every request's Host must be that name.
  // `clientHello`: what was read off the socket before the session (TLS only).
  HttpSession(Stream client, OrigDst orig, std::shared_ptr<SandboxContext> sandbox,
              const ProxyConfig& config, UpstreamPools* pools, std::string tlsServerName = {},
              std::string clientHello = {})
      : pools_(pools),
        client_(std::move(client)),
        upstream_(client_.get_executor()),
        watchdog_(client_.get_executor()),
        orig_(orig),
        sandbox_(std::move(sandbox)),
        config_(config),
        clientBuf_(config.bufferBytes),
        upstreamBuf_(config.bufferBytes),
        requestParser_(config.limits),
        tlsServerName_(std::move(tlsServerName)),
        clientHello_(std::move(clientHello)) {}

  // Serves requests until the connection ends. Plain only: returns true when the client
  // turned out to speak TLS; the socket and what was read of it are then takeClient()'s
  // and takeReceived()'s.
  asio::awaitable<bool> run();
  Stream takeClient() { return std::move(client_); }
  std::string takeReceived() { return std::string(clientBuf_.readPtr(), clientBuf_.readable()); }

 private:
  void setDeadline(std::chrono::milliseconds fromNow) { watchdog_.setDeadline(fromNow); }

  // --- the request loop
  asio::awaitable<bool> readRequestHead(bool first);
  asio::awaitable<bool> handleRequest();
  handlers::Verdict evaluateHandler(const SandboxPolicyView& view,
                                    const handlers::HostBinding& binding,
                                    const http::RequestHead& head) const;
  asio::awaitable<Result<std::vector<IpAddress>>> resolveRerouteHost(const std::string& host);
  asio::awaitable<Status> connectUpstream(const UpstreamTarget& target);
  asio::awaitable<bool> forwardRequestBody();
  enum class ResponseEnd { kComplete, kCompleteUntilClose, kUpgraded, kFailedBeforeBytes, kFailed };
  asio::awaitable<ResponseEnd> relayResponse(bool upgradeRequested);
  asio::awaitable<bool> spliceToClient(uint64_t length);
  asio::awaitable<bool> sendToClient(char* data, size_t size, bool last);
  asio::awaitable<bool> refuseRequest(Outcome& out, int status, const http::RequestHead& head);
  void finishRequest() {
    requestStart_ = Clock::time_point{};
    headValid_ = false;
    host_.clear();
  }
  asio::awaitable<void> tunnel();
  asio::awaitable<void> relayRaw(Stream& from, Stream& to, ByteWindow& buf, uint64_t& counter);

  asio::awaitable<void> sendLocalResponse(int status, std::string_view body,
                                          const std::vector<http::Header>& headers, bool keepAlive);
  asio::awaitable<void> rejectMalformed(int status, const std::string& reason);
  std::string denyBody(const std::string& host, const Outcome& out) const;
  void audit(const Outcome& out);
  // Back to the pool when it finished a response cleanly; closed otherwise.
  void releaseUpstream() {
    auto* pool = this->pool();
    if (pool != nullptr && upstream_.is_open() && upstreamIdle_ && !upstreamKey_.empty() &&
        upstreamBuf_.readable() == 0) {
      pool->put(sandbox_->id + "|" + upstreamKey_,
                {std::move(upstream_), upstreamConnText_, upstreamAddr_, {}});
      upstream_ = Stream(client_.get_executor());
      upstreamKey_.clear();
      upstreamIdle_ = false;
      responseParser_.reset();
      return;
    }
    closeUpstream();
  }
  void closeUpstream() {
    upstreamIdle_ = false;
    closeStream(upstream_);
    upstreamKey_.clear();
    upstreamBuf_.consume(upstreamBuf_.readable());
    responseParser_.reset();
  }

  BasicUpstreamPool<Stream>* pool() {
    if (pools_ == nullptr) {
      return nullptr;
    }
    if constexpr (kTls) {
      return &pools_->tls;
    } else {
      return &pools_->plain;
    }
  }

  UpstreamPools* pools_;
  Stream client_;
  Stream upstream_;
  bool upstreamIdle_ = false;  // between responses: may go back to the pool
  IpAddress upstreamAddr_;
  std::string upstreamKey_;       // "host|port" the open upstream connection serves
  std::string upstreamText_;      // the request's upstream, for its audit line
  std::string upstreamConnText_;  // what the open upstream connection goes to
  Watchdog watchdog_;

  OrigDst orig_;
  std::shared_ptr<SandboxContext> sandbox_;
  const ProxyConfig& config_;
  ByteWindow clientBuf_;
  ByteWindow upstreamBuf_;
  http::RequestParser requestParser_;
  http::ResponseParser responseParser_;

  // The request in flight.
  Clock::time_point requestStart_;
  std::string host_;
  uint64_t bytesIn_ = 0;
  uint64_t bytesOut_ = 0;
  bool clientKeepAlive_ = true;
  bool responseStarted_ = false;
  bool headEndsMessage_ = false;
  bool headValid_ = false;  // head() describes the request in flight
  bool responseKeepAlive_ = false;
  // For splice: created on the first large body, kept for the connection's life.
  std::optional<SplicePipe> pipe_;
  int responseStatus_ = 0;
  const std::string tlsServerName_;
  std::string clientHello_;
  bool tlsDetected_ = false;
  // Of the request in flight: the Upgrade protocols the policy allows (its view outlives
  // the request), and the injected secrets to hide in the response.
  const std::vector<std::string>* upgradeAllow_ = nullptr;
  SecretRedactor redactor_;
};

template <typename Stream>
asio::awaitable<bool> HttpSession<Stream>::run() {
  auto self = this->shared_from_this();
  sandbox_->openConnections.fetch_add(1, std::memory_order_relaxed);
  setDeadline(config_.headerTimeout);
  watchdog_.start(self, [this] {
    cancelStream(client_);
    cancelStream(upstream_);
  });

  bool serve = true;
  if constexpr (kTls) {
    // The handshake runs under the head timeout: a client that stalls in it is cut off.
    const std::error_code ec = co_await client_.handshake(clientHello_);
    clientHello_.clear();
    clientHello_.shrink_to_fit();
    if (ec) {
      Outcome out;
      out.decision = "deny";
      out.reason = "tls_handshake_failed";
      out.detail = watchdog_.timedOut ? std::string("TLS handshake not completed in time")
                   : client_.failureText().empty() ? ec.message()
                                                   : client_.failureText();
      audit(out);
      serve = false;
    }
  } else {
    prepareSocket(client_);
    if (sandbox_->connectionsAccepted != nullptr) {
      sandbox_->connectionsAccepted->inc();
    }
  }

  bool first = true;
  while (serve && co_await readRequestHead(first)) {
    first = false;
    if (!co_await handleRequest()) {
      break;
    }
  }

  watchdog_.stop();
  releaseUpstream();
  sandbox_->openConnections.fetch_sub(1, std::memory_order_relaxed);
  if (tlsDetected_) {
    co_return true;  // the caller goes on with the socket
  }
  shutdownSend(client_);
  closeStream(client_);
  co_return false;
}

// Reads until the parser has a whole request head. False: the connection is done (closed,
// timed out, or a malformed head answered with a 4xx).
template <typename Stream>
asio::awaitable<bool> HttpSession<Stream>::readRequestHead(bool first) {
  bool sawByte = clientBuf_.readable() > 0;
  bool headTimerSet = false;
  if (!first) {
    setDeadline(config_.idleTimeout);
  }
  for (;;) {
    if (clientBuf_.readable() > 0) {
      if constexpr (!kTls) {
        if (first && !sawByte &&
            static_cast<unsigned char>(*clientBuf_.readPtr()) == kTlsHandshake) {
          tlsDetected_ = true;
          co_return false;
        }
      }
      if (requestStart_ == Clock::time_point{}) {
        requestStart_ = Clock::now();
      }
      sawByte = true;
      auto step = requestParser_.feed(clientBuf_.readPtr(), clientBuf_.readable());
      clientBuf_.consume(step.consumed);
      // The head timer starts only once a head turns out to be partial: a head that came
      // whole (nearly always) costs no timer change.
      if (step.kind == http::RequestParser::Step::Kind::kNeedMore && !headTimerSet) {
        headTimerSet = true;
        const auto headDeadline = requestStart_ + config_.headerTimeout;
        watchdog_.tighten(headDeadline);
      }
      switch (step.kind) {
        case http::RequestParser::Step::Kind::kHead:
          headEndsMessage_ = step.endsMessage;
          headValid_ = true;
          co_return true;
        case http::RequestParser::Step::Kind::kError:
          co_await rejectMalformed(step.status, step.reason);
          co_return false;
        case http::RequestParser::Step::Kind::kNeedMore:
          break;
        default:  // body steps cannot come before a head
          co_await rejectMalformed(400, "unexpected request framing");
          co_return false;
      }
    }
    auto [ec, n] = co_await readSome(client_, clientBuf_.writable());
    if (ec || n == 0) {
      if (watchdog_.timedOut && sawByte) {
        co_await rejectMalformed(408, "request head not received in time");
      }
      co_return false;  // closed between requests (or idle timeout): nothing to say
    }
    clientBuf_.commit(n);
  }
}

template <typename Stream>
asio::awaitable<void> HttpSession<Stream>::sendLocalResponse(
    int status, std::string_view body, const std::vector<http::Header>& headers, bool keepAlive) {
  std::string response = http::buildResponse(status, body, headers, keepAlive);
  setDeadline(config_.ioTimeout);
  co_await writeAll(client_, asio::buffer(response));
  bytesOut_ += response.size();
  responseStatus_ = status;
}

template <typename Stream>
asio::awaitable<void> HttpSession<Stream>::rejectMalformed(int status, const std::string& reason) {
  Outcome out;
  out.decision = "deny";
  out.reason = "bad_request";
  out.status = status;
  out.detail = reason;
  watchdog_.timedOut = false;
  co_await sendLocalResponse(status, "egressd: " + reason + "\n", reasonHeaders("bad_request"),
                             false);
  audit(out);
}

template <typename Stream>
std::string HttpSession<Stream>::denyBody(const std::string& host, const Outcome& out) const {
  std::string body = "egressd: request to " + (host.empty() ? std::string("?") : host) +
                     " denied for sandbox " + sandbox_->id;
  body +=
      out.rule.empty() ? " (" + out.reason + ")" : " by rule " + out.rule + " (" + out.reason + ")";
  if (!out.detail.empty()) {
    body += ": " + out.detail;
  }
  body += "\n";
  return body;
}

template <typename Stream>
void HttpSession<Stream>::audit(const Outcome& out) {
  const auto duration = std::chrono::duration_cast<std::chrono::microseconds>(
      Clock::now() - (requestStart_ == Clock::time_point{} ? Clock::now() : requestStart_));
  if (config_.metrics != nullptr) {
    sandbox_->decisionCounter(*config_.metrics, out.decision, out.reason).inc();
    if (sandbox_->requestDuration != nullptr) {
      sandbox_->requestDuration->observe(std::chrono::duration<double>(duration).count());
    }
  }
  if (config_.audit == nullptr) {
    return;
  }
  // After a malformed head the parser's head() may still show the previous request.
  const http::RequestHead* head = headValid_ ? &requestParser_.head() : nullptr;
  audit::AuditRecord r;
  r.sandbox = sandbox_->id;
  r.layer = "proxy";
  r.protocol = kTls ? "https" : "http";
  r.origDst = orig_.toString();
  r.upstream = upstreamText_;
  r.host = host_;
  if (head != nullptr && !head->method.empty()) {
    r.method = head->method;
    r.path = audit::pathForAudit(head->path);
    if (head->upgrade && out.status == 101) {
      r.protocol = "websocket";
    }
  }
  r.decision = out.decision;
  r.reason = out.reason;
  r.rule = out.rule;
  r.handler = out.handler;
  r.status = out.status != 0 ? out.status : responseStatus_;
  r.bytesIn = bytesIn_;
  r.bytesOut = bytesOut_;
  r.duration = duration;
  r.detail = out.detail;
  config_.audit->write(r);
}

// The head is in requestParser_.head(). Returns whether the connection stays open for
// another request.
template <typename Stream>
asio::awaitable<bool> HttpSession<Stream>::handleRequest() {
  const http::RequestHead& head = requestParser_.head();
  if (requestStart_ == Clock::time_point{}) {
    requestStart_ = Clock::now();
  }
  bytesIn_ = 0;
  bytesOut_ = 0;
  responseStatus_ = 0;
  responseStarted_ = false;
  upstreamText_.clear();
  host_.clear();
  clientKeepAlive_ = head.keepAlive;
  redactor_.reset({});

  Outcome out;
  // h2c would switch the connection to a protocol the proxy cannot judge per request.
  if (head.upgrade && !head.upgradeProtocol.empty()) {
    std::string proto = head.upgradeProtocol;
    for (char& c : proto) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (proto.find("h2c") != std::string::npos) {
      co_await rejectMalformed(400, "Upgrade: h2c is not supported (HTTP/2 over cleartext)");
      co_return false;
    }
  }

  auto host = policy::normalizeHost(head.authority.empty() ? head.host : head.authority);
  if (!host.ok()) {
    co_await rejectMalformed(400, "bad Host: " + host.error().message());
    co_return false;
  }
  host_ = host->name;
  if constexpr (kTls) {
    // The TLS session was set up (and judged) for one name: a request for another host
    // inside it would be domain fronting through an allowed name.
    if (host_ != tlsServerName_) {
      out.decision = "deny";
      out.reason = "host_sni_mismatch";
      out.status = 421;
      out.detail = "Host " + host_ + " does not match the TLS server name " + tlsServerName_;
      const bool keepAlive = clientKeepAlive_ && headEndsMessage_ && !head.upgrade;
      co_await sendLocalResponse(421, "egressd: " + out.detail + "\n", reasonHeaders(out.reason),
                                 keepAlive);
      audit(out);
      finishRequest();
      co_return keepAlive;
    }
  }
  const auto view = sandbox_->currentPolicy();
  upgradeAllow_ = &view->http.allowUpgrades;
  // Requests egressd answers itself, whatever their host (docs/security.md "Requests").
  if (isTraceMethod(head.method) && !view->http.allowTrace) {
    out.decision = "deny";
    out.reason = "method_refused";
    out.detail = head.method +
                 " echoes the request, injected credentials included, back to the client; "
                 "refused (policy http.allowTrace)";
    co_return co_await refuseRequest(out, 405, head);
  }
  // Any Upgrade header (with or without "Connection: upgrade", in every list element and
  // every repeat of the header): after a 101 the connection is a tunnel nobody judges.
  if (auto refused = firstUnlisted(upgradeProtocols(head.headers), view->http.allowUpgrades)) {
    out.decision = "deny";
    out.reason = "upgrade_refused";
    out.detail = "Upgrade to " + *refused +
                 " is not allowed (policy http.allowUpgrades); the connection would become a "
                 "tunnel egressd does not judge";
    co_return co_await refuseRequest(out, 403, head);
  }
  const uint16_t port = orig_.port;
  policy::HostDecision decision = view->hosts.decide(*host, port);
  // Handlers run after the host policy (docs/design.md precedence 1-2): a host it denies for a
  // reason of its own never reaches one (handlerMayApply).
  const handlers::HostBinding* binding =
      handlerMayApply(decision) ? view->handlers.pick(host_) : nullptr;

  // Where the request goes and what it carries upstream.
  UpstreamTarget target;
  target.port = port;
  target.key = host_ + "|" + std::to_string(port);
  std::vector<http::Header> setHeaders;
  std::vector<std::string> dropHeaders = hopByHopHeaders(head);
  // Trust headers a sandbox must not be able to write (docs/security.md "Requests"), and an
  // Upgrade that is not one (no "Connection: upgrade", or HTTP/1.0).
  dropHeaders.insert(dropHeaders.end(), alwaysStrippedHeaders().begin(),
                     alwaysStrippedHeaders().end());
  dropHeaders.insert(dropHeaders.end(), forwardedHeaders().begin(), forwardedHeaders().end());
  if (!head.upgrade) {
    dropHeaders.emplace_back("Upgrade");
  }
  std::string secretNeedsTls;

  if (binding != nullptr) {
    out.handler = binding->handler;
    // Evaluated per request, never cached: a keep-alive connection's next request (say a
    // redirect the client follows to another host) gets the verdict for its own host.
    handlers::Verdict verdict = evaluateHandler(*view, *binding, head);
    switch (verdict.kind) {
      case handlers::Verdict::Kind::kDeny: {
        out.decision = "deny";
        out.reason = "handler_deny";
        out.rule = handlerRule(*binding, verdict);
        out.status = verdict.status;
        const bool keepAlive = clientKeepAlive_ && headEndsMessage_ && !head.upgrade;
        std::vector<http::Header> headers = reasonHeaders(out.reason);
        headers.push_back(http::Header{"X-Egressd-Handler", binding->handler});
        co_await sendLocalResponse(out.status, verdict.body, headers, keepAlive);
        audit(out);
        finishRequest();
        co_return keepAlive;
      }
      case handlers::Verdict::Kind::kRespond: {
        // A virtual host: egressd is the server, the upstream is never contacted.
        out.decision = "allow";
        out.reason = "handler_respond";
        out.rule = handlerRule(*binding, verdict);
        out.status = verdict.status;
        const bool keepAlive = clientKeepAlive_ && headEndsMessage_ && !head.upgrade;
        co_await sendLocalResponse(out.status, verdict.body, verdict.responseHeaders, keepAlive);
        audit(out);
        finishRequest();
        co_return keepAlive;
      }
      case handlers::Verdict::Kind::kError: {
        out.decision = "error";
        out.reason = "handler_error";
        out.rule = handlerRule(*binding, verdict);
        out.status = 502;
        out.detail = "handler " + binding->handler + ": " + verdict.error;
        // The detail (which secret file or variable failed) is for the operator's log only;
        // neither it nor the client's text ever holds a secret value.
        spdlog::warn("sandbox {}: {}{}", sandbox_->id, out.detail,
                     verdict.errorDetail.empty() ? "" : " (" + verdict.errorDetail + ")");
        std::vector<http::Header> headers = reasonHeaders(out.reason);
        headers.push_back(http::Header{"X-Egressd-Handler", binding->handler});
        co_await sendLocalResponse(out.status, "egressd: " + out.detail + "\n", headers, false);
        audit(out);
        co_return false;
      }
      case handlers::Verdict::Kind::kReroute:
        // Operator-configured: the target is not judged by the host policy (it may well be
        // a loopback or unix-socket service the sandbox itself could never reach).
        out.decision = "allow";
        out.reason = "handler_reroute";
        out.rule = handlerRule(*binding, verdict);
        target.reroute = verdict.reroute;
        break;
      case handlers::Verdict::Kind::kForward:
        if (!decision.allowed()) {
          decision = handlerDecision(*host, binding->handler);
        }
        break;
    }
    setHeaders = std::move(verdict.setHeaders);
    dropHeaders.insert(dropHeaders.end(), verdict.removeHeaders.begin(),
                       verdict.removeHeaders.end());
    redactor_.reset(std::move(verdict.secretValues));
    secretNeedsTls = std::move(verdict.secretNeedsTls);
  }
  if (view->http.forwarded == policy::ForwardedMode::kSandbox) {
    // egressd's own values, unless the handler set that header itself.
    for (http::Header& h : sandboxForwardedHeaders(sandbox_->id)) {
      const bool handlerSet = std::any_of(setHeaders.begin(), setHeaders.end(), [&](const auto& s) {
        return http::fieldNameMatches(s.name, h.name);
      });
      if (!handlerSet) {
        setHeaders.push_back(std::move(h));
      }
    }
  }

  // An injected secret never crosses the network in cleartext unless its setHeader says
  // allowPlaintext: the request's own upstream is cleartext in a plain session, a reroute's
  // when it is http:// (a unix socket never leaves the host).
  if (!secretNeedsTls.empty()) {
    const bool cleartext =
        target.reroute ? target.reroute->kind == handlers::RerouteTarget::Kind::kTcp : !kTls;
    if (cleartext) {
      setHeaders.clear();
      out.decision = "deny";
      out.reason = "secret_over_plaintext";
      out.detail = "handler " + out.handler + " would send a secret in " + secretNeedsTls + " to " +
                   (target.reroute ? target.reroute->text() : host_) +
                   " over cleartext HTTP; use https (or reroute to https://), or set "
                   "allowPlaintext: true on that setHeader";
      co_return co_await refuseRequest(out, 403, head);
    }
  }

  if (target.reroute) {
    const handlers::RerouteTarget& r = *target.reroute;
    target.port = r.port;
    switch (r.kind) {
      case handlers::RerouteTarget::Kind::kTcp:
        target.key = "reroute|tcp|" + r.host + "|" + std::to_string(r.port);
        break;
      case handlers::RerouteTarget::Kind::kTls:
        target.key = "reroute|tls|" + r.host + "|" + std::to_string(r.port);
        break;
      case handlers::RerouteTarget::Kind::kUnix:
        target.key = "reroute|unix|" + r.path;
        break;
    }
    if (r.kind != handlers::RerouteTarget::Kind::kUnix) {
      auto resolved = co_await resolveRerouteHost(r.host);
      if (!resolved.ok()) {
        out.decision = "error";
        out.reason = "resolve_failed";
        out.status = 502;
        out.detail = "reroute to " + r.text() + ": " + resolved.error().message();
        upstreamText_ = r.text();
        co_await sendLocalResponse(out.status, "egressd: " + out.detail + "\n",
                                   reasonHeaders(out.reason), false);
        audit(out);
        co_return false;
      }
      target.addrs = std::move(*resolved);
    }
  } else {
    UpstreamChoice choice = co_await resolveUpstream(*view, *sandbox_->resolver, *host, port,
                                                     decision, &sandbox_->resolved);
    out.decision = choice.decision;
    out.reason = std::move(choice.reason);
    out.rule = std::move(choice.rule);
    out.detail = std::move(choice.detail);
    if (out.decision == "deny") {
      out.status = view->denyStatus;
      const bool keepAlive = clientKeepAlive_ && headEndsMessage_ && !head.upgrade;
      co_await sendLocalResponse(out.status, denyBody(host_, out),
                                 reasonHeaders(out.reason, &out.rule), keepAlive);
      audit(out);
      finishRequest();
      co_return keepAlive;
    }
    if (out.decision == "error") {
      out.status = 502;
      co_await sendLocalResponse(out.status, "egressd: " + out.detail + "\n",
                                 reasonHeaders(out.reason), false);
      audit(out);
      co_return false;
    }
    target.addrs = std::move(choice.addrs);
  }

  // Reuse the open upstream connection when it serves this host and port (or this reroute
  // target: the keys differ, so a rerouted connection never carries a plain forward).
  const std::string& key = target.key;
  // An open connection is reused only while its address is still one this request may
  // go to (a policy change or a new DNS answer may have taken it away). A reroute target
  // is the operator's: no address check.
  const std::vector<IpAddress>& addrs = target.addrs;
  const bool rerouted = target.reroute.has_value();
  auto stillAllowed = [&addrs, rerouted](const IpAddress& a) {
    return rerouted || std::find(addrs.begin(), addrs.end(), a) != addrs.end();
  };
  bool reused = upstream_.is_open() && key == upstreamKey_ && stillAllowed(upstreamAddr_);
  if (reused) {
    upstreamText_ = upstreamConnText_;
  } else {
    releaseUpstream();
    if (auto* pool = this->pool()) {
      while (auto pooled = pool->take(sandbox_->id + "|" + key)) {
        if (!stillAllowed(pooled->addr)) {
          closeStream(pooled->socket);
          continue;
        }
        upstream_ = std::move(pooled->socket);
        upstreamText_ = pooled->endpointText;
        upstreamConnText_ = std::move(pooled->endpointText);
        upstreamAddr_ = pooled->addr;
        upstreamKey_ = key;
        reused = true;
        break;
      }
    }
  }
  if (!reused) {
    auto connected = co_await connectUpstream(target);
    if (!connected.ok()) {
      out.decision = "error";
      out.status = watchdog_.timedOut ? 504 : 502;
      out.reason = watchdog_.timedOut                   ? "upstream_timeout"
                   : connected.error().code() == EPROTO ? "upstream_tls_failed"
                                                        : "upstream_unreachable";
      out.detail = connected.error().message();
      watchdog_.timedOut = false;
      co_await sendLocalResponse(out.status, "egressd: " + out.detail + "\n",
                                 reasonHeaders(out.reason), false);
      audit(out);
      co_return false;
    }
    upstreamKey_ = key;
  }
  if (head.upgrade) {
    // Whatever the upstream answers, this connection is not reused for another client.
    upstreamKey_.clear();
  }

  upstreamIdle_ = false;
  // The handler's header edits (setHeaders may hold secrets: they go to the upstream only,
  // never into a log line or an answer of egressd's).
  const std::string upstreamHead = http::serializeRequestHead(head, setHeaders, dropHeaders);
  setHeaders.clear();
  const bool hasBody = !headEndsMessage_;
  const bool upgrade = head.upgrade;
  for (int attempt = 0;; ++attempt) {
    setDeadline(config_.ioTimeout);
    auto [wec, wn] = co_await writeAll(upstream_, asio::buffer(upstreamHead));
    ResponseEnd end;
    if (wec) {
      end = ResponseEnd::kFailedBeforeBytes;
    } else if (hasBody) {
      // Both at once: the upstream may answer 100 Continue (or an early error) before
      // the body, and the client may wait for that 100 before sending it.
      auto [bodyOk, respEnd] = co_await (forwardRequestBody() && relayResponse(upgrade));
      end = bodyOk ? respEnd : ResponseEnd::kFailed;
    } else {
      end = co_await relayResponse(upgrade);
    }
    // A kept-alive upstream connection may have been closed by the server meanwhile: retry
    // a bodiless request once on a fresh connection.
    if (end == ResponseEnd::kFailedBeforeBytes && reused && !hasBody && attempt == 0 &&
        !watchdog_.timedOut) {
      closeUpstream();
      auto connected = co_await connectUpstream(target);
      if (connected.ok()) {
        upstreamKey_ = key;
        reused = false;
        continue;
      }
    }
    if (redactor_.redactions() > 0) {
      out.detail += (out.detail.empty() ? "" : "; ") + std::string("redacted ") +
                    std::to_string(redactor_.redactions()) +
                    " injected secret value(s) in the response";
    }
    switch (end) {
      case ResponseEnd::kComplete:
        out.status = responseStatus_;
        if (upgrade) {
          requestParser_.refuseUpgrade();  // the upstream did not switch protocols
        }
        audit(out);
        finishRequest();
        if (!responseKeepAlive_) {
          closeUpstream();
        } else {
          upstreamIdle_ = !upgrade;
        }
        co_return clientKeepAlive_&& responseKeepAlive_;
      case ResponseEnd::kCompleteUntilClose:
        out.status = responseStatus_;
        audit(out);
        closeUpstream();
        co_return false;
      case ResponseEnd::kUpgraded:
        out.status = 101;
        out.detail = "upgraded to " + head.upgradeProtocol +
                     (out.detail.empty() ? std::string() : "; " + out.detail);
        audit(out);
        co_await tunnel();
        co_return false;
      case ResponseEnd::kFailedBeforeBytes: {
        out.decision = "error";
        out.status = watchdog_.timedOut ? 504 : 502;
        out.reason = watchdog_.timedOut ? "upstream_timeout" : "upstream_failed";
        out.detail = watchdog_.timedOut
                         ? "no response from " + upstreamText_ + " in time"
                         : "the upstream " + upstreamText_ + " closed without a response";
        watchdog_.timedOut = false;
        co_await sendLocalResponse(out.status, "egressd: " + out.detail + "\n",
                                   reasonHeaders(out.reason), false);
        audit(out);
        co_return false;
      }
      case ResponseEnd::kFailed:
        out.decision = "error";
        out.reason = watchdog_.timedOut ? "timeout" : "relay_failed";
        out.status = responseStatus_;
        out.detail = "connection aborted mid-response";
        audit(out);
        co_return false;
    }
  }
}

template <typename Stream>
handlers::Verdict HttpSession<Stream>::evaluateHandler(const SandboxPolicyView& view,
                                                       const handlers::HostBinding& binding,
                                                       const http::RequestHead& head) const {
  if (!view.handlers.set || !view.handlers.set->contains(binding.handler)) {
    handlers::Verdict v;
    v.kind = handlers::Verdict::Kind::kError;
    v.status = 502;
    v.error = "not defined in policy " + view.policyName;
    return v;
  }
  const handlers::SecretStore& store =
      sandbox_->secrets != nullptr ? *sandbox_->secrets : policyOnlySecrets();
  const auto& sources = view.secretSources;
  const std::string& id = sandbox_->id;
  const handlers::SecretResolver resolver = [&store, &sources, &id](std::string_view name) {
    return store.get(name, id, sources);
  };
  return view.handlers.set->evaluate(binding.handler, binding.params, head, id, resolver);
}

template <typename Stream>
asio::awaitable<Result<std::vector<IpAddress>>> HttpSession<Stream>::resolveRerouteHost(
    const std::string& host) {
  if (auto ip = IpAddress::parse(host)) {
    co_return std::vector<IpAddress>{*ip};
  }
  co_return co_await sandbox_->resolver->resolve(host);
}

// Connects upstream_ to `target`: the request's own host (TLS for it in an intercepted
// session) or a handler's reroute target (TLS only for `https://`, whichever kind the
// session is; a plain session gets it through originateTls()). Errors with code EPROTO are
// TLS failures.
template <typename Stream>
asio::awaitable<Status> HttpSession<Stream>::connectUpstream(const UpstreamTarget& target) {
  using Kind = handlers::RerouteTarget::Kind;
  const auto started = Clock::now();
  setDeadline(config_.connectTimeout);
  const handlers::RerouteTarget* reroute = target.reroute ? &*target.reroute : nullptr;
  const bool wantTls = reroute != nullptr ? reroute->kind == Kind::kTls : kTls;
  const std::string& tlsName = reroute != nullptr ? reroute->host : host_;
  const std::string what = reroute != nullptr ? reroute->text() : host_;

  // A fresh stream: one that carried TLS before must not keep its SSL for a plain upstream.
  closeStream(upstream_);
  upstream_ = Stream(client_.get_executor());

  if (reroute != nullptr && reroute->kind == Kind::kUnix) {
    auto socket =
        co_await connectUnix(client_.get_executor(), reroute->path, config_.connectTimeout);
    upstreamText_ = reroute->text();
    upstreamAddr_ = IpAddress{};
    if (!socket.ok()) {
      co_return std::move(socket).error();
    }
    upstream_ = Stream(std::move(*socket));
    prepareSocket(lowestLayer(upstream_));
  } else {
    tcp::socket& socket = lowestLayer(upstream_);
    const ConnectOutcome connected =
        co_await connectFirst(socket, target.addrs, target.port, watchdog_.timedOut);
    upstreamText_ = reroute != nullptr ? reroute->text() : connected.endpointText;
    upstreamAddr_ = connected.addr;
    if (!connected.connected) {
      co_return Error(ECONNREFUSED, "cannot connect to " + what + " (" + connected.errors + ")");
    }
    prepareSocket(socket);
    if (wantTls) {
      // Verified against the system store plus --upstream-ca-file, for this very name:
      // a failure is the client's 502, never a plaintext or unverified fallback.
      if constexpr (kTls) {
        tls::SslPtr ssl(SSL_new(config_.upstreamTls));
        Status prepared = ssl ? tls::prepareUpstreamSsl(ssl.get(), tlsName)
                              : Status(Error(ENOMEM, "SSL_new: " + tls::drainOpenSslErrors()));
        if (!prepared.ok()) {
          closeStream(upstream_);
          co_return Error(EPROTO, "TLS to " + what + " (" + connected.endpointText +
                                      ") failed: " + prepared.error().message());
        }
        upstream_.attach(std::move(ssl), TlsStream::Role::kClient);
        const std::error_code hec = co_await upstream_.handshake();
        if (hec) {
          std::string why = watchdog_.timedOut ? std::string("handshake timed out")
                                               : tls::upstreamFailureText(upstream_.ssl());
          if (why.empty()) {
            why = upstream_.failureText().empty() ? hec.message() : upstream_.failureText();
          }
          closeStream(upstream_);
          co_return Error(EPROTO,
                          "TLS to " + what + " (" + connected.endpointText + ") failed: " + why);
        }
      } else {
        // The linger bounds how long a server that ignores our close_notify keeps the
        // pump (and its connection) alive after the session let go of it.
        auto originated = co_await originateTls(
            std::move(upstream_), config_.upstreamTls, tlsName, config_.connectTimeout,
            std::min(config_.ioTimeout, std::chrono::milliseconds(kOriginationLingerMs)));
        upstream_ = tcp::socket(client_.get_executor());
        if (!originated.ok()) {
          co_return Error(EPROTO, "TLS to " + what + " (" + connected.endpointText +
                                      ") failed: " + originated.error().message());
        }
        upstream_ = std::move(*originated);
        prepareSocket(upstream_);
      }
    }
  }
  upstreamConnText_ = upstreamText_;
  if (sandbox_->upstreamConnect != nullptr) {
    sandbox_->upstreamConnect->observe(
        std::chrono::duration<double>(Clock::now() - started).count());
  }
  co_return okStatus();
}

// Streams the request body (raw, as framed by the client: the parser validated it) to the
// upstream. False: the client or the upstream failed mid-body.
template <typename Stream>
asio::awaitable<bool> HttpSession<Stream>::forwardRequestBody() {
  for (;;) {
    if (clientBuf_.readable() > 0) {
      auto step = requestParser_.feed(clientBuf_.readPtr(), clientBuf_.readable());
      if (step.kind == http::RequestParser::Step::Kind::kError) {
        co_return false;
      }
      if (step.consumed > 0) {
        auto [ec, n] =
            co_await writeAll(upstream_, asio::buffer(clientBuf_.readPtr(), step.consumed));
        if (ec) {
          co_return false;
        }
        bytesIn_ += step.consumed;
        if (sandbox_->bytesFromSandbox != nullptr) {
          sandbox_->bytesFromSandbox->inc(step.consumed);
        }
        clientBuf_.consume(step.consumed);
      }
      if (step.kind == http::RequestParser::Step::Kind::kMessageEnd) {
        co_return true;
      }
    }
    setDeadline(config_.ioTimeout);
    auto [ec, n] = co_await readSome(client_, clientBuf_.writable());
    if (ec || n == 0) {
      co_return false;
    }
    clientBuf_.commit(n);
  }
}

// Relays the upstream's response(s) to this request: informational 1xx heads, then the
// final response, byte for byte as the upstream framed them.
template <typename Stream>
asio::awaitable<typename HttpSession<Stream>::ResponseEnd> HttpSession<Stream>::relayResponse(
    bool upgradeRequested) {
  responseParser_.expectResponseTo(requestParser_.head().method);
  bool anyByte = false;
  // Of the final response: its Content-Length and the body bytes relayed so far.
  std::optional<uint64_t> contentLength;
  uint64_t bodyRelayed = 0;
  for (;;) {
    if (upstreamBuf_.readable() == 0) {
      setDeadline(config_.ioTimeout);
      // Asio reads speculatively only when the last read did not drain the socket, so
      // waiting for a response costs no EAGAIN read.
      auto [ec, n] = co_await readSome(upstream_, upstreamBuf_.writable());
      if (ec || n == 0) {
        if (!ec && anyByte && responseParser_.finishAtEof()) {
          if (!co_await sendToClient(nullptr, 0, true)) {
            co_return ResponseEnd::kFailed;
          }
          co_return ResponseEnd::kCompleteUntilClose;
        }
        co_return anyByte ? ResponseEnd::kFailed : ResponseEnd::kFailedBeforeBytes;
      }
      upstreamBuf_.commit(n);
      anyByte = true;
    }
    // Parse all that is buffered, then write it out in one go.
    size_t forward = 0;
    bool ended = false;
    bool upgraded = false;
    size_t announceCloseAt = 0;  // != 0: insert "Connection: close" there (before the blank line)
    while (forward < upstreamBuf_.readable() && !ended) {
      auto step =
          responseParser_.feed(upstreamBuf_.readPtr() + forward, upstreamBuf_.readable() - forward);
      if (step.kind == http::RequestParser::Step::Kind::kError) {
        co_return responseStarted_ || forward > 0 ? ResponseEnd::kFailed
                                                  : ResponseEnd::kFailedBeforeBytes;
      }
      forward += step.consumed;
      if (step.kind == http::RequestParser::Step::Kind::kHead) {
        responseStatus_ = responseParser_.head().status;
        // The client asked to close (its Connection header stayed on this hop) but the
        // upstream keeps the connection: tell the client the connection ends here.
        if (!clientKeepAlive_ && responseParser_.head().keepAlive &&
            !responseParser_.head().informational() && responseStatus_ != 101 &&
            step.consumed >= 2) {
          announceCloseAt = forward - 2;
        }
        if (responseStatus_ == 101) {
          if (!upgradeRequested) {
            co_return ResponseEnd::kFailed;  // a 101 nobody asked for
          }
          // The protocol the upstream switched to must be one the policy allows too.
          const auto chosen = upgradeProtocols(responseParser_.head().headers);
          if (chosen.empty() || upgradeAllow_ == nullptr || firstUnlisted(chosen, *upgradeAllow_)) {
            co_return ResponseEnd::kFailed;
          }
          upgraded = true;
          ended = true;
        } else if (step.endsMessage) {
          ended = !responseParser_.head().informational();
        } else if (!responseParser_.head().informational()) {
          contentLength = contentLengthOf(responseParser_.head());
          bodyRelayed = 0;
        }
      } else if (step.kind == http::RequestParser::Step::Kind::kBody) {
        bodyRelayed += step.consumed;
      } else if (step.kind == http::RequestParser::Step::Kind::kMessageEnd) {
        ended = !responseParser_.head().informational();
      } else if (step.kind == http::RequestParser::Step::Kind::kNeedMore && step.consumed == 0) {
        break;
      }
    }
    if (announceCloseAt != 0) {
      std::string head(upstreamBuf_.readPtr(), announceCloseAt);
      head += "Connection: close\r\n";
      head.append(upstreamBuf_.readPtr() + announceCloseAt, forward - announceCloseAt);
      if (!co_await sendToClient(head.data(), head.size(), ended)) {
        co_return ResponseEnd::kFailed;
      }
      responseStarted_ = true;
      upstreamBuf_.consume(forward);
      forward = 0;
    }
    if (forward > 0) {
      responseStarted_ = true;
      if (!co_await sendToClient(upstreamBuf_.mutableReadPtr(), forward, ended)) {
        co_return ResponseEnd::kFailed;
      }
      upstreamBuf_.consume(forward);
    }
    if (upgraded) {
      co_return ResponseEnd::kUpgraded;
    }
    // A large Content-Length body: the rest moves socket to socket in the kernel (splice),
    // never through the buffer. The parser, which then has not seen the body's end, starts
    // over for the next response.
    if constexpr (!kTls) {
      if (!ended && contentLength && upstreamBuf_.readable() == 0 && !redactor_.scanning() &&
          *contentLength - bodyRelayed >= kSpliceThreshold) {
        const bool keepAlive = responseParser_.head().keepAlive;
        if (!co_await spliceToClient(*contentLength - bodyRelayed)) {
          co_return ResponseEnd::kFailed;
        }
        responseParser_.reset();
        responseKeepAlive_ = keepAlive;
        co_return ResponseEnd::kComplete;
      }
    }
    if (ended) {
      responseKeepAlive_ = responseParser_.head().keepAlive;
      if (upstreamBuf_.readable() > 0) {
        // Bytes after the end of the response: the upstream is out of step; do not reuse it.
        responseKeepAlive_ = false;
      }
      co_return ResponseEnd::kComplete;
    }
    if (upstreamBuf_.readable() > 0 && upstreamBuf_.full()) {
      co_return ResponseEnd::kFailed;  // a head larger than the buffer the parser refused
    }
    if (upstreamBuf_.readable() > 0) {
      // The parser wants more before it can consume the rest (a partial head line).
      setDeadline(config_.ioTimeout);
      auto [ec, n] = co_await readSome(upstream_, upstreamBuf_.writable());
      if (ec || n == 0) {
        co_return ResponseEnd::kFailed;
      }
      upstreamBuf_.commit(n);
    }
  }
}

// Response bytes to the client, through the redactor while it scans (the request carried
// injected secrets); `last`: the response ends with these bytes, so nothing is kept back.
// `data` is the session's own buffer: the redactor masks it in place.
template <typename Stream>
asio::awaitable<bool> HttpSession<Stream>::sendToClient(char* data, size_t size, bool last) {
  std::string_view bytes(data, size);
  std::string joined;
  if (redactor_.scanning() || redactor_.holding()) {
    bytes = redactor_.pushInPlace(data, size);
    if (last && redactor_.holding()) {
      joined.assign(bytes);
      joined.append(redactor_.flush());
      bytes = joined;
    }
  }
  if (bytes.empty()) {
    co_return true;
  }
  auto [ec, n] = co_await writeAll(client_, asio::buffer(bytes.data(), bytes.size()));
  if (ec) {
    co_return false;
  }
  bytesOut_ += bytes.size();
  if (sandbox_->bytesToSandbox != nullptr) {
    sandbox_->bytesToSandbox->inc(bytes.size());
  }
  co_return true;
}

// A request egressd answers itself with `status` (out has decision, reason and detail).
template <typename Stream>
asio::awaitable<bool> HttpSession<Stream>::refuseRequest(Outcome& out, int status,
                                                         const http::RequestHead& head) {
  out.status = status;
  const bool keepAlive = clientKeepAlive_ && headEndsMessage_ && !head.upgrade;
  std::vector<http::Header> headers = reasonHeaders(out.reason);
  if (status == 405) {
    headers.push_back(http::Header{"Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"});
  }
  co_await sendLocalResponse(status, "egressd: " + out.detail + "\n", headers, keepAlive);
  audit(out);
  finishRequest();
  co_return keepAlive;
}

template <typename Stream>
asio::awaitable<void> HttpSession<Stream>::relayRaw(Stream& from, Stream& to, ByteWindow& buf,
                                                    uint64_t& counter) {
  for (;;) {
    if (buf.readable() > 0) {
      auto [ec, n] = co_await writeAll(to, asio::buffer(buf.readPtr(), buf.readable()));
      if (ec) {
        cancelStream(from);
        co_return;
      }
      counter += buf.readable();
      buf.consume(buf.readable());
    }
    setDeadline(config_.idleTimeout);
    auto [ec, n] = co_await readSome(from, buf.writable());
    if (ec || n == 0) {
      // Half-close: pass the end of this direction on and let the other one finish.
      shutdownSend(to);
      co_return;
    }
    buf.commit(n);
  }
}

// Moves exactly `length` bytes from the upstream to the client through a pipe, without
// copying them through userspace. False when either side fails or closes early.
template <typename Stream>
asio::awaitable<bool> HttpSession<Stream>::spliceToClient(uint64_t length) {
  if (!pipe_) {
    pipe_ = SplicePipe::open();
    if (!pipe_) {
      co_return false;
    }
  }
  uint64_t remaining = length;
  size_t inPipe = 0;
  while (remaining > 0 || inPipe > 0) {
    setDeadline(config_.ioTimeout);
    bool progressed = false;
    if (remaining > 0 && inPipe < pipe_->capacity) {
      const size_t want =
          static_cast<size_t>(std::min<uint64_t>(remaining, pipe_->capacity - inPipe));
      const ssize_t n = ::splice(upstream_.native_handle(), nullptr, pipe_->write.get(), nullptr,
                                 want, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n == 0) {
        break;  // the upstream closed before the end of the body
      }
      if (n > 0) {
        remaining -= static_cast<uint64_t>(n);
        inPipe += static_cast<size_t>(n);
        progressed = true;
      } else if (errno != EAGAIN) {
        break;
      }
    }
    if (inPipe > 0) {
      const ssize_t n = ::splice(pipe_->read.get(), nullptr, client_.native_handle(), nullptr,
                                 inPipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        inPipe -= static_cast<size_t>(n);
        bytesOut_ += static_cast<uint64_t>(n);
        if (sandbox_->bytesToSandbox != nullptr) {
          sandbox_->bytesToSandbox->inc(static_cast<uint64_t>(n));
        }
        progressed = true;
      } else if (n < 0 && errno != EAGAIN) {
        break;
      }
    }
    if (progressed) {
      continue;
    }
    // Neither side could move: wait for the side that can unblock us (either, when both can).
    asio::error_code ec;
    if (inPipe > 0 && (remaining == 0 || inPipe >= pipe_->capacity)) {
      std::tie(ec) = co_await client_.async_wait(tcp::socket::wait_write, kNoThrow);
    } else if (inPipe == 0) {
      std::tie(ec) = co_await upstream_.async_wait(tcp::socket::wait_read, kNoThrow);
    } else {
      auto either = co_await (client_.async_wait(tcp::socket::wait_write, kNoThrow) ||
                              upstream_.async_wait(tcp::socket::wait_read, kNoThrow));
      ec =
          either.index() == 0 ? std::get<0>(std::get<0>(either)) : std::get<0>(std::get<1>(either));
    }
    if (ec) {
      break;
    }
  }
  if (remaining > 0 || inPipe > 0) {
    // Whatever is left in the pipe belongs to a dead exchange: drop the pipe with it.
    pipe_.reset();
    co_return false;
  }
  co_return true;
}

// After a genuine 101 from the upstream: bytes both ways, unparsed, until both ends close.
template <typename Stream>
asio::awaitable<void> HttpSession<Stream>::tunnel() {
  uint64_t up = 0;
  uint64_t down = 0;
  co_await (relayRaw(client_, upstream_, clientBuf_, up) &&
            relayRaw(upstream_, client_, upstreamBuf_, down));
  bytesIn_ += up;
  bytesOut_ += down;
}

}  // namespace

asio::awaitable<void> serveConnection(tcp::socket client, OrigDst orig,
                                      std::shared_ptr<SandboxContext> sandbox,
                                      const ProxyConfig& config, UpstreamPools* pools) {
  auto session =
      std::make_shared<HttpSession<tcp::socket>>(std::move(client), orig, sandbox, config, pools);
  if (!co_await session->run()) {
    co_return;
  }
  // A TLS ClientHello: the HTTP session (and its buffers) go, the TLS gate takes over.
  tcp::socket socket = session->takeClient();
  std::string received = session->takeReceived();
  session.reset();
  co_await serveTlsConnection(std::move(socket), std::move(received), orig, std::move(sandbox),
                              config, pools);
}

asio::awaitable<void> serveInterceptedConnection(TlsStream client, std::string clientHello,
                                                 std::string serverName, OrigDst orig,
                                                 std::shared_ptr<SandboxContext> sandbox,
                                                 const ProxyConfig& config, UpstreamPools* pools) {
  auto session = std::make_shared<HttpSession<TlsStream>>(
      std::move(client), orig, std::move(sandbox), config, pools, std::move(serverName),
      std::move(clientHello));
  co_await session->run();
}

}  // namespace egressd::proxy
