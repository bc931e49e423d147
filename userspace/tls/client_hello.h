// TLS ClientHello peeking for the proxy's TLS dispatch: which name the client asks for
// (SNI), whether the name is hidden (ECH/ESNI), the ALPN offer and TLS 1.3 support. Pure,
// no I/O and no OpenSSL: the caller hands in every byte received so far and calls again on
// kNeedMore. The parser is strict (RFC 8446 4.1.2, RFC 6066 3, RFC 7301 3.1): the bytes of a
// hello that fails here are never forwarded, the client gets a decode_error alert instead.
//
// The one non-obvious choice: every check is made as soon as the bytes it looks at are in,
// and in stream order, so a prefix of the input yields either kNeedMore or the very result
// the whole input yields (the fuzz replay checks this).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::tls {

struct ClientHello {
  std::optional<std::string> serverName;  // the host_name entry of server_name, as sent
  bool encryptedClientHello = false;      // ECH (0xfe0d) or draft ESNI (0xffce) present
  std::vector<std::string> alpn;          // protocols offered, in order
  bool offersTls13 = false;               // supported_versions lists 0x0304
};

struct ClientHelloParse {
  enum class Status { kNeedMore, kComplete, kNotTls, kMalformed, kTooLarge };
  Status status = Status::kNeedMore;
  ClientHello hello;  // kComplete only
  size_t bytes = 0;   // kComplete: length of the records that carried the hello
  std::string error;  // otherwise: why, for the audit line
};

inline constexpr size_t kMaxClientHelloBytes = 64 * 1024;

// `data` = every byte received so far on the connection (the caller appends and calls
// again on kNeedMore). Handles a hello split over several TLS records (handshake
// fragmentation) and records split anywhere. Strict: record type must be 22, record version
// 0x0301..0x0304, handshake type 1, lengths consistent, extensions well formed, server_name
// list well formed (a host_name with 0 length, >255, or bytes outside printable ASCII
// [0x21-0x7e] -> kMalformed), duplicate extensions -> kMalformed.
// kNotTls: the first byte is not 22 (a handshake record), e.g. plain HTTP.
// kTooLarge: the hello (with its record headers) would need more than `maxBytes`.
ClientHelloParse parseClientHello(std::string_view data, size_t maxBytes = kMaxClientHelloBytes);

enum class AlertDescription : uint8_t {
  kHandshakeFailure = 40,
  kAccessDenied = 49,
  kDecodeError = 50,
  kInternalError = 80,
  kUnrecognizedName = 112,
  kNoApplicationProtocol = 120
};

// A plaintext fatal alert record (TLS 1.2 record version), to refuse before any handshake.
std::string fatalAlertRecord(AlertDescription d);

}  // namespace egressd::tls
