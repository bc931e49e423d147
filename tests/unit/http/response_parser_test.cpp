#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "drive.h"
#include "http/http.h"

namespace egressd::http {
namespace {

using testing::drive;
using Kind = ParseStep::Kind;

ParseStep feedAll(ResponseParser& parser, std::string_view input) {
  return parser.feed(input.data(), input.size());
}

TEST(ResponseParser, ContentLengthBody) {
  ResponseParser parser;
  const std::string head =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n";
  const std::string input = head + "hello" + "HTTP/1.1";
  auto step = feedAll(parser, input);
  ASSERT_EQ(step.kind, Kind::kHead);
  EXPECT_FALSE(step.endsMessage);
  EXPECT_EQ(step.consumed, head.size());
  EXPECT_EQ(parser.head().status, 200);
  EXPECT_TRUE(parser.head().keepAlive);
  EXPECT_FALSE(parser.head().informational());
  ASSERT_NE(parser.head().find("content-type"), nullptr);
  step = parser.feed(input.data() + head.size(), input.size() - head.size());
  ASSERT_EQ(step.kind, Kind::kMessageEnd);
  EXPECT_EQ(step.consumed, 5u);
  EXPECT_TRUE(parser.betweenMessages());
}

TEST(ResponseParser, ChunkedBodyWithTrailers) {
  const std::string input =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4\r\nWiki\r\n7;note=x\r\npedia i\r\n0\r\nExpires: never\r\nX-Sum: 9\r\n\r\n"
      "HTTP/1.1 204 No Content\r\n\r\n";
  const std::vector<std::string> expected = {
      "HEAD 200 [Transfer-Encoding: chunked]",
      "BODY 4\r\nWiki\r\n7;note=x\r\npedia i\r\n0\r\nExpires: never\r\nX-Sum: 9\r\n\r\n",
      "END",
      "HEAD 204 +END",
  };
  for (size_t chunk : {0, 1, 3, 10}) {
    ResponseParser parser;
    EXPECT_EQ(drive(parser, input, chunk), expected) << "chunk " << chunk;
    EXPECT_EQ(parser.head().headers.size(), 0u);  // the 204's; trailers never land in a head
  }
}

// An origin's "close" is honoured however it is spaced: the connection is not reused.
TEST(ResponseParser, ConnectionCloseWithWhitespaceEndsTheConnection) {
  for (const char* value : {"close", "close\t", " close ", "keep-alive, close\t"}) {
    SCOPED_TRACE(value);
    ResponseParser parser;
    const std::string head =
        std::string("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: ") + value + "\r\n\r\n";
    ASSERT_EQ(feedAll(parser, head).kind, Kind::kHead);
    EXPECT_FALSE(parser.head().keepAlive);
  }
}

TEST(ResponseParser, ReadUntilCloseBody) {
  ResponseParser parser;
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n";
  auto step = feedAll(parser, head + "<html>");
  ASSERT_EQ(step.kind, Kind::kHead);
  EXPECT_FALSE(step.endsMessage);
  EXPECT_FALSE(parser.head().keepAlive);
  step = parser.feed("<html>", 6);
  EXPECT_EQ(step.kind, Kind::kBody);
  EXPECT_EQ(step.consumed, 6u);
  step = parser.feed("HTTP/1.1 200 OK\r\n\r\n", 19);  // still body: only EOF ends it
  EXPECT_EQ(step.kind, Kind::kBody);
  EXPECT_EQ(step.consumed, 19u);
  EXPECT_TRUE(parser.finishAtEof());
  EXPECT_TRUE(parser.finishAtEof());  // idempotent once ended
}

TEST(ResponseParser, NonChunkedTransferEncodingReadsUntilClose) {
  ResponseParser parser;
  auto step = feedAll(parser, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
  ASSERT_EQ(step.kind, Kind::kHead);
  EXPECT_FALSE(parser.head().keepAlive);
  EXPECT_EQ(parser.feed("\x1f\x8b", 2).kind, Kind::kBody);
  EXPECT_TRUE(parser.finishAtEof());
}

TEST(ResponseParser, FinishAtEofRejectsTruncation) {
  ResponseParser body;
  ASSERT_EQ(feedAll(body, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc").kind, Kind::kHead);
  EXPECT_EQ(body.feed("abc", 3).kind, Kind::kBody);
  EXPECT_FALSE(body.finishAtEof());

  ResponseParser chunked;
  ASSERT_EQ(feedAll(chunked, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").kind,
            Kind::kHead);
  EXPECT_EQ(chunked.feed("5\r\nab", 5).kind, Kind::kBody);
  EXPECT_FALSE(chunked.finishAtEof());

  ResponseParser head;
  EXPECT_EQ(feedAll(head, "HTTP/1.1 200 OK\r\nContent-").kind, Kind::kNeedMore);
  EXPECT_FALSE(head.finishAtEof());

  ResponseParser fresh;
  EXPECT_TRUE(fresh.finishAtEof());  // nothing started: a clean close (the caller knows
                                     // whether it was still owed a response)
  ResponseParser complete;
  ASSERT_EQ(feedAll(complete, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").kind, Kind::kHead);
  EXPECT_TRUE(complete.finishAtEof());
}

TEST(ResponseParser, HeadResponseHasNoBodyDespiteContentLength) {
  ResponseParser parser;
  parser.expectResponseTo("HEAD");
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n";
  const std::string next = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi";
  const std::string input = head + next;
  auto step = feedAll(parser, input);
  ASSERT_EQ(step.kind, Kind::kHead);
  EXPECT_TRUE(step.endsMessage);
  EXPECT_EQ(step.consumed, head.size());
  EXPECT_TRUE(parser.head().keepAlive);
  // The method stays in effect until changed.
  parser.expectResponseTo("GET");
  step = parser.feed(input.data() + head.size(), next.size());
  ASSERT_EQ(step.kind, Kind::kHead);
  EXPECT_FALSE(step.endsMessage);
  step = parser.feed("hi", 2);
  EXPECT_EQ(step.kind, Kind::kMessageEnd);
  EXPECT_EQ(step.consumed, 2u);
}

TEST(ResponseParser, HeadResponseWithChunkedHasNoBody) {
  ResponseParser parser;
  parser.expectResponseTo("HEAD");
  auto step = feedAll(parser, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
  ASSERT_EQ(step.kind, Kind::kHead);
  EXPECT_TRUE(step.endsMessage);
  EXPECT_TRUE(parser.head().keepAlive);
}

TEST(ResponseParser, NoContentAndNotModifiedHaveNoBody) {
  for (const char* status : {"204 No Content", "304 Not Modified"}) {
    ResponseParser parser;
    const std::string head =
        std::string("HTTP/1.1 ") + status + "\r\nContent-Length: 5\r\nETag: \"x\"\r\n\r\n";
    auto events = drive(parser, head + "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0);
    ASSERT_EQ(events.size(), 2u) << status;
    EXPECT_EQ(events[0].substr(0, 8), std::string("HEAD ") + std::string(status, 3));
    EXPECT_EQ(events[0].substr(events[0].size() - 4), "+END");
    EXPECT_EQ(events[1], "HEAD 200 [Content-Length: 0] +END");
  }
}

TEST(ResponseParser, ContinueThenFinalResponseInOneBuffer) {
  ResponseParser parser;
  const std::string cont = "HTTP/1.1 100 Continue\r\n\r\n";
  const std::string finalHead = "HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n";
  const std::string input = cont + finalHead + "ok";
  auto step = feedAll(parser, input);
  ASSERT_EQ(step.kind, Kind::kHead);
  EXPECT_EQ(step.consumed, cont.size());
  EXPECT_TRUE(step.endsMessage);
  EXPECT_EQ(parser.head().status, 100);
  EXPECT_TRUE(parser.head().informational());
  size_t offset = step.consumed;
  step = parser.feed(input.data() + offset, input.size() - offset);
  ASSERT_EQ(step.kind, Kind::kHead);
  EXPECT_EQ(step.consumed, finalHead.size());
  EXPECT_EQ(parser.head().status, 201);
  EXPECT_FALSE(parser.head().informational());
  offset += step.consumed;
  step = parser.feed(input.data() + offset, input.size() - offset);
  EXPECT_EQ(step.kind, Kind::kMessageEnd);
  EXPECT_EQ(step.consumed, 2u);
}

TEST(ResponseParser, InformationalResponsesIgnoreFramingHeaders) {
  ResponseParser parser;
  auto events = drive(parser,
                      "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n"
                      "Content-Length: 9\r\n\r\n"
                      "HTTP/1.0 100 Continue\r\n\r\n"
                      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
                      0);
  const std::vector<std::string> expected = {
      "HEAD 103 [Link: </a.css>; rel=preload] [Content-Length: 9] +END",
      "HEAD 100 +END",
      "HEAD 200 [Content-Length: 1]",
      "BODY x",
      "END",
  };
  EXPECT_EQ(events, expected);
}

TEST(ResponseParser, SwitchingProtocolsLeavesTheRestUntouched) {
  ResponseParser parser;
  const std::string head =
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
  const std::string frames = "\x81\x02hi";
  const std::string input = head + frames;
  auto step = feedAll(parser, input);
  ASSERT_EQ(step.kind, Kind::kHead);
  EXPECT_TRUE(step.endsMessage);
  EXPECT_EQ(step.consumed, head.size());
  EXPECT_EQ(parser.head().status, 101);
  EXPECT_FALSE(parser.head().informational());
  EXPECT_TRUE(parser.upgraded());
  step = parser.feed(frames.data(), frames.size());
  EXPECT_EQ(step.kind, Kind::kError);
  EXPECT_EQ(step.status, 502);
  ResponseParser bare;  // a 101 switches protocols even without the Upgrade headers
  ASSERT_EQ(feedAll(bare, "HTTP/1.1 101 Switching Protocols\r\n\r\nraw").kind, Kind::kHead);
  EXPECT_TRUE(bare.upgraded());
  EXPECT_TRUE(bare.finishAtEof());
}

TEST(ResponseParser, ConnectSuccessIsATunnel) {
  ResponseParser parser;
  parser.expectResponseTo("CONNECT");
  auto step = feedAll(parser, "HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03");
  ASSERT_EQ(step.kind, Kind::kHead);
  EXPECT_TRUE(step.endsMessage);
  EXPECT_TRUE(parser.upgraded());
}

TEST(ResponseParser, KeepAliveVersusClose) {
  struct Case {
    const char* head;
    bool keepAlive;
  };
  for (const Case& c :
       {Case{"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", true},
        Case{"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", false},
        Case{"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false},
        Case{"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", true}}) {
    ResponseParser parser;
    ASSERT_EQ(feedAll(parser, c.head).kind, Kind::kHead) << c.head;
    EXPECT_EQ(parser.head().keepAlive, c.keepAlive) << c.head;
    // After a closing response, more bytes are garbage, not a next response.
    auto step = feedAll(parser, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    EXPECT_EQ(step.kind, c.keepAlive ? Kind::kHead : Kind::kError) << c.head;
  }
}

TEST(ResponseParser, PipelinedResponses) {
  const std::string input =
      "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"
      "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\ntwo\r\n0\r\n\r\n"
      "HTTP/1.1 304 Not Modified\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nthree";
  const std::vector<std::string> expected = {
      "HEAD 200 [Content-Length: 3]",
      "BODY one",
      "END",
      "HEAD 404 [Transfer-Encoding: chunked]",
      "BODY 3\r\ntwo\r\n0\r\n\r\n",
      "END",
      "HEAD 304 +END",
      "HEAD 200 [Content-Length: 5]",
      "BODY three",
      "END",
  };
  for (size_t chunk : {0, 1, 4, 17}) {
    ResponseParser parser;
    EXPECT_EQ(drive(parser, input, chunk), expected) << "chunk " << chunk;
  }
}

TEST(ResponseParser, RejectsAmbiguousOrBrokenResponses) {
  for (const std::string input : {
           "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
           "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
           "HTTP/1.1 200 OK\r\nContent-Length: 3x\r\n\r\n",
           "HTTP/1.1 200 OK\nContent-Length: 0\n\n",
           "HTTP/1.1 200 OK\r\nX: a\r\n folded\r\nContent-Length: 0\r\n\r\n",
           "HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n",
           "HTTP/2 200\r\n\r\n",
           "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
           "RTSP/1.0 200 OK\r\n\r\n",
           "ICY 200 OK\r\n\r\n",
           "HTTP/1.1 2000 OK\r\n\r\n",
           "HTTP/1.1 099 Low\r\n\r\n",
           "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nq\r\n",
           "HTTP/1.1\r\n\r\n",
       }) {
    for (size_t chunk : {0, 1}) {
      ResponseParser parser;
      auto events = drive(parser, input, chunk);
      ASSERT_FALSE(events.empty()) << input;
      EXPECT_EQ(events.back(), "ERROR 502") << input << " chunk " << chunk;
    }
  }
}

TEST(ResponseParser, HeadSizeLimit) {
  const std::string head = "HTTP/1.1 200 OK\r\nX: " + std::string(200, 'v') + "\r\n\r\n";
  ResponseParser fits(head.size());
  EXPECT_EQ(feedAll(fits, head).kind, Kind::kHead);
  ResponseParser over(head.size() - 1);
  auto step = feedAll(over, head);
  EXPECT_EQ(step.kind, Kind::kError);
  EXPECT_EQ(step.status, 502);
}

TEST(ResponseParser, ResetForANewConnection) {
  ResponseParser parser;
  ASSERT_EQ(feedAll(parser, "HTTP/1.1 200 OK\r\n\r\nbody").kind, Kind::kHead);
  EXPECT_TRUE(parser.finishAtEof());
  EXPECT_EQ(feedAll(parser, "HTTP/1.1 200 OK\r\n\r\n").kind, Kind::kError);
  parser.reset();
  auto step = feedAll(parser, "HTTP/1.1 204 No Content\r\n\r\n");
  EXPECT_EQ(step.kind, Kind::kHead);
  EXPECT_EQ(parser.head().status, 204);
}

}  // namespace
}  // namespace egressd::http
