#include "metrics/server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <optional>
#include <thread>

#include <llhttp.h>
#include <spdlog/spdlog.h>
#include <asio.hpp>

#include "common/fs.h"
#include "common/io_thread.h"
#include "common/unique_fd.h"
#include "common/unix_socket.h"

namespace egressd::metrics {

namespace {

constexpr auto kRequestTimeout = std::chrono::seconds(5);
constexpr size_t kMaxRequestBytes = 16 * 1024;  // a scrape request is a few hundred bytes
constexpr auto kLingerTimeout = std::chrono::seconds(1);
constexpr size_t kMaxLingerBytes = 64 * 1024;
constexpr int kListenBacklog = 64;
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);

Error addressError(std::string_view address, const std::string& why) {
  return Error(EINVAL, "metrics address \"" + std::string(address) + "\": " + why +
                           " (use unix:/path, 127.0.0.1:PORT or [::1]:PORT)");
}

// One request, parsed incrementally; only the method and the target matter here.
class RequestParser {
 public:
  enum class State { kIncomplete, kComplete, kMalformed };

  RequestParser() {
    llhttp_settings_init(&settings_);
    settings_.on_url = [](llhttp_t* parser, const char* at, size_t length) {
      static_cast<RequestParser*>(parser->data)->target_.append(at, length);
      return 0;
    };
    settings_.on_message_complete = [](llhttp_t* parser) {
      static_cast<RequestParser*>(parser->data)->complete_ = true;
      return static_cast<int>(HPE_PAUSED);  // stop here: one request per connection
    };
    llhttp_init(&parser_, HTTP_REQUEST, &settings_);
    parser_.data = this;
  }
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  State feed(const char* data, size_t length) {
    llhttp_errno_t err = llhttp_execute(&parser_, data, length);
    if (complete_) {
      return State::kComplete;
    }
    return err == HPE_OK ? State::kIncomplete : State::kMalformed;
  }

  llhttp_method_t method() const {
    return static_cast<llhttp_method_t>(llhttp_get_method(const_cast<llhttp_t*>(&parser_)));
  }
  std::string_view path() const {
    std::string_view target = target_;
    return target.substr(0, target.find('?'));
  }

 private:
  llhttp_settings_t settings_;
  llhttp_t parser_;
  std::string target_;
  bool complete_ = false;
};

std::string response(int status, std::string_view reason, std::string_view contentType,
                     const std::string& body, bool includeBody,
                     std::string_view extraHeaders = "") {
  std::string out = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
  out += "Content-Type: ";
  out += contentType;
  out += "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  out += extraHeaders;
  out += "Cache-Control: no-store\r\nConnection: close\r\n\r\n";
  if (includeBody) {
    out += body;
  }
  return out;
}

std::string respondTo(RequestParser::State state, const RequestParser& request,
                      const Registry& registry) {
  constexpr std::string_view kText = "text/plain; charset=utf-8";
  if (state != RequestParser::State::kComplete) {
    return response(400, "Bad Request", kText, "bad request\n", true);
  }
  const std::string_view path = request.path();
  if (path != "/metrics" && path != "/") {
    return response(404, "Not Found", kText, "not found; metrics are at /metrics\n", true);
  }
  const llhttp_method_t method = request.method();
  if (method != HTTP_GET && method != HTTP_HEAD) {
    return response(405, "Method Not Allowed", kText, "method not allowed\n", true,
                    "Allow: GET, HEAD\r\n");
  }
  const bool includeBody = method == HTTP_GET;
  if (path == "/") {
    return response(200, "OK", kText, "egressd metrics exporter: GET /metrics\n", includeBody);
  }
  return response(200, "OK", "text/plain; version=0.0.4; charset=utf-8", registry.render(),
                  includeBody);
}

template <typename Socket>
asio::awaitable<void> serveConnection(Socket socket, const Registry& registry) {
  // A client that never finishes its request must not hold the connection forever.
  asio::steady_timer deadline(socket.get_executor());
  deadline.expires_after(kRequestTimeout);
  deadline.async_wait([&socket](const std::error_code& ec) {
    if (!ec) {
      std::error_code ignored;
      socket.close(ignored);
    }
  });

  RequestParser request;
  RequestParser::State state = RequestParser::State::kIncomplete;
  std::array<char, 4096> buffer;
  size_t total = 0;
  while (state == RequestParser::State::kIncomplete) {
    std::error_code ec;
    size_t n = co_await socket.async_read_some(asio::buffer(buffer),
                                               asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      co_return;  // peer went away or the deadline closed the socket
    }
    total += n;
    if (total > kMaxRequestBytes) {
      state = RequestParser::State::kMalformed;
      break;
    }
    state = request.feed(buffer.data(), n);
  }

  const std::string reply = respondTo(state, request, registry);
  std::error_code ec;
  co_await asio::async_write(socket, asio::buffer(reply),
                             asio::redirect_error(asio::use_awaitable, ec));
  if (ec) {
    co_return;
  }
  // Lingering close: closing with unread request bytes (an oversized or pipelined request)
  // would send a RST that can destroy the response before the client reads it. Half-close,
  // then discard what the client still sends until it closes, for a bounded time and size.
  socket.shutdown(asio::socket_base::shutdown_send, ec);
  deadline.expires_after(kLingerTimeout);
  deadline.async_wait([&socket](const std::error_code& timerError) {
    if (!timerError) {
      std::error_code ignored;
      socket.close(ignored);
    }
  });
  size_t discarded = 0;
  while (!ec && discarded < kMaxLingerBytes) {
    discarded += co_await socket.async_read_some(asio::buffer(buffer),
                                                 asio::redirect_error(asio::use_awaitable, ec));
  }
  deadline.cancel();
  socket.close(ec);
}

template <typename Acceptor>
asio::awaitable<void> acceptLoop(Acceptor& acceptor, const Registry& registry) {
  auto executor = co_await asio::this_coro::executor;
  for (;;) {
    std::error_code ec;
    auto socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) {
      co_return;
    }
    if (ec) {
      // Out of descriptors or memory: back off instead of spinning, then keep serving.
      asio::steady_timer pause(executor, kAcceptRetryDelay);
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    asio::co_spawn(executor, serveConnection(std::move(socket), registry), asio::detached);
  }
}

Result<UniqueFd> listenUnix(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0 && !pathExists(path.substr(0, slash))) {
    EGRESSD_TRY(makeDirs(path.substr(0, slash), 0755));
  }
  return listenOnUnixSocket(path, "metrics socket", kListenBacklog);
}

}  // namespace

Result<MetricsAddress> parseMetricsAddress(std::string_view address) {
  MetricsAddress out;
  if (address.starts_with("unix:")) {
    out.unixPath = std::string(address.substr(5));
    if (out.unixPath.empty()) {
      return addressError(address, "empty unix socket path");
    }
    return out;
  }
  std::string_view host;
  std::string_view portText;
  if (address.starts_with("[")) {
    size_t close = address.find("]:");
    if (close == std::string_view::npos) {
      return addressError(address, "expected [IPv6]:PORT");
    }
    host = address.substr(1, close - 1);
    portText = address.substr(close + 2);
  } else {
    size_t colon = address.rfind(':');
    if (colon == std::string_view::npos || address.find(':') != colon) {
      return addressError(address, "expected IP:PORT (IPv6 in brackets)");
    }
    host = address.substr(0, colon);
    portText = address.substr(colon + 1);
  }
  unsigned port = 0;
  auto [end, ec] = std::from_chars(portText.data(), portText.data() + portText.size(), port);
  if (portText.empty() || ec != std::errc() || end != portText.data() + portText.size() ||
      port > 65535) {
    return addressError(address, "bad port \"" + std::string(portText) + "\"");
  }
  std::error_code parseError;
  asio::ip::address ip = asio::ip::make_address(std::string(host), parseError);
  if (parseError) {
    return addressError(address, "\"" + std::string(host) + "\" is not an IP address");
  }
  const bool loopback = ip.is_v4() ? ip.to_v4().is_loopback() : ip.to_v6().is_loopback();
  if (!loopback) {
    return addressError(address,
                        "not a loopback address; metrics must not be exposed to sandboxes or "
                        "the network");
  }
  out.ip = ip.to_string();
  out.port = static_cast<uint16_t>(port);
  return out;
}

struct MetricsServer::Impl {
  explicit Impl(const Registry& r) : registry(r) {}

  asio::io_context io{1};  // first member: destroyed last, after everything using it
  const Registry& registry;
  std::optional<asio::ip::tcp::acceptor> tcpAcceptor;
  std::optional<asio::local::stream_protocol::acceptor> unixAcceptor;
  std::string unixPath;
  std::string bound;
  std::thread thread;
};

MetricsServer::MetricsServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<MetricsServer>> MetricsServer::start(const std::string& address,
                                                            const Registry& registry) {
  auto parsed = parseMetricsAddress(address);
  if (!parsed.ok()) {
    return std::move(parsed).error();
  }
  auto impl = std::make_unique<Impl>(registry);
  std::error_code ec;
  if (parsed->isUnix()) {
    auto fd = listenUnix(parsed->unixPath);
    if (!fd.ok()) {
      return std::move(fd).error();
    }
    impl->unixAcceptor.emplace(impl->io);
    impl->unixAcceptor->assign(asio::local::stream_protocol(), fd->get(), ec);
    if (ec) {
      ::unlink(parsed->unixPath.c_str());
      return systemError(ec.value(), "adopt metrics socket " + parsed->unixPath);
    }
    fd->release();  // the acceptor owns it now
    impl->unixPath = parsed->unixPath;
    impl->bound = "unix:" + parsed->unixPath;
    asio::co_spawn(impl->io, acceptLoop(*impl->unixAcceptor, registry), asio::detached);
  } else {
    asio::ip::tcp::endpoint endpoint(asio::ip::make_address(parsed->ip, ec), parsed->port);
    auto& acceptor = impl->tcpAcceptor.emplace(impl->io);
    const std::string where = "metrics address " + address;
    acceptor.open(endpoint.protocol(), ec);
    if (ec) {
      return systemError(ec.value(), "open socket for " + where);
    }
    acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (ec) {
      return systemError(ec.value(), "set SO_REUSEADDR for " + where);
    }
    acceptor.bind(endpoint, ec);
    if (ec) {
      return systemError(ec.value(), "bind " + where);
    }
    acceptor.listen(kListenBacklog, ec);
    if (ec) {
      return systemError(ec.value(), "listen on " + where);
    }
    auto local = acceptor.local_endpoint(ec);
    if (ec) {
      return systemError(ec.value(), "read the bound port of " + where);
    }
    impl->bound = local.address().is_v6()
                      ? "[" + local.address().to_string() + "]:" + std::to_string(local.port())
                      : local.address().to_string() + ":" + std::to_string(local.port());
    asio::co_spawn(impl->io, acceptLoop(acceptor, registry), asio::detached);
  }
  impl->thread = startIoThread(impl->io, "metrics server");
  return std::unique_ptr<MetricsServer>(new MetricsServer(std::move(impl)));
}

std::string MetricsServer::boundAddress() const {
  return impl_->bound;
}

MetricsServer::~MetricsServer() {
  impl_->io.stop();
  impl_->thread.join();
  // Connections still open are destroyed with the io_context's pending handlers.
  impl_->tcpAcceptor.reset();
  impl_->unixAcceptor.reset();
  if (!impl_->unixPath.empty()) {
    ::unlink(impl_->unixPath.c_str());
  }
}

}  // namespace egressd::metrics
