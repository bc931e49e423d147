#include "handlers/reroute.h"

#include <sys/un.h>

#include <cerrno>
#include <optional>

#include "common/ascii.h"
#include "handlers/text.h"
#include "http/message.h"

namespace egressd::handlers {
namespace {

bool startsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

}  // namespace

std::string RerouteTarget::text() const {
  if (kind == Kind::kUnix) {
    return "unix:" + path;
  }
  const bool v6 = host.find(':') != std::string::npos;
  return std::string(kind == Kind::kTls ? "https://" : "http://") + (v6 ? "[" : "") + host +
         (v6 ? "]" : "") + ":" + std::to_string(port);
}

Result<RerouteTarget> parseRerouteTarget(std::string_view text) {
  const std::string subject = "upstream " + detail::quoted(text);
  RerouteTarget target;
  if (startsWith(text, "unix:")) {
    target.kind = RerouteTarget::Kind::kUnix;
    target.path.assign(text.substr(5));
    // The daemon's working directory is arbitrary: a relative path would depend on it.
    if (target.path.empty() || target.path.front() != '/') {
      return Error(EINVAL, subject + " must be an absolute path");
    }
    if (target.path.find('\0') != std::string::npos) {
      return Error(EINVAL, subject + " holds a NUL byte");
    }
    if (target.path.size() >= sizeof(sockaddr_un::sun_path)) {
      return Error(EINVAL, subject + " is longer than a unix socket path can be (" +
                               std::to_string(sizeof(sockaddr_un::sun_path) - 1) + " bytes)");
    }
    return target;
  }

  std::string_view authority = text;
  std::optional<uint16_t> defaultPort;
  if (const size_t scheme = text.find("://"); scheme != std::string_view::npos) {
    const std::string_view name = text.substr(0, scheme);
    if (equalsIgnoreCase(name, "http")) {
      target.kind = RerouteTarget::Kind::kTcp;
      defaultPort = 80;
    } else if (equalsIgnoreCase(name, "https")) {
      target.kind = RerouteTarget::Kind::kTls;
      defaultPort = 443;
    } else {
      return Error(EINVAL, subject + ": unsupported scheme '" + std::string(name) +
                               "' (expected http://, https://, unix:/path or host:port)");
    }
    authority = text.substr(scheme + 3);
    if (!authority.empty() && authority.back() == '/') {
      authority.remove_suffix(1);
    }
    if (authority.find('/') != std::string_view::npos) {
      return Error(EINVAL, subject + " has a path; a reroute keeps the request's own path");
    }
  }
  if (authority.empty()) {
    return Error(EINVAL, subject + " has no host");
  }
  if (authority.find('@') != std::string_view::npos) {
    return Error(EINVAL, subject + " has userinfo; use setHeader for credentials");
  }
  auto parsed = http::parseAuthority(authority);
  if (!parsed.ok()) {
    return Error(EINVAL, subject + ": " + parsed.error().message());
  }
  if (!parsed->port && !defaultPort) {
    return Error(EINVAL, subject + " needs a port (host:port) or a scheme (http://, https://)");
  }
  target.host = parsed->host;
  target.port = parsed->port.value_or(defaultPort.value_or(0));
  return target;
}

}  // namespace egressd::handlers
