// Reroute upstreams: every accepted form, its canonical text, and the forms refused.
#include "handlers/reroute.h"

#include <gtest/gtest.h>

namespace egressd::handlers {
namespace {

using Kind = RerouteTarget::Kind;

RerouteTarget parseOk(std::string_view text) {
  auto target = parseRerouteTarget(text);
  EXPECT_TRUE(target.ok()) << text << ": " << target.error().message();
  return target.ok() ? *target : RerouteTarget{};
}

std::string parseError(std::string_view text) {
  auto target = parseRerouteTarget(text);
  EXPECT_FALSE(target.ok()) << "parsed: " << text << " as " << target->text();
  if (target.ok()) {
    return "";
  }
  EXPECT_EQ(target.error().code(), EINVAL);
  return target.error().message();
}

TEST(RerouteTest, ParsesEveryForm) {
  struct Case {
    std::string text;
    RerouteTarget expected;
    std::string canonical;
  };
  const std::vector<Case> cases = {
      {"kv.internal:8080", {Kind::kTcp, "kv.internal", 8080, ""}, "http://kv.internal:8080"},
      {"10.0.0.5:81", {Kind::kTcp, "10.0.0.5", 81, ""}, "http://10.0.0.5:81"},
      {"[::1]:9000", {Kind::kTcp, "::1", 9000, ""}, "http://[::1]:9000"},
      {"http://KV.Internal", {Kind::kTcp, "kv.internal", 80, ""}, "http://kv.internal:80"},
      {"http://kv:8080/", {Kind::kTcp, "kv", 8080, ""}, "http://kv:8080"},
      {"HTTPS://api.example", {Kind::kTls, "api.example", 443, ""}, "https://api.example:443"},
      {"https://[2001:db8::1]:8443",
       {Kind::kTls, "2001:db8::1", 8443, ""},
       "https://[2001:db8::1]:8443"},
      {"unix:/run/kv.sock", {Kind::kUnix, "", 0, "/run/kv.sock"}, "unix:/run/kv.sock"},
  };
  for (const Case& c : cases) {
    const RerouteTarget target = parseOk(c.text);
    EXPECT_EQ(target, c.expected) << c.text;
    EXPECT_EQ(target.text(), c.canonical) << c.text;
    // The canonical text parses back to the same target.
    EXPECT_EQ(parseOk(target.text()), target) << c.text;
  }
}

TEST(RerouteTest, RejectsBadForms) {
  EXPECT_EQ(parseError("unix:relative.sock"),
            "upstream \"unix:relative.sock\" must be an absolute path");
  EXPECT_EQ(parseError("unix:"), "upstream \"unix:\" must be an absolute path");
  EXPECT_NE(parseError("unix:/" + std::string(107, 'a')).find("longer than a unix socket path"),
            std::string::npos);
  EXPECT_NE(parseError("kv:0").find("port out of range"), std::string::npos);
  EXPECT_NE(parseError("http://kv:70000").find("port out of range"), std::string::npos);
  EXPECT_NE(parseError("kv:123456").find("invalid port"), std::string::npos);
  EXPECT_NE(parseError("kv:").find("invalid port"), std::string::npos);
  EXPECT_EQ(parseError("kv.internal"),
            "upstream \"kv.internal\" needs a port (host:port) or a scheme (http://, https://)");
  EXPECT_EQ(parseError("http://"), "upstream \"http://\" has no host");
  EXPECT_NE(parseError(":8080").find("empty host"), std::string::npos);
  EXPECT_NE(parseError("http://:80").find("empty host"), std::string::npos);
  EXPECT_EQ(parseError(""), "upstream \"\" has no host");
  EXPECT_EQ(parseError("ftp://files.example"),
            "upstream \"ftp://files.example\": unsupported scheme 'ftp' (expected http://, "
            "https://, unix:/path or host:port)");
  EXPECT_EQ(parseError("http://kv/v1"),
            "upstream \"http://kv/v1\" has a path; a reroute keeps the request's own path");
  EXPECT_EQ(parseError("http://user:pw@kv"),
            "upstream \"http://user:pw@kv\" has userinfo; use setHeader for credentials");
  EXPECT_NE(parseError("http://k v").find("bad character"), std::string::npos);
  EXPECT_NE(parseError("[kv]:80").find("not an IPv6 address"), std::string::npos);
}

}  // namespace
}  // namespace egressd::handlers
