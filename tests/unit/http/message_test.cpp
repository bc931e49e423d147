#include <gtest/gtest.h>

#include <string>

#include "http/message.h"

namespace egressd::http {
namespace {

TEST(ListElements, TrimsOwsAndSkipsEmptyElements) {
  EXPECT_EQ(listElements("close, X-Hop"), (std::vector<std::string_view>{"close", "X-Hop"}));
  EXPECT_EQ(listElements(" a ,\t,b\t, "), (std::vector<std::string_view>{"a", "b"}));
  EXPECT_TRUE(listElements("").empty());
  EXPECT_TRUE(listElements(" , ,").empty());
}

TEST(SerializeRequestHead, OriginFormWithDropAndExtra) {
  RequestHead head;
  head.method = "POST";
  head.path = "/api?x=1";
  head.headers = {{"Host", "api.test"},
                  {"Authorization", "Bearer sandbox-token"},
                  {"Content-Length", "2"},
                  {"Connection", "keep-alive"}};
  EXPECT_EQ(serializeRequestHead(head, {{"Authorization", "Bearer real"}, {"X-Via", "egressd"}},
                                 {"AUTHORIZATION", "connection"}),
            "POST /api?x=1 HTTP/1.1\r\nHost: api.test\r\nContent-Length: 2\r\n"
            "Authorization: Bearer real\r\nX-Via: egressd\r\n\r\n");
}

TEST(SerializeRequestHead, KeepsHttp10) {
  RequestHead head;
  head.method = "GET";
  head.path = "/";
  head.versionMinor = 0;
  EXPECT_EQ(serializeRequestHead(head), "GET / HTTP/1.0\r\n\r\n");
}

TEST(SerializeRequestHead, UnsafeExtraHeadersAreLeftOut) {
  RequestHead head;
  head.method = "GET";
  head.path = "/";
  head.headers = {{"Host", "a"}};
  EXPECT_EQ(serializeRequestHead(head, {{"X-Token", "abc\r\nX-Injected: 1"},
                                        {"X-Nul", std::string("a\0b", 3)},
                                        {"Bad Name", "v"},
                                        {"", "v"},
                                        {"X-Ok", "fine"}}),
            "GET / HTTP/1.1\r\nHost: a\r\nX-Ok: fine\r\n\r\n");
}

TEST(BuildResponse, DenyPage) {
  EXPECT_EQ(buildResponse(403, "denied\n", {{"X-Egressd-Reason", "host_denied"}}, false),
            "HTTP/1.1 403 Forbidden\r\nX-Egressd-Reason: host_denied\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Length: 7\r\n"
            "Connection: close\r\n\r\ndenied\n");
}

TEST(BuildResponse, KeepAliveWithOwnContentType) {
  EXPECT_EQ(buildResponse(200, "{}", {{"Content-Type", "application/json"}}, true),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}");
}

TEST(BuildResponse, DropsSplittingAndFramingHeaders) {
  const std::string response = buildResponse(502, "x",
                                             {{"X-A", "1\r\nSet-Cookie: evil=1"},
                                              {"X-B", "2\n"},
                                              {"Content-Length", "999"},
                                              {"Transfer-Encoding", "chunked"},
                                              {"Connection", "keep-alive"},
                                              {"X-C", "3"}},
                                             true);
  EXPECT_EQ(response,
            "HTTP/1.1 502 Bad Gateway\r\nX-C: 3\r\nContent-Type: text/plain; charset=utf-8\r\n"
            "Content-Length: 1\r\n\r\nx");
}

TEST(BuildResponse, NoBodyStatuses) {
  EXPECT_EQ(buildResponse(204, "ignored", {}, true), "HTTP/1.1 204 No Content\r\n\r\n");
  EXPECT_EQ(buildResponse(304, "", {}, false),
            "HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n");
}

TEST(BuildResponse, UnknownStatusHasEmptyReason) {
  EXPECT_EQ(
      buildResponse(599, "", {}, true),
      "HTTP/1.1 599 \r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(buildResponse(42, "", {}, true).substr(0, 34), "HTTP/1.1 500 Internal Server Error");
}

TEST(ReasonPhrase, KnownCodes) {
  EXPECT_EQ(reasonPhrase(200), "OK");
  EXPECT_EQ(reasonPhrase(400), "Bad Request");
  EXPECT_EQ(reasonPhrase(405), "Method Not Allowed");
  EXPECT_EQ(reasonPhrase(414), "URI Too Long");
  EXPECT_EQ(reasonPhrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(reasonPhrase(502), "Bad Gateway");
  EXPECT_EQ(reasonPhrase(504), "Gateway Timeout");
  EXPECT_EQ(reasonPhrase(505), "HTTP Version Not Supported");
  EXPECT_EQ(reasonPhrase(799), "");
}

TEST(ParseAuthority, Accepts) {
  auto plain = parseAuthority("Example.COM.");
  ASSERT_TRUE(plain.ok()) << plain.error().message();
  EXPECT_EQ(plain->host, "example.com");
  EXPECT_FALSE(plain->port.has_value());
  EXPECT_FALSE(plain->ipv6);

  auto withPort = parseAuthority("a-b_c.test:8080");
  ASSERT_TRUE(withPort.ok());
  EXPECT_EQ(withPort->host, "a-b_c.test");
  EXPECT_EQ(withPort->port, 8080);

  auto v4 = parseAuthority("10.0.0.1:80");
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4->host, "10.0.0.1");

  auto v6 = parseAuthority("[2001:DB8::1]:443");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "2001:db8::1");
  EXPECT_TRUE(v6->ipv6);
  EXPECT_EQ(v6->port, 443);
}

TEST(ParseAuthority, Rejects) {
  for (const char* text :
       {"",       ":80", "a:",  "a:0", "a:65536", "a:123456",   "a:8x",    "a:80:80",
        "u@a",    "a b", "*.a", "a/b", "a%2eb",   "[::1",       "[zz::1]", "[1.2.3.4]",
        "[::1]x", ".",   "..",  ".a",  "a..b",    "2001:db8::1"}) {
    EXPECT_FALSE(parseAuthority(text).ok()) << text;
  }
}

TEST(SameAuthority, NormalizesCaseDotAndDefaultPort) {
  EXPECT_TRUE(sameAuthority("A.test", "a.TEST.", 80));
  EXPECT_TRUE(sameAuthority("a.test:80", "a.test", 80));
  EXPECT_TRUE(sameAuthority("a.test", "a.test:080", 80));
  EXPECT_TRUE(sameAuthority("a.test:443", "a.test", 443));
  EXPECT_FALSE(sameAuthority("a.test:443", "a.test", 80));
  EXPECT_FALSE(sameAuthority("a.test", "b.test", 80));
  EXPECT_FALSE(sameAuthority("a.test:8080", "a.test:8081", 80));
  EXPECT_FALSE(sameAuthority("bad host", "bad host", 80));
}

TEST(EqualsIgnoreCase, Ascii) {
  EXPECT_TRUE(equalsIgnoreCase("Content-Length", "content-LENGTH"));
  EXPECT_FALSE(equalsIgnoreCase("Content-Length", "Content-Lengt"));
  EXPECT_FALSE(equalsIgnoreCase("a", "b"));
}

TEST(IsToken, Chars) {
  EXPECT_TRUE(isToken("X-Custom_Header.1~!#$%&'*+^`|"));
  EXPECT_FALSE(isToken(""));
  EXPECT_FALSE(isToken("a b"));
  EXPECT_FALSE(isToken("a:b"));
  EXPECT_FALSE(isToken("a\x01"));
  EXPECT_FALSE(isToken("\xc3\xa9"));
}

}  // namespace
}  // namespace egressd::http
