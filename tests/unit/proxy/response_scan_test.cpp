// The response side of a proxied request without sockets: how much of the upstream's bytes
// go on, where the final response ends (1xx heads pass through), which 101s are refused,
// where "Connection: close" is announced, and what is left of a Content-Length body.
#include "proxy/response_scan.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace egressd::proxy {
namespace {

using Verdict = ResponseChunk::Verdict;

const std::vector<std::string> kWebsocketOnly = {"websocket"};

ResponseChunk scanAll(ResponseScan& scan, const std::string& bytes) {
  return scan.scan(bytes.data(), bytes.size());
}

TEST(ResponseScanTest, AWholeResponseEndsAndIsForwardedWhole) {
  http::ResponseParser parser;
  ResponseScan scan(parser, "GET", {});
  const std::string response = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  const ResponseChunk chunk = scanAll(scan, response);
  EXPECT_EQ(chunk.verdict, Verdict::kRelay);
  EXPECT_EQ(chunk.forward, response.size());
  EXPECT_TRUE(chunk.ended);
  EXPECT_FALSE(chunk.upgraded);
  EXPECT_EQ(chunk.announceCloseAt, 0u);
  EXPECT_EQ(chunk.status, 200);
}

TEST(ResponseScanTest, BytesAfterTheEndAreNotForwarded) {
  http::ResponseParser parser;
  ResponseScan scan(parser, "GET", {});
  const std::string response = "HTTP/1.1 204 No Content\r\n\r\n";
  const ResponseChunk chunk = scanAll(scan, response + "HTTP/1.1 200 OK\r\n");
  EXPECT_TRUE(chunk.ended);
  EXPECT_EQ(chunk.forward, response.size());
  EXPECT_EQ(chunk.status, 204);
}

TEST(ResponseScanTest, InformationalHeadsPassWithoutEndingTheExchange) {
  http::ResponseParser parser;
  ResponseScan scan(parser, "POST", {});
  const std::string interim = "HTTP/1.1 100 Continue\r\n\r\n";
  ResponseChunk chunk = scanAll(scan, interim);
  EXPECT_EQ(chunk.verdict, Verdict::kRelay);
  EXPECT_EQ(chunk.forward, interim.size());
  EXPECT_FALSE(chunk.ended);
  EXPECT_EQ(chunk.status, 100);

  const std::string final = "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n";
  chunk = scanAll(scan, final);
  EXPECT_TRUE(chunk.ended);
  EXPECT_EQ(chunk.status, 201);
}

TEST(ResponseScanTest, InformationalAndFinalInOneBuffer) {
  http::ResponseParser parser;
  ResponseScan scan(parser, "POST", {});
  const std::string bytes =
      "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx";
  const ResponseChunk chunk = scanAll(scan, bytes);
  EXPECT_TRUE(chunk.ended);
  EXPECT_EQ(chunk.forward, bytes.size());
  EXPECT_EQ(chunk.status, 200);
}

TEST(ResponseScanTest, APartialHeadWaitsForMore) {
  http::ResponseParser parser;
  ResponseScan scan(parser, "GET", {});
  const ResponseChunk chunk = scanAll(scan, "HTTP/1.1 200 OK\r\nContent-Le");
  EXPECT_EQ(chunk.verdict, Verdict::kRelay);
  EXPECT_FALSE(chunk.ended);
  EXPECT_EQ(chunk.status, 0);
}

TEST(ResponseScanTest, MalformedFramingIsReported) {
  http::ResponseParser parser;
  ResponseScan scan(parser, "GET", {});
  const ResponseChunk chunk = scanAll(scan, "NOT HTTP AT ALL\r\n\r\n");
  EXPECT_EQ(chunk.verdict, Verdict::kMalformed);
  EXPECT_EQ(chunk.forward, 0u);
}

TEST(ResponseScanTest, ConnectionCloseIsAnnouncedWhenOnlyTheClientAskedForIt) {
  http::ResponseParser parser;
  ResponseScan scan(parser, "GET", ResponseRules{false, false, nullptr});
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n";
  const ResponseChunk chunk = scanAll(scan, head + "ok");
  ASSERT_EQ(chunk.announceCloseAt, head.size() - 2);
  EXPECT_EQ(withConnectionClose(head + "ok", chunk.announceCloseAt),
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
}

TEST(ResponseScanTest, NoAnnouncementWhenTheUpstreamClosesToo) {
  http::ResponseParser parser;
  ResponseScan scan(parser, "GET", ResponseRules{false, false, nullptr});
  const ResponseChunk chunk =
      scanAll(scan, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
  EXPECT_EQ(chunk.announceCloseAt, 0u);
  EXPECT_TRUE(chunk.ended);
}

TEST(ResponseScanTest, NoAnnouncementOnAnInformationalHead) {
  http::ResponseParser parser;
  ResponseScan scan(parser, "POST", ResponseRules{false, false, nullptr});
  EXPECT_EQ(scanAll(scan, "HTTP/1.1 100 Continue\r\n\r\n").announceCloseAt, 0u);
}

const std::string kSwitchToWebsocket =
    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";

TEST(ResponseScanTest, AnAllowedUpgradeEndsTheResponse) {
  http::ResponseParser parser;
  ResponseScan scan(parser, "GET", ResponseRules{true, true, &kWebsocketOnly});
  const ResponseChunk chunk = scanAll(scan, kSwitchToWebsocket + "\x81\x00");
  EXPECT_EQ(chunk.verdict, Verdict::kRelay);
  EXPECT_TRUE(chunk.upgraded);
  EXPECT_TRUE(chunk.ended);
  EXPECT_EQ(chunk.forward, kSwitchToWebsocket.size());  // tunnel bytes are not HTTP
  EXPECT_EQ(chunk.status, 101);
}

TEST(ResponseScanTest, AnUpgradeNobodyAskedForIsRefused) {
  http::ResponseParser parser;
  ResponseScan scan(parser, "GET", ResponseRules{true, false, &kWebsocketOnly});
  const ResponseChunk chunk = scanAll(scan, kSwitchToWebsocket);
  EXPECT_EQ(chunk.verdict, Verdict::kRefusedUpgrade);
  EXPECT_EQ(chunk.status, 101);
}

TEST(ResponseScanTest, AnUpgradeToAProtocolThePolicyDoesNotAllowIsRefused) {
  const std::vector<std::string> other = {"other"};
  for (const std::vector<std::string>* allow : {&other, static_cast<decltype(&other)>(nullptr)}) {
    http::ResponseParser parser;
    ResponseScan scan(parser, "GET", ResponseRules{true, true, allow});
    EXPECT_EQ(scanAll(scan, kSwitchToWebsocket).verdict, Verdict::kRefusedUpgrade);
  }
  http::ResponseParser parser;
  ResponseScan scan(parser, "GET", ResponseRules{true, true, &kWebsocketOnly});
  EXPECT_EQ(
      scanAll(scan, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n\r\n").verdict,
      Verdict::kRefusedUpgrade);  // no Upgrade header: no protocol chosen
}

TEST(ResponseScanTest, BodyRemainingFollowsAContentLengthBody) {
  http::ResponseParser parser;
  ResponseScan scan(parser, "GET", {});
  EXPECT_EQ(scan.bodyRemaining(), std::nullopt);
  const ResponseChunk chunk =
      scanAll(scan, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n0123456789");
  EXPECT_FALSE(chunk.ended);
  EXPECT_EQ(scan.bodyRemaining(), 99990u);
  scanAll(scan, std::string(90, 'x'));
  EXPECT_EQ(scan.bodyRemaining(), 99900u);
}

TEST(ResponseScanTest, BodyRemainingIsUnknownForChunkedAndHeadResponses) {
  http::ResponseParser parser;
  ResponseScan chunked(parser, "GET", {});
  scanAll(chunked, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
  EXPECT_EQ(chunked.bodyRemaining(), std::nullopt);

  http::ResponseParser headParser;
  ResponseScan head(headParser, "HEAD", {});
  const ResponseChunk chunk = scanAll(head, "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n");
  EXPECT_TRUE(chunk.ended);  // a response to HEAD has no body, whatever its Content-Length
  EXPECT_EQ(head.bodyRemaining(), std::nullopt);
}

TEST(ResponseScanTest, ContentLengthOfAHead) {
  http::ResponseHead head;
  EXPECT_EQ(contentLengthOf(head), std::nullopt);
  head.headers.push_back({"content-length", "1234"});
  EXPECT_EQ(contentLengthOf(head), 1234u);
  head.headers.front().value = "12x";
  EXPECT_EQ(contentLengthOf(head), std::nullopt);
}

TEST(ResponseScanTest, WithConnectionCloseInsertsAtTheOffset) {
  EXPECT_EQ(withConnectionClose("AB", 1), "AConnection: close\r\nB");
  EXPECT_EQ(withConnectionClose("AB", 2), "ABConnection: close\r\n");
}

}  // namespace
}  // namespace egressd::proxy
