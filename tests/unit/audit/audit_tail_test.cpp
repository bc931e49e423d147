// Reading the audit log back: the last records, following from an offset, filters, and
// the line being written left for the next read.
#include "audit/audit_tail.h"

#include <gtest/gtest.h>

#include "temp_dir.h"

namespace egressd::audit {
namespace {

std::string line(const std::string& sandbox, const std::string& layer, const std::string& decision,
                 int n) {
  return nlohmann::json{{"sandbox", sandbox}, {"layer", layer}, {"decision", decision}, {"n", n}}
             .dump() +
         "\n";
}

TEST(AuditTailTest, MissingLogIsNoRecordsYet) {
  test::TempDir dir = test::TempDir::createOrThrow();
  auto tail = readAuditTail(dir.path() + "/audit.log", AuditQuery{});
  ASSERT_TRUE(tail.ok()) << tail.error().message();
  EXPECT_FALSE(tail->fileExists);
  EXPECT_TRUE(tail->records.empty());
  EXPECT_EQ(tail->next, 0U);
}

TEST(AuditTailTest, LastLinesFilteredAndOnlyCompleteOnes) {
  test::TempDir dir = test::TempDir::createOrThrow();
  std::string content = line("a", "proxy", "deny", 1) + "not json\n" +
                        line("b", "kernel", "deny", 2) + line("a", "dns", "allow", 3) +
                        line("a", "proxy", "deny", 4);
  const size_t complete = content.size();
  content += R"({"sandbox": "a", "layer": "pro)";  // being written
  auto path = dir.writeFile("audit.log", content);
  ASSERT_TRUE(path.ok());

  AuditQuery last2;
  last2.lines = 2;
  auto tail = readAuditTail(*path, last2);
  ASSERT_TRUE(tail.ok()) << tail.error().message();
  EXPECT_TRUE(tail->fileExists);
  ASSERT_EQ(tail->records.size(), 2U);
  EXPECT_EQ(tail->records[0]["n"], 3);
  EXPECT_EQ(tail->records[1]["n"], 4);
  EXPECT_EQ(tail->next, complete);

  AuditQuery denials;
  denials.sandbox = "a";
  denials.decision = "deny";
  auto filtered = readAuditTail(*path, denials);
  ASSERT_TRUE(filtered.ok());
  ASSERT_EQ(filtered->records.size(), 2U);
  EXPECT_EQ(filtered->records[0]["n"], 1);
  EXPECT_EQ(filtered->records[1]["n"], 4);

  AuditQuery kernel;
  kernel.layer = "kernel";
  auto byLayer = readAuditTail(*path, kernel);
  ASSERT_TRUE(byLayer.ok());
  ASSERT_EQ(byLayer->records.size(), 1U);
  EXPECT_EQ(byLayer->records[0]["n"], 2);
}

TEST(AuditTailTest, FollowingReadsWhatCameAfterTheOffset) {
  test::TempDir dir = test::TempDir::createOrThrow();
  const std::string first = line("a", "proxy", "deny", 1) + line("a", "proxy", "allow", 2);
  auto path = dir.writeFile("audit.log", first + line("a", "proxy", "deny", 3));
  ASSERT_TRUE(path.ok());
  AuditQuery follow;
  follow.after = first.size();
  auto tail = readAuditTail(*path, follow);
  ASSERT_TRUE(tail.ok());
  ASSERT_EQ(tail->records.size(), 1U);
  EXPECT_EQ(tail->records[0]["n"], 3);

  // An offset past the end: the log was rotated or truncated, read from its start.
  follow.after = 1U << 30;
  auto rotated = readAuditTail(*path, follow);
  ASSERT_TRUE(rotated.ok());
  EXPECT_EQ(rotated->records.size(), 3U);
}

TEST(AuditTailTest, UnreadableLogIsAnErrorNamingIt) {
  test::TempDir dir = test::TempDir::createOrThrow();
  // A path through a regular file cannot be opened (ENOTDIR).
  auto file = dir.writeFile("plain", "x");
  ASSERT_TRUE(file.ok());
  auto tail = readAuditTail(*file + "/audit.log", AuditQuery{});
  ASSERT_FALSE(tail.ok());
  EXPECT_EQ(tail.error().code(), ENOTDIR);
  EXPECT_EQ(tail.error().message(),
            "cannot read the audit log " + *file + "/audit.log: Not a directory");
}

}  // namespace
}  // namespace egressd::audit
