// `when:` / `unless:` conditions of handler actions (handlers::Condition, from policy YAML
// or control API JSON) and the request paths they are matched against. The input is tried
// as a JSON condition spec; its bytes are also a request path and, split at the first NUL,
// a glob pattern and a path. Properties:
//   - Condition::parse returns a Result for any JSON (no exception, no crash);
//   - a parsed condition judges a request the same way whatever dot segments or encoded
//     unreserved characters stand for the same path ("/x/../p", "/./p", "%61" for "a"):
//     otherwise a sandbox could dodge a path rule by spelling;
//   - on an origin-form path ("/..."), normalizePathForMatching decodes once (a result
//     without escapes is a fixed point), grows the path by at most one byte and leaves no
//     "." or ".." segment;
//   - pathGlobMatches: "*" matches everything, a pattern without '*' matches exactly
//     itself, and matching terminates (libFuzzer's -timeout catches a blow-up).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "handlers/condition.h"
#include "http/message.h"
#include "property.h"

namespace {

namespace handlers = egressd::handlers;
using egressd::http::RequestHead;

void check(bool condition, const char* what, const std::string& detail = "") {
  egressd::fuzz::check("handler_condition", condition, what, detail);
}

RequestHead request(std::string method, std::string path) {
  RequestHead head;
  head.method = std::move(method);
  head.path = std::move(path);
  head.target = head.path;
  head.host = "api.test";
  head.headers = {{"Host", "api.test"}, {"X-Tenant", "t1"}, {"Authorization", "Bearer x"}};
  return head;
}

bool hasDotSegment(std::string_view path) {
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) {
      end = path.size();
    }
    const std::string_view segment = path.substr(start, end - start);
    if (segment == "." || segment == "..") {
      return true;
    }
    start = end + 1;
  }
  return false;
}

void checkPath(std::string_view path) {
  const std::string once = handlers::normalizePathForMatching(path);
  const std::string twice = handlers::normalizePathForMatching(once);
  // One decoding pass, as an origin does: "%2%46" becomes "%2F" and stays so. Only a
  // result without escapes must be a fixed point.
  if (once.find('%') == std::string::npos) {
    check(once == twice, "normalizePathForMatching changes its own output", once + " -> " + twice);
  }
  check(once.size() <= path.size() + 1, "normalized path grew", once);
  const std::string_view withoutQuery = std::string_view(once).substr(0, once.find('?'));
  check(!hasDotSegment(withoutQuery), "dot segment left after normalization", once);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  egressd::fuzz::InputScope scope(data, size);
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  if (text.starts_with("/")) {  // request paths are origin-form (the parser sees to it)
    checkPath(text);
  }
  const size_t nul = text.find('\0');
  if (nul != std::string_view::npos) {
    const std::string_view pattern = text.substr(0, nul);
    const std::string_view path = text.substr(nul + 1);
    const bool matches = handlers::pathGlobMatches(pattern, path);
    if (pattern.find('*') == std::string_view::npos) {
      check(matches == (pattern == path), "a pattern without '*' is not an exact match");
    }
    check(handlers::pathGlobMatches("*", path), "\"*\" does not match everything");
  }

  const nlohmann::json spec = nlohmann::json::parse(text, nullptr, false);
  if (spec.is_discarded()) {
    return 0;
  }
  auto condition = handlers::Condition::parse(spec);
  if (!condition.ok()) {
    check(!condition.error().message().empty(), "condition error without text");
    return 0;
  }
  // The path the condition names (if a string), and request paths spelled several ways.
  std::vector<std::string> paths = {"/", "/v1/items", "/admin"};
  if (spec.is_object() && spec.contains("path") && spec["path"].is_string()) {
    std::string path = spec["path"].get<std::string>();
    if (!path.empty() && path.front() == '/') {
      for (char& c : path) {
        c = c == '*' ? 'z' : c;
      }
      paths.push_back(path);
    }
  }
  for (const std::string& path : paths) {
    for (const char* method : {"GET", "POST", "DELETE"}) {
      const bool plain = condition->matches(request(method, path));
      check(condition->matches(request(method, "/x/.." + path)) == plain,
            "\"/x/..\" prefix changes the decision", path);
      check(condition->matches(request(method, "/." + path)) == plain,
            "\"/.\" prefix changes the decision", path);
      if (path.find('%') != std::string::npos) {
        continue;  // an 'a' may be a hex digit of an escape there
      }
      std::string encoded;
      for (char c : path) {
        if (c == 'a') {
          encoded += "%61";
        } else {
          encoded += c;
        }
      }
      check(condition->matches(request(method, encoded)) == plain,
            "percent-encoded 'a' changes the decision", encoded);
    }
  }
  return 0;
}
