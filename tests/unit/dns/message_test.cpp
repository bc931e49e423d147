// DNS message building and parsing: the query's exact bytes, the checks that tie a response
// to our query, compression (including hostile pointers), CNAME chains and TTLs.
#include "dns/message.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "dns_test_util.h"

namespace egressd::dns {
namespace {

using testing::aaaaRdata;
using testing::aRdata;
using testing::encode;
using testing::nameRdata;
using testing::Response;
using testing::Rr;

constexpr uint16_t kId = 0x1234;

Response responseFor(const std::string& name, uint16_t qtype, std::vector<Rr> answers = {}) {
  Response response;
  response.id = kId;
  response.qname = name;
  response.qtype = qtype;
  response.answers = std::move(answers);
  return response;
}

ParsedAnswer parseOk(const std::vector<uint8_t>& msg, const std::string& name = "example.test",
                     uint16_t qtype = kTypeA) {
  auto parsed = parseResponse(msg, kId, name, qtype);
  EXPECT_TRUE(parsed.ok()) << parsed.error().message();
  return parsed.ok() ? *parsed : ParsedAnswer{};
}

std::string parseError(const std::vector<uint8_t>& msg, const std::string& name = "example.test",
                       uint16_t qtype = kTypeA) {
  auto parsed = parseResponse(msg, kId, name, qtype);
  EXPECT_FALSE(parsed.ok());
  if (parsed.ok()) {
    return "";
  }
  EXPECT_EQ(parsed.error().code(), EBADMSG);
  return parsed.error().message();
}

IpAddress ip(const std::string& text) {
  return IpAddress::parse(text).value();
}

TEST(BuildQueryTest, WritesTheExactWireForm) {
  const std::vector<uint8_t> query = buildQuery(0xbeef, "www.Example.com.", kTypeAaaa);
  const std::vector<uint8_t> expected = {
      0xbe, 0xef, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // header
      3,    'w',  'w',  'w',  7,    'E',  'x',  'a',  'm',  'p',  'l',  'e',
      3,    'c',  'o',  'm',  0,    0x00, 0x1c, 0x00, 0x01};
  EXPECT_EQ(query, expected);
}

TEST(BuildQueryTest, RefusesNamesThatCannotBeEncoded) {
  EXPECT_TRUE(buildQuery(1, "", kTypeA).empty());
  EXPECT_TRUE(buildQuery(1, ".", kTypeA).empty());
  EXPECT_TRUE(buildQuery(1, "a..b", kTypeA).empty());
  EXPECT_TRUE(buildQuery(1, ".a", kTypeA).empty());
  EXPECT_TRUE(buildQuery(1, std::string(64, 'a') + ".com", kTypeA).empty());
  EXPECT_FALSE(buildQuery(1, std::string(63, 'a') + ".com", kTypeA).empty());
  std::string longest;
  while (longest.size() < 253) {
    longest += longest.empty() ? "a" : ".a";
  }
  EXPECT_FALSE(buildQuery(1, longest, kTypeA).empty());
  EXPECT_TRUE(buildQuery(1, longest + "a", kTypeA).empty());
}

TEST(ParseResponseTest, ReadsARecords) {
  const ParsedAnswer answer =
      parseOk(encode(responseFor("example.test", kTypeA,
                                 {Rr{"example.test", kTypeA, 300, aRdata("198.18.0.1")},
                                  Rr{"example.test", kTypeA, 60, aRdata("198.18.0.2")}})));
  EXPECT_EQ(answer.rcode, kRcodeNoError);
  EXPECT_FALSE(answer.truncated);
  EXPECT_EQ(answer.addresses, (std::vector<IpAddress>{ip("198.18.0.1"), ip("198.18.0.2")}));
  EXPECT_EQ(answer.ttl, 60u);
}

TEST(ParseResponseTest, ReadsAaaaRecordsAndNormalizesMappedOnes) {
  const ParsedAnswer answer = parseOk(
      encode(responseFor("example.test", kTypeAaaa,
                         {Rr{"example.test", kTypeAaaa, 30, aaaaRdata("2001:db8::1")},
                          Rr{"example.test", kTypeAaaa, 30, aaaaRdata("::ffff:127.0.0.1")}})),
      "example.test", kTypeAaaa);
  ASSERT_EQ(answer.addresses.size(), 2u);
  EXPECT_EQ(answer.addresses[0], ip("2001:db8::1"));
  EXPECT_EQ(answer.addresses[1], IpAddress::v4(127, 0, 0, 1));
}

TEST(ParseResponseTest, IgnoresRecordsOfOtherNamesTypesAndClasses) {
  const ParsedAnswer answer = parseOk(
      encode(responseFor("example.test", kTypeA,
                         {Rr{"evil.test", kTypeA, 300, aRdata("6.6.6.6")},
                          Rr{"example.test", kTypeAaaa, 300, aaaaRdata("2001:db8::1")},
                          Rr{"example.test", kTypeA, 300, aRdata("6.6.6.7"), 3},  // CHAOS class
                          Rr{"example.test", 46, 300, {1, 2, 3}},                 // RRSIG-like
                          Rr{"example.test", kTypeA, 300, aRdata("198.18.0.1")},
                          Rr{"example.test", kTypeA, 300, aRdata("198.18.0.1")}})));  // duplicate
  EXPECT_EQ(answer.addresses, std::vector<IpAddress>{ip("198.18.0.1")});
}

TEST(ParseResponseTest, MatchesNamesCaseInsensitively) {
  const ParsedAnswer answer = parseOk(encode(responseFor(
      "ExAmPlE.TeSt", kTypeA, {Rr{"EXAMPLE.test", kTypeA, 300, aRdata("198.18.0.1")}})));
  EXPECT_EQ(answer.addresses.size(), 1u);
  EXPECT_EQ(parseOk(encode(responseFor("example.test", kTypeA,
                                       {Rr{"example.test", kTypeA, 5, aRdata("1.1.1.1")}})),
                    "EXAMPLE.TEST.")
                .addresses.size(),
            1u);
}

TEST(ParseResponseTest, FollowsCnameChains) {
  const ParsedAnswer answer = parseOk(
      encode(responseFor("www.example.test", kTypeA,
                         {Rr{"www.example.test", kTypeCname, 120, nameRdata("edge.cdn.test")},
                          Rr{"edge.cdn.test", kTypeCname, 30, nameRdata("pop1.cdn.test")},
                          Rr{"pop1.cdn.test", kTypeA, 600, aRdata("198.18.5.5")},
                          Rr{"unrelated.cdn.test", kTypeA, 600, aRdata("6.6.6.6")}})),
      "www.example.test");
  EXPECT_EQ(answer.addresses, std::vector<IpAddress>{ip("198.18.5.5")});
  EXPECT_EQ(answer.ttl, 30u);  // the smallest along the chain
}

TEST(ParseResponseTest, CnameWithoutAddressesIsNoData) {
  const ParsedAnswer answer = parseOk(encode(responseFor(
      "example.test", kTypeA, {Rr{"example.test", kTypeCname, 60, nameRdata("other.test")}})));
  EXPECT_TRUE(answer.addresses.empty());
  EXPECT_EQ(answer.ttl, 0u);
  EXPECT_EQ(answer.rcode, kRcodeNoError);
}

TEST(ParseResponseTest, CnameChainsAreBounded) {
  std::vector<Rr> chain;
  for (int i = 0; i < kMaxCnameChain; ++i) {
    chain.push_back(Rr{"c" + std::to_string(i) + ".test", kTypeCname, 60,
                       nameRdata("c" + std::to_string(i + 1) + ".test")});
  }
  chain.push_back(
      Rr{"c" + std::to_string(kMaxCnameChain) + ".test", kTypeA, 60, aRdata("198.18.0.8")});
  // Exactly kMaxCnameChain hops are followed...
  EXPECT_EQ(parseOk(encode(responseFor("c0.test", kTypeA, chain)), "c0.test").addresses.size(), 1u);
  // ...one more is refused, and so is a loop.
  std::vector<Rr> longer = chain;
  longer.insert(longer.begin(), Rr{"start.test", kTypeCname, 60, nameRdata("c0.test")});
  EXPECT_NE(parseError(encode(responseFor("start.test", kTypeA, longer)), "start.test")
                .find("CNAME chain"),
            std::string::npos);
  const std::vector<Rr> loop = {Rr{"a.test", kTypeCname, 60, nameRdata("b.test")},
                                Rr{"b.test", kTypeCname, 60, nameRdata("a.test")}};
  EXPECT_NE(parseError(encode(responseFor("a.test", kTypeA, loop)), "a.test").find("CNAME chain"),
            std::string::npos);
}

TEST(ParseResponseTest, NegativeTtlBitMeansZero) {
  const ParsedAnswer answer = parseOk(encode(responseFor(
      "example.test", kTypeA, {Rr{"example.test", kTypeA, 0x80000001u, aRdata("198.18.0.1")}})));
  EXPECT_EQ(answer.ttl, 0u);
}

TEST(ParseResponseTest, FollowsCompressionPointers) {
  // Owner names point at the question (offset 12); the CNAME target ends in a pointer to
  // "example.test" inside the question; the last owner points into the CNAME data.
  std::vector<uint8_t> msg = {0x12, 0x34, 0x81, 0x80, 0, 1, 0, 2, 0, 0, 0, 0};
  testing::appendName(msg, "www.example.test");  // offset 12; "example.test" at 16
  msg.insert(msg.end(), {0, 1, 0, 1});
  // www.example.test CNAME cdn.example.test
  msg.insert(msg.end(), {0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 6, 3, 'c', 'd', 'n', 0xc0, 16});
  const uint8_t cdnOffset = static_cast<uint8_t>(msg.size() - 6);
  // cdn.example.test A 198.18.7.7
  msg.insert(msg.end(), {0xc0, cdnOffset, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 198, 18, 7, 7});
  const ParsedAnswer answer = parseOk(msg, "www.example.test");
  EXPECT_EQ(answer.addresses, std::vector<IpAddress>{ip("198.18.7.7")});
}

TEST(ParseResponseTest, PointerLoopsAreErrorsNotHangs) {
  // An answer whose owner is a pointer to itself.
  std::vector<uint8_t> self = encode(responseFor("example.test", kTypeA));
  self[7] = 1;  // ANCOUNT
  const uint8_t at = static_cast<uint8_t>(self.size());
  self.insert(self.end(), {0xc0, at, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 1, 2, 3, 4});
  EXPECT_NE(parseError(self).find("loop"), std::string::npos);

  // Two pointers pointing at each other.
  std::vector<uint8_t> pair = encode(responseFor("example.test", kTypeA));
  pair[7] = 1;
  const uint8_t first = static_cast<uint8_t>(pair.size());
  pair.insert(pair.end(), {0xc0, static_cast<uint8_t>(first + 2), 0xc0, first});
  EXPECT_NE(parseError(pair).find("loop"), std::string::npos);

  // A label followed by a pointer back to the label: the name grows until the length cap.
  std::vector<uint8_t> growing = encode(responseFor("example.test", kTypeA));
  growing[7] = 1;
  const uint8_t label = static_cast<uint8_t>(growing.size());
  growing.insert(growing.end(), {1, 'a', 0xc0, label});
  EXPECT_NE(parseError(growing).find("longer than 255"), std::string::npos);
}

TEST(ParseResponseTest, RejectsBadPointersAndLabels) {
  std::vector<uint8_t> outside = encode(responseFor("example.test", kTypeA));
  outside[7] = 1;
  outside.insert(outside.end(), {0xc3, 0xff});
  EXPECT_NE(parseError(outside).find("outside the message"), std::string::npos);

  std::vector<uint8_t> intoHeader = encode(responseFor("example.test", kTypeA));
  intoHeader[7] = 1;
  intoHeader.insert(intoHeader.end(), {0xc0, 2});
  EXPECT_NE(parseError(intoHeader).find("outside the message"), std::string::npos);

  std::vector<uint8_t> extended = encode(responseFor("example.test", kTypeA));
  extended[7] = 1;
  extended.insert(extended.end(), {0x41, 0});
  EXPECT_NE(parseError(extended).find("unsupported label type"), std::string::npos);
}

TEST(ParseResponseTest, LabelsWithDotsDoNotMatchTwoLabels) {
  // One label "example.test" (with the dot inside) is a different name.
  std::vector<uint8_t> msg = {0x12, 0x34, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0, 12};
  const std::string label = "example.test";
  msg.insert(msg.end(), label.begin(), label.end());
  msg.insert(msg.end(), {0, 0, 1, 0, 1});
  EXPECT_NE(parseError(msg).find("not for example.test"), std::string::npos);
}

TEST(ParseResponseTest, TruncatedMessagesAreErrors) {
  const std::vector<uint8_t> full = encode(
      responseFor("example.test", kTypeA, {Rr{"example.test", kTypeA, 60, aRdata("198.18.0.1")}}));
  ASSERT_TRUE(parseResponse(full, kId, "example.test", kTypeA).ok());
  for (size_t length = 0; length < full.size(); ++length) {
    const std::vector<uint8_t> cut(full.begin(),
                                   full.begin() + static_cast<std::ptrdiff_t>(length));
    auto parsed = parseResponse(cut, kId, "example.test", kTypeA);
    EXPECT_FALSE(parsed.ok()) << "accepted a message cut to " << length << " bytes";
  }
  EXPECT_NE(parseError({0x12, 0x34, 0x81}).find("shorter than the 12-byte header"),
            std::string::npos);
}

TEST(ParseResponseTest, RejectsBadAddressLengths) {
  EXPECT_NE(parseError(encode(responseFor("example.test", kTypeA,
                                          {Rr{"example.test", kTypeA, 60, {1, 2, 3}}})))
                .find("A record with 3 bytes"),
            std::string::npos);
  EXPECT_NE(parseError(encode(responseFor("example.test", kTypeAaaa,
                                          {Rr{"example.test", kTypeAaaa, 60, aRdata("1.2.3.4")}})),
                       "example.test", kTypeAaaa)
                .find("AAAA record with 4 bytes"),
            std::string::npos);
  // A CNAME whose name does not end where its data does.
  std::vector<uint8_t> cname = nameRdata("other.test");
  cname.push_back(0);
  EXPECT_NE(parseError(encode(responseFor("example.test", kTypeA,
                                          {Rr{"example.test", kTypeCname, 60, cname}})))
                .find("bad data length"),
            std::string::npos);
}

TEST(ParseResponseTest, RejectsResponsesToOtherQueries) {
  Response response =
      responseFor("example.test", kTypeA, {Rr{"example.test", kTypeA, 60, aRdata("198.18.0.1")}});
  auto wrongId = parseResponse(encode(response), 0x4321, "example.test", kTypeA);
  ASSERT_FALSE(wrongId.ok());
  EXPECT_EQ(wrongId.error().message(), "DNS response id 0x1234 does not match query id 0x4321");

  EXPECT_NE(parseError(encode(response), "other.test").find("not for other.test"),
            std::string::npos);
  EXPECT_NE(parseError(encode(response), "example.test", kTypeAaaa).find("not for"),
            std::string::npos);

  Response query = response;
  query.flags = 0x0100;  // QR clear
  EXPECT_NE(parseError(encode(query)).find("not a response"), std::string::npos);

  Response notify = response;
  notify.flags = 0x8180 | (4 << 11);
  EXPECT_NE(parseError(encode(notify)).find("opcode 4"), std::string::npos);

  Response chaos = response;
  chaos.qclass = 3;
  EXPECT_NE(parseError(encode(chaos)).find("not for"), std::string::npos);

  std::vector<uint8_t> noQuestion = encode(response);
  noQuestion[5] = 0;
  EXPECT_NE(parseError(noQuestion).find("0 questions"), std::string::npos);
  std::vector<uint8_t> twoQuestions = encode(response);
  twoQuestions[5] = 2;
  EXPECT_NE(parseError(twoQuestions).find("2 questions"), std::string::npos);
}

TEST(ParseResponseTest, ReturnsRcodeAndTruncationWithoutAddresses) {
  Response nx = responseFor("example.test", kTypeA);
  nx.flags = 0x8183;
  const ParsedAnswer nxAnswer = parseOk(encode(nx));
  EXPECT_EQ(nxAnswer.rcode, kRcodeNxDomain);
  EXPECT_TRUE(nxAnswer.addresses.empty());

  Response truncated =
      responseFor("example.test", kTypeA, {Rr{"example.test", kTypeA, 60, aRdata("198.18.0.1")}});
  truncated.flags = 0x8380;
  const ParsedAnswer tcAnswer = parseOk(encode(truncated));
  EXPECT_TRUE(tcAnswer.truncated);
  EXPECT_TRUE(tcAnswer.addresses.empty());

  // A truncated answer section does not matter when TC is set.
  std::vector<uint8_t> cut = encode(truncated);
  cut.resize(cut.size() - 5);
  EXPECT_TRUE(parseOk(cut).truncated);
}

TEST(MessageNamesTest, RcodeAndTypeNames) {
  EXPECT_EQ(rcodeName(kRcodeNxDomain), "NXDOMAIN");
  EXPECT_EQ(rcodeName(kRcodeServFail), "SERVFAIL");
  EXPECT_EQ(rcodeName(9), "RCODE 9");
  EXPECT_EQ(typeName(kTypeAaaa), "AAAA");
  EXPECT_EQ(typeName(65), "TYPE 65");
}

}  // namespace
}  // namespace egressd::dns
