#include "client_hello_check.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "tls/client_hello.h"

namespace egressd::tls::fuzz {
namespace {

using ParseStatus = ClientHelloParse::Status;

std::string_view currentInput;

[[noreturn]] void fail(const char* what, const std::string& detail = "") {
  std::fprintf(stderr, "ClientHello parser property violated: %s %s\ninput (%zu bytes): \"", what,
               detail.c_str(), currentInput.size());
  for (char ch : currentInput) {
    std::fprintf(stderr, "\\x%02x", static_cast<unsigned char>(ch));
  }
  std::fprintf(stderr, "\"\n");
  std::abort();
}

void check(bool condition, const char* what, const std::string& detail = "") {
  if (!condition) {
    fail(what, detail);
  }
}

const char* statusName(ParseStatus s) {
  switch (s) {
    case ParseStatus::kNeedMore:
      return "kNeedMore";
    case ParseStatus::kComplete:
      return "kComplete";
    case ParseStatus::kNotTls:
      return "kNotTls";
    case ParseStatus::kMalformed:
      return "kMalformed";
    case ParseStatus::kTooLarge:
      return "kTooLarge";
  }
  return "?";
}

std::string describe(const ClientHelloParse& p) {
  return std::string(statusName(p.status)) + " bytes=" + std::to_string(p.bytes) + " error=\"" +
         p.error + "\" sni=\"" + p.hello.serverName.value_or("<none>") + "\"";
}

bool sameHello(const ClientHello& a, const ClientHello& b) {
  return a.serverName == b.serverName && a.encryptedClientHello == b.encryptedClientHello &&
         a.alpn == b.alpn && a.offersTls13 == b.offersTls13;
}

bool same(const ClientHelloParse& a, const ClientHelloParse& b) {
  return a.status == b.status && a.bytes == b.bytes && a.error == b.error &&
         sameHello(a.hello, b.hello);
}

// Parses a copy of `data[0, size)` in an exact-size heap block, so AddressSanitizer sees any
// read past the end.
ClientHelloParse parseCopy(const uint8_t* data, size_t size, size_t maxBytes) {
  std::unique_ptr<char[]> copy(new char[size == 0 ? 1 : size]);
  std::copy(data, data + size, copy.get());
  return parseClientHello(std::string_view(copy.get(), size), maxBytes);
}

void checkShape(const ClientHelloParse& p, size_t size) {
  if (p.status == ParseStatus::kComplete) {
    check(p.bytes >= 9 && p.bytes <= size, "complete with bytes out of range", describe(p));
    check(p.error.empty(), "complete with an error", describe(p));
    if (p.hello.serverName) {
      const std::string& name = *p.hello.serverName;
      check(!name.empty() && name.size() <= 255, "server name length", describe(p));
      for (char ch : name) {
        const auto c = static_cast<unsigned char>(ch);
        check(c >= 0x21 && c <= 0x7e, "server name not printable", describe(p));
      }
    }
    for (const std::string& protocol : p.hello.alpn) {
      check(!protocol.empty() && protocol.size() <= 255, "ALPN name length", describe(p));
    }
    return;
  }
  check(p.bytes == 0, "bytes set without kComplete", describe(p));
  check(sameHello(p.hello, ClientHello{}), "hello set without kComplete", describe(p));
  check(p.error.empty() == (p.status == ParseStatus::kNeedMore), "error text presence",
        describe(p));
}

uint64_t splitmix(uint64_t& state) {
  uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

void checkClientHelloParser(const uint8_t* data, size_t size) {
  currentInput = std::string_view(reinterpret_cast<const char*>(data), size);
  const ClientHelloParse full = parseCopy(data, size, kMaxClientHelloBytes);
  checkShape(full, size);

  // Prefixes: every length for small inputs; else the bytes around each record header and
  // record end, the hello's end and a deterministic sample. Sorted, they must read
  // kNeedMore... then `full` to the end.
  std::vector<size_t> cuts;
  if (size <= 64) {
    for (size_t i = 0; i <= size; ++i) {
      cuts.push_back(i);
    }
  } else {
    for (size_t pos = 0, records = 0; pos < size && records < 16; ++records) {
      for (size_t i = 0; i <= 9; ++i) {
        cuts.push_back(pos + i);
      }
      if (pos + 5 > size) {
        break;
      }
      pos += 5 + ((static_cast<size_t>(data[pos + 3]) << 8) | data[pos + 4]);
      cuts.push_back(pos - 1);
    }
    uint64_t state = size;
    for (size_t i = 0; i < 24; ++i) {
      cuts.push_back(splitmix(state) % (size + 1));
    }
    if (full.status == ParseStatus::kComplete) {
      cuts.push_back(full.bytes - 1);
      cuts.push_back(full.bytes);
    }
    cuts.push_back(size);
    std::sort(cuts.begin(), cuts.end());
    cuts.erase(std::unique(cuts.begin(), cuts.end()), cuts.end());
    while (!cuts.empty() && cuts.back() > size) {
      cuts.pop_back();
    }
  }
  bool settled = false;
  for (size_t cut : cuts) {
    const ClientHelloParse p = parseCopy(data, cut, kMaxClientHelloBytes);
    checkShape(p, cut);
    if (!settled && p.status == ParseStatus::kNeedMore) {
      continue;
    }
    settled = true;
    check(same(p, full), "prefix result differs from the whole input's",
          "prefix " + std::to_string(cut) + ": " + describe(p) + " vs " + describe(full));
  }
  check(settled || full.status == ParseStatus::kNeedMore, "whole input settled but no prefix");

  if (full.status != ParseStatus::kComplete) {
    return;
  }
  // Exactly the hello's bytes suffice; a limit one below them is too small.
  const ClientHelloParse exact = parseCopy(data, full.bytes, full.bytes);
  check(same(exact, full), "limit = bytes changes the result", describe(exact));
  const ClientHelloParse tight = parseCopy(data, size, full.bytes - 1);
  check(tight.status == ParseStatus::kTooLarge, "limit below bytes is not kTooLarge",
        describe(tight));

  // Re-framed into records of pseudo-random sizes, the same hello comes out.
  std::string message;
  size_t pos = 0;
  while (pos + 5 <= full.bytes) {
    const size_t length = (static_cast<size_t>(data[pos + 3]) << 8) | data[pos + 4];
    message.append(reinterpret_cast<const char*>(data) + pos + 5, length);
    pos += 5 + length;
  }
  check(pos == full.bytes, "complete hello does not end on a record boundary");
  uint64_t state = size * 31 + message.size();
  std::string framed;
  for (size_t at = 0; at < message.size();) {
    const size_t take = std::min<size_t>(message.size() - at, 1 + splitmix(state) % 700);
    framed += std::string{'\x16', '\x03', '\x03', static_cast<char>(take >> 8),
                          static_cast<char>(take & 0xff)};
    framed.append(message, at, take);
    at += take;
  }
  const ClientHelloParse reframed = parseCopy(reinterpret_cast<const uint8_t*>(framed.data()),
                                              framed.size(), kMaxClientHelloBytes);
  if (framed.size() <= kMaxClientHelloBytes) {
    check(reframed.status == ParseStatus::kComplete && sameHello(reframed.hello, full.hello) &&
              reframed.bytes == framed.size(),
          "re-framed hello parses differently", describe(reframed));
  }
  currentInput = {};
}

}  // namespace egressd::tls::fuzz
