// Internal to egressd_http: character classes of RFC 9110/9112, written so the compiler can
// vectorize the loops over whole field values (no early exit on the hot path).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace egressd::http::detail {

constexpr std::array<bool, 256> makeTokenTable() {
  std::array<bool, 256> table{};
  for (int c = '0'; c <= '9'; ++c) {
    table[c] = true;
  }
  for (int c = 'a'; c <= 'z'; ++c) {
    table[c] = true;
    table[c - 'a' + 'A'] = true;
  }
  for (char c : std::string_view("!#$%&'*+-.^_`|~")) {
    table[static_cast<unsigned char>(c)] = true;
  }
  return table;
}
inline constexpr std::array<bool, 256> kTokenChars = makeTokenTable();

inline bool isTokenChar(char c) {
  return kTokenChars[static_cast<unsigned char>(c)];
}

// Word-at-a-time scans (SWAR): heads are scanned once per request, so these matter.
inline uint64_t load64(const char* p) {
  uint64_t word;
  std::memcpy(&word, p, sizeof(word));
  return word;
}
inline constexpr uint64_t kOnes = 0x0101010101010101ULL;
inline constexpr uint64_t kHighBits = 0x8080808080808080ULL;

// Non-zero when some byte of `word` is a CTL (< 0x20) or DEL.
inline uint64_t ctlBytes(uint64_t word) {
  const uint64_t below20 = (word - kOnes * 0x20) & ~word & kHighBits;
  const uint64_t del = word ^ (kOnes * 0x7f);
  return below20 | ((del - kOnes) & ~del & kHighBits);
}

// Offset of the first CTL (HTAB, CR and LF included) or DEL in data[0, len); len if none.
inline size_t findCtl(const char* data, size_t len) {
  size_t i = 0;
  while (i + 8 <= len && ctlBytes(load64(data + i)) == 0) {
    i += 8;
  }
  for (; i < len; ++i) {
    const auto c = static_cast<unsigned char>(data[i]);
    if (c < 0x20 || c == 0x7f) {
      return i;
    }
  }
  return len;
}

// Offset of the first byte outside visible ASCII (0x21..0x7e) in data[0, len); len if none.
inline size_t findNonVisible(const char* data, size_t len) {
  size_t i = 0;
  while (i + 8 <= len) {
    const uint64_t word = load64(data + i);
    const uint64_t below21 = (word - kOnes * 0x21) & ~word & kHighBits;
    const uint64_t above7e = ((word + kOnes) | word) & kHighBits;
    if ((below21 | above7e) != 0) {
      break;
    }
    i += 8;
  }
  for (; i < len; ++i) {
    const auto c = static_cast<unsigned char>(data[i]);
    if (c < 0x21 || c > 0x7e) {
      return i;
    }
  }
  return len;
}

// What can never be written into a header line we emit: CR, LF (a new line) and NUL.
inline bool hasLineBreakOrNul(std::string_view value) {
  unsigned bad = 0;
  for (char c : value) {
    bad |= static_cast<unsigned>(c == '\r' || c == '\n' || c == '\0');
  }
  return bad != 0;
}

}  // namespace egressd::http::detail
