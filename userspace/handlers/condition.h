// `when:` / `unless:` conditions of handler actions: method, path and header tests on the
// request as the client sent it (earlier setHeader/removeHeader actions do not change what
// later conditions see, so a chain reads top to bottom without hidden state).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/result.h"
#include "http/message.h"

namespace egressd::handlers {

class Condition {
 public:
  // {method: GET | [GET, HEAD], path: "/v1/*" | "/v1/", header: NAME | {name, equals} |
  //  {name, present: bool}}; every key written must hold. Errors (EINVAL) name the key:
  // "method: \"GE T\" is not an HTTP method token".
  static Result<Condition> parse(const nlohmann::json& spec);

  bool matches(const http::RequestHead& request) const;

 private:
  struct HeaderTest {
    std::string name;
    std::optional<std::string> equals;
    bool present = true;
  };

  std::vector<std::string> methods_;  // empty: any method
  std::optional<std::string> path_;
  bool pathIsGlob_ = false;
  std::optional<HeaderTest> header_;
};

// The path a condition is matched against: the query dropped, percent-encoded unreserved
// characters decoded ("%61" -> "a", "%2e" -> ".") and dot segments removed (RFC 3986 5.2.4),
// so "/public/../admin" and "/%61dmin" are judged as the "/admin" an origin server would
// serve. Other escapes ("%2F") stay encoded, with their hex digits uppercased.
std::string normalizePathForMatching(std::string_view path);

// '*' matches any sequence, '/' included; everything else itself (case-sensitive).
// Iterative with one backtrack point: O(|pattern| * |path|) at worst.
bool pathGlobMatches(std::string_view pattern, std::string_view path);

}  // namespace egressd::handlers
