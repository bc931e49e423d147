#include "tls/client_hello.h"

#include <algorithm>
#include <array>
#include <bitset>
#include <string>

namespace egressd::tls {
namespace {

using ParseStatus = ClientHelloParse::Status;

constexpr uint8_t kRecordHandshake = 22;
constexpr uint8_t kHandshakeClientHello = 1;
constexpr size_t kRecordHeaderBytes = 5;
constexpr size_t kHandshakeHeaderBytes = 4;
constexpr size_t kMaxRecordPayload = 16384;  // 2^14, RFC 8446 5.1
constexpr size_t kMaxHostNameBytes = 255;

constexpr uint16_t kExtServerName = 0;
constexpr uint16_t kExtAlpn = 16;
constexpr uint16_t kExtSupportedVersions = 43;
constexpr uint16_t kExtEncryptedClientHello = 0xfe0d;
constexpr uint16_t kExtEncryptedServerName = 0xffce;  // draft-ietf-tls-esni (pre-ECH)
constexpr uint16_t kTls13 = 0x0304;

ClientHelloParse result(ParseStatus status, std::string error) {
  ClientHelloParse out;
  out.status = status;
  out.error = std::move(error);
  return out;
}

std::string hex16(unsigned value) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out = "0x";
  for (int shift = 12; shift >= 0; shift -= 4) {
    out += kDigits[(value >> shift) & 0xf];
  }
  return out;
}

std::string hex8(unsigned value) {
  return hex16(value).replace(2, 2, "");
}

// Bounds-checked big-endian reader over one span; every getter fails instead of reading
// past the end.
class Reader {
 public:
  explicit Reader(std::string_view data) : data_(data) {}

  size_t remaining() const { return data_.size() - pos_; }
  bool empty() const { return remaining() == 0; }

  bool u8(uint32_t& out) { return number(1, out); }
  bool u16(uint32_t& out) { return number(2, out); }
  bool bytes(size_t n, std::string_view& out) {
    if (remaining() < n) {
      return false;
    }
    out = data_.substr(pos_, n);
    pos_ += n;
    return true;
  }
  // A vector with a `lengthBytes`-byte length prefix (RFC 8446 3.4).
  bool vector(size_t lengthBytes, std::string_view& out) {
    uint32_t n = 0;
    return number(lengthBytes, n) && bytes(n, out);
  }

 private:
  bool number(size_t width, uint32_t& out) {
    if (remaining() < width) {
      return false;
    }
    out = 0;
    for (size_t i = 0; i < width; ++i) {
      out = (out << 8) | static_cast<uint8_t>(data_[pos_ + i]);
    }
    pos_ += width;
    return true;
  }

  std::string_view data_;
  size_t pos_ = 0;
};

// RFC 6066 3: exactly one entry, of type host_name, 1..255 printable ASCII bytes. Anything
// else is refused: two parsers reading different names from one list is how SNI-based
// policy gets bypassed.
std::string parseServerName(std::string_view ext, ClientHello& hello) {
  Reader r(ext);
  std::string_view list;
  if (!r.vector(2, list) || !r.empty()) {
    return "server_name: list length does not match the extension";
  }
  if (list.empty()) {
    return "server_name: empty list";
  }
  Reader entries(list);
  uint32_t type = 0;
  std::string_view name;
  if (!entries.u8(type) || !entries.vector(2, name)) {
    return "server_name: truncated entry";
  }
  if (type != 0) {
    return "server_name: name type " + std::to_string(type) + " is not host_name";
  }
  if (!entries.empty()) {
    return "server_name: more than one entry";
  }
  if (name.empty()) {
    return "server_name: empty host_name";
  }
  if (name.size() > kMaxHostNameBytes) {
    return "server_name: host_name of " + std::to_string(name.size()) + " bytes (max 255)";
  }
  for (char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x21 || c > 0x7e) {
      return "server_name: host_name byte " + hex8(c) + " is not printable ASCII";
    }
  }
  hello.serverName = std::string(name);
  return "";
}

// RFC 7301 3.1: ProtocolNameList <2..2^16-1> of ProtocolName <1..2^8-1>.
std::string parseAlpn(std::string_view ext, ClientHello& hello) {
  Reader r(ext);
  std::string_view list;
  if (!r.vector(2, list) || !r.empty()) {
    return "application_layer_protocol_negotiation: list length does not match the extension";
  }
  if (list.empty()) {
    return "application_layer_protocol_negotiation: empty list";
  }
  Reader names(list);
  while (!names.empty()) {
    std::string_view name;
    if (!names.vector(1, name)) {
      return "application_layer_protocol_negotiation: truncated protocol name";
    }
    if (name.empty()) {
      return "application_layer_protocol_negotiation: empty protocol name";
    }
    hello.alpn.emplace_back(name);
  }
  return "";
}

// RFC 8446 4.2.1 (ClientHello form): ProtocolVersion versions<2..254>.
std::string parseSupportedVersions(std::string_view ext, ClientHello& hello) {
  Reader r(ext);
  std::string_view list;
  if (!r.vector(1, list) || !r.empty()) {
    return "supported_versions: list length does not match the extension";
  }
  if (list.size() < 2 || list.size() % 2 != 0) {
    return "supported_versions: list of " + std::to_string(list.size()) + " bytes";
  }
  Reader versions(list);
  uint32_t version = 0;
  while (versions.u16(version)) {
    if (version == kTls13) {
      hello.offersTls13 = true;
    }
  }
  return "";
}

// The ClientHello body after the 4-byte handshake header (RFC 8446 4.1.2, which also covers
// the TLS 1.2 form: extensions may be absent altogether). "" when well formed.
std::string parseBody(std::string_view body, ClientHello& hello) {
  Reader r(body);
  uint32_t version = 0;
  std::string_view skipped;
  if (!r.u16(version)) {
    return "truncated legacy_version";
  }
  if ((version >> 8) != 3 || (version & 0xff) < 1 || (version & 0xff) > 4) {
    return "legacy_version " + hex16(version);
  }
  if (!r.bytes(32, skipped)) {
    return "truncated random";
  }
  if (!r.vector(1, skipped)) {
    return "truncated legacy_session_id";
  }
  if (skipped.size() > 32) {
    return "legacy_session_id of " + std::to_string(skipped.size()) + " bytes (max 32)";
  }
  if (!r.vector(2, skipped)) {
    return "truncated cipher_suites";
  }
  if (skipped.empty() || skipped.size() % 2 != 0) {
    return "cipher_suites of " + std::to_string(skipped.size()) + " bytes";
  }
  if (!r.vector(1, skipped)) {
    return "truncated legacy_compression_methods";
  }
  if (skipped.empty()) {
    return "no legacy_compression_methods";
  }
  if (r.empty()) {
    return "";  // no extensions (TLS 1.2 and older)
  }
  std::string_view extensions;
  if (!r.vector(2, extensions)) {
    return "extensions length exceeds the ClientHello";
  }
  if (!r.empty()) {
    return std::to_string(r.remaining()) + " bytes after the extensions";
  }
  Reader ext(extensions);
  std::bitset<65536> seen;  // extension types met so far
  while (!ext.empty()) {
    uint32_t type = 0;
    std::string_view data;
    if (!ext.u16(type) || !ext.vector(2, data)) {
      return "truncated extension";
    }
    if (seen.test(type)) {
      return "duplicate extension " + std::to_string(type);
    }
    seen.set(type);
    std::string error;
    switch (type) {
      case kExtServerName:
        error = parseServerName(data, hello);
        break;
      case kExtAlpn:
        error = parseAlpn(data, hello);
        break;
      case kExtSupportedVersions:
        error = parseSupportedVersions(data, hello);
        break;
      case kExtEncryptedClientHello:
      case kExtEncryptedServerName:
        hello.encryptedClientHello = true;
        break;
      default:
        break;
    }
    if (!error.empty()) {
      return error;
    }
  }
  return "";
}

}  // namespace

ClientHelloParse parseClientHello(std::string_view data, size_t maxBytes) {
  // Walks the records in order; every check fires as soon as its bytes are in. Handshake
  // bytes are not copied until the hello is complete (the caller re-calls with a growing
  // buffer, so the walk must stay cheap).
  std::array<uint8_t, kHandshakeHeaderBytes> hsHeader{};
  size_t hsSeen = 0;   // handshake bytes in the records walked so far
  size_t hsNeed = 0;   // 4 + ClientHello length, once the handshake header is in
  size_t pos = 0;      // start of the current record
  size_t records = 0;  // records walked
  for (;; ++records) {
    const size_t avail = data.size() - pos;
    if (avail == 0) {
      return result(ParseStatus::kNeedMore, "");
    }
    const auto byte = [&](size_t i) { return static_cast<uint8_t>(data[pos + i]); };
    if (byte(0) != kRecordHandshake) {
      if (records == 0) {
        return result(ParseStatus::kNotTls,
                      "first byte " + hex8(byte(0)) + " is not a TLS handshake record");
      }
      return result(ParseStatus::kMalformed, "record type " + std::to_string(byte(0)) +
                                                 " inside the ClientHello (expected 22)");
    }
    if (avail < 2) {
      return result(ParseStatus::kNeedMore, "");
    }
    if (byte(1) != 3) {
      return result(ParseStatus::kMalformed, "record version major " + std::to_string(byte(1)));
    }
    if (avail < 3) {
      return result(ParseStatus::kNeedMore, "");
    }
    if (byte(2) < 1 || byte(2) > 4) {
      return result(ParseStatus::kMalformed, "record version " + hex16((3u << 8) | byte(2)));
    }
    if (avail < kRecordHeaderBytes) {
      return result(ParseStatus::kNeedMore, "");
    }
    const size_t length = (static_cast<size_t>(byte(3)) << 8) | byte(4);
    if (length == 0) {
      return result(ParseStatus::kMalformed, "empty handshake record");
    }
    if (length > kMaxRecordPayload) {
      return result(ParseStatus::kMalformed,
                    "record length " + std::to_string(length) + " exceeds 16384");
    }
    if (pos + kRecordHeaderBytes + length > maxBytes) {
      return result(ParseStatus::kTooLarge,
                    "ClientHello records exceed " + std::to_string(maxBytes) + " bytes");
    }
    const size_t payloadAvail = std::min(length, avail - kRecordHeaderBytes);
    for (size_t i = 0; i < payloadAvail && hsSeen + i < kHandshakeHeaderBytes; ++i) {
      const size_t at = hsSeen + i;
      hsHeader[at] = byte(kRecordHeaderBytes + i);
      if (at == 0 && hsHeader[0] != kHandshakeClientHello) {
        return result(ParseStatus::kMalformed,
                      "handshake type " + std::to_string(hsHeader[0]) + " is not ClientHello (1)");
      }
      if (at == kHandshakeHeaderBytes - 1) {
        const size_t bodyLength = (static_cast<size_t>(hsHeader[1]) << 16) |
                                  (static_cast<size_t>(hsHeader[2]) << 8) | hsHeader[3];
        hsNeed = kHandshakeHeaderBytes + bodyLength;
        if (hsNeed > maxBytes) {
          return result(ParseStatus::kTooLarge, "ClientHello of " + std::to_string(hsNeed) +
                                                    " bytes exceeds " + std::to_string(maxBytes));
        }
      }
    }
    const size_t hsBefore = hsSeen;
    hsSeen += payloadAvail;
    if (hsNeed != 0 && hsSeen >= hsNeed) {
      // The hello's last byte is in: gather it from the records (skipping their headers).
      std::string message;
      message.reserve(hsNeed);
      size_t at = 0;
      for (size_t r = 0; r <= records; ++r) {
        const size_t recordLength = (static_cast<size_t>(static_cast<uint8_t>(data[at + 3])) << 8) |
                                    static_cast<uint8_t>(data[at + 4]);
        const size_t take = std::min(recordLength, hsNeed - message.size());
        message.append(data.substr(at + kRecordHeaderBytes, take));
        at += kRecordHeaderBytes + recordLength;
      }
      ClientHelloParse out;
      const std::string error =
          parseBody(std::string_view(message).substr(kHandshakeHeaderBytes), out.hello);
      if (!error.empty()) {
        return result(ParseStatus::kMalformed, "ClientHello: " + error);
      }
      const size_t trailing = hsBefore + length - hsNeed;
      if (trailing != 0) {
        return result(ParseStatus::kMalformed,
                      std::to_string(trailing) + " bytes after the ClientHello in its record");
      }
      out.status = ParseStatus::kComplete;
      out.bytes = pos + kRecordHeaderBytes + length;
      return out;
    }
    if (payloadAvail < length) {
      return result(ParseStatus::kNeedMore, "");
    }
    pos += kRecordHeaderBytes + length;
  }
}

std::string fatalAlertRecord(AlertDescription d) {
  // ContentType alert (21), legacy_record_version TLS 1.2, length 2, level fatal (2).
  return std::string{'\x15', '\x03', '\x03', '\x00', '\x02', '\x02', static_cast<char>(d)};
}

}  // namespace egressd::tls
