// Byte-level pieces shared by ControlServer and ControlClient (internal to egressd_control).
#pragma once

#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/result.h"

namespace egressd::control {

// Decodes a chunked body as http::RequestParser / ResponseParser hand it over (raw: sizes,
// extensions, data, CRLFs, trailers). The parsers have already validated the framing; this
// only strips it, and still fails cleanly (EINVAL) on input that does not follow it.
Result<std::string> decodeChunked(std::string_view raw);

// A request or response body as JSON. Never throws: a syntax error (parse_error, with its
// byte offset) and a value nlohmann cannot hold (out_of_range, e.g. the number 1e999) both
// fail with EINVAL and nlohmann's text without its prefix.
Result<nlohmann::json> parseJsonBody(std::string_view raw);

// nlohmann's parse_error text without its "[json.exception.parse_error.101] " prefix:
// "parse error at line 1, column 2: syntax error while parsing ...".
std::string jsonErrorText(const char* what);

}  // namespace egressd::control
