#include "control/api.h"

#include <algorithm>
#include <cerrno>
#include <exception>
#include <stdexcept>
#include <utility>

#include "common/ascii.h"

namespace egressd::control {

namespace {

std::string quoted(std::string_view key) {
  return "'" + std::string(key) + "'";
}

// What a JSON value is, in words for error messages ("a number", "null").
std::string describe(const nlohmann::json& value) {
  switch (value.type()) {
    case nlohmann::json::value_t::null:
      return "null";
    case nlohmann::json::value_t::boolean:
      return "a boolean";
    case nlohmann::json::value_t::number_integer:
    case nlohmann::json::value_t::number_unsigned:
    case nlohmann::json::value_t::number_float:
      return "a number";
    case nlohmann::json::value_t::string:
      return "a string";
    case nlohmann::json::value_t::array:
      return "an array";
    case nlohmann::json::value_t::object:
      return "an object";
    default:
      return "not a JSON value";
  }
}

// Optional fields may come with no body at all (null); required ones need an object.
Status requireObject(const nlohmann::json& body, std::string_view key, std::string_view what,
                     bool required = true) {
  if (body.is_object() || (body.is_null() && !required)) {
    return okStatus();
  }
  return Error(EINVAL, "request body must be a JSON object with field " + quoted(key) + " (" +
                           std::string(what) + "), not " + describe(body));
}

// The value under `key`, or nullptr when absent or JSON null (both mean "not given").
const nlohmann::json* find(const nlohmann::json& body, std::string_view key) {
  if (!body.is_object()) {
    return nullptr;
  }
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) {
    return nullptr;
  }
  return &*it;
}

Error missing(std::string_view key, std::string_view what) {
  return Error(EINVAL, "missing field " + quoted(key) + " (" + std::string(what) + ")");
}

Error wrongType(std::string_view key, std::string_view what, const nlohmann::json& value) {
  return Error(EINVAL, "field " + quoted(key) + " must be " + std::string(what) + ", not " +
                           describe(value));
}

std::vector<std::string_view> splitPath(std::string_view path) {
  std::vector<std::string_view> out;
  if (path.starts_with('/')) {
    path.remove_prefix(1);
  }
  for (;;) {
    size_t slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) {
      return out;
    }
    path.remove_prefix(slash + 1);
  }
}

}  // namespace

ApiResponse apiError(int status, std::string code, std::string message) {
  ApiResponse response;
  response.status = status;
  response.body = {
      {"error", {{"status", status}, {"code", std::move(code)}, {"message", std::move(message)}}}};
  return response;
}

ApiResponse invalidRequest(const Error& error) {
  return apiError(400, "invalid_request", error.message());
}

std::string errorMessage(const ApiResponse& response) {
  const nlohmann::json& body = response.body;
  if (body.is_object()) {
    auto error = body.find("error");
    if (error != body.end() && error->is_object()) {
      auto message = error->find("message");
      if (message != error->end() && message->is_string()) {
        return message->get<std::string>();
      }
    }
  }
  std::string text = "HTTP status " + std::to_string(response.status);
  if (!body.is_null() && !(body.is_object() && body.empty())) {
    text += ": " + body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  }
  return text;
}

void Router::add(std::string method, const std::string& pattern, RouteHandler handler) {
  Route route;
  route.method = std::move(method);
  route.pattern = pattern;
  route.handler = std::move(handler);
  std::vector<std::string_view> parts = splitPath(pattern);
  for (size_t i = 0; i < parts.size(); ++i) {
    std::string_view part = parts[i];
    if (part.size() >= 2 && part.front() == '{' && part.back() == '}') {
      std::string_view name = part.substr(1, part.size() - 2);
      if (name.ends_with('+')) {
        // Only a last capture can take "the rest": anything after it could never match.
        if (i + 1 != parts.size()) {
          throw std::invalid_argument("route " + pattern + ": {" + std::string(name) +
                                      "} must be the last segment");
        }
        name.remove_suffix(1);
        route.segments.push_back({Segment::Kind::kRest, std::string(name)});
      } else {
        route.segments.push_back({Segment::Kind::kCapture, std::string(name)});
      }
    } else {
      route.segments.push_back({Segment::Kind::kLiteral, std::string(part)});
      ++route.literals;
    }
  }
  routes_.push_back(std::move(route));
}

ApiResponse Router::dispatch(ApiRequest request) const {
  const std::vector<std::string_view> parts = splitPath(request.path);
  // Raw (still encoded) captures: decoding happens only for the route that is chosen, so a
  // bad escape in a path no route wants still gets a plain 404.
  using RawCaptures = std::vector<std::pair<std::string, std::string_view>>;
  auto match = [&](const Route& route, RawCaptures& captures) {
    captures.clear();
    for (size_t i = 0; i < route.segments.size(); ++i) {
      const Segment& segment = route.segments[i];
      if (segment.kind == Segment::Kind::kRest) {
        if (i >= parts.size()) {
          return false;
        }
        // The rest of the raw path from this segment on, slashes included.
        const char* begin = parts[i].data();
        const char* end = request.path.data() + request.path.size();
        std::string_view rest(begin, static_cast<size_t>(end - begin));
        if (rest.empty()) {
          return false;
        }
        captures.emplace_back(segment.text, rest);
        return true;
      }
      if (i >= parts.size()) {
        return false;
      }
      if (segment.kind == Segment::Kind::kLiteral) {
        if (parts[i] != segment.text) {
          return false;
        }
      } else {
        if (parts[i].empty()) {
          return false;
        }
        captures.emplace_back(segment.text, parts[i]);
      }
    }
    return route.segments.size() == parts.size();
  };

  const Route* chosen = nullptr;
  RawCaptures chosenCaptures;
  std::vector<std::string> allowed;
  RawCaptures captures;
  for (const Route& route : routes_) {
    if (!match(route, captures)) {
      continue;
    }
    if (route.method != request.method) {
      if (std::find(allowed.begin(), allowed.end(), route.method) == allowed.end()) {
        allowed.push_back(route.method);
      }
      continue;
    }
    if (chosen == nullptr || route.literals > chosen->literals) {
      chosen = &route;
      chosenCaptures = captures;
    }
  }
  if (chosen == nullptr) {
    if (allowed.empty()) {
      return apiError(404, "not_found", "no such API path: " + request.path);
    }
    std::string list;
    for (const std::string& method : allowed) {
      list += (list.empty() ? "" : ", ") + method;
    }
    return apiError(
        405, "method_not_allowed",
        request.method + " is not allowed on " + request.path + " (Allow: " + list + ")");
  }
  for (const auto& [name, raw] : chosenCaptures) {
    auto decoded = percentDecode(raw);
    if (!decoded.ok()) {
      return apiError(400, "malformed_path",
                      "path segment '" + std::string(raw) + "': " + decoded.error().message());
    }
    request.params[name] = std::move(decoded).value();
  }
  try {
    return chosen->handler(request);
  } catch (const std::exception& e) {
    return apiError(500, "internal",
                    request.method + " " + chosen->pattern + " failed: " + e.what());
  }
}

std::string percentEncode(std::string_view segment) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(segment.size());
  for (char c : segment) {
    const auto byte = static_cast<unsigned char>(c);
    const bool unreserved = (byte >= 'A' && byte <= 'Z') || (byte >= 'a' && byte <= 'z') ||
                            (byte >= '0' && byte <= '9') || byte == '-' || byte == '.' ||
                            byte == '_' || byte == '~';
    if (unreserved) {
      out += c;
    } else {
      out += '%';
      out += kHex[byte >> 4];
      out += kHex[byte & 0xF];
    }
  }
  return out;
}

Result<std::string> percentDecode(std::string_view text, bool plusIsSpace) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+' && plusIsSpace) {
      out += ' ';
      continue;
    }
    if (c == '\0') {
      // Refused like its encoded form: a NUL in an id or a host cuts it short in C APIs.
      return Error(EINVAL, "NUL byte at offset " + std::to_string(i));
    }
    if (c != '%') {
      out += c;
      continue;
    }
    const int hi = i + 2 < text.size() ? hexDigitValue(text[i + 1]) : -1;
    const int lo = i + 2 < text.size() ? hexDigitValue(text[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      return Error(EINVAL, "bad percent-encoding at offset " + std::to_string(i) +
                               " (expected %XX with two hex digits)");
    }
    const char byte = static_cast<char>((hi << 4) | lo);
    if (byte == '\0') {
      return Error(EINVAL, "encoded NUL byte (%00) at offset " + std::to_string(i));
    }
    out += byte;
    i += 2;
  }
  return out;
}

Result<std::map<std::string, std::string>> parseQuery(std::string_view query) {
  std::map<std::string, std::string> out;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (pair.empty()) {
      continue;
    }
    size_t eq = pair.find('=');
    auto key = percentDecode(pair.substr(0, eq), true);
    if (!key.ok()) {
      return std::move(key).error().wrap("query parameter '" + std::string(pair) + "'");
    }
    std::string value;
    if (eq != std::string_view::npos) {
      auto decoded = percentDecode(pair.substr(eq + 1), true);
      if (!decoded.ok()) {
        return std::move(decoded).error().wrap("query parameter '" + std::string(pair) + "'");
      }
      value = std::move(decoded).value();
    }
    out[std::move(key).value()] = std::move(value);
  }
  return out;
}

Result<std::string> stringField(const nlohmann::json& body, std::string_view key) {
  constexpr std::string_view kWhat = "a string";
  EGRESSD_TRY(requireObject(body, key, kWhat));
  const nlohmann::json* value = find(body, key);
  if (value == nullptr) {
    return missing(key, kWhat);
  }
  if (!value->is_string()) {
    return wrongType(key, kWhat, *value);
  }
  return value->get<std::string>();
}

Result<std::optional<std::string>> optionalString(const nlohmann::json& body,
                                                  std::string_view key) {
  constexpr std::string_view kWhat = "a string";
  EGRESSD_TRY(requireObject(body, key, kWhat, false));
  const nlohmann::json* value = find(body, key);
  if (value == nullptr) {
    return std::optional<std::string>();
  }
  if (!value->is_string()) {
    return wrongType(key, kWhat, *value);
  }
  return std::optional<std::string>(value->get<std::string>());
}

Result<std::vector<std::string>> stringList(const nlohmann::json& body, std::string_view key) {
  constexpr std::string_view kWhat = "an array of strings";
  EGRESSD_TRY(requireObject(body, key, kWhat));
  const nlohmann::json* value = find(body, key);
  if (value == nullptr) {
    return missing(key, kWhat);
  }
  if (!value->is_array()) {
    return wrongType(key, kWhat, *value);
  }
  std::vector<std::string> out;
  out.reserve(value->size());
  for (size_t i = 0; i < value->size(); ++i) {
    const nlohmann::json& item = (*value)[i];
    if (!item.is_string()) {
      return Error(EINVAL, "field " + quoted(key) + " must be an array of strings, but element " +
                               std::to_string(i) + " is " + describe(item));
    }
    out.push_back(item.get<std::string>());
  }
  return out;
}

Result<nlohmann::json> objectField(const nlohmann::json& body, std::string_view key,
                                   bool required) {
  constexpr std::string_view kWhat = "a JSON object";
  EGRESSD_TRY(requireObject(body, key, kWhat, required));
  const nlohmann::json* value = find(body, key);
  if (value == nullptr) {
    if (required) {
      return missing(key, kWhat);
    }
    return nlohmann::json(nullptr);
  }
  if (!value->is_object()) {
    return wrongType(key, kWhat, *value);
  }
  return *value;
}

Result<bool> boolField(const nlohmann::json& body, std::string_view key, bool fallback) {
  constexpr std::string_view kWhat = "true or false";
  EGRESSD_TRY(requireObject(body, key, kWhat, false));
  const nlohmann::json* value = find(body, key);
  if (value == nullptr) {
    return fallback;
  }
  if (!value->is_boolean()) {
    return wrongType(key, kWhat, *value);
  }
  return value->get<bool>();
}

}  // namespace egressd::control
