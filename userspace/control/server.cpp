#include "control/server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>
#include <asio.hpp>

#include "common/fs.h"
#include "common/io_thread.h"
#include "common/unique_fd.h"
#include "common/unix_socket.h"
#include "control/wire.h"
#include "http/http.h"

namespace egressd::control {

namespace {

using Socket = asio::local::stream_protocol::socket;

// A connection may sit idle between requests (egressctl closes at once; a script holding a
// keep-alive connection gets this long), and a request or a response must move within it.
constexpr auto kIdleTimeout = std::chrono::seconds(60);
constexpr auto kLingerTimeout = std::chrono::seconds(2);
// Enough to swallow a client that sends a few MiB before it reads our 413.
constexpr size_t kMaxLingerBytes = 8 * 1024 * 1024;
// Chunked framing adds a few bytes per chunk; the decoded body is held to the 1 MiB limit.
constexpr size_t kMaxRawChunkedBytes = 2 * kMaxRequestBodyBytes;
constexpr int kListenBacklog = 64;
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);

std::string errorCodeForStatus(int status) {
  switch (status) {
    case 405:
      return "method_not_allowed";
    case 411:
      return "length_required";
    case 413:
      return "body_too_large";
    case 414:
      return "uri_too_long";
    case 431:
      return "headers_too_large";
    case 501:
      return "not_implemented";
    case 505:
      return "http_version_not_supported";
    default:
      return "bad_request";
  }
}

std::string serialize(const ApiResponse& response, bool keepAlive) {
  // replace: a handler echoing bytes that are not UTF-8 must not turn into an exception here.
  const std::string body =
      response.body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return http::buildResponse(response.status, body, {{"Content-Type", "application/json"}},
                             keepAlive);
}

// The peer's credentials; uid -1 (treated as not allowed) when they cannot be read. The pid
// is as this process's pid namespace sees the peer (0 when it cannot see it).
ucred peerCredentials(Socket& socket) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(socket.native_handle(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return ucred{0, static_cast<uid_t>(-1), static_cast<gid_t>(-1)};
  }
  return cred;
}

class Connection {
 public:
  Connection(Socket socket, std::shared_ptr<const Router> router, uid_t euid)
      : socket_(std::move(socket)),
        deadline_(socket_.get_executor()),
        router_(std::move(router)),
        euid_(euid) {}

  asio::awaitable<void> run() {
    const ucred peer = peerCredentials(socket_);
    const uid_t uid = peer.uid;
    if (uid != 0 && uid != euid_) {
      // Refused before parsing anything the peer sent: an unprivileged user gets no say in
      // what the parser or the router see.
      spdlog::warn("control API: refused a connection from uid {} (only uid 0 and {} may use it)",
                   static_cast<long>(uid), static_cast<long>(euid_));
      co_await finish(apiError(403, "forbidden",
                               "the egressd control API is for root only (peer uid " +
                                   std::to_string(static_cast<long>(uid)) + ")"));
      co_return;
    }
    for (;;) {
      arm(kIdleTimeout);
      std::optional<ApiRequest> request;
      bool keepAlive = true;
      std::optional<ApiResponse> failure;
      bool eof = false;
      co_await readRequest(request, keepAlive, failure, eof);
      if (eof) {
        break;
      }
      if (failure) {
        co_await finish(*failure);
        co_return;
      }
      request->peerUid = uid;
      request->peerPid = peer.pid;
      disarm();  // the handler's time is not the client's fault
      ApiResponse response;
      try {
        response = router_->dispatch(std::move(*request));
      } catch (const std::exception& e) {
        response = apiError(500, "internal", e.what());
      }
      if (!keepAlive) {
        co_await finish(response);
        co_return;
      }
      arm(kIdleTimeout);
      if (!co_await write(serialize(response, true))) {
        break;
      }
    }
    std::error_code ignored;
    deadline_.cancel();
    socket_.close(ignored);
  }

 private:
  // Closes the socket when the deadline passes; every blocked read or write then fails.
  void arm(std::chrono::steady_clock::duration timeout) {
    deadline_.expires_after(timeout);
    deadline_.async_wait([this](const std::error_code& ec) {
      if (!ec) {
        std::error_code ignored;
        socket_.close(ignored);
      }
    });
  }
  void disarm() { deadline_.cancel(); }

  asio::awaitable<bool> readMore() {
    std::error_code ec;
    size_t n = co_await socket_.async_read_some(asio::buffer(chunk_),
                                                asio::redirect_error(asio::use_awaitable, ec));
    if (ec) {
      co_return false;
    }
    buffer_.append(chunk_.data(), n);
    co_return true;
  }

  asio::awaitable<bool> write(const std::string& bytes) {
    std::error_code ec;
    co_await asio::async_write(socket_, asio::buffer(bytes),
                               asio::redirect_error(asio::use_awaitable, ec));
    co_return !ec;
  }

  // One request into `request`, or a response to send before closing into `failure`, or
  // `eof` when the peer went away (or idled out) between or in the middle of requests.
  asio::awaitable<void> readRequest(std::optional<ApiRequest>& request, bool& keepAlive,
                                    std::optional<ApiResponse>& failure, bool& eof) {
    http::ParseStep step;
    for (;;) {
      if (buffer_.empty() && !co_await readMore()) {
        eof = true;
        co_return;
      }
      step = parser_.feed(buffer_.data(), buffer_.size());
      buffer_.erase(0, step.consumed);
      if (step.kind == http::ParseStep::Kind::kError) {
        failure = apiError(step.status, errorCodeForStatus(step.status), step.reason);
        co_return;
      }
      if (step.kind == http::ParseStep::Kind::kHead) {
        break;
      }
    }
    const http::RequestHead& head = parser_.head();
    keepAlive = head.keepAlive && !head.upgrade;
    ApiRequest out;
    out.method = head.method;
    const std::string& target = head.path;
    const size_t question = target.find('?');
    out.path = target.substr(0, question);
    if (question != std::string::npos) {
      auto query = parseQuery(std::string_view(target).substr(question + 1));
      if (!query.ok()) {
        failure = apiError(400, "bad_request", query.error().message());
        co_return;
      }
      out.query = std::move(query).value();
    }
    if (head.contentLength && *head.contentLength > kMaxRequestBodyBytes) {
      failure = apiError(413, "body_too_large",
                         "request body of " + std::to_string(*head.contentLength) +
                             " bytes is over the limit of " + std::to_string(kMaxRequestBodyBytes) +
                             " bytes");
      co_return;
    }
    const bool chunked = head.chunked;
    if (!step.endsMessage && head.expectContinue) {
      if (!co_await write("HTTP/1.1 100 Continue\r\n\r\n")) {
        eof = true;
        co_return;
      }
    }
    std::string raw;
    while (!step.endsMessage && step.kind != http::ParseStep::Kind::kMessageEnd) {
      if (buffer_.empty() && !co_await readMore()) {
        eof = true;
        co_return;
      }
      step = parser_.feed(buffer_.data(), buffer_.size());
      if (step.kind == http::ParseStep::Kind::kError) {
        failure = apiError(step.status, errorCodeForStatus(step.status), step.reason);
        co_return;
      }
      raw.append(buffer_, 0, step.consumed);
      buffer_.erase(0, step.consumed);
      if (raw.size() > (chunked ? kMaxRawChunkedBytes : kMaxRequestBodyBytes)) {
        failure = apiError(
            413, "body_too_large",
            "request body is over the limit of " + std::to_string(kMaxRequestBodyBytes) + " bytes");
        co_return;
      }
    }
    if (chunked) {
      auto decoded = decodeChunked(raw);
      if (!decoded.ok()) {
        failure = apiError(400, "bad_request", decoded.error().message());
        co_return;
      }
      if (decoded->size() > kMaxRequestBodyBytes) {
        failure = apiError(413, "body_too_large",
                           "request body of " + std::to_string(decoded->size()) +
                               " bytes is over the limit of " +
                               std::to_string(kMaxRequestBodyBytes) + " bytes");
        co_return;
      }
      raw = std::move(decoded).value();
    }
    if (!raw.empty()) {
      auto body = parseJsonBody(raw);
      if (!body.ok()) {
        failure = apiError(400, "malformed_json",
                           "request body is not valid JSON: " + body.error().message());
        co_return;
      }
      out.body = std::move(body).value();
    }
    request = std::move(out);
  }

  // Sends a last response, then closes gracefully: closing with unread request bytes (an
  // oversized body we refused, a pipelined request) can make the client's write fail before
  // it reads our answer. Half-close, then discard what still comes, bounded in time and size.
  asio::awaitable<void> finish(const ApiResponse& response) {
    arm(kIdleTimeout);
    if (co_await write(serialize(response, false))) {
      std::error_code ec;
      socket_.shutdown(asio::socket_base::shutdown_send, ec);
      arm(kLingerTimeout);
      size_t discarded = 0;
      while (!ec && discarded < kMaxLingerBytes) {
        discarded += co_await socket_.async_read_some(
            asio::buffer(chunk_), asio::redirect_error(asio::use_awaitable, ec));
      }
    }
    std::error_code ignored;
    deadline_.cancel();
    socket_.close(ignored);
  }

  Socket socket_;
  asio::steady_timer deadline_;
  std::shared_ptr<const Router> router_;
  uid_t euid_;
  http::RequestParser parser_;
  std::string buffer_;  // received, not yet consumed by the parser
  std::array<char, 16 * 1024> chunk_{};
};

asio::awaitable<void> serve(Socket socket, std::shared_ptr<const Router> router, uid_t euid) {
  // The coroutine frame owns the connection, so the timer's callback (which captures it)
  // can never outlive it: destroying the timer cancels the wait first.
  Connection connection(std::move(socket), std::move(router), euid);
  co_await connection.run();
}

asio::awaitable<void> acceptLoop(asio::local::stream_protocol::acceptor& acceptor,
                                 std::shared_ptr<const Router> router, uid_t euid) {
  auto executor = co_await asio::this_coro::executor;
  for (;;) {
    std::error_code ec;
    auto socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
    if (ec == asio::error::operation_aborted || !acceptor.is_open()) {
      co_return;
    }
    if (ec) {
      // Out of descriptors or memory: back off instead of spinning, then keep serving.
      spdlog::warn("control API: accept failed: {}", ec.message());
      asio::steady_timer pause(executor, kAcceptRetryDelay);
      co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;
    }
    asio::co_spawn(executor, serve(std::move(socket), router, euid), asio::detached);
  }
}

std::string modeText(mode_t mode) {
  std::array<char, 8> buf{};
  std::snprintf(buf.data(), buf.size(), "%04o", static_cast<unsigned>(mode & 07777));
  return buf.data();
}

// Whoever can write the socket's directory can replace the socket with their own and collect
// the requests (secrets included) that egressctl sends: only the daemon's uid may.
Status checkSocketDirectory(const std::string& dir) {
  if (!pathExists(dir)) {
    EGRESSD_TRY(makeDirs(dir, 0755));
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    return lastSystemError("stat control socket directory " + dir);
  }
  if (!S_ISDIR(st.st_mode)) {
    return Error(ENOTDIR, "control socket directory " + dir + " is not a directory");
  }
  const uid_t euid = ::geteuid();
  if (st.st_uid != euid) {
    return Error(EPERM, "control socket directory " + dir + " is owned by uid " +
                            std::to_string(st.st_uid) + ", not by egressd's uid " +
                            std::to_string(euid) + "; its owner could replace the socket");
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Error(EPERM, "control socket directory " + dir +
                            " is writable by group or others (mode " + modeText(st.st_mode) +
                            "); they could replace the socket: use a directory with mode 0755 "
                            "or stricter");
  }
  return okStatus();
}

}  // namespace

struct ControlServer::Impl {
  asio::io_context io{1};  // first member: destroyed last, after everything using it
  std::optional<asio::local::stream_protocol::acceptor> acceptor;
  std::string path;
  dev_t dev = 0;
  ino_t ino = 0;
  std::thread thread;
};

ControlServer::ControlServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<ControlServer>> ControlServer::start(const std::string& socketPath,
                                                            std::shared_ptr<const Router> router) {
  if (!router) {
    return Error(EINVAL, "control server on " + socketPath + ": no router");
  }
  std::string dir = std::filesystem::path(socketPath).parent_path().string();
  EGRESSD_TRY(checkSocketDirectory(dir.empty() ? "." : dir));
  auto listening = listenOnUnixSocket(socketPath, "control socket", kListenBacklog);
  if (!listening.ok()) {
    if (listening.error().code() == EADDRINUSE) {
      return Error(EADDRINUSE, "another egressd already serves " + socketPath);
    }
    return listening.error();
  }
  UniqueFd fd = std::move(listening.value());
  struct stat st {};
  if (::lstat(socketPath.c_str(), &st) != 0) {
    Error err = lastSystemError("stat control socket " + socketPath);
    ::unlink(socketPath.c_str());
    return err;
  }

  auto impl = std::make_unique<Impl>();
  impl->path = socketPath;
  impl->dev = st.st_dev;
  impl->ino = st.st_ino;
  std::error_code ec;
  impl->acceptor.emplace(impl->io);
  impl->acceptor->assign(asio::local::stream_protocol(), fd.get(), ec);
  if (ec) {
    ::unlink(socketPath.c_str());
    return systemError(ec.value(), "adopt control socket " + socketPath);
  }
  fd.release();  // the acceptor owns it now
  asio::co_spawn(impl->io, acceptLoop(*impl->acceptor, std::move(router), ::geteuid()),
                 asio::detached);
  impl->thread = startIoThread(impl->io, "control API server");
  return std::unique_ptr<ControlServer>(new ControlServer(std::move(impl)));
}

const std::string& ControlServer::socketPath() const {
  return impl_->path;
}

ControlServer::~ControlServer() {
  impl_->io.stop();
  impl_->thread.join();
  impl_->acceptor.reset();
  struct stat st {};
  if (::lstat(impl_->path.c_str(), &st) == 0 && st.st_dev == impl_->dev &&
      st.st_ino == impl_->ino) {
    ::unlink(impl_->path.c_str());
  }
}

}  // namespace egressd::control
