// The request rules of the proxy (docs/security.md "Requests"): Upgrade protocols in every
// spelling, TRACE/TRACK, the header names dropped, and the response redactor, which must
// find a secret however the response is cut into reads.
#include "proxy/request_rules.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace egressd::proxy {
namespace {

using http::Header;

TEST(RequestRulesTest, UpgradeProtocolsReadsEveryElementOfEveryUpgradeHeader) {
  const std::vector<Header> headers = {{"Upgrade", "WebSocket, foo/1.0 ,, Bar"},
                                       {"Host", "a"},
                                       {"upgrade", "h2c"},
                                       {"UPGRADE", "\tzz/2"},
                                       {"Up_grade", "x"}};
  EXPECT_EQ(upgradeProtocols(headers),
            (std::vector<std::string>{"websocket", "foo", "bar", "h2c", "zz"}));
  EXPECT_TRUE(upgradeProtocols({{"Connection", "upgrade"}}).empty());
  const std::vector<std::string> allowed = {"websocket"};
  EXPECT_EQ(firstUnlisted({"websocket", "foo"}, allowed), "foo");
  EXPECT_EQ(firstUnlisted({"websocket"}, allowed), std::nullopt);
  EXPECT_EQ(firstUnlisted({"websocket"}, {}), "websocket");
}

TEST(RequestRulesTest, TraceAndTrack) {
  EXPECT_TRUE(isTraceMethod("TRACE"));
  EXPECT_TRUE(isTraceMethod("TRACK"));
  EXPECT_TRUE(isTraceMethod("trace"));
  EXPECT_FALSE(isTraceMethod("GET"));
  EXPECT_FALSE(isTraceMethod("TRACES"));
}

TEST(RequestRulesTest, DroppedNamesFoldCaseAndUnderscoresAndTakePrefixes) {
  EXPECT_TRUE(http::fieldNameMatches("proxy-authorization", "Proxy-*"));
  EXPECT_TRUE(http::fieldNameMatches("Proxy_Authorization", "Proxy-*"));
  EXPECT_TRUE(http::fieldNameMatches("X-EGRESSD-Sandbox", "X-Egressd-*"));
  EXPECT_TRUE(http::fieldNameMatches("x_egressd_rule", "X-Egressd-*"));
  EXPECT_TRUE(http::fieldNameMatches("X-Api-Key", "x_api_key"));
  EXPECT_TRUE(http::fieldNameMatches("x_forwarded_for", "X-Forwarded-*"));
  EXPECT_FALSE(http::fieldNameMatches("Proxy", "Proxy-*"));
  EXPECT_FALSE(http::fieldNameMatches("X-Api-Keys", "X-Api-Key"));
  EXPECT_FALSE(http::fieldNameMatches("Forwarded-X", "Forwarded"));
  // The request head a sandbox's trust headers leave: none of them, in any spelling.
  http::RequestHead head;
  head.method = "GET";
  head.path = "/";
  head.headers = {{"Host", "a"},
                  {"PROXY-AUTHORIZATION", "Basic x"},
                  {"Proxy_Authorization", "Basic y"},
                  {"X-Egressd-Sandbox", "other"},
                  {"forwarded", "for=1.2.3.4"},
                  {"X-Forwarded-For", "1.2.3.4"},
                  {"X_Forwarded_Host", "evil"},
                  {"X-Real-Ip", "1.2.3.4"},
                  {"X-Keep", "k"}};
  std::vector<std::string> drop = alwaysStrippedHeaders();
  drop.insert(drop.end(), forwardedHeaders().begin(), forwardedHeaders().end());
  EXPECT_EQ(http::serializeRequestHead(head, sandboxForwardedHeaders("sb-1"), drop),
            "GET / HTTP/1.1\r\nHost: a\r\nX-Keep: k\r\nForwarded: for=\"_sb-1\"\r\n"
            "X-Forwarded-For: sb-1\r\n\r\n");
}

// Every piece through push() (a copy) or pushInPlace() (masks the piece itself).
std::string redactAll(SecretRedactor& r, const std::vector<std::string>& pieces,
                      bool inPlace = false) {
  std::string out;
  for (std::string piece : pieces) {
    out += inPlace ? r.pushInPlace(piece.data(), piece.size()) : r.push(piece);
  }
  out += r.flush();
  return out;
}

TEST(SecretRedactorTest, MasksEveryOccurrenceWithTheSameLength) {
  SecretRedactor r;
  r.reset({"s3cr3t", "", "tok", "s3cr3t-longer"});
  EXPECT_TRUE(r.scanning());
  EXPECT_EQ(redactAll(r, {"a s3cr3t b s3cr3t-longer tok c"}), "a ****** b ************* tok c")
      << "the longer secret masked whole; a 3-byte one is too short to look for";
  EXPECT_EQ(r.redactions(), 2u);
  SecretRedactor none;
  none.reset({"", "12345"});
  EXPECT_FALSE(none.scanning());
}

TEST(SecretRedactorTest, FindsASecretSplitAtEveryPossiblePoint) {
  const std::string secret = "Bearer-abcdef-123";
  const std::string text = "{\"authorization\": \"" + secret + "\"}\n";
  std::string expected = text;
  expected.replace(expected.find(secret), secret.size(), secret.size(), '*');
  for (bool inPlace : {false, true}) {
    for (size_t cut = 0; cut <= text.size(); ++cut) {
      SecretRedactor r;
      r.reset({secret});
      EXPECT_EQ(redactAll(r, {text.substr(0, cut), text.substr(cut)}, inPlace), expected)
          << cut << (inPlace ? " in place" : "");
    }
  }
  // One byte at a time.
  SecretRedactor r;
  r.reset({secret});
  std::vector<std::string> bytes;
  for (char c : text) {
    bytes.emplace_back(1, c);
  }
  EXPECT_EQ(redactAll(r, bytes), expected);
  r.reset({secret});
  EXPECT_EQ(redactAll(r, bytes, true), expected);
}

TEST(SecretRedactorTest, InPlaceMasksTheCallersBytesWithoutACopy) {
  SecretRedactor r;
  r.reset({"secret"});
  std::string chunk = "a secret b";
  const std::string_view out = r.pushInPlace(chunk.data(), chunk.size());
  EXPECT_EQ(out, "a ****** b");
  EXPECT_EQ(out.data(), chunk.data()) << "nothing was held: the caller's buffer is sent";
  std::string tail = "x sec";
  EXPECT_EQ(r.pushInPlace(tail.data(), tail.size()), "x ");
  EXPECT_TRUE(r.holding());
  std::string rest = "ret!";
  EXPECT_EQ(r.pushInPlace(rest.data(), rest.size()), "******!");
  EXPECT_FALSE(r.holding());
}

TEST(SecretRedactorTest, KeepsBackOnlyWhatCouldStartASecret) {
  SecretRedactor r;
  r.reset({"secret"});
  EXPECT_EQ(r.push("data: hello\n"), "data: hello\n") << "nothing held: a stream is not delayed";
  EXPECT_EQ(r.push("abc sec"), "abc ");
  EXPECT_EQ(r.push("ond"), "second");
  EXPECT_EQ(r.push("x secre"), "x ");
  EXPECT_EQ(r.flush(), "secre");
}

TEST(SecretRedactorTest, StopsScanningAfterTheLimit) {
  SecretRedactor r;
  r.reset({"secret"}, 10);
  EXPECT_EQ(r.push("0123 secre"), "0123 secre") << "the limit reached: nothing is held";
  EXPECT_FALSE(r.scanning());
  EXPECT_EQ(r.push("t secret"), "t secret");
}

}  // namespace
}  // namespace egressd::proxy
