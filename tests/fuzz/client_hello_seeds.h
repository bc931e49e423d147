// ClientHello bytes for the parser's tests and fuzzing: real hellos written by OpenSSL's
// client in memory (no sockets), re-framing of a hello into other record layouts, and a
// small builder for synthetic hellos with chosen extensions (ECH, bad names, duplicates).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace egressd::tls::fuzz {

struct HelloOptions {
  std::optional<std::string> serverName;  // SNI, none when empty
  std::vector<std::string> alpn;          // offered in this order; none when empty
  bool tls12Only = false;                 // max protocol TLS 1.2 (no supported_versions)
};

// The record(s) OpenSSL's client writes as its first flight. Aborts on OpenSSL failure.
std::string opensslClientHello(const HelloOptions& options);

// The handshake bytes carried by consecutive handshake records (headers stripped).
std::string handshakeBytes(std::string_view records);
// One TLS record.
std::string record(std::string_view payload, uint8_t type = 22, uint16_t version = 0x0301);
// `message` cut into records of the given payload sizes, the last record taking the rest.
std::string reframe(std::string_view message, const std::vector<size_t>& sizes);

std::string extension(uint16_t type, std::string_view data);
std::string serverNameExtension(std::string_view name);
std::string alpnExtension(const std::vector<std::string>& protocols);
std::string supportedVersionsExtension(const std::vector<uint16_t>& versions);
// A ClientHello handshake message (4-byte header included) with these extension blocks
// (each from extension()); `withExtensions` false leaves the extensions field out.
std::string syntheticClientHello(const std::vector<std::string>& extensions,
                                 bool withExtensions = true);

// Real (randomness scrubbed to fixed bytes) and synthetic hellos, each a complete record
// sequence; the fuzz corpus seeds.
std::vector<std::string> clientHelloSeeds();

}  // namespace egressd::tls::fuzz
