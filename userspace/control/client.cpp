#include "control/client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <utility>

#include "common/unique_fd.h"
#include "control/wire.h"
#include "http/http.h"

namespace egressd::control {

namespace {

// Far above any answer the API gives (audit tails included); a peer streaming more than
// this is not egressd.
constexpr size_t kMaxResponseBytes = 64 * 1024 * 1024;

bool validPath(std::string_view path) {
  if (!path.starts_with('/')) {
    return false;
  }
  for (char c : path) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte <= 0x20 || byte >= 0x7f) {
      return false;
    }
  }
  return true;
}

}  // namespace

ControlClient::ControlClient(std::string socketPath, std::chrono::milliseconds timeout)
    : socketPath_(std::move(socketPath)), timeout_(timeout) {}

Result<ApiResponse> ControlClient::call(const std::string& method, const std::string& path,
                                        const nlohmann::json& body) const {
  if (!http::isToken(method)) {
    return Error(EINVAL, "invalid HTTP method '" + method + "'");
  }
  if (!validPath(path)) {
    return Error(EINVAL, "invalid API path '" + path +
                             "' (must start with '/', no spaces or control characters: "
                             "percent-encode path segments)");
  }
  std::string out = method + " " + path +
                    " HTTP/1.1\r\nHost: egressd\r\nAccept: application/json\r\n"
                    "Connection: close\r\n";
  if (!body.is_null()) {
    std::string text;
    try {
      text = body.dump();
    } catch (const nlohmann::json::exception& e) {
      // Invalid UTF-8 in a string: refusing beats silently altering (say) a secret value.
      return Error(EINVAL, "request body cannot be sent as JSON: " + jsonErrorText(e.what()));
    }
    out += "Content-Type: application/json\r\nContent-Length: " + std::to_string(text.size()) +
           "\r\n\r\n" + text;
  } else if (method == "POST" || method == "PUT" || method == "PATCH") {
    out += "Content-Length: 0\r\n\r\n";
  } else {
    out += "\r\n";
  }

  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socketPath_.empty() || socketPath_.size() >= sizeof(addr.sun_path)) {
    return Error(ENAMETOOLONG, "cannot connect to " + socketPath_ + ": socket path must be 1 to " +
                                   std::to_string(sizeof(addr.sun_path) - 1) + " bytes long");
  }
  socketPath_.copy(addr.sun_path, socketPath_.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    return lastSystemError("create a socket to connect to " + socketPath_);
  }
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Error(errno, "cannot connect to " + socketPath_ + ": " +
                            std::generic_category().message(errno) +
                            " (is the egressd daemon running?)");
  }
  // Non-blocking from here: one poll loop sends and receives, so an early answer (413 for a
  // body that is too large) is read even while the server has stopped reading our request.
  const int flags = ::fcntl(fd.get(), F_GETFL);
  if (flags < 0 || ::fcntl(fd.get(), F_SETFL, flags | O_NONBLOCK) != 0) {
    return lastSystemError("set O_NONBLOCK on the socket to " + socketPath_);
  }

  const auto deadline = std::chrono::steady_clock::now() + timeout_;
  http::ResponseParser parser;
  parser.expectResponseTo(method);
  size_t sent = 0;
  bool writing = true;
  bool done = false;
  bool chunked = false;
  ApiResponse response;
  std::string pending;  // received, not yet consumed by the parser
  std::string raw;      // the final response's body bytes as sent
  std::array<char, 16 * 1024> buffer;

  while (!done) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      const auto ms = timeout_.count();
      return Error(ETIMEDOUT, "no complete answer from " + socketPath_ + " within " +
                                  (ms % 1000 == 0 ? std::to_string(ms / 1000) + " s"
                                                  : std::to_string(ms) + " ms"));
    }
    pollfd pfd{fd.get(), static_cast<short>(POLLIN | (writing ? POLLOUT : 0)), 0};
    int ready = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (ready < 0) {
      if (errno == EINTR) {
        continue;
      }
      return lastSystemError("poll the connection to " + socketPath_);
    }
    if (ready == 0) {
      continue;  // the deadline check above ends it
    }
    if (writing && (pfd.revents & POLLOUT) != 0) {
      ssize_t n = ::send(fd.get(), out.data() + sent, out.size() - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<size_t>(n);
        writing = sent < out.size();
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        if (errno != EPIPE && errno != ECONNRESET) {
          return lastSystemError("send the request to " + socketPath_);
        }
        writing = false;  // the server stopped reading; its answer may already be here
      }
    }
    if ((pfd.revents & (POLLIN | POLLHUP | POLLERR)) == 0) {
      continue;
    }
    ssize_t n = ::recv(fd.get(), buffer.data(), buffer.size(), 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) {
        continue;
      }
      return lastSystemError("read the answer from " + socketPath_);
    }
    if (n == 0) {
      if (response.status != 0 && parser.finishAtEof()) {
        break;
      }
      return Error(EPROTO, socketPath_ + " closed the connection before a complete response");
    }
    pending.append(buffer.data(), static_cast<size_t>(n));
    while (!pending.empty() && !done) {
      http::ParseStep step = parser.feed(pending.data(), pending.size());
      switch (step.kind) {
        case http::ParseStep::Kind::kError:
          return Error(EPROTO,
                       socketPath_ + " answered with a malformed HTTP response: " + step.reason);
        case http::ParseStep::Kind::kHead:
          if (!parser.head().informational()) {
            response.status = parser.head().status;
            const http::Header* te = parser.head().find("Transfer-Encoding");
            chunked = te != nullptr;
            done = step.endsMessage;
          }
          break;
        case http::ParseStep::Kind::kBody:
          raw.append(pending, 0, step.consumed);
          break;
        case http::ParseStep::Kind::kMessageEnd:
          raw.append(pending, 0, step.consumed);
          done = true;
          break;
        case http::ParseStep::Kind::kNeedMore:
          break;
      }
      pending.erase(0, step.consumed);
      if (step.consumed == 0) {
        break;
      }
    }
    if (raw.size() > kMaxResponseBytes) {
      return Error(EMSGSIZE, socketPath_ + " sent a response over " +
                                 std::to_string(kMaxResponseBytes) + " bytes");
    }
  }

  if (chunked) {
    auto decoded = decodeChunked(raw);
    if (!decoded.ok()) {
      return std::move(decoded).error().wrap("response from " + socketPath_);
    }
    raw = std::move(decoded).value();
  }
  if (raw.empty()) {
    response.body = nlohmann::json::object();
    return response;
  }
  auto parsedBody = parseJsonBody(raw);
  if (!parsedBody.ok()) {
    return Error(EPROTO, socketPath_ + " answered HTTP " + std::to_string(response.status) +
                             " with a body that is not JSON (" + parsedBody.error().message() +
                             "): " + raw.substr(0, 200));
  }
  response.body = std::move(parsedBody).value();
  return response;
}

}  // namespace egressd::control
