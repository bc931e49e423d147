// ASCII case folding for protocol text (HTTP field names, host names): locale-free, and
// never touches bytes outside A-Z, unlike std::tolower.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace egressd {

constexpr char lowerAscii(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

inline std::string toLowerAscii(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    c = lowerAscii(c);
  }
  return out;
}

// 0-15 for a hex digit of either case, -1 for anything else.
constexpr int hexDigitValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

constexpr bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (lowerAscii(a[i]) != lowerAscii(b[i])) {
      return false;
    }
  }
  return true;
}

}  // namespace egressd
