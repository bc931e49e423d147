#include "handlers/condition.h"

#include <cerrno>
#include "common/ascii.h"
#include "handlers/text.h"

namespace egressd::handlers {
namespace {

using nlohmann::json;

bool isUnreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~';
}

std::string_view withoutQuery(std::string_view path) {
  return path.substr(0, path.find('?'));
}

Result<std::vector<std::string>> parseMethods(const json& spec) {
  std::vector<std::string> methods;
  auto add = [&](const json& item) -> Status {
    if (!item.is_string()) {
      return Error(EINVAL, "method: expected a string or a list of strings");
    }
    const std::string& method = item.get_ref<const std::string&>();
    if (!http::isToken(method)) {
      return Error(EINVAL, "method: " + detail::quoted(method) + " is not an HTTP method token");
    }
    methods.push_back(method);
    return okStatus();
  };
  if (spec.is_array()) {
    if (spec.empty()) {
      return Error(EINVAL, "method: empty list (no request would match)");
    }
    for (const json& item : spec) {
      EGRESSD_TRY(add(item));
    }
  } else {
    EGRESSD_TRY(add(spec));
  }
  return methods;
}

}  // namespace

Result<Condition> Condition::parse(const json& spec) {
  if (!spec.is_object()) {
    return Error(EINVAL, "expected a mapping with method, path and/or header");
  }
  if (spec.empty()) {
    // An empty AND is always true; written out it is almost certainly a mistake.
    return Error(EINVAL, "empty condition (expected method, path and/or header)");
  }
  Condition out;
  for (const auto& [key, value] : spec.items()) {
    if (key == "method") {
      auto methods = parseMethods(value);
      if (!methods.ok()) {
        return std::move(methods).error();
      }
      out.methods_ = std::move(*methods);
    } else if (key == "path") {
      if (!value.is_string() || value.get_ref<const std::string&>().empty() ||
          value.get_ref<const std::string&>().front() != '/') {
        return Error(EINVAL,
                     "path: expected a string starting with '/', got " + detail::jsonText(value));
      }
      const std::string& path = value.get_ref<const std::string&>();
      if (path.find('?') != std::string::npos) {
        return Error(
            EINVAL, "path: " + detail::quoted(path) + " has a query; paths are matched without it");
      }
      out.path_ = path;
      out.pathIsGlob_ = path.find('*') != std::string::npos;
    } else if (key == "header") {
      HeaderTest test;
      if (value.is_string()) {
        test.name = value.get<std::string>();
      } else if (value.is_object()) {
        for (const auto& [field, fieldValue] : value.items()) {
          if (field == "name" && fieldValue.is_string()) {
            test.name = fieldValue.get<std::string>();
          } else if (field == "equals" && fieldValue.is_string()) {
            test.equals = fieldValue.get<std::string>();
          } else if (field == "present" && fieldValue.is_boolean()) {
            test.present = fieldValue.get<bool>();
          } else if (field == "name" || field == "equals") {
            return Error(EINVAL, "header." + field + ": expected a string");
          } else if (field == "present") {
            return Error(EINVAL, "header.present: expected true or false");
          } else {
            return Error(EINVAL,
                         "header: unknown key '" + field + "' (expected name, equals or present)");
          }
        }
        if (!value.contains("name")) {
          return Error(EINVAL, "header: missing required key 'name'");
        }
        if (value.contains("equals") && value.contains("present")) {
          return Error(EINVAL, "header: 'equals' and 'present' exclude each other");
        }
      } else {
        return Error(EINVAL, "header: expected a header name or {name, equals | present}");
      }
      if (!http::isToken(test.name)) {
        return Error(EINVAL,
                     "header: " + detail::quoted(test.name) + " is not a valid header name");
      }
      out.header_ = std::move(test);
    } else {
      return Error(EINVAL, "unknown key '" + key + "' (expected method, path or header)");
    }
  }
  return out;
}

bool Condition::matches(const http::RequestHead& request) const {
  if (!methods_.empty()) {
    bool any = false;
    for (const std::string& method : methods_) {
      any = any || method == request.method;
    }
    if (!any) {
      return false;
    }
  }
  if (path_) {
    const std::string path = normalizePathForMatching(request.path);
    const bool pathMatches =
        pathIsGlob_ ? pathGlobMatches(*path_, path) : path.compare(0, path_->size(), *path_) == 0;
    if (!pathMatches) {
      return false;
    }
  }
  if (header_) {
    const http::Header* found = request.find(header_->name);
    if (header_->equals) {
      return found != nullptr && found->value == *header_->equals;
    }
    return (found != nullptr) == header_->present;
  }
  return true;
}

std::string normalizePathForMatching(std::string_view path) {
  path = withoutQuery(path);
  if (path.empty() || path.front() != '/') {
    return std::string(path);  // "*" of OPTIONS *: nothing to normalize
  }
  std::string decoded;
  decoded.reserve(path.size());
  for (size_t i = 0; i < path.size(); ++i) {
    const int high = i + 2 < path.size() && path[i] == '%' ? hexDigitValue(path[i + 1]) : -1;
    const int low = high >= 0 ? hexDigitValue(path[i + 2]) : -1;
    if (high < 0 || low < 0) {
      decoded += path[i];
      continue;
    }
    const char c = static_cast<char>(high * 16 + low);
    if (isUnreserved(c)) {
      decoded += c;
    } else {
      static constexpr char kHex[] = "0123456789ABCDEF";
      decoded += '%';
      decoded += kHex[high];
      decoded += kHex[low];
    }
    i += 2;
  }

  // Dot-segment removal over "/"-separated segments; the path starts with '/'.
  std::vector<std::string_view> stack;
  bool trailingSlash = false;
  std::string_view rest = std::string_view(decoded).substr(1);
  for (;;) {
    const size_t slash = rest.find('/');
    const std::string_view segment = rest.substr(0, slash);
    const bool last = slash == std::string_view::npos;
    if (segment == ".") {
      trailingSlash = last;
    } else if (segment == "..") {
      if (!stack.empty()) {
        stack.pop_back();
      }
      trailingSlash = last;
    } else {
      stack.push_back(segment);
      trailingSlash = false;
    }
    if (last) {
      break;
    }
    rest.remove_prefix(slash + 1);
  }
  std::string out = "/";
  for (size_t i = 0; i < stack.size(); ++i) {
    if (i > 0) {
      out += '/';
    }
    out += stack[i];
  }
  if (trailingSlash && out.back() != '/') {
    out += '/';
  }
  return out;
}

bool pathGlobMatches(std::string_view pattern, std::string_view path) {
  size_t p = 0;
  size_t s = 0;
  size_t starP = std::string_view::npos;  // pattern position after the last '*'
  size_t starS = 0;                       // path position that '*' currently extends to
  while (s < path.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      starP = ++p;
      starS = s;
    } else if (p < pattern.size() && pattern[p] == path[s]) {
      ++p;
      ++s;
    } else if (starP != std::string_view::npos) {
      p = starP;
      s = ++starS;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') {
    ++p;
  }
  return p == pattern.size();
}

}  // namespace egressd::handlers
