// ASCII case folding for protocol text (HTTP field names, host names): locale-free, and
// never touches bytes outside A-Z, unlike std::tolower.
#pragma once

#include <cstddef>
#include <string_view>

namespace egressd {

constexpr char lowerAscii(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
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
