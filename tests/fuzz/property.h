// Property checks for the fuzz targets: a violated property prints what, a detail and the
// input (escaped), then aborts, which libFuzzer and the replay driver report as a finding.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace egressd::fuzz {

// The input of the current LLVMFuzzerTestOneInput call, for the report.
inline std::string_view& currentInput() {
  static std::string_view input;
  return input;
}

class InputScope {
 public:
  InputScope(const uint8_t* data, size_t size) {
    currentInput() = std::string_view(reinterpret_cast<const char*>(data), size);
  }
  ~InputScope() { currentInput() = {}; }
  InputScope(const InputScope&) = delete;
  InputScope& operator=(const InputScope&) = delete;
};

[[noreturn]] inline void fail(const char* target, const char* what, const std::string& detail) {
  const std::string_view input = currentInput();
  std::fprintf(stderr, "%s: property violated: %s %s\ninput (%zu bytes): \"", target, what,
               detail.c_str(), input.size());
  for (char ch : input) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\\' || c == '"') {
      std::fprintf(stderr, "\\%c", c);
    } else if (c >= 0x20 && c < 0x7f) {
      std::fputc(c, stderr);
    } else {
      std::fprintf(stderr, "\\x%02x", c);
    }
  }
  std::fprintf(stderr, "\"\n");
  std::abort();
}

inline void check(const char* target, bool condition, const char* what,
                  const std::string& detail = "") {
  if (!condition) {
    fail(target, what, detail);
  }
}

}  // namespace egressd::fuzz
