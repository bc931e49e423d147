// Internal to egressd_dns. The byte-level pieces that reading responses (message.cpp) and
// reading queries (query_message.cpp) share: big-endian reads, the name length limit, and
// how a label byte is written into a decoded name (the escaping described in message.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace egressd::dns::detail {

inline constexpr size_t kMaxNameWireLength = 255;

inline uint16_t read16(std::span<const uint8_t> msg, size_t offset) {
  return static_cast<uint16_t>((msg[offset] << 8) | msg[offset + 1]);
}

inline uint32_t read32(std::span<const uint8_t> msg, size_t offset) {
  return (static_cast<uint32_t>(msg[offset]) << 24) |
         (static_cast<uint32_t>(msg[offset + 1]) << 16) |
         (static_cast<uint32_t>(msg[offset + 2]) << 8) | static_cast<uint32_t>(msg[offset + 3]);
}

// Lowercase letters, digits, '-' and '_' as they are; every other byte as \DDD.
inline void appendLabelByte(std::string& out, uint8_t byte) {
  if (byte >= 'A' && byte <= 'Z') {
    out += static_cast<char>(byte - 'A' + 'a');
  } else if ((byte >= 'a' && byte <= 'z') || (byte >= '0' && byte <= '9') || byte == '-' ||
             byte == '_') {
    out += static_cast<char>(byte);
  } else {
    out += '\\';
    out += static_cast<char>('0' + byte / 100);
    out += static_cast<char>('0' + byte / 10 % 10);
    out += static_cast<char>('0' + byte % 10);
  }
}

}  // namespace egressd::dns::detail
