// The control API's vocabulary, independent of any socket: requests and responses as the
// daemon's route handlers see them, the uniform error body, the router that maps
// "METHOD /v1/..." to a handler with its path captures, and typed access to JSON bodies.
//
// Error bodies always have one shape, so egressctl (and scripts) can print `message` and
// branch on `code`:
//   {"error": {"status": 400, "code": "invalid_request", "message": "field 'hosts' ..."}}
// Everything here is pure; the transport lives in server.h / client.h.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace egressd::control {

inline constexpr const char* kDefaultSocket = "/run/egressd/egressd.sock";

struct ApiRequest {
  std::string method;                         // "GET", "POST", "PUT", "DELETE"
  std::string path;                           // raw path without query
  std::map<std::string, std::string> params;  // route captures, percent-decoded
  std::map<std::string, std::string> query;   // percent-decoded
  nlohmann::json body;                        // null when the request had no body
  uid_t peerUid = 0;
  pid_t peerPid = 0;  // SO_PEERCRED, in the daemon's pid namespace; 0 = unknown
};

struct ApiResponse {
  int status = 200;
  nlohmann::json body = nlohmann::json::object();

  bool ok() const { return status >= 200 && status < 300; }
};

// {"error": {"status": 400, "code": "unknown_handler", "message": "..."}}
ApiResponse apiError(int status, std::string code, std::string message);
// 400 "invalid_request" carrying an Error's message: what the field helpers below return
// goes to the client as is.
ApiResponse invalidRequest(const Error& error);

// The message of an error body, or "HTTP status N" (plus the body) when the body is not one.
std::string errorMessage(const ApiResponse& response);

using RouteHandler = std::function<ApiResponse(const ApiRequest&)>;

class Router {
 public:
  // pattern: "/v1/sandboxes/{id}/allowed-hosts/{host}"; a last capture "{name+}" takes the
  // rest of the path (may contain '/'). Captures match non-empty segments only. When several
  // patterns match a path, the one with more literal segments wins ("/v1/policies/validate"
  // over "/v1/policies/{name}"), then the first added.
  void add(std::string method, const std::string& pattern, RouteHandler handler);

  // 404 not_found (no pattern matches the path), 405 method_not_allowed (path matches,
  // method does not; "Allow" listed in the message), 400 malformed_path (a capture with bad
  // percent-encoding or an encoded NUL). Exceptions thrown by a handler (nlohmann::json
  // errors included) -> 500 internal with e.what().
  ApiResponse dispatch(ApiRequest request) const;

 private:
  struct Segment {
    enum class Kind { kLiteral, kCapture, kRest };
    Kind kind;
    std::string text;  // literal text, or the capture's name
  };
  struct Route {
    std::string method;
    std::string pattern;
    std::vector<Segment> segments;
    size_t literals = 0;
    RouteHandler handler;
  };
  std::vector<Route> routes_;
};

// Path segments: unreserved characters (A-Z a-z 0-9 - . _ ~) are kept, every other byte
// becomes %XX. Use it for each host, name or id put into a path ('*' -> %2A, '/' -> %2F).
std::string percentEncode(std::string_view segment);
// %XX -> byte. With `plusIsSpace` (query strings) '+' decodes to ' '. Fails on a '%' not
// followed by two hex digits and on a NUL, encoded or raw.
Result<std::string> percentDecode(std::string_view text, bool plusIsSpace = false);
// "lines=20&sandbox=sb1" -> {lines: 20, sandbox: sb1}; keys and values percent-decoded, a key
// without '=' maps to "", a repeated key keeps its last value.
Result<std::map<std::string, std::string>> parseQuery(std::string_view query);

// Typed access to a JSON body with messages a person can act on:
// "field 'hosts' must be an array of strings". Result-returning, no exceptions. A body that
// is not a JSON object fails with "request body must be a JSON object ..."; a missing body
// (null) fails only for required fields (stringField, stringList, required objectField).
Result<std::string> stringField(const nlohmann::json& body, std::string_view key);  // required
// Absent or null -> nullopt.
Result<std::optional<std::string>> optionalString(const nlohmann::json& body, std::string_view key);
// Required; an empty array is a valid value.
Result<std::vector<std::string>> stringList(const nlohmann::json& body, std::string_view key);
// Absent or null and not `required` -> a null json (callers pick their default).
Result<nlohmann::json> objectField(const nlohmann::json& body, std::string_view key, bool required);
// Absent or null -> `fallback`.
Result<bool> boolField(const nlohmann::json& body, std::string_view key, bool fallback);

}  // namespace egressd::control
