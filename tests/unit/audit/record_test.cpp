#include "audit/record.h"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include <nlohmann/json.hpp>

namespace egressd::audit {
namespace {

using std::chrono::sys_days;
using namespace std::chrono_literals;

// 2024-05-01T12:34:56.000123Z
std::chrono::system_clock::time_point fixedTime() {
  return sys_days{std::chrono::year{2024} / 5 / 1} + 12h + 34min + 56s + 123us;
}

AuditRecord fullRecord() {
  AuditRecord r;
  r.time = fixedTime();
  r.sandbox = "ci-42";
  r.layer = "proxy";
  r.protocol = "https";
  r.origDst = "[2001:db8::3]:443";
  r.upstream = "140.82.112.3:443";
  r.host = "github.com";
  r.method = "GET";
  r.path = "/repos/x/y";
  r.decision = "allow";
  r.reason = "allowed_host";
  r.rule = "allowedHosts[0]";
  r.handler = "authenticatedGithub";
  r.status = 200;
  r.bytesIn = 17;
  r.bytesOut = 123456789012ULL;
  r.duration = 1500us;
  r.detail = "ok";
  return r;
}

TEST(AuditRecordTest, JsonLineCarriesEveryFieldInContractOrder) {
  const std::string line = toJsonLine(fullRecord());
  ASSERT_FALSE(line.empty());
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "exactly one line";

  auto parsed = nlohmann::ordered_json::parse(line);
  std::vector<std::string> keys;
  for (const auto& item : parsed.items()) {
    keys.push_back(item.key());
  }
  const std::vector<std::string> expectedKeys = {
      "time",    "sandbox", "layer",    "protocol",  "orig_dst",    "upstream",
      "host",    "method",  "path",     "decision",  "reason",      "rule",
      "handler", "status",  "bytes_in", "bytes_out", "duration_us", "detail"};
  EXPECT_EQ(keys, expectedKeys);

  EXPECT_EQ(parsed["time"], "2024-05-01T12:34:56.000123Z");
  EXPECT_EQ(parsed["sandbox"], "ci-42");
  EXPECT_EQ(parsed["layer"], "proxy");
  EXPECT_EQ(parsed["protocol"], "https");
  EXPECT_EQ(parsed["orig_dst"], "[2001:db8::3]:443");
  EXPECT_EQ(parsed["upstream"], "140.82.112.3:443");
  EXPECT_EQ(parsed["host"], "github.com");
  EXPECT_EQ(parsed["method"], "GET");
  EXPECT_EQ(parsed["path"], "/repos/x/y");
  EXPECT_EQ(parsed["decision"], "allow");
  EXPECT_EQ(parsed["reason"], "allowed_host");
  EXPECT_EQ(parsed["rule"], "allowedHosts[0]");
  EXPECT_EQ(parsed["handler"], "authenticatedGithub");
  EXPECT_EQ(parsed["status"], 200);
  EXPECT_EQ(parsed["bytes_in"], 17);
  EXPECT_EQ(parsed["bytes_out"], 123456789012ULL);
  EXPECT_EQ(parsed["duration_us"], 1500);
  EXPECT_EQ(parsed["detail"], "ok");
}

TEST(AuditRecordTest, EmptyStringsAreOmittedNumbersAreKept) {
  AuditRecord r;
  r.time = fixedTime();
  r.layer = "kernel";
  r.decision = "deny";
  auto parsed = nlohmann::json::parse(toJsonLine(r));
  EXPECT_EQ(parsed.size(), 7u) << parsed.dump();
  EXPECT_EQ(parsed["layer"], "kernel");
  EXPECT_EQ(parsed["decision"], "deny");
  EXPECT_EQ(parsed["status"], 0);
  EXPECT_EQ(parsed["bytes_in"], 0);
  EXPECT_EQ(parsed["bytes_out"], 0);
  EXPECT_EQ(parsed["duration_us"], 0);
  for (const char* absent : {"sandbox", "protocol", "orig_dst", "upstream", "host", "method",
                             "path", "reason", "rule", "handler", "detail"}) {
    EXPECT_FALSE(parsed.contains(absent)) << absent;
  }
}

TEST(AuditRecordTest, TimeIsRfc3339UtcWithMicroseconds) {
  EXPECT_EQ(formatTime(fixedTime()), "2024-05-01T12:34:56.000123Z");
  EXPECT_EQ(formatTime(std::chrono::system_clock::time_point{}), "1970-01-01T00:00:00.000000Z");
  // Before the epoch the fraction still counts forward from the whole second.
  EXPECT_EQ(formatTime(std::chrono::system_clock::time_point{} - 1us),
            "1969-12-31T23:59:59.999999Z");
  // Sub-microsecond precision is truncated, not rounded into the next second.
  EXPECT_EQ(formatTime(sys_days{std::chrono::year{2030} / 12 / 31} + 23h + 59min + 59s + 999999us +
                       999ns),
            "2030-12-31T23:59:59.999999Z");
}

TEST(AuditRecordTest, EscapesControlCharactersAndQuotes) {
  AuditRecord r;
  r.detail = std::string("q\"b\\s\nn\rr\tt\x01\x1f") + '\0' + "end";
  const std::string line = toJsonLine(r);
  EXPECT_EQ(line.find('\n'), line.size() - 1) << "an embedded newline must not split the line";
  EXPECT_NE(line.find(R"("q\"b\\s\nn\rr\tt\u0001\u001f\u0000end")"), std::string::npos) << line;
  EXPECT_EQ(nlohmann::json::parse(line)["detail"], r.detail);
}

TEST(AuditRecordTest, KeepsValidUtf8AndReplacesInvalidBytes) {
  AuditRecord r;
  r.host =
      "b\xC3\xBC"
      "cher.example";                                   // "bücher"
  r.path = "/\xF0\x9F\x98\x80";                         // U+1F600
  r.detail = std::string("a\xFF") + "b" + "\xC0\xAF" +  // overlong '/'
             "\xED\xA0\x80" +                           // UTF-16 surrogate
             "\xE2\x82";                                // truncated sequence at the end
  const std::string line = toJsonLine(r);
  auto parsed = nlohmann::json::parse(line);  // throws on invalid UTF-8
  EXPECT_EQ(parsed["host"], r.host);
  EXPECT_EQ(parsed["path"], r.path);
  const std::string fffd = "\xEF\xBF\xBD";
  EXPECT_EQ(parsed["detail"], "a" + fffd + "b" + fffd + fffd + fffd + fffd + fffd + fffd + fffd);
}

TEST(AuditRecordTest, RedactsSecretValuesInEveryStringField) {
  AuditRecord r = fullRecord();
  r.path = "/hook/tok-123456/x";
  r.detail = "upstream said: bad token tok-123456 (tok-123456)";
  r.host = "tok-123456.example";
  const std::string line = toJsonLine(r, {"tok-123456", ""});
  EXPECT_EQ(line.find("tok-123456"), std::string::npos) << line;
  auto parsed = nlohmann::json::parse(line);
  EXPECT_EQ(parsed["path"], "/hook/[REDACTED]/x");
  EXPECT_EQ(parsed["detail"], "upstream said: bad token [REDACTED] ([REDACTED])");
  EXPECT_EQ(parsed["host"], "[REDACTED].example");
  EXPECT_EQ(parsed["sandbox"], "ci-42") << "fields without the secret stay as they are";
}

TEST(AuditRecordTest, PathForAuditStripsQueryAndFragment) {
  EXPECT_EQ(pathForAudit("/a/b?token=s3cr3t"), "/a/b");
  EXPECT_EQ(pathForAudit("/a/b#frag"), "/a/b");
  EXPECT_EQ(pathForAudit("/a?x#y"), "/a");
  EXPECT_EQ(pathForAudit("/?"), "/");
  EXPECT_EQ(pathForAudit("/plain"), "/plain");
  EXPECT_EQ(pathForAudit("/%2F%3F"), "/%2F%3F") << "escaped characters are not separators";
  EXPECT_EQ(pathForAudit(""), "");
}

TEST(AuditRecordTest, PathForAuditDropsSchemeAuthorityAndCredentials) {
  EXPECT_EQ(pathForAudit("http://user:pass@example.com/p/q?k=v"), "/p/q");
  EXPECT_EQ(pathForAudit("https://example.com"), "/");
  EXPECT_EQ(pathForAudit("http://example.com?k=v"), "/");
  EXPECT_EQ(pathForAudit("http://u:p@example.com#x"), "/");
  EXPECT_EQ(pathForAudit("example.com:443"), "") << "CONNECT authority-form has no path";
  EXPECT_EQ(pathForAudit("user:pw@example.com:443"), "");
  EXPECT_EQ(pathForAudit("*"), "*");
}

TEST(AuditRecordTest, PathForAuditCapsLengthOnACharacterBoundary) {
  const std::string longPath = "/" + std::string(1000, 'a');
  EXPECT_EQ(pathForAudit(longPath + "?q"), longPath.substr(0, kMaxAuditPathBytes));

  // A 3-byte character straddling byte 512 is dropped whole rather than cut in half.
  const std::string euro = "\xE2\x82\xAC";
  const std::string straddling = "/" + std::string(510, 'b') + euro + "tail";
  const std::string capped = pathForAudit(straddling);
  EXPECT_EQ(capped, "/" + std::string(510, 'b'));
  EXPECT_LE(capped.size(), kMaxAuditPathBytes);

  // Ending exactly at the cap keeps the whole character.
  const std::string fits = "/" + std::string(508, 'c') + euro + "more";
  EXPECT_EQ(pathForAudit(fits), "/" + std::string(508, 'c') + euro);
}

}  // namespace
}  // namespace egressd::audit
