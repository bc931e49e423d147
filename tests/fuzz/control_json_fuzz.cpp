// The control API's outside bytes (userspace/control): JSON request bodies as the server
// parses them, the typed field helpers every route reads them through, query strings and
// percent-encoded paths through the Router. Properties:
//   - control::parseJsonBody (server: 400 malformed_json; client: EPROTO) never throws,
//     and its error text has lost nlohmann's "[json.exception...]" prefix;
//   - a parsed body dumps and re-parses to an equal value;
//   - each field helper either returns what the body holds, with the type it promises, or
//     an error whose text reaches the client unchanged (invalidRequest -> errorMessage);
//   - a query string's values survive percentEncode -> percentDecode;
//   - routing any path answers 200, 400, 404 or 405; captured segments are non-empty and
//     re-encoding them routes to the same pattern with the same captures.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "control/api.h"
#include "control/wire.h"
#include "property.h"

namespace {

namespace control = egressd::control;
using nlohmann::json;

void check(bool condition, const char* what, const std::string& detail = "") {
  egressd::fuzz::check("control_json", condition, what, detail);
}

void checkError(const egressd::Error& error) {
  check(!error.message().empty(), "field error without text");
  const control::ApiResponse response = control::invalidRequest(error);
  check(response.status == 400, "invalidRequest is not a 400");
  check(control::errorMessage(response) == error.message(), "error text changed on the way");
}

const json* member(const json& body, const char* key) {
  if (!body.is_object()) {
    return nullptr;
  }
  auto it = body.find(key);
  return it == body.end() ? nullptr : &*it;
}

void checkFields(const json& body) {
  // Every key a daemon route reads (daemon/control_routes.cpp, sandbox_manager.cpp).
  for (const char* key : {"id", "policy", "cgroup", "netns", "createCgroup", "hosts", "host",
                          "byHost", "value", "yaml", "source", "handler", "params"}) {
    const json* value = member(body, key);
    auto s = control::stringField(body, key);
    if (s.ok()) {
      check(value != nullptr && value->is_string() && value->get<std::string>() == *s,
            "stringField returned what the body does not hold", key);
    } else {
      checkError(s.error());
    }
    auto o = control::optionalString(body, key);
    if (o.ok()) {
      check(o->has_value() ? (value != nullptr && value->is_string() && **o == *value)
                           : (value == nullptr || value->is_null()),
            "optionalString returned what the body does not hold", key);
    } else {
      checkError(o.error());
    }
    auto list = control::stringList(body, key);
    if (list.ok()) {
      check(value != nullptr && value->is_array() && value->size() == list->size(),
            "stringList returned what the body does not hold", key);
      for (size_t i = 0; i < list->size(); ++i) {
        check((*value)[i].is_string() && (*value)[i] == (*list)[i], "stringList item differs", key);
      }
    } else {
      checkError(list.error());
    }
    for (bool required : {false, true}) {
      auto object = control::objectField(body, key, required);
      if (object.ok()) {
        check(object->is_object() || (!required && object->is_null()),
              "objectField returned a non-object", key);
      } else {
        checkError(object.error());
      }
    }
    auto flag = control::boolField(body, key, true);
    if (flag.ok()) {
      check(value == nullptr || value->is_null() ? *flag : (value->is_boolean() && *value == *flag),
            "boolField returned what the body does not hold", key);
    } else {
      checkError(flag.error());
    }
  }
}

void checkQuery(std::string_view text) {
  auto query = control::parseQuery(text);
  if (!query.ok()) {
    check(!query.error().message().empty(), "query error without text");
    return;
  }
  for (const auto& [key, value] : *query) {
    auto back = control::percentDecode(control::percentEncode(value));
    check(back.ok() && *back == value, "percentEncode -> percentDecode changed a value", value);
  }
}

struct Routed {
  std::string pattern;
  std::map<std::string, std::string> params;
};

control::Router makeRouter(Routed& last) {
  control::Router router;
  for (const char* pattern :
       {"/v1/sandboxes", "/v1/sandboxes/{id}", "/v1/sandboxes/{id}/allowed-hosts/{host}",
        "/v1/policies/validate", "/v1/policies/{name}", "/v1/secrets/{name+}"}) {
    router.add("GET", pattern, [&last, pattern](const control::ApiRequest& request) {
      last.pattern = pattern;
      last.params = request.params;
      return control::ApiResponse{};
    });
  }
  return router;
}

void checkRoute(std::string_view text) {
  Routed last;
  const control::Router router = makeRouter(last);
  control::ApiRequest request;
  request.method = "GET";
  request.path = std::string(text.substr(0, text.find('?')));
  const control::ApiResponse response = router.dispatch(request);
  check(response.status == 200 || response.status == 400 || response.status == 404 ||
            response.status == 405,
        "unexpected routing status", std::to_string(response.status));
  if (response.status != 200) {
    return;
  }
  for (const auto& [name, value] : last.params) {
    check(!value.empty(), "empty capture", name);
  }
  // Rebuild the path from the captures, each percent-encoded (a {name+} capture keeps its
  // '/' separators), and route it again.
  std::string path;
  const std::string pattern = last.pattern;
  for (size_t i = 0; i < pattern.size();) {
    if (pattern[i] != '{') {
      path += pattern[i++];
      continue;
    }
    const size_t close = pattern.find('}', i);
    std::string name = pattern.substr(i + 1, close - i - 1);
    const bool rest = !name.empty() && name.back() == '+';
    if (rest) {
      name.pop_back();
    }
    const std::string& value = last.params.at(name);
    if (rest) {
      for (size_t start = 0; start <= value.size();) {
        size_t end = value.find('/', start);
        if (end == std::string::npos) {
          end = value.size();
        }
        path += control::percentEncode(std::string_view(value).substr(start, end - start));
        if (end < value.size()) {
          path += '/';
        }
        start = end + 1;
      }
    } else {
      path += control::percentEncode(value);
    }
    i = close + 1;
  }
  const std::map<std::string, std::string> params = last.params;
  request.path = path;
  const control::ApiResponse again = router.dispatch(request);
  check(again.status == 200 && last.pattern == pattern && last.params == params,
        "re-encoded captures route differently", path);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  egressd::fuzz::InputScope scope(data, size);
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  checkQuery(text);
  checkRoute(text);

  // As the server reads a body (and the client a response): parsed or EINVAL, never thrown.
  auto parsed = control::parseJsonBody(text);
  if (!parsed.ok()) {
    const std::string& message = parsed.error().message();
    check(!message.empty() && !message.starts_with("[json.exception"),
          "JSON error text empty or with nlohmann's prefix", message);
    checkFields(json());  // no body: required fields fail, optional ones default
    return 0;
  }
  const json& body = *parsed;
  const json again = json::parse(body.dump());
  check(again == body, "dump -> parse changes the body", body.dump());
  checkFields(body);
  return 0;
}
