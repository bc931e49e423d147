// Property checks for the HTTP parsers, shared by the libFuzzer targets and the deterministic
// replay driver that CTest runs. Each check feeds one input to a parser three ways (all at
// once, one byte at a time, and at pseudo-random split points derived from the input) and
// aborts, after printing the input, when a property fails:
//   - a step never consumes more than it was given; kNeedMore and kBody take all of it;
//   - kHead comes once per message (never in a body), kBody/kMessageEnd only after a kHead
//     that did not end its message; kError is final (repeats with consumed 0, same status);
//   - every split yields the same heads, bodies and message ends, and fails or not alike;
//   - a request head re-serialized for the upstream parses again to the same head;
//   - no read outside the fed bytes (each chunk is a separate exact-size allocation, so
//     AddressSanitizer sees any overrun).
#pragma once

#include <cstddef>
#include <cstdint>

namespace egressd::http::fuzz {

void checkRequestParser(const uint8_t* data, size_t size);
void checkResponseParser(const uint8_t* data, size_t size);

}  // namespace egressd::http::fuzz
