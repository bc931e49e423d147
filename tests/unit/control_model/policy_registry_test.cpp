// The policy registry: parsing one entry, the policy directory, handler references, and
// the all-or-nothing replacement of the set.
#include "control_model/policy_registry.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "control_model/errors.h"
#include "temp_dir.h"

namespace egressd::control_model {
namespace {

const char* kWithHandlers = R"(name: web
allowedHosts: ["api.example.com"]
outboundHandlers:
  auth:
    - setHeader: { name: Authorization, value: "Bearer ${params.token}" }
  readOnly:
    - deny: { status: 405, unless: { method: [GET, HEAD] } }
)";

const char* kPlain = R"(name: plain
allowedHosts: ["example.org"]
)";

PolicyEntry entryOrDie(const std::string& yaml, bool fromApi = true) {
  auto entry = parsePolicyEntry(yaml, "test.yaml", fromApi);
  if (!entry.ok()) {
    throw std::runtime_error(entry.error().message());
  }
  return std::move(*entry);
}

TEST(PolicyEntryTest, ParsesAndCompilesHandlers) {
  auto entry = parsePolicyEntry(kWithHandlers, "/etc/egressd/policies/web.yaml", false);
  ASSERT_TRUE(entry.ok()) << entry.error().message();
  EXPECT_EQ(entry->policy.name, "web");
  EXPECT_EQ(entry->source, "file:/etc/egressd/policies/web.yaml");
  EXPECT_FALSE(entry->fromApi);
  EXPECT_EQ(entry->yaml, kWithHandlers);
  ASSERT_NE(entry->handlers, nullptr);
  EXPECT_EQ(entry->handlers->names(), (std::vector<std::string>{"auth", "readOnly"}));

  auto api = parsePolicyEntry(kPlain, "my-source", true);
  ASSERT_TRUE(api.ok()) << api.error().message();
  EXPECT_EQ(api->source, "api");
  EXPECT_TRUE(api->fromApi);
}

TEST(PolicyEntryTest, ErrorsAreInvalidPolicyAndNameTheSource) {
  auto unnamed = parsePolicyEntry("allowedHosts: [\"a.example\"]\n", "p.yaml", true);
  ASSERT_FALSE(unnamed.ok());
  EXPECT_EQ(unnamed.error().code(), kInvalidPolicy);
  EXPECT_EQ(unnamed.error().message(), "p.yaml:1:1: missing required key 'name'");

  auto malformed = parsePolicyEntry("name: x\nallowedHosts: [\n", "bad.yaml", true);
  ASSERT_FALSE(malformed.ok());
  EXPECT_EQ(malformed.error().code(), kInvalidPolicy);
  EXPECT_NE(malformed.error().message().find("bad.yaml"), std::string::npos)
      << malformed.error().message();

  // A handler chain that does not compile is the policy's error too.
  auto badHandler = parsePolicyEntry(
      "name: x\noutboundHandlers:\n  h:\n    - frobnicate: { x: 1 }\n", "h.yaml", true);
  ASSERT_FALSE(badHandler.ok());
  EXPECT_EQ(badHandler.error().code(), kInvalidPolicy);
}

TEST(HandlerRefTest, UnknownHandlerListsTheDefinedOnes) {
  const PolicyEntry web = entryOrDie(kWithHandlers);
  auto unknown = checkHandlerRef(web, policy::HandlerRef{"nope", nlohmann::json::object()});
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.error().code(), kUnknownHandler);
  EXPECT_EQ(unknown.error().message(), "unknown handler 'nope': policy web defines auth, readOnly");

  const PolicyEntry plain = entryOrDie(kPlain);
  auto none = checkHandlerRef(plain, policy::HandlerRef{"auth", nlohmann::json::object()});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), kUnknownHandler);
  EXPECT_EQ(none.error().message(),
            "unknown handler 'auth': policy plain defines no outboundHandlers");
}

TEST(HandlerRefTest, ParamsAreCheckedAgainstTheHandler) {
  const PolicyEntry web = entryOrDie(kWithHandlers);
  EXPECT_TRUE(checkHandlerRef(web, policy::HandlerRef{"auth", {{"token", "t"}}}).ok());
  EXPECT_TRUE(checkHandlerRef(web, policy::HandlerRef{"readOnly", nlohmann::json::object()}).ok());
  auto missing = checkHandlerRef(web, policy::HandlerRef{"auth", nlohmann::json::object()});
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), EINVAL);
  EXPECT_NE(missing.error().message().find("token"), std::string::npos)
      << missing.error().message();
}

TEST(PolicyDirTest, MissingOrEmptyDirectoryIsNoPolicies) {
  auto none = loadPolicyDir("");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());
  test::TempDir dir = test::TempDir::createOrThrow();
  auto missing = loadPolicyDir(dir.path() + "/absent");
  ASSERT_TRUE(missing.ok()) << missing.error().message();
  EXPECT_TRUE(missing->empty());
}

TEST(PolicyDirTest, LoadsYamlFilesSkippingHiddenAndOtherFiles) {
  test::TempDir dir = test::TempDir::createOrThrow();
  ASSERT_TRUE(dir.writeFile("web.yaml", kWithHandlers).ok());
  ASSERT_TRUE(dir.writeFile("plain.yml", kPlain).ok());
  ASSERT_TRUE(dir.writeFile(".#web.yaml", "not: [yaml").ok());
  ASSERT_TRUE(dir.writeFile("README.txt", "notes").ok());
  auto set = loadPolicyDir(dir.path());
  ASSERT_TRUE(set.ok()) << set.error().message();
  ASSERT_EQ(set->size(), 2U);
  EXPECT_EQ(set->at("web").source, "file:" + dir.path() + "/web.yaml");
  EXPECT_EQ(set->at("plain").source, "file:" + dir.path() + "/plain.yml");
}

TEST(PolicyDirTest, ErrorsKeepThePoliciesInForce) {
  test::TempDir dir = test::TempDir::createOrThrow();
  ASSERT_TRUE(dir.writeFile("a.yaml", kPlain).ok());
  ASSERT_TRUE(dir.writeFile("b.yaml", kPlain).ok());
  auto duplicate = loadPolicyDir(dir.path());
  ASSERT_FALSE(duplicate.ok());
  EXPECT_EQ(duplicate.error().code(), kInvalidPolicy);
  EXPECT_EQ(duplicate.error().message(),
            dir.path() + "/b.yaml: policy name 'plain' is also used by " + dir.path() + "/a.yaml");

  test::TempDir other = test::TempDir::createOrThrow();
  ASSERT_EQ(::mkdir((other.path() + "/sub.yaml").c_str(), 0755), 0);
  auto notAFile = loadPolicyDir(other.path());
  ASSERT_FALSE(notAFile.ok());
  EXPECT_EQ(notAFile.error().message(),
            "policy file " + other.path() + "/sub.yaml: not a regular file");

  auto file = dir.writeFile("plainfile", "x");
  ASSERT_TRUE(file.ok());
  auto notADir = loadPolicyDir(*file);
  ASSERT_FALSE(notADir.ok());
  EXPECT_EQ(notADir.error().message(), "policy directory " + *file + ": Not a directory");
}

TEST(PolicyRegistryTest, ReplaceIsAllOrNothing) {
  PolicyRegistry registry;
  ASSERT_TRUE(registry.replace({{"plain", entryOrDie(kPlain)}}).ok());
  ASSERT_NE(registry.find("plain"), nullptr);

  // The check sees the complete next set while the current one is still in force.
  PolicySet next = registry.withEntry(entryOrDie(kWithHandlers));
  auto refused = registry.replace(next, [&](const PolicySet& candidate) -> Status {
    EXPECT_EQ(candidate.size(), 2U);
    EXPECT_EQ(registry.find("web"), nullptr);
    return Error(kInvalidPolicy, "sandbox a uses policy 'x', which would be gone");
  });
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().message(), "sandbox a uses policy 'x', which would be gone");
  EXPECT_EQ(registry.size(), 1U);
  EXPECT_EQ(registry.find("web"), nullptr);

  ASSERT_TRUE(registry.replace(next, [](const PolicySet&) { return okStatus(); }).ok());
  EXPECT_EQ(registry.size(), 2U);
  EXPECT_NE(registry.find("web"), nullptr);
}

TEST(PolicyRegistryTest, FilesReloadKeepsApiPoliciesOverFilesOfTheirName) {
  PolicyRegistry registry;
  PolicyEntry apiWeb = entryOrDie(kWithHandlers, true);
  ASSERT_TRUE(registry.replace({{"web", apiWeb}, {"plain", entryOrDie(kPlain, false)}}).ok());
  PolicySet files;
  files.emplace("web", entryOrDie(kWithHandlers, false));
  PolicySet next = registry.withFiles(std::move(files));
  // The file policy "plain" is gone (its file was removed); the API's "web" stays.
  ASSERT_EQ(next.size(), 1U);
  EXPECT_TRUE(next.at("web").fromApi);
  EXPECT_EQ(next.at("web").source, "api");
}

TEST(PolicyRegistryTest, WithEntryReplacesThePolicyOfItsName) {
  PolicyRegistry registry;
  ASSERT_TRUE(registry.replace({{"plain", entryOrDie(kPlain, false)}}).ok());
  PolicySet next = registry.withEntry(entryOrDie(kPlain, true));
  ASSERT_EQ(next.size(), 1U);
  EXPECT_TRUE(next.at("plain").fromApi);
  // withEntry computes; only replace changes the registry.
  EXPECT_FALSE(registry.find("plain")->fromApi);
}

}  // namespace
}  // namespace egressd::control_model
