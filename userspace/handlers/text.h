// Internal to egressd_handlers: how policy and request text appears in messages, and the one
// check every value bound for a header line needs.
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace egressd::handlers::detail {

inline constexpr size_t kMaxQuoted = 200;

// Hostile or huge input ends up in error messages and from there in logs and API answers:
// JSON string syntax keeps it on one printable line, invalid UTF-8 replaced, long text cut.
inline std::string quoted(std::string_view text) {
  const bool cut = text.size() > kMaxQuoted;
  const std::string shown(text.substr(0, kMaxQuoted));
  std::string out =
      nlohmann::json(shown).dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
  if (cut) {
    out.insert(out.size() - 1, "...");
  }
  return out;
}

// A JSON value as written, for "expected X, got Y" (never throws, bounded).
inline std::string jsonText(const nlohmann::json& value) {
  std::string out = value.dump(-1, ' ', true, nlohmann::json::error_handler_t::replace);
  if (out.size() > kMaxQuoted) {
    out.resize(kMaxQuoted);
    out += "...";
  }
  return out;
}

// CR, LF or NUL: what would let a value start a new header line.
inline bool hasLineBreakOrNul(std::string_view value) {
  return value.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

}  // namespace egressd::handlers::detail
