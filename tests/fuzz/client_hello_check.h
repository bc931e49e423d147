// Property checks for the ClientHello parser (userspace/tls/client_hello.h), shared by the
// libFuzzer target and the deterministic replay CTest runs. On a violation the input is
// printed and the process aborts. Properties:
//   - never crashes, never reads outside the input (each prefix is its own allocation);
//   - kComplete: 9 <= bytes <= size, error empty, serverName 1..255 printable ASCII, ALPN
//     names non-empty; parsing exactly `bytes` bytes gives the same result, one byte less of
//     limit gives kTooLarge;
//   - any other status: bytes 0, empty hello; error empty exactly for kNeedMore;
//   - prefixes: kNeedMore up to some length, the final result from there on (stream order);
//   - a hello re-framed into other records parses to the same hello.
#pragma once

#include <cstddef>
#include <cstdint>

namespace egressd::tls::fuzz {

void checkClientHelloParser(const uint8_t* data, size_t size);

}  // namespace egressd::tls::fuzz
