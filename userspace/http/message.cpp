#include "http/message.h"

#include <cerrno>

#include "common/ascii.h"
#include "http/chars.h"

namespace egressd::http {
namespace {

bool isSafeHeader(const Header& header) {
  // CR, LF and NUL would end the header line early (or truncate it in C consumers).
  return isToken(header.name) && !detail::hasLineBreakOrNul(header.value);
}

bool isNamed(const Header& header, const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    if (fieldNameMatches(header.name, name)) {
      return true;
    }
  }
  return false;
}

void appendHeader(std::string& out, const Header& header) {
  out += header.name;
  out += ": ";
  out += header.value;
  out += "\r\n";
}

const Header* findHeader(const std::vector<Header>& headers, std::string_view name) {
  for (const Header& header : headers) {
    if (equalsIgnoreCase(header.name, name)) {
      return &header;
    }
  }
  return nullptr;
}

bool isHostNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_';
}

bool isIpv6LiteralChar(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' ||
         c == '.';
}

Result<uint16_t> parsePort(std::string_view digits, std::string_view whole) {
  if (digits.empty() || digits.size() > 5) {
    return Error(EINVAL, "invalid port in \"" + std::string(whole) + "\"");
  }
  uint32_t port = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') {
      return Error(EINVAL, "invalid port in \"" + std::string(whole) + "\"");
    }
    port = port * 10 + static_cast<uint32_t>(c - '0');
  }
  if (port == 0 || port > 65535) {
    return Error(EINVAL, "port out of range in \"" + std::string(whole) + "\"");
  }
  return static_cast<uint16_t>(port);
}

}  // namespace

bool fieldNameMatches(std::string_view name, std::string_view pattern) {
  auto fold = [](char c) {
    c = c == '_' ? '-' : c;
    return lowerAscii(c);
  };
  const bool prefix = !pattern.empty() && pattern.back() == '*';
  if (prefix) {
    pattern.remove_suffix(1);
    if (name.size() < pattern.size()) {
      return false;
    }
    name = name.substr(0, pattern.size());
  }
  if (name.size() != pattern.size()) {
    return false;
  }
  for (size_t i = 0; i < name.size(); ++i) {
    if (fold(name[i]) != fold(pattern[i])) {
      return false;
    }
  }
  return true;
}

bool isToken(std::string_view text) {
  if (text.empty()) {
    return false;
  }
  for (char c : text) {
    if (!detail::isTokenChar(c)) {
      return false;
    }
  }
  return true;
}

const Header* RequestHead::find(std::string_view name) const {
  return findHeader(headers, name);
}

const Header* ResponseHead::find(std::string_view name) const {
  return findHeader(headers, name);
}

std::vector<std::string_view> listElements(std::string_view value) {
  std::vector<std::string_view> elements;
  while (!value.empty()) {
    const size_t comma = value.find(',');
    std::string_view element = value.substr(0, comma);
    while (!element.empty() && (element.front() == ' ' || element.front() == '\t')) {
      element.remove_prefix(1);
    }
    while (!element.empty() && (element.back() == ' ' || element.back() == '\t')) {
      element.remove_suffix(1);
    }
    if (!element.empty()) {
      elements.push_back(element);
    }
    value = comma == std::string_view::npos ? std::string_view() : value.substr(comma + 1);
  }
  return elements;
}

std::string serializeRequestHead(const RequestHead& head, const std::vector<Header>& extraHeaders,
                                 const std::vector<std::string>& dropHeaders) {
  const std::string_view path = head.path.empty() ? std::string_view("/") : head.path;
  size_t size = head.method.size() + path.size() + 16;
  for (const Header& header : head.headers) {
    size += header.name.size() + header.value.size() + 4;
  }
  for (const Header& header : extraHeaders) {
    size += header.name.size() + header.value.size() + 4;
  }
  std::string out;
  out.reserve(size);
  out += head.method;
  out += ' ';
  out += path;
  out += head.versionMajor == 1 && head.versionMinor == 0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n";
  for (const Header& header : head.headers) {
    if (isSafeHeader(header) && !isNamed(header, dropHeaders)) {
      appendHeader(out, header);
    }
  }
  for (const Header& header : extraHeaders) {
    if (isSafeHeader(header)) {
      appendHeader(out, header);
    }
  }
  out += "\r\n";
  return out;
}

std::string buildResponse(int status, std::string_view body, const std::vector<Header>& headers,
                          bool keepAlive) {
  if (status < 100 || status > 999) {
    status = 500;
  }
  // RFC 9110 15.2, 15.3.5, 15.4.5: these never carry content.
  const bool bodyAllowed = status >= 200 && status != 204 && status != 304;
  const std::string_view reason = reasonPhrase(status);

  std::string out;
  out.reserve(128 + body.size() + headers.size() * 48);
  out += "HTTP/1.1 ";
  out += std::to_string(status);
  out += ' ';
  out += reason;
  out += "\r\n";
  bool hasContentType = false;
  for (const Header& header : headers) {
    if (!isSafeHeader(header) || equalsIgnoreCase(header.name, "Content-Length") ||
        equalsIgnoreCase(header.name, "Transfer-Encoding") ||
        equalsIgnoreCase(header.name, "Connection")) {
      continue;
    }
    hasContentType = hasContentType || equalsIgnoreCase(header.name, "Content-Type");
    appendHeader(out, header);
  }
  if (bodyAllowed) {
    if (!hasContentType) {
      out += "Content-Type: text/plain; charset=utf-8\r\n";
    }
    out += "Content-Length: ";
    out += std::to_string(body.size());
    out += "\r\n";
  }
  if (!keepAlive) {
    out += "Connection: close\r\n";
  }
  out += "\r\n";
  if (bodyAllowed) {
    out += body;
  }
  return out;
}

std::string_view reasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 102:
      return "Processing";
    case 103:
      return "Early Hints";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 203:
      return "Non-Authoritative Information";
    case 204:
      return "No Content";
    case 205:
      return "Reset Content";
    case 206:
      return "Partial Content";
    case 300:
      return "Multiple Choices";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 402:
      return "Payment Required";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 407:
      return "Proxy Authentication Required";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 417:
      return "Expectation Failed";
    case 421:
      return "Misdirected Request";
    case 422:
      return "Unprocessable Content";
    case 425:
      return "Too Early";
    case 426:
      return "Upgrade Required";
    case 428:
      return "Precondition Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 451:
      return "Unavailable For Legal Reasons";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    case 511:
      return "Network Authentication Required";
    default:
      return "";
  }
}

Result<Authority> parseAuthority(std::string_view text) {
  auto invalid = [&](std::string_view why) {
    return Error(EINVAL, "invalid authority \"" + std::string(text) + "\": " + std::string(why));
  };
  if (text.empty()) {
    return invalid("empty");
  }
  Authority authority;
  std::string_view hostPart;
  std::string_view rest;  // "" or ":port"
  if (text.front() == '[') {
    const size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return invalid("unterminated IPv6 literal");
    }
    hostPart = text.substr(1, close - 1);
    rest = text.substr(close + 1);
    if (hostPart.find(':') == std::string_view::npos) {
      return invalid("bracketed host is not an IPv6 address");
    }
    for (char c : hostPart) {
      if (!isIpv6LiteralChar(c)) {
        return invalid("bad character in IPv6 literal");
      }
    }
    authority.ipv6 = true;
  } else {
    const size_t colon = text.find(':');
    hostPart = text.substr(0, colon);
    rest = colon == std::string_view::npos ? std::string_view() : text.substr(colon);
    if (hostPart.empty()) {
      return invalid("empty host");
    }
    for (char c : hostPart) {
      if (!isHostNameChar(c)) {
        return invalid("bad character in host name");
      }
    }
    if (hostPart.back() == '.') {
      hostPart.remove_suffix(1);
    }
    // Empty labels ("a..b", ".a", ".") name nothing and only differ from real names in
    // ways a glob matcher might not expect.
    if (hostPart.empty() || hostPart.front() == '.' ||
        hostPart.find("..") != std::string_view::npos) {
      return invalid("empty label in host name");
    }
  }
  if (!rest.empty()) {
    if (rest.front() != ':') {
      return invalid("unexpected characters after the host");
    }
    auto port = parsePort(rest.substr(1), text);
    if (!port.ok()) {
      return std::move(port).error();
    }
    authority.port = *port;
  }
  authority.host.reserve(hostPart.size());
  for (char c : hostPart) {
    authority.host += lowerAscii(c);
  }
  return authority;
}

bool sameAuthority(std::string_view a, std::string_view b, uint16_t defaultPort) {
  auto left = parseAuthority(a);
  auto right = parseAuthority(b);
  if (!left.ok() || !right.ok()) {
    return false;
  }
  return left->host == right->host && left->ipv6 == right->ipv6 &&
         left->port.value_or(defaultPort) == right->port.value_or(defaultPort);
}

}  // namespace egressd::http
