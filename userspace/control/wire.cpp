#include "control/wire.h"

#include <cerrno>
#include <charconv>
#include <cstdint>

namespace egressd::control {

Result<std::string> decodeChunked(std::string_view raw) {
  std::string out;
  for (;;) {
    size_t lineEnd = raw.find("\r\n");
    if (lineEnd == std::string_view::npos) {
      return Error(EINVAL, "chunked body: chunk size line without CRLF");
    }
    std::string_view sizeText = raw.substr(0, lineEnd);
    sizeText = sizeText.substr(0, sizeText.find_first_of("; \t"));  // drop chunk extensions
    uint64_t size = 0;
    auto [end, ec] = std::from_chars(sizeText.data(), sizeText.data() + sizeText.size(), size, 16);
    if (sizeText.empty() || ec != std::errc() || end != sizeText.data() + sizeText.size()) {
      return Error(EINVAL, "chunked body: bad chunk size '" + std::string(sizeText) + "'");
    }
    raw.remove_prefix(lineEnd + 2);
    if (size == 0) {
      return out;  // trailers, if any, are ignored
    }
    // Written so that no size (up to 2^64 - 1) overflows the bound: `size + 2` would.
    if (raw.size() < 2 || size > raw.size() - 2 || raw.substr(size, 2) != "\r\n") {
      return Error(EINVAL, "chunked body: chunk of " + std::to_string(size) +
                               " bytes is truncated or not followed by CRLF");
    }
    out.append(raw.substr(0, size));
    raw.remove_prefix(size + 2);
  }
}

Result<nlohmann::json> parseJsonBody(std::string_view raw) {
  try {
    return nlohmann::json::parse(raw);
  } catch (const nlohmann::json::parse_error& e) {
    return Error(EINVAL, jsonErrorText(e.what()) + " (byte " + std::to_string(e.byte) + ")");
  } catch (const nlohmann::json::exception& e) {
    return Error(EINVAL, jsonErrorText(e.what()));
  }
}

std::string jsonErrorText(const char* what) {
  std::string_view text = what;
  if (text.starts_with("[json.exception.")) {
    size_t close = text.find("] ");
    if (close != std::string_view::npos) {
      text.remove_prefix(close + 2);
    }
  }
  return std::string(text);
}

}  // namespace egressd::control
