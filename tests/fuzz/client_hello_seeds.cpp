#include "client_hello_seeds.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "tls/openssl_ptr.h"

namespace egressd::tls::fuzz {
namespace {

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "client_hello_seeds: %s: %s\n", what, drainOpenSslErrors().c_str());
  std::abort();
}

std::string u16(size_t v) {
  return std::string{static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)};
}

std::string u24(size_t v) {
  return static_cast<char>((v >> 16) & 0xff) + u16(v);
}

size_t readU16(const std::string& s, size_t at) {
  return (static_cast<size_t>(static_cast<uint8_t>(s[at])) << 8) | static_cast<uint8_t>(s[at + 1]);
}

// Overwrites the per-run random parts of a one-record OpenSSL hello (random, session id,
// key_share public keys) with fixed bytes, so the replay's mutations are the same every run.
void scrubRandomness(std::string& hello) {
  size_t at = 5 + 4 + 2;  // record header, handshake header, legacy_version
  std::fill_n(hello.begin() + static_cast<std::ptrdiff_t>(at), 32, '\x5a');
  at += 32;
  const size_t sessionIdLength = static_cast<uint8_t>(hello[at]);
  std::fill_n(hello.begin() + static_cast<std::ptrdiff_t>(at + 1), sessionIdLength, '\x1d');
  at += 1 + sessionIdLength;
  at += 2 + readU16(hello, at);               // cipher_suites
  at += 1 + static_cast<uint8_t>(hello[at]);  // legacy_compression_methods
  if (at + 2 > hello.size()) {
    return;
  }
  const size_t end = at + 2 + readU16(hello, at);
  for (at += 2; at + 4 <= end;) {
    const size_t type = readU16(hello, at);
    const size_t length = readU16(hello, at + 2);
    if (type == 51) {  // key_share: client_shares<2..>, each group(2) + key_exchange<1..2^16-1>
      for (size_t share = at + 6; share + 4 <= at + 4 + length;) {
        const size_t keyLength = readU16(hello, share + 2);
        std::fill_n(hello.begin() + static_cast<std::ptrdiff_t>(share + 4), keyLength, '\x42');
        share += 4 + keyLength;
      }
    }
    at += 4 + length;
  }
}

}  // namespace

std::string opensslClientHello(const HelloOptions& options) {
  SslCtxPtr ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) {
    die("SSL_CTX_new");
  }
  if (options.tls12Only && SSL_CTX_set_max_proto_version(ctx.get(), TLS1_2_VERSION) != 1) {
    die("max version");
  }
  SslPtr ssl(SSL_new(ctx.get()));
  if (!ssl) {
    die("SSL_new");
  }
  if (options.serverName && SSL_set_tlsext_host_name(ssl.get(), options.serverName->c_str()) != 1) {
    die("SNI");
  }
  if (!options.alpn.empty()) {
    std::string wire;
    for (const std::string& p : options.alpn) {
      wire += static_cast<char>(p.size());
      wire += p;
    }
    if (SSL_set_alpn_protos(ssl.get(), reinterpret_cast<const unsigned char*>(wire.data()),
                            static_cast<unsigned>(wire.size())) != 0) {
      die("ALPN");
    }
  }
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  if (in == nullptr || out == nullptr) {
    die("BIO_new");
  }
  SSL_set_bio(ssl.get(), in, out);  // the SSL owns both now
  SSL_set_connect_state(ssl.get());
  if (SSL_do_handshake(ssl.get()) == 1 || SSL_get_error(ssl.get(), -1) != SSL_ERROR_WANT_READ) {
    die("writing the ClientHello");
  }
  char* data = nullptr;
  const long size = BIO_get_mem_data(out, &data);
  return std::string(data, static_cast<size_t>(size));
}

std::string handshakeBytes(std::string_view records) {
  std::string out;
  size_t pos = 0;
  while (pos + 5 <= records.size() && records[pos] == 22) {
    const size_t length = (static_cast<size_t>(static_cast<uint8_t>(records[pos + 3])) << 8) |
                          static_cast<uint8_t>(records[pos + 4]);
    out.append(records.substr(pos + 5, length));
    pos += 5 + length;
  }
  return out;
}

std::string record(std::string_view payload, uint8_t type, uint16_t version) {
  return static_cast<char>(type) + u16(version) + u16(payload.size()) + std::string(payload);
}

std::string reframe(std::string_view message, const std::vector<size_t>& sizes) {
  std::string out;
  size_t pos = 0;
  for (size_t size : sizes) {
    const size_t take = std::min(size, message.size() - pos);
    out += record(message.substr(pos, take));
    pos += take;
  }
  if (pos < message.size()) {
    out += record(message.substr(pos));
  }
  return out;
}

std::string extension(uint16_t type, std::string_view data) {
  return u16(type) + u16(data.size()) + std::string(data);
}

std::string serverNameExtension(std::string_view name) {
  const std::string entry = '\0' + u16(name.size()) + std::string(name);
  return extension(0, u16(entry.size()) + entry);
}

std::string alpnExtension(const std::vector<std::string>& protocols) {
  std::string list;
  for (const std::string& p : protocols) {
    list += static_cast<char>(p.size());
    list += p;
  }
  return extension(16, u16(list.size()) + list);
}

std::string supportedVersionsExtension(const std::vector<uint16_t>& versions) {
  std::string list;
  for (uint16_t v : versions) {
    list += u16(v);
  }
  return extension(43, static_cast<char>(list.size()) + list);
}

std::string syntheticClientHello(const std::vector<std::string>& extensions, bool withExtensions) {
  std::string body = u16(0x0303);                       // legacy_version
  body += std::string(32, '\x5a');                      // random
  body += '\0';                                         // legacy_session_id
  body += u16(4) + std::string("\x13\x01\xc0\x2b", 4);  // cipher_suites
  body += std::string("\x01\x00", 2);                   // legacy_compression_methods
  if (withExtensions) {
    std::string all;
    for (const std::string& e : extensions) {
      all += e;
    }
    body += u16(all.size()) + all;
  }
  return '\x01' + u24(body.size()) + body;
}

std::vector<std::string> clientHelloSeeds() {
  std::vector<std::string> seeds;
  for (const HelloOptions& options :
       {HelloOptions{"example.com", {}, false}, HelloOptions{std::nullopt, {}, false},
        HelloOptions{"api.example.com", {"h2", "http/1.1"}, false},
        HelloOptions{"legacy.test", {"http/1.1"}, true}, HelloOptions{std::nullopt, {}, true}}) {
    seeds.push_back(opensslClientHello(options));
    scrubRandomness(seeds.back());
  }
  const std::string message = handshakeBytes(seeds[2]);
  seeds.push_back(reframe(message, {1, 3, 60}));
  seeds.push_back(reframe(message, {message.size() / 2}));
  seeds.push_back(record(syntheticClientHello({serverNameExtension("public.example"),
                                               extension(0xfe0d, std::string(40, '\x07')),
                                               supportedVersionsExtension({0x0304, 0x0303})})));
  seeds.push_back(record(syntheticClientHello({extension(0xffce, std::string(20, '\x01'))})));
  seeds.push_back(record(syntheticClientHello({}, false)));
  seeds.push_back(record(syntheticClientHello(
      {alpnExtension({"http/1.1"}), serverNameExtension("a.b"), extension(21, "")})));
  // Malformed ones give the fuzzer the shapes of the error paths.
  seeds.push_back(record(
      syntheticClientHello({serverNameExtension("dup.test"), serverNameExtension("dup.test")})));
  seeds.push_back(record(syntheticClientHello({serverNameExtension("bad name")})));
  seeds.push_back("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
  return seeds;
}

}  // namespace egressd::tls::fuzz
