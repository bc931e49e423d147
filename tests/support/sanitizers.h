#pragma once

// Whether this test binary (and so the egressd it starts, built in the same tree) runs
// under AddressSanitizer. Memory bounds measured on the normal build do not hold there:
// ASan maps shadow memory and keeps freed blocks in a 256 MiB quarantine.

namespace egressd::test {

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif
#else
inline constexpr bool kAddressSanitizer = false;
#endif

}  // namespace egressd::test
