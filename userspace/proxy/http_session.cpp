#include "proxy/http_session.h"

#include <asio/experimental/awaitable_operators.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <spdlog/spdlog.h>

#include "audit/audit_log.h"
#include "metrics/metrics.h"
#include "proxy/byte_tunnel.h"
#include "proxy/byte_window.h"
#include "proxy/h2_session.h"
#include "proxy/request_body_relay.h"
#include "proxy/request_decision.h"
#include "proxy/request_rules.h"
#include "proxy/response_relay.h"
#include "proxy/stream_ops.h"
#include "proxy/upstream_choice.h"
#include "proxy/upstream_link.h"
#include "proxy/upstream_open.h"
#include "proxy/upstream_pool.h"
#include "proxy/upstream_target.h"
#include "proxy/watchdog.h"
#include "tls/contexts.h"

namespace egressd::proxy {

namespace {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace asio::experimental::awaitable_operators;

// The first byte of a TLS record carrying a handshake.
constexpr unsigned char kTlsHandshake = 0x16;

using Outcome = RequestOutcome;

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
      : client_(std::move(client)),
        watchdog_(client_.get_executor()),
        orig_(orig),
        sandbox_(std::move(sandbox)),
        config_(config),
        clientBuf_(config.bufferBytes),
        upstreamBuf_(config.bufferBytes),
        requestParser_(config.limits),
        tlsServerName_(std::move(tlsServerName)),
        clientHello_(std::move(clientHello)),
        upstream_(client_.get_executor(), poolOf(pools), sandbox_->id + "|", upstreamBuf_,
                  responseParser_),
        bodyRelay_(client_, upstream_.stream(), clientBuf_, requestParser_, watchdog_,
                   config.ioTimeout, sandbox_->bytesFromSandbox),
        relay_(client_, upstream_.stream(), upstreamBuf_, responseParser_, redactor_, watchdog_,
               config.ioTimeout, sandbox_->bytesToSandbox) {}

  // Serves requests until the connection ends. Plain: returns true when the client turned
  // out to speak TLS; the socket and what was read of it are then takeClient()'s and
  // takeReceived()'s. TLS: returns true when the handshake chose h2; the stream is then
  // takeClient()'s.
  asio::awaitable<bool> run();
  Stream takeClient() { return std::move(client_); }
  std::string takeReceived() { return std::string(clientBuf_.readPtr(), clientBuf_.readable()); }

 private:
  void setDeadline(std::chrono::milliseconds fromNow) { watchdog_.setDeadline(fromNow); }

  // --- the request loop
  asio::awaitable<bool> readRequestHead(bool first);
  asio::awaitable<bool> handleRequest();
  asio::awaitable<Result<std::vector<IpAddress>>> resolveRerouteHost(const std::string& host);
  asio::awaitable<Status> connectUpstream(const UpstreamTarget& target);
  void finishRequest() {
    requestStart_ = Clock::time_point{};
    headValid_ = false;
    host_.clear();
  }
  asio::awaitable<void> tunnel();

  asio::awaitable<void> sendLocalResponse(int status, std::string_view body,
                                          const std::vector<http::Header>& headers, bool keepAlive);
  asio::awaitable<void> rejectMalformed(int status, const std::string& reason);
  void audit(const Outcome& out);
  static BasicUpstreamPool<Stream>* poolOf(UpstreamPools* pools) {
    if (pools == nullptr) {
      return nullptr;
    }
    if constexpr (kTls) {
      return &pools->tls;
    } else {
      return &pools->plain;
    }
  }

  Stream client_;
  std::string upstreamText_;  // the request's upstream, for its audit line
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
  ResponseProgress response_;
  bool clientKeepAlive_ = true;
  bool headEndsMessage_ = false;
  bool headValid_ = false;  // head() describes the request in flight
  const std::string tlsServerName_;
  std::string clientHello_;
  bool tlsDetected_ = false;
  bool h2Selected_ = false;  // TLS only: the handshake's ALPN chose h2
  // Of the request in flight: the Upgrade protocols the policy allows (its view outlives
  // the request), and the injected secrets to hide in the response.
  const std::vector<std::string>* upgradeAllow_ = nullptr;
  SecretRedactor redactor_;
  UpstreamLink<Stream> upstream_;       // after the buffer and parser it refers to
  RequestBodyRelay<Stream> bodyRelay_;  // after everything it refers to
  ResponseRelay<Stream> relay_;         // after everything it refers to
};

template <typename Stream>
asio::awaitable<bool> HttpSession<Stream>::run() {
  auto self = this->shared_from_this();
  sandbox_->openConnections.fetch_add(1, std::memory_order_relaxed);
  setDeadline(config_.headerTimeout);
  watchdog_.start(self, [this] {
    cancelStream(client_);
    cancelStream(upstream_.stream());
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
    // The caller serves an h2 connection (h2_session.h).
    h2Selected_ = serve && tls::selectedAlpn(client_.ssl()) == tls::kAlpnH2;
  } else {
    prepareSocket(client_);
    if (sandbox_->connectionsAccepted != nullptr) {
      sandbox_->connectionsAccepted->inc();
    }
  }

  // No co_await inside a && condition: GCC 12 evaluates it even when the left side is
  // false (seen here: a read after a failed handshake, and of an h2 connection's preface).
  bool first = true;
  while (serve && !h2Selected_) {
    if (!co_await readRequestHead(first)) {
      break;
    }
    first = false;
    if (!co_await handleRequest()) {
      break;
    }
  }

  watchdog_.stop();
  upstream_.release();
  sandbox_->openConnections.fetch_sub(1, std::memory_order_relaxed);
  if (tlsDetected_ || h2Selected_) {
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
    if constexpr (kTls) {
      // Between requests an intercepted connection waits without its two buffers (32 KiB):
      // most keep-alive connections are idle most of the time.
      if (!sawByte && upstreamBuf_.readable() == 0) {
        clientBuf_.release();
        upstreamBuf_.release();
        if (const std::error_code ec = co_await client_.waitReadable(); ec) {
          co_return false;
        }
      }
    }
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
  response_.bytesToClient += response.size();
  response_.status = status;
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
  r.status = out.status != 0 ? out.status : response_.status;
  r.bytesIn = bytesIn_;
  r.bytesOut = response_.bytesToClient;
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
  response_ = ResponseProgress{};
  upstreamText_.clear();
  host_.clear();
  clientKeepAlive_ = head.keepAlive;
  redactor_.reset({});

  const auto view = sandbox_->currentPolicy();
  RequestContext context;
  context.port = orig_.port;
  if constexpr (kTls) {
    context.tlsServerName = tlsServerName_;
  }
  context.sandboxId = sandbox_->id;
  context.secrets = sandbox_->secrets.get();
  RequestDecision decision = decideRequest(head, context, *view);
  Outcome out = std::move(decision.outcome);
  if (decision.action == RequestDecision::Action::kMalformed) {
    co_await rejectMalformed(out.status, out.detail);
    co_return false;
  }
  host_ = decision.host;
  upgradeAllow_ = &view->http.allowUpgrades;
  if (decision.action == RequestDecision::Action::kAnswer) {
    if (!decision.operatorLog.empty()) {
      spdlog::warn("{}", decision.operatorLog);
    }
    const bool keepAlive = !decision.close && clientKeepAlive_ && headEndsMessage_ && !head.upgrade;
    co_await sendLocalResponse(out.status, decision.body, decision.responseHeaders, keepAlive);
    audit(out);
    if (decision.close) {
      co_return false;
    }
    finishRequest();
    co_return keepAlive;
  }
  redactor_.reset(std::move(decision.secretValues));
  std::vector<http::Header> setHeaders = std::move(decision.setHeaders);
  const std::vector<std::string> dropHeaders = std::move(decision.dropHeaders);
  const uint16_t port = orig_.port;
  // Where the request goes: its own host's addresses, or the handler's reroute target.
  UpstreamTarget target = upstreamTargetFor(host_, port, std::move(decision.reroute));
  if (target.reroute) {
    const handlers::RerouteTarget& r = *target.reroute;
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
    UpstreamChoice choice =
        co_await resolveUpstream(*view, *sandbox_->resolver, *decision.normalizedHost, port,
                                 decision.hostDecision, &sandbox_->resolved);
    out.decision = choice.decision;
    out.reason = std::move(choice.reason);
    out.rule = std::move(choice.rule);
    out.detail = std::move(choice.detail);
    if (out.decision == "deny") {
      out.status = view->denyStatus;
      const bool keepAlive = clientKeepAlive_ && headEndsMessage_ && !head.upgrade;
      co_await sendLocalResponse(out.status, denyBody(host_, sandbox_->id, out),
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

  // Reuse the open upstream connection when it serves this target (its key) and its address
  // is still one the request may go to.
  bool reused = upstream_.reuse(target);
  if (reused) {
    upstreamText_ = upstream_.endpointText();
  } else {
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
  }
  if (head.upgrade) {
    // Whatever the upstream answers, this connection is not reused for another client.
    upstream_.keepFromReuse();
  }

  upstream_.setIdle(false);
  // The handler's header edits (setHeaders may hold secrets: they go to the upstream only,
  // never into a log line or an answer of egressd's).
  const std::string upstreamHead = http::serializeRequestHead(head, setHeaders, dropHeaders);
  setHeaders.clear();
  const bool hasBody = !headEndsMessage_;
  const bool upgrade = head.upgrade;
  const ResponseRules responseRules{clientKeepAlive_, upgrade, upgradeAllow_};
  for (int attempt = 0;; ++attempt) {
    setDeadline(config_.ioTimeout);
    auto [wec, wn] = co_await writeAll(upstream_.stream(), asio::buffer(upstreamHead));
    ResponseEnd end;
    if (wec) {
      end = ResponseEnd::kFailedBeforeBytes;
    } else if (hasBody) {
      // Both at once: the upstream may answer 100 Continue (or an early error) before
      // the body, and the client may wait for that 100 before sending it.
      auto [bodyOk, respEnd] = co_await (bodyRelay_.relay(bytesIn_) &&
                                         relay_.relay(head.method, responseRules, response_));
      end = bodyOk ? respEnd : ResponseEnd::kFailed;
    } else {
      end = co_await relay_.relay(head.method, responseRules, response_);
    }
    // A kept-alive upstream connection may have been closed by the server meanwhile: retry
    // a bodiless request once on a fresh connection.
    if (end == ResponseEnd::kFailedBeforeBytes && reused && !hasBody && attempt == 0 &&
        !watchdog_.timedOut) {
      upstream_.close();
      auto connected = co_await connectUpstream(target);
      if (connected.ok()) {
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
        out.status = response_.status;
        if (upgrade) {
          requestParser_.refuseUpgrade();  // the upstream did not switch protocols
        }
        audit(out);
        finishRequest();
        if (!response_.upstreamKeepAlive) {
          upstream_.close();
        } else {
          upstream_.setIdle(!upgrade);
        }
        co_return clientKeepAlive_&& response_.upstreamKeepAlive;
      case ResponseEnd::kCompleteUntilClose:
        out.status = response_.status;
        audit(out);
        upstream_.close();
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
        out.status = response_.status;
        out.detail = "connection aborted mid-response";
        audit(out);
        co_return false;
    }
  }
}

// Connects upstream_ to `target` (see openUpstream()).
template <typename Stream>
asio::awaitable<Status> HttpSession<Stream>::connectUpstream(const UpstreamTarget& target) {
  setDeadline(config_.connectTimeout);
  UpstreamEndpoint endpoint;
  Status opened = co_await upstream_.connect(target, host_, config_, watchdog_.timedOut,
                                             sandbox_->upstreamConnect, endpoint);
  upstreamText_ = std::move(endpoint.text);  // also after a failure: what was tried
  co_return opened;
}

template <typename Stream>
asio::awaitable<Result<std::vector<IpAddress>>> HttpSession<Stream>::resolveRerouteHost(
    const std::string& host) {
  if (auto ip = IpAddress::parse(host)) {
    co_return std::vector<IpAddress>{*ip};
  }
  co_return co_await sandbox_->resolver->resolve(host);
}

// After a genuine 101 from the upstream: bytes both ways, unparsed, until both ends close.
template <typename Stream>
asio::awaitable<void> HttpSession<Stream>::tunnel() {
  const TunnelBytes moved = co_await runTunnel(client_, upstream_.stream(), clientBuf_,
                                               upstreamBuf_, watchdog_, config_.idleTimeout);
  bytesIn_ += moved.fromClient;
  response_.bytesToClient += moved.toClient;
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
      std::move(client), orig, sandbox, config, pools, serverName, std::move(clientHello));
  if (!co_await session->run()) {
    co_return;
  }
  TlsStream stream = session->takeClient();
  session.reset();
  co_await serveHttp2Connection(std::move(stream), std::move(serverName), orig, std::move(sandbox),
                                config, pools);
}

}  // namespace egressd::proxy
