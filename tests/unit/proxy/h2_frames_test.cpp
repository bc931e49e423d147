#include "proxy/h2_frames.h"

#include <gtest/gtest.h>

#include "proxy/request_decision.h"

namespace egressd::proxy::h2 {
namespace {

RequestFields get(std::string authority, std::vector<http::Header> headers = {}) {
  return RequestFields{"GET", "https", std::move(authority), "/x?y=1", "", std::move(headers)};
}

std::string valueOf(const HeaderList& list, std::string_view name) {
  for (const auto& f : list.fields()) {
    if (f.name == name) {
      return f.value;
    }
  }
  return "<none>";
}

TEST(H2Frames, RequestBecomesTheHeadRequestDecisionJudges) {
  RequestConversion c = toRequestHead(
      get("allowed.test:8443", {{"accept", "*/*"}, {"content-length", "12"}, {"te", "trailers"}}));
  ASSERT_EQ(c.error, "");
  EXPECT_EQ(c.head.method, "GET");
  EXPECT_EQ(c.head.host, "allowed.test:8443");
  EXPECT_EQ(c.head.path, "/x?y=1");
  EXPECT_EQ(c.head.versionMajor, 2);
  ASSERT_TRUE(c.head.contentLength.has_value());
  EXPECT_EQ(*c.head.contentLength, 12u);
  EXPECT_TRUE(c.trailersOk);
  // te is hop-by-hop: not among the forwarded fields; re-added for an h2 upstream only.
  EXPECT_EQ(c.head.find("te"), nullptr);
  EXPECT_NE(c.head.find("accept"), nullptr);
}

TEST(H2Frames, HostFieldMustAgreeWithAuthority) {
  EXPECT_EQ(toRequestHead(get("allowed.test", {{"host", "allowed.test:443"}})).error, "");
  RequestConversion c = toRequestHead(get("allowed.test", {{"host", "other.test"}}));
  EXPECT_NE(c.error.find("differs from :authority"), std::string::npos) << c.error;
  // Without :authority the host field names the request (RFC 9113 8.3.1).
  RequestConversion h = toRequestHead(get("", {{"host", "allowed.test"}}));
  EXPECT_EQ(h.error, "");
  EXPECT_EQ(h.head.host, "allowed.test");
  EXPECT_NE(toRequestHead(get("")).error, "");
  EXPECT_NE(toRequestHead(get("", {{"host", "a.test"}, {"host", "b.test"}})).error, "");
}

TEST(H2Frames, ConnectAndCleartextSchemesAreRefused) {
  RequestFields connect = get("allowed.test:443");
  connect.method = "CONNECT";
  EXPECT_EQ(toRequestHead(connect).status, 405);
  RequestFields ws = get("allowed.test");
  ws.method = "CONNECT";
  ws.protocol = "websocket";
  EXPECT_NE(toRequestHead(ws).error.find("extended CONNECT"), std::string::npos);
  RequestFields http = get("allowed.test");
  http.scheme = "http";
  EXPECT_NE(toRequestHead(http).error, "");
  RequestFields noPath = get("allowed.test");
  noPath.path.clear();
  EXPECT_NE(toRequestHead(noPath).error, "");
  EXPECT_NE(toRequestHead(get("a.test", {{"content-length", "1x"}})).error, "");
  EXPECT_NE(toRequestHead(get("a.test", {{"content-length", "1"}, {"content-length", "2"}})).error,
            "");
}

TEST(H2Frames, AuthorityMismatchWithSniIsMisdirectedLikeHttp11) {
  RequestConversion c = toRequestHead(get("other.test"));
  ASSERT_EQ(c.error, "");
  RequestContext context;
  context.port = 443;
  const std::string sni = "allowed.test";
  context.tlsServerName = sni;
  context.sandboxId = "sb";
  SandboxPolicyView view;
  RequestDecision d = decideRequest(c.head, context, view);
  EXPECT_EQ(d.action, RequestDecision::Action::kAnswer);
  EXPECT_EQ(d.outcome.status, 421);
  EXPECT_EQ(d.outcome.reason, "host_sni_mismatch");
}

TEST(H2Frames, UpstreamRequestCarriesEditsAndNoConnectionFields) {
  RequestConversion c = toRequestHead(
      get("allowed.test", {{"authorization", "sandbox"}, {"x-keep", "1"}, {"cookie", "c"}}));
  HeaderList list = upstreamRequest(c.head, {{"Authorization", "Bearer t"}, {"X-Bad", "a\r\nb"}},
                                    {"Authorization", "Cookie"}, true);
  EXPECT_EQ(valueOf(list, ":authority"), "allowed.test");
  EXPECT_EQ(valueOf(list, ":scheme"), "https");
  EXPECT_EQ(valueOf(list, "authorization"), "Bearer t");
  EXPECT_EQ(valueOf(list, "cookie"), "<none>");
  EXPECT_EQ(valueOf(list, "x-keep"), "1");
  EXPECT_EQ(valueOf(list, "x-bad"), "<none>");
  EXPECT_EQ(valueOf(list, "te"), "trailers");
  int authorizations = 0;
  for (const auto& f : list.fields()) {
    authorizations += f.name == "authorization";
  }
  EXPECT_EQ(authorizations, 1);
}

TEST(H2Frames, Http1HeadGetsHostAndChunkedFraming) {
  RequestConversion c = toRequestHead(get("allowed.test:8443"));
  bool chunked = false;
  http::RequestHead h1 = toHttp1(c.head, true, chunked);
  EXPECT_TRUE(chunked);
  const std::string text = http::serializeRequestHead(h1);
  EXPECT_EQ(text,
            "GET /x?y=1 HTTP/1.1\r\nHost: allowed.test:8443\r\nTransfer-Encoding: chunked\r\n\r\n");
  RequestConversion sized = toRequestHead(get("a.test", {{"content-length", "3"}}));
  toHttp1(sized.head, true, chunked);
  EXPECT_FALSE(chunked);
  toHttp1(c.head, false, chunked);
  EXPECT_FALSE(chunked);
}

TEST(H2Frames, ResponseFieldsLoseWhatHttp2Forbids) {
  HeaderList list = responseHeaders(200, {{"Content-Type", "text/plain"},
                                          {"Connection", "close, X-Hop"},
                                          {"X-Hop", "1"},
                                          {"Keep-Alive", "timeout=5"},
                                          {"Transfer-Encoding", "chunked"},
                                          {"Content-Length", "5"},
                                          {"Bad Name", "x"}});
  EXPECT_EQ(valueOf(list, ":status"), "200");
  EXPECT_EQ(valueOf(list, "content-type"), "text/plain");
  EXPECT_EQ(valueOf(list, "content-length"), "5");
  EXPECT_EQ(list.size(), 3u);
  EXPECT_EQ(responseHeaders(200, {{"Content-Length", "5"}}, false).size(), 1u);
  HeaderList trailers = relayedFields({{"grpc-status", "0"}, {":status", "200"}, {"TE", "x"}});
  ASSERT_EQ(trailers.size(), 1u);
  EXPECT_EQ(trailers.fields()[0].name, "grpc-status");
  const nghttp2_nv* nv = trailers.data();
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(nv[0].value), nv[0].valuelen), "0");
}

}  // namespace
}  // namespace egressd::proxy::h2
