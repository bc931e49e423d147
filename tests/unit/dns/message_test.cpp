// DNS message building and parsing: the query's exact bytes, the checks that tie a response
// to our query, compression (including hostile pointers), CNAME chains and TTLs.
#include "dns/message.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
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

// Found by fuzz.dns_answer: a CNAME query's answer came back with 0.0.0.0 as an address
// (the CNAME records' unset address), so the sandbox resolver dropped it as a special
// destination and every CNAME answer reached the sandbox empty.
TEST(ParseResponseTest, CnameQueryHasNoAddresses) {
  const ParsedAnswer answer = parseOk(
      encode(responseFor("www.example.test", kTypeCname,
                         {Rr{"www.example.test", kTypeCname, 120, nameRdata("edge.cdn.test")},
                          Rr{"edge.cdn.test", kTypeA, 600, aRdata("198.18.5.5")}})),
      "www.example.test", kTypeCname);
  EXPECT_TRUE(answer.addresses.empty());
  EXPECT_EQ(answer.ttl, 0u);
  EXPECT_EQ(answer.minRecordTtl, 120u);  // still there for caching the whole answer
  EXPECT_EQ(answer.answerCount, 2u);
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
  EXPECT_EQ(typeName(65), "HTTPS");
  EXPECT_EQ(typeName(99), "TYPE 99");
}

}  // namespace
}  // namespace egressd::dns

namespace egressd::dns {
namespace {

// A sandbox's query as dig sends it: RD, one question, optionally an OPT record.
std::vector<uint8_t> clientQuery(uint16_t id, const std::string& name, uint16_t qtype,
                                 std::optional<uint16_t> ednsSize = std::nullopt) {
  std::vector<uint8_t> q = buildQuery(id, name, qtype);
  if (q.empty()) {
    // buildQuery refuses names longer than 253 characters: encode them by hand.
    q = {static_cast<uint8_t>(id >> 8), static_cast<uint8_t>(id), 1, 0, 0, 1, 0, 0, 0, 0, 0, 0};
    testing::appendName(q, name);
    q.insert(q.end(), {static_cast<uint8_t>(qtype >> 8), static_cast<uint8_t>(qtype), 0, 1});
  }
  if (ednsSize) {
    q[11] = 1;
    q.insert(q.end(), {0, 0, 41, static_cast<uint8_t>(*ednsSize >> 8),
                       static_cast<uint8_t>(*ednsSize), 0, 0, 0, 0, 0, 0});
  }
  return q;
}

TEST(QueryTest, ParsesAQuestionWithEdns) {
  auto q = parseQuery(clientQuery(0xbeef, "WWW.Example.TEST.", kTypeAaaa, 4096));
  ASSERT_TRUE(q.ok()) << q.error().message();
  EXPECT_EQ(q->id, 0xbeef);
  EXPECT_TRUE(q->recursionDesired);
  EXPECT_EQ(q->name, "www.example.test");
  EXPECT_EQ(q->qtype, kTypeAaaa);
  EXPECT_EQ(q->qclass, kClassIn);
  EXPECT_EQ(q->nameWireLength, 18u);
  EXPECT_EQ(q->longestLabel, 7u);
  EXPECT_TRUE(q->hasEdns);
  EXPECT_EQ(maxUdpAnswer(*q), 1232u);  // clamped
  auto plain = parseQuery(clientQuery(1, "a.test", kTypeA));
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(maxUdpAnswer(*plain), 512u);
  // A label with a dot or a NUL in it is escaped, never two labels.
  std::vector<uint8_t> odd = {0,   1,   1, 0, 0,   1,   0,   0,   0, 0, 0, 0, 3,
                              'a', '.', 0, 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1};
  auto escaped = parseQuery(odd);
  ASSERT_TRUE(escaped.ok());
  EXPECT_EQ(escaped->name, "a\\046\\000.test");
}

TEST(QueryTest, RefusesWhatIsNotOneQuestion) {
  std::vector<uint8_t> q = clientQuery(1, "a.test", kTypeA);
  EXPECT_FALSE(parseQuery(std::vector<uint8_t>(q.begin(), q.begin() + 11)).ok());
  EXPECT_FALSE(headerUsable(std::vector<uint8_t>(q.begin(), q.begin() + 11)));
  auto response = q;
  response[2] |= 0x80;
  EXPECT_FALSE(parseQuery(response).ok());
  EXPECT_FALSE(headerUsable(response));
  auto two = q;
  two[5] = 2;
  EXPECT_FALSE(parseQuery(two).ok());
  EXPECT_TRUE(headerUsable(two));
  auto formErr = buildFormErr(two);
  ASSERT_EQ(formErr.size(), kHeaderSize);
  EXPECT_EQ(formErr[3] & 0xf, kRcodeFormErr);
  EXPECT_EQ(formErr[0], 0);
  EXPECT_EQ(formErr[1], 1);
  auto compressed = q;
  compressed[12] = 0xc0;
  EXPECT_FALSE(parseQuery(compressed).ok());
  auto withAnswer = q;
  withAnswer[7] = 1;
  EXPECT_FALSE(parseQuery(withAnswer).ok());
  auto truncated = q;
  truncated.pop_back();
  EXPECT_FALSE(parseQuery(truncated).ok());
}

TEST(QueryTest, LocalAnswersEchoTheQuestion) {
  const std::vector<uint8_t> query = clientQuery(0x4242, "Denied.Test", kTypeA, 1232);
  auto q = parseQuery(query);
  ASSERT_TRUE(q.ok());
  const std::vector<uint8_t> a = buildLocalAnswer(query, *q, kRcodeNxDomain);
  ASSERT_EQ(a.size(), q->questionEnd);  // no OPT, no records
  EXPECT_EQ(a[0], 0x42);
  EXPECT_EQ(a[2], 0x81);  // QR, RD
  EXPECT_EQ(a[3], 0x80 | kRcodeNxDomain);
  EXPECT_EQ(a[5], 1);
  EXPECT_EQ(a[11], 0);
  EXPECT_TRUE(std::equal(a.begin() + 12, a.end(), query.begin() + 12));
  // It parses as a response to the question (the case the client asked in).
  auto parsed = parseResponse(a, 0x4242, "denied.test", kTypeA);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  EXPECT_EQ(parsed->rcode, kRcodeNxDomain);
}

TEST(QueryTest, RelayedAnswersTakeTheClientsIdAndCase) {
  const std::vector<uint8_t> query = clientQuery(0x0102, "WwW.Example.Test", kTypeA);
  auto q = parseQuery(query);
  ASSERT_TRUE(q.ok());
  Response upstream = responseFor("www.example.test", kTypeA,
                                  {Rr{"www.example.test", kTypeA, 30, aRdata("192.0.2.7")}});
  upstream.id = 0x9999;
  auto relayed = relayAnswer(encode(upstream), query, *q, 512);
  ASSERT_TRUE(relayed.ok()) << relayed.error().message();
  EXPECT_EQ((*relayed)[0], 0x01);
  EXPECT_EQ((*relayed)[1], 0x02);
  EXPECT_TRUE(std::equal(relayed->begin() + 12,
                         relayed->begin() + static_cast<std::ptrdiff_t>(q->questionEnd),
                         query.begin() + 12));
  auto parsed = parseResponse(*relayed, 0x0102, "www.example.test", kTypeA);
  ASSERT_TRUE(parsed.ok());
  ASSERT_EQ(parsed->addresses.size(), 1u);
  EXPECT_EQ(parsed->addresses[0].toString(), "192.0.2.7");
  // Too big for the client's UDP size: the question alone, with TC.
  auto small = relayAnswer(encode(upstream), query, *q, 40);
  ASSERT_TRUE(small.ok());
  EXPECT_EQ(small->size(), q->questionEnd);
  EXPECT_NE((*small)[2] & 0x02, 0);
  // An answer to another question is not relayed.
  auto other = relayAnswer(encode(responseFor("www.example.tesu", kTypeA)), query, *q, 512);
  EXPECT_FALSE(other.ok());
}

TEST(QueryTest, AddressAnswersCarryOnlyTheQuestionsFamily) {
  const std::vector<uint8_t> query = clientQuery(7, "a.test", kTypeAaaa);
  auto q = parseQuery(query);
  ASSERT_TRUE(q.ok());
  auto a = buildAddressAnswer(
      query, *q, {*IpAddress::parse("192.0.2.1"), *IpAddress::parse("2001:db8::5")}, 42);
  auto parsed = parseResponse(a, 7, "a.test", kTypeAaaa);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message();
  ASSERT_EQ(parsed->addresses.size(), 1u);
  EXPECT_EQ(parsed->addresses[0].toString(), "2001:db8::5");
  EXPECT_EQ(parsed->ttl, 42u);
  EXPECT_EQ(parsed->answerCount, 1u);
}

TEST(QueryTest, MinRecordTtlCoversEveryType) {
  Response r = responseFor(
      "t.test", kTypeTxt,
      {Rr{"t.test", kTypeTxt, 90, {3, 'a', 'b', 'c'}}, Rr{"t.test", kTypeTxt, 30, {1, 'x'}}});
  ParsedAnswer a = parseOk(encode(r), "t.test", kTypeTxt);
  EXPECT_EQ(a.minRecordTtl, 30u);
  EXPECT_EQ(a.answerCount, 2u);
  EXPECT_TRUE(a.addresses.empty());
}

// SVCB/HTTPS ipv4hint/ipv6hint addresses (RFC 9460) are collected, whatever the other
// parameters, so the resolver can judge them like A/AAAA answers.
std::vector<uint8_t> httpsRdata(std::vector<uint8_t> params) {
  // SvcPriority 1, TargetName "." (the owner), then the parameters. (Built by push_back:
  // GCC 12 -O2 reports a false -Warray-bounds for insert() after a 3-byte initializer.)
  std::vector<uint8_t> rdata;
  rdata.reserve(3 + params.size());
  for (uint8_t byte : {uint8_t{0}, uint8_t{1}, uint8_t{0}}) {
    rdata.push_back(byte);
  }
  for (uint8_t byte : params) {
    rdata.push_back(byte);
  }
  return rdata;
}

TEST(ParseResponseTest, CollectsSvcbAndHttpsAddressHints) {
  const std::vector<uint8_t> params{
      0, 1, 0, 3,  2,   'h', '2',                    // alpn "h2": not an address
      0, 4, 0, 8,  127, 0,   0,   1, 198, 18, 0, 7,  // ipv4hint 127.0.0.1, 198.18.0.7
      0, 6, 0, 16, 0,   0,   0,   0, 0,   0,  0, 0, 0, 0, 0, 0, 0, 0, 0, 1};  // ipv6hint ::1
  const ParsedAnswer answer =
      parseOk(encode(responseFor(
                  "example.test", kTypeHttps,
                  {Rr{"example.test", kTypeHttps, 300, httpsRdata(params)},
                   Rr{"example.test", kTypeSvcb, 300, httpsRdata({0, 4, 0, 4, 127, 0, 0, 1})}})),
              "example.test", kTypeHttps);
  EXPECT_EQ(answer.hintAddresses,
            (std::vector<IpAddress>{ip("127.0.0.1"), ip("198.18.0.7"), ip("::1")}));
  EXPECT_TRUE(answer.addresses.empty());

  const std::vector<uint8_t> odd{0, 4, 0, 5, 1, 2, 3, 4, 5};  // not a whole address
  EXPECT_NE(parseError(encode(responseFor("example.test", kTypeHttps,
                                          {Rr{"example.test", kTypeHttps, 300, httpsRdata(odd)}})),
                       "example.test", kTypeHttps)
                .find("SVCB address hint"),
            std::string::npos);
  const std::vector<uint8_t> overrun{0, 4, 0, 40, 1, 2, 3, 4};  // longer than the record
  EXPECT_NE(
      parseError(encode(responseFor("example.test", kTypeHttps,
                                    {Rr{"example.test", kTypeHttps, 300, httpsRdata(overrun)}})),
                 "example.test", kTypeHttps)
          .find("runs past its record"),
      std::string::npos);
}

}  // namespace
}  // namespace egressd::dns
