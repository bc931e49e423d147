// Templates: the reference syntax, its errors with positions, and expansion of params, the
// sandbox id and secrets (names resolved, values checked, never leaked into messages).
#include "handlers/template.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace egressd::handlers {
namespace {

using testing::FakeSecrets;

Template parseOk(std::string_view text, bool allowSecrets = true) {
  auto parsed = Template::parse(text, allowSecrets);
  EXPECT_TRUE(parsed.ok()) << text << ": " << parsed.error().message();
  return parsed.ok() ? *parsed : Template();
}

std::string parseError(std::string_view text, bool allowSecrets = true) {
  auto parsed = Template::parse(text, allowSecrets);
  EXPECT_FALSE(parsed.ok()) << "parsed: " << text;
  if (parsed.ok()) {
    return "";
  }
  EXPECT_EQ(parsed.error().code(), EINVAL);
  return parsed.error().message();
}

struct Expansion {
  std::map<std::string, std::string, std::less<>> params;
  std::string sandbox = "sb1";
  FakeSecrets secrets;

  Result<std::string> operator()(const Template& t, std::string* detail = nullptr) {
    const SecretResolver resolver = secrets.resolver();
    return t.expand(TemplateContext{&params, sandbox, &resolver}, detail);
  }
};

TEST(TemplateTest, LiteralTextExpandsToItself) {
  const Template t = parseOk("Bearer abc");
  EXPECT_TRUE(t.isLiteral());
  EXPECT_FALSE(t.usesSecrets());
  EXPECT_TRUE(t.params().empty());
  EXPECT_EQ(t.source(), "Bearer abc");
  EXPECT_EQ(t.expand({}).value(), "Bearer abc");
  EXPECT_EQ(Template().expand({}).value(), "");
}

TEST(TemplateTest, DoubleDollarIsALiteralDollarAndLoneDollarsStay) {
  EXPECT_EQ(parseOk("a$$b").expand({}).value(), "a$b");
  EXPECT_EQ(parseOk("$${sandbox}").expand({}).value(), "${sandbox}");
  EXPECT_EQ(parseOk("cost $5, end$").expand({}).value(), "cost $5, end$");
  Expansion expand;
  EXPECT_EQ(expand(parseOk("$$$${sandbox}")).value(), "$${sandbox}");
  EXPECT_EQ(expand(parseOk("$$$$${sandbox}")).value(), "$$sb1");
  EXPECT_EQ(expand(parseOk("$$${sandbox}")).value(), "$sb1");
}

TEST(TemplateTest, ExpandsParamsAndSandbox) {
  const Template t = parseOk("${params.tenant}-${sandbox}/${params.zone}/${params.tenant}");
  EXPECT_FALSE(t.isLiteral());
  EXPECT_EQ(t.params(), (std::vector<std::string>{"tenant", "zone"}));
  Expansion expand;
  expand.params = {{"tenant", "acme"}, {"zone", "eu-1"}};
  EXPECT_EQ(expand(t).value(), "acme-sb1/eu-1/acme");
  expand.params.erase("zone");
  auto missing = expand(t);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().message(), "missing param zone");
}

TEST(TemplateTest, SecretNamesSharedPerSandboxAndLiteralSandbox) {
  Expansion expand;
  expand.secrets.values = {
      {"GH_TOKEN", "g1"}, {"API_KEY/sb1", "k-sb1"}, {"API_KEY/other-2.x", "o"}};
  const Template shared = parseOk("Bearer ${secret:GH_TOKEN}");
  EXPECT_TRUE(shared.usesSecrets());
  EXPECT_EQ(expand(shared).value(), "Bearer g1");
  EXPECT_EQ(expand(parseOk("${secret:API_KEY/${sandbox}}")).value(), "k-sb1");
  EXPECT_EQ(expand(parseOk("<${secret:API_KEY/other-2.x}>")).value(), "<o>");
  EXPECT_EQ(expand.secrets.asked,
            (std::vector<std::string>{"GH_TOKEN", "API_KEY/sb1", "API_KEY/other-2.x"}));
}

TEST(TemplateTest, UnknownReferencesFailWithTheirPosition) {
  EXPECT_EQ(parseError("ab${foo}"),
            "unknown reference \"${foo}\" at character 3 (expected ${params.NAME}, ${sandbox} or "
            "${secret:NAME})");
  EXPECT_NE(parseError("${Sandbox}").find("unknown reference \"${Sandbox}\" at character 1"),
            std::string::npos);
  EXPECT_NE(parseError("x ${ params.a}").find("\"${ params.a}\" at character 3"),
            std::string::npos);
  EXPECT_NE(parseError("${secret:A x}").find("unknown reference \"${secret:A x}\" at character 1"),
            std::string::npos);
}

TEST(TemplateTest, UnterminatedReferencesFail) {
  EXPECT_EQ(parseError("x${sandbox"), "unterminated \"${\" at character 2 in \"x${sandbox\"");
  EXPECT_NE(parseError("a${secret:K/${sandbox}").find("unterminated \"${\" at character 2"),
            std::string::npos);
  EXPECT_NE(parseError("${").find("unterminated"), std::string::npos);
}

TEST(TemplateTest, RejectsMalformedNames) {
  EXPECT_NE(parseError("${params.}").find("invalid param name"), std::string::npos);
  EXPECT_NE(parseError("${params.a b}").find("invalid param name"), std::string::npos);
  EXPECT_NE(parseError("${secret:}").find("missing secret name"), std::string::npos);
  EXPECT_NE(parseError("${secret:A-B}").find("unknown reference"), std::string::npos);
  EXPECT_NE(parseError("${secret:A/..}").find("invalid sandbox id \"..\""), std::string::npos);
  EXPECT_NE(parseError("${secret:A/}").find("invalid sandbox id \"\""), std::string::npos);
  EXPECT_NE(parseError("${secret:A/${sbx}}").find("invalid sandbox id"), std::string::npos);
  EXPECT_NE(parseError("${secret:A/" + std::string(64, 'x') + "}").find("invalid sandbox id"),
            std::string::npos);
}

TEST(TemplateTest, SecretsOnlyWhereAllowed) {
  const std::string message = parseError("Bearer ${secret:GH_TOKEN}", false);
  EXPECT_NE(message.find("secrets may only be used in setHeader values"), std::string::npos)
      << message;
  EXPECT_NE(message.find("at character 8"), std::string::npos) << message;
  // Escaped, it is just text.
  EXPECT_EQ(parseOk("$${secret:X}", false).expand({}).value(), "${secret:X}");
}

TEST(TemplateTest, MissingSecretNamesItButNotItsSource) {
  Expansion expand;
  std::string detail;
  auto result = expand(parseOk("Bearer ${secret:GH_TOKEN}"), &detail);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().message(), "secret GH_TOKEN is not available");
  EXPECT_EQ(detail, "no fake source for GH_TOKEN");
  // No resolver at all is the same answer.
  auto none = parseOk("${secret:X}").expand(TemplateContext{});
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().message(), "secret X is not available");
}

TEST(TemplateTest, SecretWithLineBreakIsRefusedWithoutItsValue) {
  Expansion expand;
  expand.secrets.values = {{"K", "abc\r\nX-Evil: 1"}, {"N", std::string("a\0b", 3)}};
  auto crlf = expand(parseOk("${secret:K}"));
  ASSERT_FALSE(crlf.ok());
  EXPECT_EQ(crlf.error().message(), "secret K holds CR/LF");
  EXPECT_FALSE(expand(parseOk("${secret:N}")).ok());
}

TEST(TemplateTest, PerSandboxSecretNeedsAValidSandboxId) {
  Expansion expand;
  expand.secrets.values = {{"K/..", "x"}, {"K/", "y"}};
  const Template t = parseOk("${secret:K/${sandbox}}");
  for (std::string sandbox : {"", "..", "a/b"}) {
    expand.sandbox = sandbox;
    auto result = expand(t);
    ASSERT_FALSE(result.ok()) << sandbox;
    EXPECT_NE(result.error().message().find("needs a sandbox id"), std::string::npos);
  }
  EXPECT_TRUE(expand.secrets.asked.empty());
}

TEST(TemplateTest, NameValidators) {
  EXPECT_TRUE(isSecretBaseName("API_KEY_2"));
  EXPECT_FALSE(isSecretBaseName("API-KEY"));
  EXPECT_FALSE(isSecretBaseName(""));
  EXPECT_TRUE(isSandboxId("sb-1.a_b"));
  EXPECT_TRUE(isSandboxId(std::string(63, 'a')));
  EXPECT_FALSE(isSandboxId(std::string(64, 'a')));
  EXPECT_FALSE(isSandboxId(".."));
  EXPECT_FALSE(isSandboxId("."));
  EXPECT_FALSE(isSandboxId("a/b"));
}

}  // namespace
}  // namespace egressd::handlers
