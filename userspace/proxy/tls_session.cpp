#include "proxy/tls_session.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <chrono>
#include <optional>

#include "audit/audit_log.h"
#include "common/unique_fd.h"
#include "metrics/metrics.h"
#include "proxy/http_session.h"
#include "proxy/pipe.h"
#include "proxy/stream_ops.h"
#include "proxy/upstream_choice.h"
#include "proxy/watchdog.h"
#include "tls/client_hello.h"
#include "tls/contexts.h"

namespace egressd::proxy {

namespace {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace asio::experimental::awaitable_operators;

constexpr size_t kHelloReadBytes = 16 * 1024;

// The gate hands an intercepted connection on with this.
struct Interception {
  TlsStream client;
  std::string hello;
  std::string serverName;
};

class TlsGate : public std::enable_shared_from_this<TlsGate> {
 public:
  TlsGate(tcp::socket client, std::string received, OrigDst orig,
          std::shared_ptr<SandboxContext> sandbox, const ProxyConfig& config)
      : client_(std::move(client)),
        upstream_(client_.get_executor()),
        watchdog_(client_.get_executor()),
        received_(std::move(received)),
        orig_(orig),
        sandbox_(std::move(sandbox)),
        config_(config),
        started_(Clock::now()) {}

  // Passes through or refuses the connection itself; an interception is returned to the
  // caller, which serves it once the gate is gone.
  asio::awaitable<std::optional<Interception>> run();

 private:
  struct Outcome {
    std::string decision = "allow";
    std::string reason;
    std::string rule;
    std::string detail;
  };

  void setDeadline(std::chrono::milliseconds fromNow) { watchdog_.setDeadline(fromNow); }
  asio::awaitable<std::optional<tls::ClientHello>> readClientHello();
  asio::awaitable<void> passThrough(const std::string& name, std::vector<IpAddress> addrs,
                                    Outcome out);
  asio::awaitable<void> relay(tcp::socket& from, tcp::socket& to, uint64_t& counter);
  asio::awaitable<bool> drainPipe(SplicePipe& pipe, size_t& inPipe, tcp::socket& to,
                                  uint64_t& counter, bool untilEmpty);
  void refuse(tls::AlertDescription alert, const Outcome& out);
  void audit(const Outcome& out, const std::string& mode);
  void countConnection(const std::string& mode, const std::string& decision);
  void finish() { watchdog_.stop(); }

  tcp::socket client_;
  tcp::socket upstream_;
  Watchdog watchdog_;

  std::string received_;
  OrigDst orig_;
  std::shared_ptr<SandboxContext> sandbox_;
  const ProxyConfig& config_;
  Clock::time_point started_;
  std::string host_;
  std::string upstreamText_;
  uint64_t bytesIn_ = 0;
  uint64_t bytesOut_ = 0;
};

void TlsGate::countConnection(const std::string& mode, const std::string& decision) {
  if (config_.metrics == nullptr) {
    return;
  }
  config_.metrics
      ->counter("egressd_tls_connections_total",
                "TLS connections through the proxy, by sandbox, mode and decision.",
                {{"sandbox", sandbox_->id}, {"mode", mode}, {"decision", decision}})
      .inc();
}

void TlsGate::audit(const Outcome& out, const std::string& mode) {
  if (config_.metrics != nullptr) {
    sandbox_->decisionCounter(*config_.metrics, out.decision, out.reason).inc();
  }
  countConnection(mode, out.decision);
  if (config_.audit == nullptr) {
    return;
  }
  audit::AuditRecord r;
  r.sandbox = sandbox_->id;
  r.layer = "proxy";
  r.protocol = "tls";
  r.origDst = orig_.toString();
  r.upstream = upstreamText_;
  r.host = host_;
  r.decision = out.decision;
  r.reason = out.reason;
  r.rule = out.rule;
  r.bytesIn = bytesIn_;
  r.bytesOut = bytesOut_;
  r.duration = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started_);
  r.detail = out.detail;
  config_.audit->write(r);
}

// A refusal before any TLS is set up: a plaintext fatal alert the client's TLS library
// reports ("tlsv1 alert access denied"), then the connection ends.
void TlsGate::refuse(tls::AlertDescription alert, const Outcome& out) {
  const std::string record = tls::fatalAlertRecord(alert);
  std::error_code ignored;
  client_.write_some(asio::buffer(record), ignored);
  audit(out, "refused");
  shutdownSend(client_);
  closeStream(client_);
}

// Reads until the whole ClientHello is in received_ (under the head timeout).
asio::awaitable<std::optional<tls::ClientHello>> TlsGate::readClientHello() {
  for (;;) {
    tls::ClientHelloParse parse = tls::parseClientHello(received_);
    switch (parse.status) {
      case tls::ClientHelloParse::Status::kComplete:
        co_return std::move(parse.hello);
      case tls::ClientHelloParse::Status::kNeedMore:
        break;
      default: {
        Outcome out;
        out.decision = "deny";
        out.reason = "bad_client_hello";
        out.detail = parse.error;
        refuse(tls::AlertDescription::kDecodeError, out);
        co_return std::nullopt;
      }
    }
    const size_t had = received_.size();
    received_.resize(had + kHelloReadBytes);
    auto [ec, n] = co_await client_.async_read_some(
        asio::buffer(received_.data() + had, kHelloReadBytes), kNoThrow);
    received_.resize(had + (ec ? 0 : n));
    if (ec || n == 0) {
      if (watchdog_.timedOut) {
        Outcome out;
        out.decision = "deny";
        out.reason = "bad_client_hello";
        out.detail = "ClientHello not received in time";
        audit(out, "refused");
      }
      closeStream(client_);
      co_return std::nullopt;
    }
  }
}

asio::awaitable<std::optional<Interception>> TlsGate::run() {
  auto self = shared_from_this();
  sandbox_->openConnections.fetch_add(1, std::memory_order_relaxed);
  struct Closed {
    SandboxContext* sandbox;
    ~Closed() { sandbox->openConnections.fetch_sub(1, std::memory_order_relaxed); }
  } closed{sandbox_.get()};
  setDeadline(config_.headerTimeout);
  watchdog_.start(self, [this] {
    cancelStream(client_);
    cancelStream(upstream_);
  });

  std::optional<tls::ClientHello> hello = co_await readClientHello();
  if (!hello) {
    finish();
    co_return std::nullopt;
  }
  const auto view = sandbox_->currentPolicy();

  // The name the connection is judged by. Without one (or with the real one encrypted in
  // an ECH extension) only the CIDR rules can judge it, on the address the sandbox chose.
  std::optional<policy::NormalizedHost> name;
  Outcome out;
  if (hello->serverName && !hello->encryptedClientHello) {
    auto normalized = policy::normalizeHost(*hello->serverName);
    if (!normalized.ok()) {
      out.decision = "deny";
      out.reason = "bad_client_hello";
      out.detail = "server name: " + normalized.error().message();
      host_ = *hello->serverName;
      refuse(tls::AlertDescription::kUnrecognizedName, out);
      finish();
      co_return std::nullopt;
    }
    name = std::move(*normalized);
    host_ = name->name;
  } else {
    host_ = orig_.addr.toString();
    out.detail = hello->encryptedClientHello ? "encrypted ClientHello: judged by address"
                                             : "no server name: judged by address";
    // tls.requireSni: without a name only an address rule can judge, and only one that
    // names this very address and port may. An ECH hello counts as one without a name (its
    // inner name is hidden; the extension alone must not open a way around the switch).
    if (view->requireSni && !view->hosts.explicitAddressRule(orig_.addr, orig_.port)) {
      out.decision = "deny";
      out.reason = "sni_required";
      out.detail =
          std::string(hello->encryptedClientHello ? "encrypted ClientHello" : "no server name") +
          " and no allowedHosts address or allow rule for " + orig_.toString() +
          " (policy tls.requireSni)";
      refuse(tls::AlertDescription::kAccessDenied, out);
      finish();
      co_return std::nullopt;
    }
  }

  // A name with a handler bound to it is intercepted whatever interceptHttps says: a
  // handler works on the HTTP request (headers to set, a method to deny), and passing the
  // connection through would let it bypass a deny handler. Without a name nothing can be
  // bound to it (the catch-all included: a handler is judged per name).
  const bool handled = name && view->handlers.pick(name->name) != nullptr &&
                       handlerMayApply(view->hosts.decide(*name, orig_.port));
  const bool canIntercept = config_.interceptTls != nullptr && sandbox_->leaves != nullptr;
  if (handled && !canIntercept) {
    out.decision = "deny";
    out.reason = "interception_unavailable";
    out.detail = "a handler applies to " + host_ +
                 " but this proxy cannot intercept TLS (no interception CA)";
    refuse(tls::AlertDescription::kAccessDenied, out);
    finish();
    co_return std::nullopt;
  }

  // Interception: every request inside is judged on its own (a denied name gets its 403
  // there, with the reason readable), so the gate only checks the client can speak
  // HTTP/1.1 and sets up the certificate.
  const bool intercept =
      canIntercept && !hello->encryptedClientHello &&
      (handled || (name ? view->intercept.matches(name->name) : view->intercept.all));
  if (intercept) {
    const auto offers = [&hello](std::string_view protocol) {
      return std::find(hello->alpn.begin(), hello->alpn.end(), protocol) != hello->alpn.end();
    };
    const bool http2 = view->http.http2;
    if (!hello->alpn.empty() && !offers(tls::kAlpnHttp11) && !(http2 && offers(tls::kAlpnH2))) {
      out.decision = "deny";
      out.reason = "alpn_unsupported";
      out.detail = http2 ? "the client offers neither h2 nor http/1.1"
                         : "the client offers only protocols other than http/1.1 (policy "
                           "http.http2 is false)";
      refuse(tls::AlertDescription::kNoApplicationProtocol, out);
      finish();
      co_return std::nullopt;
    }
    bool hit = false;
    auto leaf = sandbox_->leaves->get(host_, &hit);
    if (config_.metrics != nullptr) {
      config_.metrics
          ->counter("egressd_tls_leaf_cache_total",
                    "Leaf certificates asked of the sandbox's interception CA, by result.",
                    {{"sandbox", sandbox_->id}, {"result", hit ? "hit" : "miss"}})
          .inc();
    }
    tls::SslPtr ssl(SSL_new(config_.interceptTls));
    Status ready = !leaf.ok() ? Status(leaf.error())
                   : !ssl     ? Status(Error(ENOMEM, "SSL_new: " + tls::drainOpenSslErrors()))
                              : tls::useLeaf(ssl.get(), **leaf);
    if (!ready.ok()) {
      out.decision = "error";
      out.reason = "interception_failed";
      out.detail = ready.error().message();
      refuse(tls::AlertDescription::kInternalError, out);
      finish();
      co_return std::nullopt;
    }
    if (http2) {
      tls::allowHttp2(ssl.get());
    }
    countConnection("intercept", "allow");
    finish();
    TlsStream stream(std::move(client_));
    stream.attach(std::move(ssl), TlsStream::Role::kServer);
    co_return Interception{std::move(stream), std::move(received_), host_};
  }

  // Passthrough: judged here, once, for the whole connection.
  std::vector<IpAddress> addrs;
  if (name) {
    UpstreamChoice choice =
        co_await chooseUpstream(*view, *sandbox_->resolver, *name, orig_.port, &sandbox_->resolved);
    out.decision = choice.decision;
    out.reason = std::move(choice.reason);
    out.rule = std::move(choice.rule);
    out.detail = std::move(choice.detail);
    addrs = std::move(choice.addrs);
  } else {
    const policy::HostDecision decision = view->hosts.decideAddress(orig_.addr, orig_.port);
    out.decision = decision.allowed() ? "allow" : "deny";
    out.reason = decision.reason;
    out.rule = decision.rule;
    auto unresolved =
        decision.allowed() ? requireResolved(*view, &sandbox_->resolved, orig_.addr) : std::nullopt;
    if (unresolved) {
      out.decision = unresolved->decision;
      out.reason = unresolved->reason;
      out.rule = unresolved->rule;
      out.detail = unresolved->detail;
    } else if (decision.allowed()) {
      addrs.push_back(orig_.addr);
    }
  }
  if (out.decision != "allow") {
    refuse(out.decision == "deny" ? tls::AlertDescription::kAccessDenied
                                  : tls::AlertDescription::kInternalError,
           out);
    finish();
    co_return std::nullopt;
  }
  co_await passThrough(host_, std::move(addrs), std::move(out));
  finish();
  co_return std::nullopt;
}

asio::awaitable<void> TlsGate::passThrough(const std::string& name, std::vector<IpAddress> addrs,
                                           Outcome out) {
  setDeadline(config_.connectTimeout);
  const ConnectOutcome connected =
      co_await connectFirst(upstream_, addrs, orig_.port, watchdog_.timedOut);
  upstreamText_ = connected.endpointText;
  if (!connected.connected) {
    out.decision = "error";
    out.reason = watchdog_.timedOut ? "upstream_timeout" : "upstream_unreachable";
    out.detail = "cannot connect to " + name + " (" + connected.errors + ")";
    refuse(tls::AlertDescription::kInternalError, out);
    co_return;
  }
  int on = 1;
  ::setsockopt(upstream_.native_handle(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  ::setsockopt(client_.native_handle(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
  std::error_code ignored;
  upstream_.non_blocking(true, ignored);
  client_.non_blocking(true, ignored);

  // The ClientHello (and whatever followed it) first, then the rest in the kernel.
  setDeadline(config_.idleTimeout);
  auto [wec, wn] = co_await writeAll(upstream_, asio::buffer(received_));
  bytesIn_ += wn;
  received_.clear();
  received_.shrink_to_fit();
  if (!wec) {
    uint64_t up = 0;
    uint64_t down = 0;
    co_await (relay(client_, upstream_, up) && relay(upstream_, client_, down));
    bytesIn_ += up;
    bytesOut_ += down;
  }
  if (sandbox_->bytesFromSandbox != nullptr) {
    sandbox_->bytesFromSandbox->inc(bytesIn_);
  }
  if (sandbox_->bytesToSandbox != nullptr) {
    sandbox_->bytesToSandbox->inc(bytesOut_);
  }
  out.detail = out.detail.empty() ? "passthrough" : "passthrough; " + out.detail;
  if (watchdog_.timedOut) {
    out.detail += "; closed after " + std::to_string(config_.idleTimeout.count()) + " ms idle";
  }
  audit(out, "passthrough");
  closeStream(upstream_);
  closeStream(client_);
}

// Moves what the pipe holds to `to`; waits for `to` to take more only when `untilEmpty` or
// the pipe is full (otherwise the caller reads more first). False: `to` failed.
asio::awaitable<bool> TlsGate::drainPipe(SplicePipe& pipe, size_t& inPipe, tcp::socket& to,
                                         uint64_t& counter, bool untilEmpty) {
  while (inPipe > 0) {
    const ssize_t n = ::splice(pipe.read.get(), nullptr, to.native_handle(), nullptr, inPipe,
                               SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      inPipe -= static_cast<size_t>(n);
      counter += static_cast<uint64_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN) {
      co_return false;
    }
    if (!untilEmpty && inPipe < pipe.capacity) {
      co_return true;
    }
    setDeadline(config_.idleTimeout);
    auto [ec] = co_await to.async_wait(tcp::socket::wait_write, kNoThrow);
    if (ec) {
      co_return false;
    }
  }
  co_return true;
}

// One direction of a passed-through connection: socket -> pipe -> socket with splice(2),
// never through userspace. The end of one direction is passed on as a half-close; the
// other direction goes on until it ends too.
asio::awaitable<void> TlsGate::relay(tcp::socket& from, tcp::socket& to, uint64_t& counter) {
  auto pipe = SplicePipe::open();
  if (!pipe) {
    cancelStream(from);
    cancelStream(to);
    co_return;
  }
  size_t inPipe = 0;
  for (;;) {
    bool wantRead = false;
    if (inPipe < pipe->capacity) {
      const ssize_t n = ::splice(from.native_handle(), nullptr, pipe->write.get(), nullptr,
                                 pipe->capacity - inPipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n == 0) {
        break;  // end of this direction
      }
      if (n > 0) {
        inPipe += static_cast<size_t>(n);
      } else if (errno == EAGAIN) {
        wantRead = true;
      } else {
        break;
      }
    }
    // With nothing more to read yet (or a full pipe), wait until `to` takes it all.
    if (!co_await drainPipe(*pipe, inPipe, to, counter, wantRead)) {
      cancelStream(from);
      co_return;
    }
    if (wantRead) {
      setDeadline(config_.idleTimeout);
      auto [ec] = co_await from.async_wait(tcp::socket::wait_read, kNoThrow);
      if (ec) {
        co_return;
      }
    }
  }
  // Whatever is still in the pipe goes out before the half-close.
  co_await drainPipe(*pipe, inPipe, to, counter, true);
  shutdownSend(to);
}

}  // namespace

asio::awaitable<void> serveTlsConnection(tcp::socket client, std::string received, OrigDst orig,
                                         std::shared_ptr<SandboxContext> sandbox,
                                         const ProxyConfig& config, UpstreamPools* pools) {
  auto gate =
      std::make_shared<TlsGate>(std::move(client), std::move(received), orig, sandbox, config);
  std::optional<Interception> intercepted = co_await gate->run();
  gate.reset();
  if (intercepted) {
    co_await serveInterceptedConnection(
        std::move(intercepted->client), std::move(intercepted->hello),
        std::move(intercepted->serverName), orig, std::move(sandbox), config, pools);
  }
}

}  // namespace egressd::proxy
