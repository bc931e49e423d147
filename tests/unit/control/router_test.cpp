// Router, percent-coding and the JSON field helpers: pure, no sockets.
#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

#include "control/api.h"

namespace egressd::control {
namespace {

using nlohmann::json;

ApiRequest req(std::string method, std::string path) {
  ApiRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  return r;
}

// A handler that answers with the route's name and the captures it saw.
RouteHandler named(std::string name) {
  return [name](const ApiRequest& r) {
    ApiResponse out;
    out.body = {{"route", name}, {"params", r.params}};
    return out;
  };
}

Router sandboxRouter() {
  Router router;
  router.add("GET", "/v1/sandboxes", named("list"));
  router.add("POST", "/v1/sandboxes", named("create"));
  router.add("GET", "/v1/sandboxes/{id}", named("show"));
  router.add("DELETE", "/v1/sandboxes/{id}", named("delete"));
  router.add("DELETE", "/v1/sandboxes/{id}/allowed-hosts/{host}", named("remove-allowed"));
  router.add("PUT", "/v1/secrets/{name+}", named("secret-set"));
  router.add("GET", "/v1/policies/{name}", named("policy-show"));
  router.add("POST", "/v1/policies/{name}", named("policy-post-by-name"));
  router.add("POST", "/v1/policies/validate", named("policy-validate"));
  return router;
}

std::string errorCode(const ApiResponse& r) {
  return r.body.at("error").at("code").get<std::string>();
}

TEST(Router, LiteralAndCaptures) {
  Router router = sandboxRouter();
  ApiResponse list = router.dispatch(req("GET", "/v1/sandboxes"));
  EXPECT_EQ(list.status, 200);
  EXPECT_EQ(list.body["route"], "list");

  ApiResponse r = router.dispatch(req("DELETE", "/v1/sandboxes/sb1/allowed-hosts/a.test"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body["route"], "remove-allowed");
  EXPECT_EQ(r.body["params"]["id"], "sb1");
  EXPECT_EQ(r.body["params"]["host"], "a.test");

  // One segment per capture: an extra or a missing segment is another path.
  EXPECT_EQ(router.dispatch(req("GET", "/v1/sandboxes/sb1/extra")).status, 404);
  EXPECT_EQ(router.dispatch(req("DELETE", "/v1/sandboxes/sb1/allowed-hosts")).status, 404);
  // Captures never match an empty segment.
  EXPECT_EQ(router.dispatch(req("GET", "/v1/sandboxes/")).status, 404);
}

TEST(Router, RestCaptureTakesSlashes) {
  Router router = sandboxRouter();
  ApiResponse r = router.dispatch(req("PUT", "/v1/secrets/API_KEY/sbA"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body["params"]["name"], "API_KEY/sbA");
  ApiResponse plain = router.dispatch(req("PUT", "/v1/secrets/TOKEN"));
  EXPECT_EQ(plain.body["params"]["name"], "TOKEN");
  // The rest is decoded as a whole: an encoded slash and a literal one both end up as '/'.
  ApiResponse encoded = router.dispatch(req("PUT", "/v1/secrets/A%20B/c%2Fd"));
  EXPECT_EQ(encoded.body["params"]["name"], "A B/c/d");
  // The rest must not be empty.
  EXPECT_EQ(router.dispatch(req("PUT", "/v1/secrets/")).status, 404);
  EXPECT_EQ(router.dispatch(req("PUT", "/v1/secrets")).status, 404);
}

TEST(Router, RestCaptureMustBeLast) {
  Router router;
  EXPECT_THROW(router.add("GET", "/v1/{name+}/x", named("bad")), std::invalid_argument);
}

TEST(Router, PercentDecodesCaptures) {
  Router router = sandboxRouter();
  ApiResponse r =
      router.dispatch(req("DELETE", "/v1/sandboxes/sb%201/allowed-hosts/%2A.evil.example"));
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.body["params"]["id"], "sb 1");
  EXPECT_EQ(r.body["params"]["host"], "*.evil.example");
  // '+' is a plain character in a path ('+' as space is a query-string convention).
  ApiResponse plus = router.dispatch(req("GET", "/v1/sandboxes/a+b"));
  EXPECT_EQ(plus.body["params"]["id"], "a+b");
}

TEST(Router, BadPercentEncodingIs400) {
  Router router = sandboxRouter();
  for (const char* path : {"/v1/sandboxes/%zz", "/v1/sandboxes/ab%4", "/v1/sandboxes/%00x"}) {
    ApiResponse r = router.dispatch(req("GET", path));
    EXPECT_EQ(r.status, 400) << path;
    EXPECT_EQ(errorCode(r), "malformed_path") << path;
  }
}

TEST(Router, NotFoundVersusMethodNotAllowed) {
  Router router = sandboxRouter();
  ApiResponse missing = router.dispatch(req("GET", "/v1/nothing"));
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(errorCode(missing), "not_found");
  EXPECT_EQ(missing.body["error"]["status"], 404);
  EXPECT_NE(missing.body["error"]["message"].get<std::string>().find("/v1/nothing"),
            std::string::npos);

  ApiResponse wrong = router.dispatch(req("PATCH", "/v1/sandboxes/sb1"));
  EXPECT_EQ(wrong.status, 405);
  EXPECT_EQ(errorCode(wrong), "method_not_allowed");
  const std::string message = wrong.body["error"]["message"];
  EXPECT_NE(message.find("Allow: GET, DELETE"), std::string::npos) << message;

  // A method that exists elsewhere does not make a path exist.
  EXPECT_EQ(router.dispatch(req("DELETE", "/v1/unknown")).status, 404);
}

TEST(Router, MoreLiteralSegmentsWin) {
  Router router = sandboxRouter();
  // Added after the {name} pattern, still chosen for its literal segment.
  EXPECT_EQ(router.dispatch(req("POST", "/v1/policies/validate")).body["route"], "policy-validate");
  EXPECT_EQ(router.dispatch(req("POST", "/v1/policies/agent")).body["route"],
            "policy-post-by-name");
  ApiResponse show = router.dispatch(req("GET", "/v1/policies/validate"));
  EXPECT_EQ(show.body["route"], "policy-show");
  EXPECT_EQ(show.body["params"]["name"], "validate");
}

TEST(Router, HandlerExceptionsBecome500) {
  Router router;
  router.add("GET", "/v1/boom", [](const ApiRequest&) -> ApiResponse {
    throw std::runtime_error("state file is corrupt");
  });
  router.add("GET", "/v1/json", [](const ApiRequest& r) -> ApiResponse {
    // A handler that trusts the body's shape: nlohmann throws type_error.
    return ApiResponse{200, {{"n", r.body.at("missing").get<int>()}}};
  });
  ApiResponse boom = router.dispatch(req("GET", "/v1/boom"));
  EXPECT_EQ(boom.status, 500);
  EXPECT_EQ(errorCode(boom), "internal");
  EXPECT_NE(boom.body["error"]["message"].get<std::string>().find("state file is corrupt"),
            std::string::npos);
  ApiRequest r = req("GET", "/v1/json");
  r.body = json::object();
  ApiResponse jsonError = router.dispatch(r);
  EXPECT_EQ(jsonError.status, 500);
  EXPECT_NE(jsonError.body["error"]["message"].get<std::string>().find("missing"),
            std::string::npos);
}

TEST(Router, RequestReachesHandlerIntact) {
  Router router;
  router.add("POST", "/v1/x/{id}", [](const ApiRequest& r) {
    return ApiResponse{
        201, {{"body", r.body}, {"query", r.query}, {"uid", r.peerUid}, {"path", r.path}}};
  });
  ApiRequest r = req("POST", "/v1/x/a%2Fb");
  r.body = {{"k", 1}};
  r.query = {{"lines", "5"}};
  r.peerUid = 7;
  ApiResponse out = router.dispatch(r);
  EXPECT_EQ(out.status, 201);
  EXPECT_EQ(out.body["body"]["k"], 1);
  EXPECT_EQ(out.body["query"]["lines"], "5");
  EXPECT_EQ(out.body["uid"], 7);
  EXPECT_EQ(out.body["path"], "/v1/x/a%2Fb");  // raw path kept
}

TEST(ApiError, Shape) {
  ApiResponse r = apiError(409, "sandbox_exists", "sandbox sb1 already exists");
  EXPECT_EQ(r.status, 409);
  EXPECT_EQ(r.body, json::parse(R"({"error":{"status":409,"code":"sandbox_exists",
                                  "message":"sandbox sb1 already exists"}})"));
  EXPECT_EQ(errorMessage(r), "sandbox sb1 already exists");
  EXPECT_EQ(errorMessage(ApiResponse{502, json::object()}), "HTTP status 502");
  EXPECT_EQ(invalidRequest(Error(EINVAL, "field 'id' must be a string")).body["error"]["code"],
            "invalid_request");
}

TEST(PercentCoding, EncodeKeepsOnlyUnreserved) {
  EXPECT_EQ(percentEncode("*.evil.example"), "%2A.evil.example");
  EXPECT_EQ(percentEncode("a/b c"), "a%2Fb%20c");
  EXPECT_EQ(percentEncode("A-z_0.9~"), "A-z_0.9~");
  EXPECT_EQ(percentEncode("%+?#&="), "%25%2B%3F%23%26%3D");
  EXPECT_EQ(percentEncode("\xc3\xa9"), "%C3%A9");
  for (const std::string s : {"*.evil.example", "a/b c", "%41", "\xff\x01 +", "[::1]"}) {
    auto decoded = percentDecode(percentEncode(s));
    ASSERT_TRUE(decoded.ok()) << s;
    EXPECT_EQ(*decoded, s);
  }
}

TEST(PercentCoding, DecodeErrorsAndPlus) {
  EXPECT_EQ(*percentDecode("a+b"), "a+b");
  EXPECT_EQ(*percentDecode("a+b", true), "a b");
  EXPECT_EQ(*percentDecode("%2a%2A"), "**");
  EXPECT_FALSE(percentDecode("%").ok());
  EXPECT_FALSE(percentDecode("%4").ok());
  EXPECT_FALSE(percentDecode("%g0").ok());
  // Found by fuzz.control_json: a raw NUL passed while "%00" was refused, so a capture
  // holding one could not be written back as a path that routes.
  auto raw = percentDecode(std::string_view("a\0b", 3));
  ASSERT_FALSE(raw.ok());
  EXPECT_NE(raw.error().message().find("NUL"), std::string::npos);
  auto nul = percentDecode("a%00");
  ASSERT_FALSE(nul.ok());
  EXPECT_NE(nul.error().message().find("NUL"), std::string::npos);
}

TEST(PercentCoding, Query) {
  auto q = parseQuery("lines=20&sandbox=sb%2F1&flag&x=a+b&&lines=30");
  ASSERT_TRUE(q.ok()) << q.error().message();
  EXPECT_EQ(q->at("lines"), "30");
  EXPECT_EQ(q->at("sandbox"), "sb/1");
  EXPECT_EQ(q->at("flag"), "");
  EXPECT_EQ(q->at("x"), "a b");
  EXPECT_EQ(q->size(), 4U);
  EXPECT_FALSE(parseQuery("a=%zz").ok());
}

// --- field helpers ------------------------------------------------------------------------

std::string message(const Error& e) {
  return e.message();
}

TEST(Fields, StringField) {
  json body = {{"id", "sb1"}, {"n", 3}, {"nil", nullptr}};
  EXPECT_EQ(*stringField(body, "id"), "sb1");
  auto wrong = stringField(body, "n");
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(message(wrong.error()), "field 'n' must be a string, not a number");
  auto missing = stringField(body, "policy");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(message(missing.error()), "missing field 'policy' (a string)");
  EXPECT_EQ(message(stringField(body, "nil").error()), "missing field 'nil' (a string)");
  auto notObject = stringField(json::array({1}), "id");
  ASSERT_FALSE(notObject.ok());
  EXPECT_EQ(message(notObject.error()),
            "request body must be a JSON object with field 'id' (a string), not an array");
  auto noBody = stringField(json(nullptr), "id");
  ASSERT_FALSE(noBody.ok());
  EXPECT_NE(message(noBody.error()).find("not null"), std::string::npos);
  EXPECT_EQ(noBody.error().code(), EINVAL);
}

TEST(Fields, OptionalString) {
  json body = {{"netns", "/run/netns/a"}, {"cgroup", nullptr}, {"bad", true}};
  EXPECT_EQ(**optionalString(body, "netns"), "/run/netns/a");
  EXPECT_FALSE(optionalString(body, "cgroup")->has_value());
  EXPECT_FALSE(optionalString(body, "absent")->has_value());
  EXPECT_FALSE(optionalString(json(nullptr), "absent")->has_value());  // no body at all
  auto bad = optionalString(body, "bad");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(message(bad.error()), "field 'bad' must be a string, not a boolean");
  EXPECT_FALSE(optionalString(json("text"), "netns").ok());
}

TEST(Fields, StringList) {
  json body = {{"hosts", {"a.test", "*.b.test"}},
               {"empty", json::array()},
               {"mixed", {"a.test", 5}},
               {"scalar", "a.test"}};
  EXPECT_EQ(*stringList(body, "hosts"), (std::vector<std::string>{"a.test", "*.b.test"}));
  EXPECT_TRUE(stringList(body, "empty")->empty());
  auto mixed = stringList(body, "mixed");
  ASSERT_FALSE(mixed.ok());
  EXPECT_EQ(message(mixed.error()),
            "field 'mixed' must be an array of strings, but element 1 is a number");
  auto scalar = stringList(body, "scalar");
  ASSERT_FALSE(scalar.ok());
  EXPECT_EQ(message(scalar.error()), "field 'scalar' must be an array of strings, not a string");
  EXPECT_EQ(message(stringList(body, "absent").error()),
            "missing field 'absent' (an array of strings)");
}

TEST(Fields, ObjectField) {
  json body = {{"params", {{"token", "x"}}}, {"list", {1}}, {"nil", nullptr}};
  EXPECT_EQ(objectField(body, "params", true)->at("token"), "x");
  auto absent = objectField(body, "absent", false);
  ASSERT_TRUE(absent.ok());
  EXPECT_TRUE(absent->is_null());
  EXPECT_TRUE(objectField(body, "nil", false)->is_null());
  EXPECT_EQ(message(objectField(body, "absent", true).error()),
            "missing field 'absent' (a JSON object)");
  EXPECT_EQ(message(objectField(body, "list", false).error()),
            "field 'list' must be a JSON object, not an array");
  EXPECT_TRUE(objectField(json(nullptr), "params", false)->is_null());
  EXPECT_FALSE(objectField(json(nullptr), "params", true).ok());
}

TEST(Fields, BoolField) {
  json body = {{"createCgroup", true}, {"off", false}, {"text", "yes"}};
  EXPECT_TRUE(*boolField(body, "createCgroup", false));
  EXPECT_FALSE(*boolField(body, "off", true));
  EXPECT_TRUE(*boolField(body, "absent", true));
  EXPECT_FALSE(*boolField(body, "absent", false));
  EXPECT_TRUE(*boolField(json(nullptr), "absent", true));
  auto text = boolField(body, "text", false);
  ASSERT_FALSE(text.ok());
  EXPECT_EQ(message(text.error()), "field 'text' must be true or false, not a string");
}

}  // namespace
}  // namespace egressd::control
