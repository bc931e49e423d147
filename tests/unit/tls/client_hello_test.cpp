#include "tls/client_hello.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "client_hello_seeds.h"

namespace egressd::tls {
namespace {

using fuzz::alpnExtension;
using fuzz::extension;
using fuzz::handshakeBytes;
using fuzz::opensslClientHello;
using fuzz::record;
using fuzz::reframe;
using fuzz::serverNameExtension;
using fuzz::supportedVersionsExtension;
using fuzz::syntheticClientHello;
using ParseStatus = ClientHelloParse::Status;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::string u16(size_t v) {
  return std::string{static_cast<char>((v >> 8) & 0xff), static_cast<char>(v & 0xff)};
}

// Every proper prefix of a complete hello needs more; the whole input (and anything after
// the hello) gives `expected`.
void expectPrefixesNeedMore(const std::string& input, const ClientHelloParse& expected) {
  for (size_t i = 0; i < expected.bytes; ++i) {
    const ClientHelloParse p = parseClientHello(std::string_view(input).substr(0, i));
    ASSERT_EQ(p.status, ParseStatus::kNeedMore) << "prefix of " << i << " bytes: " << p.error;
    ASSERT_TRUE(p.error.empty());
  }
  for (size_t i = expected.bytes; i <= input.size(); ++i) {
    const ClientHelloParse p = parseClientHello(std::string_view(input).substr(0, i));
    ASSERT_EQ(p.status, expected.status) << "prefix of " << i << " bytes";
    EXPECT_EQ(p.bytes, expected.bytes);
    EXPECT_EQ(p.hello.serverName, expected.hello.serverName);
    EXPECT_EQ(p.hello.alpn, expected.hello.alpn);
    EXPECT_EQ(p.hello.offersTls13, expected.hello.offersTls13);
    EXPECT_EQ(p.hello.encryptedClientHello, expected.hello.encryptedClientHello);
  }
}

ClientHelloParse parseRecord(const std::string& handshake) {
  return parseClientHello(record(handshake));
}

void expectMalformed(const std::string& input, const std::string& why) {
  const ClientHelloParse p = parseClientHello(input);
  EXPECT_EQ(p.status, ParseStatus::kMalformed) << "expected: " << why;
  EXPECT_THAT(p.error, HasSubstr(why));
  EXPECT_EQ(p.bytes, 0u);
  EXPECT_FALSE(p.hello.serverName.has_value());
}

TEST(ClientHello, RealTls13HelloWithSni) {
  const std::string hello = opensslClientHello({"api.example.com", {}, false});
  const ClientHelloParse p = parseClientHello(hello);
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error;
  EXPECT_EQ(p.hello.serverName, "api.example.com");
  EXPECT_TRUE(p.hello.offersTls13);
  EXPECT_FALSE(p.hello.encryptedClientHello);
  EXPECT_THAT(p.hello.alpn, IsEmpty());
  EXPECT_EQ(p.bytes, hello.size());
  EXPECT_TRUE(p.error.empty());
}

TEST(ClientHello, RealHelloWithoutSni) {
  const ClientHelloParse p = parseClientHello(opensslClientHello({std::nullopt, {}, false}));
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error;
  EXPECT_FALSE(p.hello.serverName.has_value());
  EXPECT_TRUE(p.hello.offersTls13);
}

TEST(ClientHello, RealHelloAlpnInOrder) {
  const ClientHelloParse p =
      parseClientHello(opensslClientHello({"h.test", {"h2", "http/1.1", "spdy/3"}, false}));
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error;
  EXPECT_THAT(p.hello.alpn, ElementsAre("h2", "http/1.1", "spdy/3"));
  EXPECT_EQ(p.hello.serverName, "h.test");
}

TEST(ClientHello, RealTls12OnlyHelloDoesNotOfferTls13) {
  const std::string hello = opensslClientHello({"old.test", {"http/1.1"}, true});
  const ClientHelloParse p = parseClientHello(hello);
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error;
  EXPECT_FALSE(p.hello.offersTls13);
  EXPECT_EQ(p.hello.serverName, "old.test");
  EXPECT_THAT(p.hello.alpn, ElementsAre("http/1.1"));
  EXPECT_EQ(p.bytes, hello.size());
}

TEST(ClientHello, EverySplitNeedsMoreUntilComplete) {
  for (const fuzz::HelloOptions& options :
       {fuzz::HelloOptions{"split.example.com", {"http/1.1"}, false},
        fuzz::HelloOptions{std::nullopt, {}, true}}) {
    const std::string hello = opensslClientHello(options);
    const ClientHelloParse full = parseClientHello(hello);
    ASSERT_EQ(full.status, ParseStatus::kComplete) << full.error;
    // What follows the hello (a ChangeCipherSpec, early data) is not part of it.
    expectPrefixesNeedMore(hello + record("\x01", 20, 0x0303), full);
  }
}

TEST(ClientHello, FragmentedOverSeveralRecords) {
  const std::string original = opensslClientHello({"frag.example.com", {"h2", "http/1.1"}, false});
  const std::string message = handshakeBytes(original);
  ASSERT_EQ(message.size() + 5, original.size());
  // The 4-byte handshake header itself split, the SNI split, and a plain two-way split.
  for (const std::vector<size_t>& sizes : std::vector<std::vector<size_t>>{
           {2}, {1, 1, 1, 1}, {3, 100}, {message.size() / 2}, {10, 20, 30}}) {
    const std::string framed = reframe(message, sizes);
    const ClientHelloParse p = parseClientHello(framed);
    ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error;
    EXPECT_EQ(p.hello.serverName, "frag.example.com");
    EXPECT_THAT(p.hello.alpn, ElementsAre("h2", "http/1.1"));
    EXPECT_TRUE(p.hello.offersTls13);
    EXPECT_EQ(p.bytes, framed.size());
    EXPECT_GT(p.bytes, original.size());
    expectPrefixesNeedMore(framed, p);
  }
}

TEST(ClientHello, LargeHelloOverTwoFullRecords) {
  // A hello bigger than one record (2^14) must be fragmented; it is still under 64 KiB.
  const std::string message = syntheticClientHello(
      {serverNameExtension("big.test"), extension(21, std::string(20000, '\0'))});
  const std::string framed = reframe(message, {16384});
  const ClientHelloParse p = parseClientHello(framed);
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error;
  EXPECT_EQ(p.hello.serverName, "big.test");
  EXPECT_EQ(p.bytes, framed.size());
}

TEST(ClientHello, EncryptedClientHelloAndEsni) {
  const ClientHelloParse ech = parseRecord(syntheticClientHello(
      {serverNameExtension("public.example"), extension(0xfe0d, std::string(64, '\x33')),
       supportedVersionsExtension({0x0304})}));
  ASSERT_EQ(ech.status, ParseStatus::kComplete) << ech.error;
  EXPECT_TRUE(ech.hello.encryptedClientHello);
  EXPECT_EQ(ech.hello.serverName, "public.example");  // the outer (public) name, as sent
  EXPECT_TRUE(ech.hello.offersTls13);

  const ClientHelloParse esni =
      parseRecord(syntheticClientHello({extension(0xffce, std::string(30, '\x01'))}));
  ASSERT_EQ(esni.status, ParseStatus::kComplete) << esni.error;
  EXPECT_TRUE(esni.hello.encryptedClientHello);
  EXPECT_FALSE(esni.hello.serverName.has_value());
  EXPECT_FALSE(esni.hello.offersTls13);

  const ClientHelloParse plain = parseRecord(syntheticClientHello({serverNameExtension("a.b")}));
  ASSERT_EQ(plain.status, ParseStatus::kComplete) << plain.error;
  EXPECT_FALSE(plain.hello.encryptedClientHello);
}

TEST(ClientHello, HelloWithoutExtensions) {
  const ClientHelloParse p = parseRecord(syntheticClientHello({}, false));
  ASSERT_EQ(p.status, ParseStatus::kComplete) << p.error;
  EXPECT_FALSE(p.hello.serverName.has_value());
  EXPECT_FALSE(p.hello.offersTls13);
}

TEST(ClientHello, NotTls) {
  for (const std::string input :
       {"GET / HTTP/1.1\r\n", "G", "\x80\x2e\x01\x03\x01", "\x17\x03\x03\x00\x10"}) {
    const ClientHelloParse p = parseClientHello(input);
    EXPECT_EQ(p.status, ParseStatus::kNotTls) << input;
    EXPECT_FALSE(p.error.empty());
  }
  EXPECT_EQ(parseClientHello("").status, ParseStatus::kNeedMore);
  EXPECT_EQ(parseClientHello("\x16").status, ParseStatus::kNeedMore);
}

TEST(ClientHello, BadRecordHeaders) {
  const std::string message = syntheticClientHello({serverNameExtension("r.test")});
  expectMalformed("\x16\x02", "record version major 2");
  expectMalformed(record(message, 22, 0x0300), "record version 0x0300");
  expectMalformed(record(message, 22, 0x0305), "record version 0x0305");
  expectMalformed(std::string("\x16\x03\x01\x00\x00", 5), "empty handshake record");
  expectMalformed("\x16\x03\x01\x40\x01", "record length 16385");
  // A second record that is not a handshake record while the hello is incomplete.
  const std::string split = reframe(message, {10});
  std::string wrongType = split;
  wrongType[5 + 10] = 23;
  expectMalformed(wrongType, "record type 23 inside the ClientHello");
}

TEST(ClientHello, WrongHandshakeType) {
  std::string message = syntheticClientHello({});
  message[0] = 2;  // ServerHello
  expectMalformed(record(message), "handshake type 2 is not ClientHello");
  // Known from the first payload byte on.
  EXPECT_EQ(parseClientHello(record(message).substr(0, 6)).status, ParseStatus::kMalformed);
}

TEST(ClientHello, InconsistentLengths) {
  const std::string message = syntheticClientHello({serverNameExtension("len.test")});
  // The record carries bytes after the hello.
  expectMalformed(record(message + "xx"), "2 bytes after the ClientHello in its record");
  // Handshake length shorter than its body: the extensions overrun it.
  std::string shortLength = message;
  shortLength[3] = static_cast<char>(shortLength[3] - 3);
  expectMalformed(record(shortLength.substr(0, shortLength.size() - 3)),
                  "extensions length exceeds the ClientHello");
  // Extensions block shorter than what follows it.
  const std::string extensionsBlock = serverNameExtension("len.test");
  std::string trailing =
      syntheticClientHello({}, false) + u16(extensionsBlock.size()) + extensionsBlock + "zz";
  trailing[3] = static_cast<char>(trailing.size() - 4);
  expectMalformed(record(trailing), "2 bytes after the extensions");
  // An extension whose length runs past the block.
  std::string overrun = syntheticClientHello({extension(21, "abcd")});
  overrun[overrun.size() - 5] = 9;
  expectMalformed(record(overrun), "truncated extension");
  // Handshake length 0.
  expectMalformed(record(std::string("\x01\x00\x00\x00", 4)), "truncated legacy_version");
  // Odd cipher_suites length, session id too long, no compression methods.
  std::string base = syntheticClientHello({}, false);
  std::string oddCiphers = base;
  oddCiphers[4 + 2 + 32 + 1 + 1] = 3;
  expectMalformed(record(oddCiphers), "ClientHello:");
  std::string longSession =
      base.substr(0, 4 + 2 + 32) + '\x21' + std::string(33, 's') + base.substr(4 + 2 + 32 + 1);
  longSession[3] = static_cast<char>(longSession.size() - 4);
  expectMalformed(record(longSession), "legacy_session_id of 33 bytes");
  std::string noCompression = base.substr(0, base.size() - 2) + '\0';
  noCompression[3] = static_cast<char>(noCompression.size() - 4);
  expectMalformed(record(noCompression), "no legacy_compression_methods");
}

TEST(ClientHello, TooLarge) {
  // Declared handshake length over 64 KiB: refused as soon as the length is in.
  const std::string header = std::string("\x16\x03\x01\x40\x00", 5) + "\x01\x01\x11\x70";
  const ClientHelloParse p = parseClientHello(header);
  EXPECT_EQ(p.status, ParseStatus::kTooLarge);
  EXPECT_THAT(p.error, HasSubstr("exceeds 65536"));
  // Records whose total would pass the limit.
  const std::string message = syntheticClientHello({extension(21, std::string(70000, '\0'))});
  EXPECT_EQ(parseClientHello(reframe(message, {16384, 16384, 16384, 16384})).status,
            ParseStatus::kTooLarge);
  // A caller-chosen limit: the hello's own size passes, one byte less does not.
  const std::string real = opensslClientHello({"limit.test", {}, false});
  EXPECT_EQ(parseClientHello(real, real.size()).status, ParseStatus::kComplete);
  EXPECT_EQ(parseClientHello(real, real.size() - 1).status, ParseStatus::kTooLarge);
}

TEST(ClientHello, DuplicateExtension) {
  expectMalformed(record(syntheticClientHello({alpnExtension({"h2"}), alpnExtension({"h2"})})),
                  "duplicate extension 16");
  expectMalformed(record(syntheticClientHello({extension(21, ""), extension(21, "")})),
                  "duplicate extension 21");
}

TEST(ClientHello, BadHostNames) {
  expectMalformed(record(syntheticClientHello({serverNameExtension("")})), "empty host_name");
  expectMalformed(record(syntheticClientHello({serverNameExtension(std::string(256, 'a'))})),
                  "host_name of 256 bytes");
  for (const std::string& bad : {std::string("a b.test"), std::string("a\x7f.test"),
                                 std::string("caf\xc3\xa9.test"), std::string("a\0b", 3)}) {
    expectMalformed(record(syntheticClientHello({serverNameExtension(bad)})),
                    "is not printable ASCII");
  }
  const std::string longest(255, 'x');
  const ClientHelloParse ok = parseRecord(syntheticClientHello({serverNameExtension(longest)}));
  ASSERT_EQ(ok.status, ParseStatus::kComplete) << ok.error;
  EXPECT_EQ(ok.hello.serverName, longest);
}

TEST(ClientHello, BadServerNameLists) {
  const std::string entry = '\0' + u16(6) + "a.test";
  expectMalformed(
      record(syntheticClientHello({extension(0, u16(entry.size() * 2) + entry + entry)})),
      "more than one entry");
  const std::string otherType = '\x01' + u16(6) + "a.test";
  expectMalformed(record(syntheticClientHello({extension(0, u16(otherType.size()) + otherType)})),
                  "name type 1 is not host_name");
  expectMalformed(record(syntheticClientHello({extension(0, "")})), "server_name: list length");
  expectMalformed(record(syntheticClientHello({extension(0, u16(0))})), "server_name: empty list");
  expectMalformed(record(syntheticClientHello({extension(0, u16(entry.size() + 1) + entry)})),
                  "server_name: list length");
}

TEST(ClientHello, BadAlpnAndSupportedVersions) {
  expectMalformed(record(syntheticClientHello({extension(16, u16(0))})),
                  "application_layer_protocol_negotiation: empty list");
  expectMalformed(
      record(syntheticClientHello({extension(16, u16(3) + std::string("\x02h2\x00", 4))})),
      "list length does not match");
  expectMalformed(record(syntheticClientHello({alpnExtension({"h2", ""})})), "empty protocol name");
  expectMalformed(record(syntheticClientHello({extension(43, std::string("\x03\x03\x04\x03", 4))})),
                  "supported_versions: list of 3 bytes");
}

TEST(ClientHello, FatalAlertRecord) {
  EXPECT_EQ(fatalAlertRecord(AlertDescription::kDecodeError),
            std::string("\x15\x03\x03\x00\x02\x02\x32", 7));
  EXPECT_EQ(fatalAlertRecord(AlertDescription::kAccessDenied),
            std::string("\x15\x03\x03\x00\x02\x02\x31", 7));
  EXPECT_EQ(fatalAlertRecord(AlertDescription::kNoApplicationProtocol).back(), '\x78');
}

}  // namespace
}  // namespace egressd::tls
