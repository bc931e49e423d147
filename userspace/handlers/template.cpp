#include "handlers/template.h"

#include <algorithm>
#include <cerrno>
#include "handlers/text.h"

namespace egressd::handlers {
namespace {

constexpr size_t kMaxSandboxIdLength = 63;
constexpr std::string_view kExpected = "(expected ${params.NAME}, ${sandbox} or ${secret:NAME})";

bool isWordChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

bool isParamChar(char c) {
  return isWordChar(c) || c == '-';
}

bool isSandboxIdChar(char c) {
  return isWordChar(c) || c == '.' || c == '-';
}

// Length of the run of characters satisfying `pred` starting at `pos`.
template <typename Pred>
size_t span(std::string_view text, size_t pos, Pred pred) {
  size_t end = pos;
  while (end < text.size() && pred(text[end])) {
    ++end;
  }
  return end - pos;
}

}  // namespace

bool isSecretBaseName(std::string_view text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), isWordChar);
}

bool isSandboxId(std::string_view text) {
  return !text.empty() && text.size() <= kMaxSandboxIdLength && text != "." && text != ".." &&
         std::all_of(text.begin(), text.end(), isSandboxIdChar);
}

Result<Template> Template::parse(std::string_view text, bool allowSecrets) {
  Template out;
  out.source_.assign(text);
  std::string literal;
  auto flushLiteral = [&] {
    if (!literal.empty()) {
      out.segments_.push_back(Segment{Segment::Kind::kLiteral, std::move(literal)});
      literal.clear();
    }
  };

  size_t i = 0;
  while (i < text.size()) {
    const char c = text[i];
    if (c != '$' || i + 1 >= text.size() || (text[i + 1] != '{' && text[i + 1] != '$')) {
      literal += c;
      ++i;
      continue;
    }
    if (text[i + 1] == '$') {
      literal += '$';
      i += 2;
      continue;
    }
    // "${" at i. References never nest except for the one "/${sandbox}" suffix of a secret
    // name, so the reference ends at the first '}' after that.
    const size_t start = i;
    const std::string where = " at character " + std::to_string(start + 1);
    const size_t close = text.find('}', start);
    if (close == std::string_view::npos) {
      return Error(EINVAL, "unterminated \"${\"" + where + " in " + detail::quoted(text));
    }
    const std::string_view body = text.substr(start + 2, close - start - 2);
    auto unknown = [&](std::string_view ref) {
      return Error(EINVAL, "unknown reference " + detail::quoted(ref) + where + " " +
                               std::string(kExpected));
    };

    Segment segment;
    size_t end = close + 1;  // one past the reference
    if (body == "sandbox") {
      segment.kind = Segment::Kind::kSandbox;
    } else if (body.substr(0, 7) == "params.") {
      const std::string_view name = body.substr(7);
      if (name.empty() || span(name, 0, isParamChar) != name.size()) {
        return Error(EINVAL, "invalid param name in " +
                                 detail::quoted(text.substr(start, end - start)) + where +
                                 " (letters, digits, '_' and '-')");
      }
      segment.kind = Segment::Kind::kParam;
      segment.text.assign(name);
    } else if (body.substr(0, 7) == "secret:") {
      const size_t nameStart = start + 2 + 7;
      const size_t nameLength = span(text, nameStart, isWordChar);
      if (nameLength == 0) {
        return Error(EINVAL, "missing secret name in " +
                                 detail::quoted(text.substr(start, end - start)) + where +
                                 " (letters, digits and '_')");
      }
      segment.kind = Segment::Kind::kSecret;
      segment.text.assign(text.substr(nameStart, nameLength));
      size_t pos = nameStart + nameLength;
      if (pos < text.size() && text[pos] == '/') {
        ++pos;
        constexpr std::string_view kSandboxRef = "${sandbox}";
        if (text.substr(pos, kSandboxRef.size()) == kSandboxRef) {
          segment.scope = Segment::Scope::kThisSandbox;
          pos += kSandboxRef.size();
        } else {
          const size_t idLength = span(text, pos, isSandboxIdChar);
          const std::string_view id = text.substr(pos, idLength);
          if (!isSandboxId(id)) {
            return Error(EINVAL, "invalid sandbox id " + detail::quoted(id) +
                                     " in secret reference" + where +
                                     " (expected ${sandbox} or 1-63 of [A-Za-z0-9_.-])");
          }
          segment.scope = Segment::Scope::kNamedSandbox;
          segment.sandboxId.assign(id);
          pos += idLength;
        }
      }
      if (pos >= text.size()) {
        return Error(EINVAL, "unterminated \"${\"" + where + " in " + detail::quoted(text));
      }
      if (text[pos] != '}') {
        const size_t refEnd = text.find('}', pos);
        return unknown(text.substr(
            start, refEnd == std::string_view::npos ? std::string_view::npos : refEnd - start + 1));
      }
      end = pos + 1;
      if (!allowSecrets) {
        return Error(EINVAL, "secrets may only be used in setHeader values (" +
                                 detail::quoted(text.substr(start, end - start)) + where + ")");
      }
      out.usesSecrets_ = true;
    } else {
      return unknown(text.substr(start, end - start));
    }
    flushLiteral();
    out.segments_.push_back(std::move(segment));
    i = end;
  }
  flushLiteral();

  for (const Segment& segment : out.segments_) {
    if (segment.kind == Segment::Kind::kParam) {
      out.params_.push_back(segment.text);
    }
  }
  std::sort(out.params_.begin(), out.params_.end());
  out.params_.erase(std::unique(out.params_.begin(), out.params_.end()), out.params_.end());
  return out;
}

bool Template::isLiteral() const {
  return std::all_of(segments_.begin(), segments_.end(),
                     [](const Segment& s) { return s.kind == Segment::Kind::kLiteral; });
}

Result<std::string> Template::expand(const TemplateContext& context, std::string* detail) const {
  std::string out;
  for (const Segment& segment : segments_) {
    switch (segment.kind) {
      case Segment::Kind::kLiteral:
        out += segment.text;
        break;
      case Segment::Kind::kSandbox:
        out += context.sandbox;
        break;
      case Segment::Kind::kParam: {
        if (context.params == nullptr) {
          return Error(EINVAL, "missing param " + segment.text);
        }
        auto it = context.params->find(segment.text);
        if (it == context.params->end()) {
          return Error(EINVAL, "missing param " + segment.text);
        }
        out += it->second;
        break;
      }
      case Segment::Kind::kSecret: {
        std::string name = segment.text;
        if (segment.scope == Segment::Scope::kThisSandbox) {
          // An id that is not one would make a name that points somewhere else (a path).
          if (!isSandboxId(context.sandbox)) {
            return Error(EINVAL, "secret " + name + "/${sandbox} needs a sandbox id, got " +
                                     detail::quoted(context.sandbox));
          }
          name += "/";
          name += context.sandbox;
        } else if (segment.scope == Segment::Scope::kNamedSandbox) {
          name += "/" + segment.sandboxId;
        }
        if (context.secrets == nullptr || !*context.secrets) {
          return Error(ENOENT, "secret " + name + " is not available");
        }
        Result<std::string> value = (*context.secrets)(name);
        if (!value.ok()) {
          if (detail != nullptr) {
            *detail = value.error().message();
          }
          return Error(ENOENT, "secret " + name + " is not available");
        }
        // A line break would start a new header line in the upstream request.
        if (detail::hasLineBreakOrNul(*value)) {
          return Error(EINVAL, "secret " + name + " holds CR/LF");
        }
        out += *value;
        if (context.secretValues != nullptr && !value->empty()) {
          context.secretValues->push_back(*value);
        }
        break;
      }
    }
  }
  return out;
}

}  // namespace egressd::handlers
