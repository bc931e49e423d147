#include "proxy/upstream_connect.h"

#include <sys/socket.h>
#include <sys/un.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <cerrno>
#include <cstring>
#include <memory>

#include "common/unique_fd.h"
#include "proxy/stream_ops.h"
#include "proxy/tls_stream.h"
#include "tls/contexts.h"

namespace egressd::proxy {

namespace {

using asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using namespace asio::experimental::awaitable_operators;

constexpr std::chrono::milliseconds kUnixRetryInterval{5};
constexpr size_t kPumpBufferBytes = 16 * 1024;

// A stream fd handed to Asio as a TCP socket (see the header for why that is sound).
Result<tcp::socket> adopt(const asio::any_io_executor& executor, UniqueFd fd,
                          const std::string& what) {
  tcp::socket socket(executor);
  std::error_code ec;
  socket.assign(tcp::v4(), fd.get(), ec);
  if (ec) {
    return Error(ec.value(), what + ": " + ec.message());
  }
  fd.release();
  // Asio must know the fd is non-blocking: its synchronous writes (writeAll's first try)
  // would otherwise poll until the socket is writable.
  socket.non_blocking(true, ec);
  return Result<tcp::socket>(std::move(socket));
}

// One TLS origination: the connection to the server and the inner end of the socketpair.
// Shared by the pump's two directions and the timer's handler, so none outlives the others.
struct Origination {
  Origination(tcp::socket connected, tcp::socket innerEnd)
      : tls(std::move(connected)), inner(std::move(innerEnd)), timer(inner.get_executor()) {}

  TlsStream tls;
  tcp::socket inner;
  asio::steady_timer timer;
  bool handshaking = true;
  bool timedOut = false;
  bool downDone = false;
};

// Session -> server: plaintext from the socketpair, written as TLS records. The session
// closing its end is passed on as close_notify + FIN; the server then gets `linger` to
// close its side before the connection is cut.
asio::awaitable<void> pumpUp(std::shared_ptr<Origination> o, std::chrono::milliseconds linger) {
  auto buffer = std::make_unique<char[]>(kPumpBufferBytes);
  for (;;) {
    auto [ec, n] =
        co_await o->inner.async_read_some(asio::buffer(buffer.get(), kPumpBufferBytes), kNoThrow);
    if (ec || n == 0) {
      break;
    }
    auto [wec, wn] = co_await o->tls.writeAll(asio::buffer(buffer.get(), n));
    if (wec) {
      // The server is gone: nothing the session sends can arrive any more.
      o->tls.cancel();
      std::error_code ignored;
      o->inner.cancel(ignored);
      co_return;
    }
  }
  o->tls.shutdownSend();
  if (!o->downDone) {
    o->timer.expires_after(linger);
    co_await o->timer.async_wait(kNoThrow);
    if (!o->downDone) {
      o->tls.cancel();
    }
  }
}

// Server -> session: decrypted bytes into the socketpair; the server's end of the stream
// becomes the session's (FIN on the socketpair).
asio::awaitable<void> pumpDown(std::shared_ptr<Origination> o) {
  auto buffer = std::make_unique<char[]>(kPumpBufferBytes);
  for (;;) {
    auto [ec, n] = co_await o->tls.readSome(asio::buffer(buffer.get(), kPumpBufferBytes));
    if (ec || n == 0) {
      break;
    }
    auto [wec, wn] = co_await writeAll(o->inner, asio::buffer(buffer.get(), n));
    if (wec) {
      break;
    }
  }
  o->downDone = true;
  o->timer.cancel();
  shutdownSend(o->inner);
}

asio::awaitable<void> pump(std::shared_ptr<Origination> o, std::chrono::milliseconds linger) {
  co_await (pumpUp(o, linger) && pumpDown(o));
  o->tls.close();
  std::error_code ignored;
  o->inner.close(ignored);
}

}  // namespace

asio::awaitable<Result<tcp::socket>> connectUnix(const asio::any_io_executor& executor,
                                                 const std::string& path,
                                                 std::chrono::milliseconds timeout) {
  const std::string what = "connect to unix:" + path;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.front() != '/') {
    co_return Error(EINVAL, what + ": not an absolute path");
  }
  if (path.size() >= sizeof(addr.sun_path)) {
    co_return Error(ENAMETOOLONG, what + ": the path is longer than a unix socket address (" +
                                      std::to_string(sizeof(addr.sun_path) - 1) + " bytes)");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  const auto deadline = Clock::now() + timeout;
  asio::steady_timer timer(executor);
  for (;;) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) {
      co_return lastSystemError(what + ": socket(AF_UNIX)");
    }
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
      co_return adopt(executor, std::move(fd), what);
    }
    const int err = errno;
    if (err != EAGAIN && err != EINTR) {
      co_return systemError(err, what);
    }
    if (Clock::now() >= deadline) {
      co_return Error(ETIMEDOUT, what + ": the listener's backlog stayed full for " +
                                     std::to_string(timeout.count()) + " ms");
    }
    timer.expires_after(kUnixRetryInterval);
    co_await timer.async_wait(kNoThrow);
  }
}

asio::awaitable<Result<tcp::socket>> originateTls(tcp::socket connected, SSL_CTX* ctx,
                                                  const std::string& name,
                                                  std::chrono::milliseconds timeout,
                                                  std::chrono::milliseconds linger) {
  const asio::any_io_executor executor = connected.get_executor();
  if (ctx == nullptr) {
    co_return Error(EPROTO, "no upstream TLS configured");
  }
  tls::SslPtr ssl(SSL_new(ctx));
  if (!ssl) {
    co_return Error(ENOMEM, "SSL_new: " + tls::drainOpenSslErrors());
  }
  if (Status prepared = tls::prepareUpstreamSsl(ssl.get(), name); !prepared.ok()) {
    co_return Error(EPROTO, prepared.error().message());
  }
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
    co_return lastSystemError("socketpair for TLS to " + name);
  }
  UniqueFd sessionFd(fds[0]);
  UniqueFd innerFd(fds[1]);
  auto inner = adopt(executor, std::move(innerFd), "socketpair for TLS to " + name);
  if (!inner.ok()) {
    co_return std::move(inner).error();
  }
  std::error_code ignored;
  connected.non_blocking(true, ignored);
  auto o = std::make_shared<Origination>(std::move(connected), std::move(*inner));
  o->tls.attach(std::move(ssl), TlsStream::Role::kClient);

  o->timer.expires_after(timeout);
  o->timer.async_wait([o](const std::error_code& ec) {
    if (!ec && o->handshaking) {
      o->timedOut = true;
      o->tls.cancel();
    }
  });
  const std::error_code hec = co_await o->tls.handshake();
  o->handshaking = false;
  o->timer.cancel();
  if (hec || o->timedOut) {
    std::string why =
        o->timedOut ? std::string("handshake timed out") : tls::upstreamFailureText(o->tls.ssl());
    if (why.empty()) {
      why = o->tls.failureText().empty() ? hec.message() : o->tls.failureText();
    }
    o->tls.close();
    co_return Error(EPROTO, why);
  }
  auto session = adopt(executor, std::move(sessionFd), "socketpair for TLS to " + name);
  if (!session.ok()) {
    o->tls.close();
    co_return std::move(session).error();
  }
  asio::co_spawn(executor, pump(o, linger), asio::detached);
  co_return std::move(session);
}

}  // namespace egressd::proxy
