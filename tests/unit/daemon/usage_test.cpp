// egressd's mode table: which mode argv picks, which options each mode offers, the help.
#include "daemon/usage.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace egressd::daemon {
namespace {

bool offers(Mode mode, const std::string& option) {
  auto list = optionsOf(mode);
  return std::any_of(list.begin(), list.end(),
                     [&](const OptionSpec* o) { return option == o->name; });
}

TEST(UsageTest, ModeWordAndTheOldSingleSandboxForm) {
  std::string error;
  auto run = chooseMode({"run", "--policy", "p"}, &error);
  ASSERT_TRUE(run);
  EXPECT_EQ(run->mode, Mode::kRun);
  EXPECT_EQ(run->consumed, 1U);
  auto serve = chooseMode({"serve", "--sandbox", "a"}, &error);
  ASSERT_TRUE(serve);
  EXPECT_EQ(serve->mode, Mode::kServe);
  // The form from before `serve` had a name keeps working.
  auto old = chooseMode({"--sandbox=a", "--cgroup", "c", "--policy", "p"}, &error);
  ASSERT_TRUE(old);
  EXPECT_EQ(old->mode, Mode::kServe);
  EXPECT_EQ(old->consumed, 0U);
  auto daemon = chooseMode({"--state-dir", "/x"}, &error);
  ASSERT_TRUE(daemon);
  EXPECT_EQ(daemon->mode, Mode::kDaemon);
  EXPECT_FALSE(chooseMode({"serv"}, &error));
  EXPECT_EQ(error, "unknown mode 'serv'");
}

TEST(UsageTest, EachModeOffersOnlyItsOwnOptions) {
  EXPECT_TRUE(offers(Mode::kRun, "user"));
  EXPECT_FALSE(offers(Mode::kRun, "socket"));
  EXPECT_TRUE(offers(Mode::kDaemon, "socket"));
  EXPECT_FALSE(offers(Mode::kDaemon, "sandbox"));
  EXPECT_TRUE(offers(Mode::kDetach, "if-exists"));
  EXPECT_TRUE(offers(Mode::kValidate, "json"));
  EXPECT_FALSE(offers(Mode::kValidate, "pin-root"));
  EXPECT_TRUE(offers(Mode::kVerify, "policy"));
  EXPECT_TRUE(offers(Mode::kVerify, "state-dir"));
  EXPECT_FALSE(offers(Mode::kVerify, "user"));
  for (const char* kube : {"kubernetes", "kube-node", "kube-api", "kube-token-file", "kube-ca-file",
                           "kube-cgroup-root"}) {
    EXPECT_TRUE(offers(Mode::kDaemon, kube)) << kube;
    EXPECT_FALSE(offers(Mode::kRun, kube)) << kube;
  }
  for (const ModeSpec& spec : modes()) {
    EXPECT_TRUE(offers(spec.mode, "help")) << spec.name;
    EXPECT_TRUE(offers(spec.mode, "log-level")) << spec.name;
  }
}

TEST(UsageTest, HelpIsGroupedByModeWithoutEmptyDefaults) {
  const std::string overview = overviewHelp();
  for (const char* mode : {"run", "daemon", "serve", "apply", "detach", "validate", "verify"}) {
    EXPECT_NE(overview.find(std::string("\negressd ") + mode), std::string::npos) << mode;
  }
  EXPECT_EQ(overview.find("default: \"\""), std::string::npos);
  EXPECT_EQ(overview.find("(default )"), std::string::npos);
  const std::string run = modeHelp(Mode::kRun);
  EXPECT_NE(run.find("--user"), std::string::npos);
  EXPECT_EQ(run.find("--socket"), std::string::npos);
  EXPECT_NE(run.find("--version"), std::string::npos);
  EXPECT_EQ(seeHelp(Mode::kDetach), "see egressd detach --help");
  EXPECT_TRUE(versionText().starts_with("egressd "));
}

}  // namespace
}  // namespace egressd::daemon
