// The environment `egressd run` gives its command (issue 12, item 2) and the owner start time
// the orphan sweep relies on (item 3).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "daemon/run_env.h"
#include "daemon/run_owner.h"

namespace egressd::daemon {
namespace {

RunEnvironmentInput input() {
  RunEnvironmentInput in;
  in.inherited = {"PATH=/bin", "HOME=/root", "USER=root",  "SECRET_SRC=s3cr3t",
                  "LC_ALL=C",  "TERM=dumb",  "RANDOM_X=1", "LANG=C.UTF-8"};
  in.secretVariables = {"SECRET_SRC"};
  in.userName = "nobody";
  in.home = "/";
  return in;
}

TEST(RunEnvironment, AllowlistUserAndNoSecretSource) {
  auto env = buildRunEnvironment(input());
  ASSERT_TRUE(env.ok()) << env.error().message();
  EXPECT_EQ(*env, (std::vector<std::string>{"HOME=/", "LANG=C.UTF-8", "LC_ALL=C", "LOGNAME=nobody",
                                            "PATH=/bin", "TERM=dumb", "USER=nobody"}));
}

TEST(RunEnvironment, EnvArgsAndFilesAddRefusingSecretSources) {
  char path[] = "/tmp/egressd-env-test-XXXXXX";
  const int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  std::ofstream(path) << "# comment\n\n  \nA=1\r\nB=x=y\n";
  auto in = input();
  in.envFiles = {path};
  in.envArgs = {"RANDOM_X", "A=2", "UNSET_Y", "C=a,b"};
  auto env = buildRunEnvironment(in);
  ASSERT_TRUE(env.ok()) << env.error().message();
  for (const char* want : {"A=2", "B=x=y", "C=a,b", "RANDOM_X=1"}) {
    EXPECT_NE(std::find(env->begin(), env->end(), want), env->end()) << want;
  }
  for (const auto& e : *env) {
    EXPECT_FALSE(e.starts_with("UNSET_Y")) << "an unset --env NAME adds nothing";
  }
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"SECRET_SRC"}, std::vector<std::string>{"SECRET_SRC=mine"}}) {
    auto bad = input();
    bad.envArgs = args;
    auto refused = buildRunEnvironment(bad);
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.error().message().find("SECRET_SRC is a secret source"), std::string::npos);
    EXPECT_EQ(refused.error().message().find("s3cr3t"), std::string::npos);
  }
  std::ofstream(path) << "OK=1\nSECRET_SRC=x\n";
  auto viaFile = input();
  viaFile.envFiles = {path};
  auto refused = buildRunEnvironment(viaFile);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().message().find(":2: SECRET_SRC"), std::string::npos)
      << refused.error().message();
  std::ofstream(path) << "root:x:0:0:not-an-assignment\n";
  refused = buildRunEnvironment(viaFile);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().message().find("not-an-assignment"), std::string::npos)
      << "a file's content is never echoed: " << refused.error().message();
  for (const char* bad : {"", "1A=2", "A-B=1", "=x"}) {
    auto in2 = input();
    in2.envArgs = {bad};
    EXPECT_FALSE(buildRunEnvironment(in2).ok()) << bad;
  }
  ::unlink(path);
}

TEST(RunEnvironment, AnAllowlistedNameThatIsASecretSourceIsDropped) {
  auto in = input();
  in.secretVariables = {"TERM"};
  auto env = buildRunEnvironment(in);
  ASSERT_TRUE(env.ok());
  for (const auto& e : *env) {
    EXPECT_FALSE(e.starts_with("TERM=")) << e;
  }
}

TEST(RunOwner, StartTimeIdentifiesAProcess) {
  auto self = processStartTime(::getpid());
  ASSERT_TRUE(self.ok()) << self.error().message();
  EXPECT_GT(*self, 0u);
  auto again = processStartTime(::getpid());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*self, *again);
  auto init = processStartTime(1);
  ASSERT_TRUE(init.ok());
  EXPECT_LE(*init, *self);
  EXPECT_FALSE(processStartTime(0x3fffffff).ok());
}

}  // namespace
}  // namespace egressd::daemon
