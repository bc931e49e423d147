// Conditions: method, path (prefix vs glob, query ignored, normalized like an origin server
// would read it) and header tests, their AND, and every parse error.
#include "handlers/condition.h"

#include <gtest/gtest.h>

#include <chrono>

#include "test_util.h"

namespace egressd::handlers {
namespace {

using nlohmann::json;
using testing::request;

Condition conditionOk(const char* spec) {
  auto condition = Condition::parse(json::parse(spec));
  EXPECT_TRUE(condition.ok()) << spec << ": " << condition.error().message();
  return condition.ok() ? *condition : Condition::parse(json{{"method", "NEVER"}}).value();
}

std::string conditionError(const char* spec) {
  auto condition = Condition::parse(json::parse(spec));
  EXPECT_FALSE(condition.ok()) << "parsed: " << spec;
  return condition.ok() ? "" : condition.error().message();
}

TEST(ConditionTest, MethodStringOrListExactAndCaseSensitive) {
  const Condition one = conditionOk(R"({"method": "GET"})");
  EXPECT_TRUE(one.matches(request("GET", "/")));
  EXPECT_FALSE(one.matches(request("get", "/")));
  EXPECT_FALSE(one.matches(request("POST", "/")));
  const Condition list = conditionOk(R"({"method": ["GET", "HEAD"]})");
  EXPECT_TRUE(list.matches(request("GET", "/")));
  EXPECT_TRUE(list.matches(request("HEAD", "/")));
  EXPECT_FALSE(list.matches(request("PUT", "/")));
  EXPECT_FALSE(list.matches(request("GETX", "/")));
}

TEST(ConditionTest, PathWithoutStarIsAPrefixOfThePathWithoutQuery) {
  const Condition c = conditionOk(R"({"path": "/v1/"})");
  EXPECT_TRUE(c.matches(request("GET", "/v1/")));
  EXPECT_TRUE(c.matches(request("GET", "/v1/items?x=1")));
  EXPECT_FALSE(c.matches(request("GET", "/v1")));
  EXPECT_FALSE(c.matches(request("GET", "/v2/x?next=/v1/")));
  EXPECT_FALSE(c.matches(request("GET", "/V1/x")));  // paths are case-sensitive
}

TEST(ConditionTest, PathWithStarIsAGlobOverTheWholePath) {
  const Condition c = conditionOk(R"({"path": "/v1/*/items"})");
  EXPECT_TRUE(c.matches(request("GET", "/v1/a/items")));
  EXPECT_TRUE(c.matches(request("GET", "/v1/a/b/items?page=2")));  // '*' spans '/'
  EXPECT_FALSE(c.matches(request("GET", "/v1/a/items/x")));        // anchored at the end
  EXPECT_FALSE(c.matches(request("GET", "/x/v1/a/items")));        // and at the start
  const Condition files = conditionOk(R"({"path": "/files/*.json"})");
  EXPECT_TRUE(files.matches(request("GET", "/files/a.json?download=1")));
  EXPECT_FALSE(files.matches(request("GET", "/files/a?x=.json")));  // query ignored
}

TEST(ConditionTest, PathIsMatchedAsTheOriginWouldResolveIt) {
  const Condition publicOnly = conditionOk(R"({"path": "/public/"})");
  EXPECT_FALSE(publicOnly.matches(request("GET", "/public/../admin")));
  EXPECT_FALSE(publicOnly.matches(request("GET", "/public/%2e%2e/admin")));
  EXPECT_TRUE(publicOnly.matches(request("GET", "/public/./a/../b")));
  const Condition admin = conditionOk(R"({"path": "/admin"})");
  EXPECT_TRUE(admin.matches(request("GET", "/%61dmin")));
  EXPECT_TRUE(admin.matches(request("GET", "/public/../admin/x")));
  EXPECT_TRUE(admin.matches(request("GET", "/./admin")));
}

TEST(ConditionTest, NormalizePathForMatching) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/", "/"},
      {"/a/b?c=d", "/a/b"},
      {"/a/./b", "/a/b"},
      {"/a/b/../c", "/a/c"},
      {"/a/b/..", "/a/"},
      {"/a/.", "/a/"},
      {"/..", "/"},
      {"/../../x", "/x"},
      {"//x", "//x"},
      {"/a//b/", "/a//b/"},
      {"/%7euser/%41", "/~user/A"},
      {"/a%2fb", "/a%2Fb"},  // an encoded '/' is not a separator
      {"/a%2e%2E/b", "/a../b"},
      {"/%zz%4", "/%zz%4"},
      {"*", "*"},
  };
  for (const auto& [in, out] : cases) {
    EXPECT_EQ(normalizePathForMatching(in), out) << in;
  }
}

TEST(ConditionTest, PathGlobMatcher) {
  EXPECT_TRUE(pathGlobMatches("*", ""));
  EXPECT_TRUE(pathGlobMatches("/*", "/"));
  EXPECT_TRUE(pathGlobMatches("/a*b*c", "/aXbYbZc"));
  EXPECT_FALSE(pathGlobMatches("/a*b*c", "/aXbYbZ"));
  EXPECT_TRUE(pathGlobMatches("/**/x", "/x/x"));
  EXPECT_FALSE(pathGlobMatches("/a", "/ab"));
  // Many stars against a long non-matching path: must not backtrack exponentially.
  const std::string pattern = "/" + std::string(30, 'a') + "*a*a*a*a*a*a*a*a*a*a*b";
  const std::string path = "/" + std::string(5000, 'a');
  const auto start = std::chrono::steady_clock::now();
  EXPECT_FALSE(pathGlobMatches(pattern, path));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
}

TEST(ConditionTest, HeaderPresentEqualsAndAbsent) {
  const auto req = request("GET", "/", {{"X-Mode", "read"}, {"x-mode", "write"}, {"Accept", ""}});
  EXPECT_TRUE(conditionOk(R"({"header": "x-MODE"})").matches(req));
  EXPECT_FALSE(conditionOk(R"({"header": "X-Other"})").matches(req));
  EXPECT_TRUE(conditionOk(R"({"header": {"name": "Accept"}})").matches(req));
  // equals: the first header of that name, exact value.
  EXPECT_TRUE(conditionOk(R"({"header": {"name": "x-mode", "equals": "read"}})").matches(req));
  EXPECT_FALSE(conditionOk(R"({"header": {"name": "X-Mode", "equals": "write"}})").matches(req));
  EXPECT_FALSE(conditionOk(R"({"header": {"name": "X-Mode", "equals": "READ"}})").matches(req));
  EXPECT_FALSE(conditionOk(R"({"header": {"name": "X-None", "equals": ""}})").matches(req));
  // present: false means absent.
  EXPECT_TRUE(conditionOk(R"({"header": {"name": "X-None", "present": false}})").matches(req));
  EXPECT_FALSE(conditionOk(R"({"header": {"name": "X-Mode", "present": false}})").matches(req));
  EXPECT_TRUE(conditionOk(R"({"header": {"name": "X-Mode", "present": true}})").matches(req));
}

TEST(ConditionTest, AllKeysMustHold) {
  const Condition c = conditionOk(
      R"({"method": "POST", "path": "/v1/", "header": {"name": "X-A", "equals": "1"}})");
  EXPECT_TRUE(c.matches(request("POST", "/v1/x", {{"X-A", "1"}})));
  EXPECT_FALSE(c.matches(request("GET", "/v1/x", {{"X-A", "1"}})));
  EXPECT_FALSE(c.matches(request("POST", "/v2/x", {{"X-A", "1"}})));
  EXPECT_FALSE(c.matches(request("POST", "/v1/x", {{"X-A", "2"}})));
}

TEST(ConditionTest, ParseErrorsNameTheKey) {
  EXPECT_EQ(conditionError(R"("GET")"), "expected a mapping with method, path and/or header");
  EXPECT_EQ(conditionError(R"({})"), "empty condition (expected method, path and/or header)");
  EXPECT_EQ(conditionError(R"({"verb": "GET"})"),
            "unknown key 'verb' (expected method, path or header)");
  EXPECT_EQ(conditionError(R"({"method": "GE T"})"),
            "method: \"GE T\" is not an HTTP method token");
  EXPECT_EQ(conditionError(R"({"method": 5})"), "method: expected a string or a list of strings");
  EXPECT_EQ(conditionError(R"({"method": []})"), "method: empty list (no request would match)");
  EXPECT_EQ(conditionError(R"({"method": ["GET", 1]})"),
            "method: expected a string or a list of strings");
  EXPECT_EQ(conditionError(R"({"path": "v1/"})"),
            "path: expected a string starting with '/', got \"v1/\"");
  EXPECT_EQ(conditionError(R"({"path": "/a?b"})"),
            "path: \"/a?b\" has a query; paths are matched without it");
  EXPECT_EQ(conditionError(R"({"header": "Bad Name"})"),
            "header: \"Bad Name\" is not a valid header name");
  EXPECT_EQ(conditionError(R"({"header": {"equals": "x"}})"),
            "header: missing required key 'name'");
  EXPECT_EQ(conditionError(R"({"header": {"name": "A", "equals": "x", "present": true}})"),
            "header: 'equals' and 'present' exclude each other");
  EXPECT_EQ(conditionError(R"({"header": {"name": "A", "present": "no"}})"),
            "header.present: expected true or false");
  EXPECT_EQ(conditionError(R"({"header": {"name": "A", "value": "x"}})"),
            "header: unknown key 'value' (expected name, equals or present)");
  EXPECT_EQ(conditionError(R"({"header": 3})"),
            "header: expected a header name or {name, equals | present}");
}

}  // namespace
}  // namespace egressd::handlers
