// HTTP/1.1 message heads as the proxy sees them, and the bytes egressd itself writes: the
// request head re-serialized for the upstream (origin-form, normalized line endings) and
// complete local responses (deny pages, 4xx/5xx). Everything here is pure and allocation-light;
// the incremental parsers that fill these structs live in parser.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/ascii.h"
#include "common/result.h"

namespace egressd::http {

struct Header {
  std::string name;   // as sent (a validated token)
  std::string value;  // leading and trailing OWS (SP/HTAB) removed
};

// ASCII case-insensitive equality, the comparison HTTP uses for field names, methods' tokens
// in Connection, schemes and host names.
using egressd::equalsIgnoreCase;  // common/ascii.h

struct RequestHead {
  std::string method;     // "GET"
  std::string target;     // request-target as sent
  std::string authority;  // host[:port] of an absolute-form target ("http://a.b:8080/x")
  std::string path;       // origin-form to send upstream: "/x?y" ("*" for OPTIONS *)
  std::string host;       // the Host header value as sent (empty: none, HTTP/1.0 only)
  int versionMajor = 1, versionMinor = 1;
  std::vector<Header> headers;  // in order, as sent
  bool keepAlive = true;        // llhttp_should_keep_alive after the head
  bool chunked = false;
  std::optional<uint64_t> contentLength;
  bool hasBody = false;         // chunked or content-length > 0
  bool expectContinue = false;  // Expect: 100-continue
  bool upgrade = false;         // Connection: upgrade + Upgrade header present
  std::string upgradeProtocol;  // the Upgrade header value, e.g. "websocket", "h2c"

  const Header* find(std::string_view name) const;  // case-insensitive, first match
};

struct ResponseHead {
  int status = 0;
  int versionMajor = 1, versionMinor = 1;
  std::vector<Header> headers;
  bool keepAlive = true;

  bool informational() const { return status >= 100 && status < 200 && status != 101; }
  const Header* find(std::string_view name) const;  // case-insensitive, first match
};

// Whether a field name is what `pattern` names when dropping headers: ASCII case-insensitive,
// '_' equal to '-' (CGI-style servers map both to the same variable, so a sandbox's
// "X_Api_Key" would reach them as the X-Api-Key a handler set), and a pattern ending in '*'
// matches every name starting with the rest ("X-Egressd-*").
bool fieldNameMatches(std::string_view name, std::string_view pattern);

// The head to send upstream: "METHOD SP path SP HTTP/1.x CRLF", then the headers in order, CRLF.
// `dropHeaders` (names or prefixes as fieldNameMatches() reads them) applies to the client's
// headers only, so a caller can replace a header by dropping it and passing its own in
// `extraHeaders`, which are appended. An extra header whose name is not a token or whose value
// holds CR, LF or NUL is left out: handler-supplied values must never be able to start a new header
// line.
std::string serializeRequestHead(const RequestHead& head,
                                 const std::vector<Header>& extraHeaders = {},
                                 const std::vector<std::string>& dropHeaders = {});

// A complete response egressd itself writes. Adds Content-Length, Content-Type
// (text/plain; charset=utf-8 unless `headers` has one) and Connection: close when !keepAlive.
// Headers whose name is not a token or whose value holds CR/LF/NUL are dropped (no response
// splitting), as are caller-supplied Content-Length, Transfer-Encoding and Connection, which
// this function owns. 1xx, 204 and 304 get neither a body nor a Content-Length.
std::string buildResponse(int status, std::string_view body, const std::vector<Header>& headers,
                          bool keepAlive);

// "OK", "Not Found", ...; empty for codes without a registered phrase.
std::string_view reasonPhrase(int status);

// A Host header value or the authority of an absolute-form target, validated and normalized
// for comparison and policy matching.
struct Authority {
  std::string host;  // lowercase, trailing dot removed; IPv6 without brackets
  std::optional<uint16_t> port;
  bool ipv6 = false;
};

// Accepts "name", "name:port", "1.2.3.4:80", "[v6]:port". Names are restricted to letters,
// digits, '-', '.' and '_' (what DNS names and IPv4 literals use): anything else (userinfo,
// '*', '%', spaces, an empty or > 5 digit port) is rejected rather than passed to host-glob
// matching, where it could only surprise.
Result<Authority> parseAuthority(std::string_view text);

// Whether two authorities name the same origin: hosts compared case-insensitively and
// without a trailing dot, a missing port meaning `defaultPort`. Invalid input is never the same.
bool sameAuthority(std::string_view a, std::string_view b, uint16_t defaultPort);

// The elements of a comma-separated field value (RFC 9110 5.6.1), each trimmed of SP/HTAB,
// empty ones left out: "close, X-Hop" -> {"close", "X-Hop"}. Views into `value`.
std::vector<std::string_view> listElements(std::string_view value);

// True for a non-empty RFC 9110 token (field names, methods).
bool isToken(std::string_view text);

}  // namespace egressd::http
