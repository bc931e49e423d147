// `egressd run --user` resolution and the secret-hiding plan (issue 12): pure planning, no
// spawn (the e2e run_command_test checks what the command sees).
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>

#include "sandbox/hide.h"
#include "sandbox/identity.h"

namespace egressd::sandbox {
namespace {

TEST(RunAsUser, DefaultIsTheSudoCallerElseNobody) {
  auto nobody = resolveRunAsUser("", nullptr, nullptr);
  ASSERT_TRUE(nobody.ok()) << nobody.error().message();
  EXPECT_EQ(nobody->uid, 65534u);
  EXPECT_FALSE(nobody->isRoot());
  auto fromRoot = resolveRunAsUser("", "0", "0");
  ASSERT_TRUE(fromRoot.ok());
  EXPECT_EQ(fromRoot->uid, 65534u) << "sudo by root must not mean root";
  auto caller = resolveRunAsUser("", "1", "1");
  ASSERT_TRUE(caller.ok());
  EXPECT_EQ(caller->uid, 1u);
  EXPECT_EQ(caller->gid, 1u);
  EXPECT_EQ(caller->name, "daemon");
  EXPECT_NE(std::find(caller->groups.begin(), caller->groups.end(), 1u), caller->groups.end());
}

TEST(RunAsUser, NamesNumbersAndGroups) {
  auto root = resolveRunAsUser("root", nullptr, nullptr);
  ASSERT_TRUE(root.ok());
  EXPECT_TRUE(root->isRoot());
  EXPECT_EQ(root->home, "/root");
  auto numeric = resolveRunAsUser("4242:4343", nullptr, nullptr);
  ASSERT_TRUE(numeric.ok());
  EXPECT_EQ(numeric->uid, 4242u);
  EXPECT_EQ(numeric->gid, 4343u);
  EXPECT_TRUE(numeric->groups.empty());
  EXPECT_EQ(numeric->home, "/");
  auto bare = resolveRunAsUser("4242", nullptr, nullptr);
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->gid, 4242u);
  auto named = resolveRunAsUser("nobody:daemon", nullptr, nullptr);
  ASSERT_TRUE(named.ok());
  EXPECT_EQ(named->gid, 1u);
  EXPECT_EQ(named->home, "/") << "nobody's /nonexistent home becomes /";
  for (const char* bad : {"no-such-user-x", "nobody:no-such-group-x", ":1", "1:", "-1"}) {
    EXPECT_FALSE(resolveRunAsUser(bad, nullptr, nullptr).ok()) << bad;
  }
}

class HidePlanTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/egressd-hide-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::system(("rm -rf " + dir_).c_str()); }
  void touch(const std::string& rel) { std::ofstream(dir_ + "/" + rel) << "x"; }
  static std::vector<std::string> names(const HiddenDir& h) {
    std::vector<std::string> out;
    for (const auto& e : h.entries) {
      out.push_back(e.relative);
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  const HiddenDir* find(const HidePlan& plan, const std::string& dir) {
    for (const auto& h : plan.dirs) {
      if (h.dir == dir) {
        return &h;
      }
    }
    return nullptr;
  }
  std::string dir_;
};

TEST_F(HidePlanTest, HidesTheSecretItsOtherNamesAndSandboxVariantsKeepsTheRest) {
  ASSERT_EQ(::mkdir((dir_ + "/s").c_str(), 0750), 0);
  touch("s/token");
  touch("s/notes");
  touch("s/tok-a");
  touch("s/tok-b.key");
  ASSERT_EQ(::link((dir_ + "/s/token").c_str(), (dir_ + "/s/token~").c_str()), 0);
  ASSERT_EQ(::symlink("notes", (dir_ + "/s/link").c_str()), 0);
  ASSERT_EQ(::mkdir((dir_ + "/s/sub").c_str(), 0755), 0);
  auto plan = planHiding({dir_ + "/s/token", dir_ + "/s/tok-${sandbox}.key"}, {});
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  const HiddenDir* h = find(*plan, dir_ + "/s");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(names(*h), (std::vector<std::string>{"link", "notes", "sub", "tok-a"}));
  EXPECT_NE(h->tmpfsOptions.find("mode=0750"), std::string::npos) << h->tmpfsOptions;
  for (const auto& e : h->entries) {
    EXPECT_EQ(e.bind, e.kind != HiddenEntry::Kind::kSymlink) << e.relative;
    if (e.kind == HiddenEntry::Kind::kSymlink) {
      EXPECT_EQ(e.linkTarget, "notes");
    }
  }
  ASSERT_EQ(plan->warnings.size(), 1u);
  EXPECT_NE(plan->warnings[0].find("2 hard links"), std::string::npos) << plan->warnings[0];
}

TEST_F(HidePlanTest, MissingDirectoriesSymlinksAndRefusals) {
  // A directory that does not exist yet is hidden by its name in the nearest existing one.
  auto plan = planHiding({dir_ + "/later/deeper/token"}, {});
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  ASSERT_EQ(plan->dirs.size(), 1u);
  EXPECT_EQ(plan->dirs[0].dir, dir_);
  // A ${sandbox} directory component hides every entry at that level.
  ASSERT_EQ(::mkdir((dir_ + "/per").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((dir_ + "/per/sb1").c_str(), 0755), 0);
  plan = planHiding({dir_ + "/per/${sandbox}/token"}, {});
  ASSERT_TRUE(plan.ok());
  ASSERT_NE(find(*plan, dir_ + "/per"), nullptr);
  EXPECT_TRUE(find(*plan, dir_ + "/per")->entries.empty());
  // A symlinked secret (Kubernetes' ..data/token): the name and the target's directory.
  ASSERT_EQ(::mkdir((dir_ + "/real").c_str(), 0755), 0);
  touch("real/token");
  touch("real/other");
  ASSERT_EQ(::symlink((dir_ + "/real/token").c_str(), (dir_ + "/per/token").c_str()), 0);
  plan = planHiding({dir_ + "/per/token"}, {});
  ASSERT_TRUE(plan.ok());
  ASSERT_NE(find(*plan, dir_ + "/real"), nullptr);
  EXPECT_EQ(names(*find(*plan, dir_ + "/real")), std::vector<std::string>{"other"});
  EXPECT_EQ(names(*find(*plan, dir_ + "/per")), std::vector<std::string>{"sb1"});
  // Parents come before children.
  plan = planHiding({dir_ + "/real/token", dir_ + "/tok"}, {});
  ASSERT_TRUE(plan.ok());
  ASSERT_EQ(plan->dirs.size(), 2u);
  EXPECT_EQ(plan->dirs[0].dir, dir_);
  EXPECT_FALSE(planHiding({"relative/token"}, {}).ok());
  EXPECT_FALSE(planHiding({"/token"}, {}).ok()) << "an entry of / cannot be hidden";
}

TEST_F(HidePlanTest, KeepOnlyShowsOnlyWhatIsKeptAndCoversSecretsBelow) {
  ASSERT_EQ(::mkdir((dir_ + "/sandboxes").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((dir_ + "/sandboxes/run-1").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((dir_ + "/sandboxes/run-2").c_str(), 0755), 0);
  touch("secret");
  auto plan =
      planHiding({dir_ + "/secret"}, {KeepOnly{dir_, {"sandboxes/run-1", "sandboxes/run-9"}}});
  ASSERT_TRUE(plan.ok()) << plan.error().message();
  ASSERT_EQ(plan->dirs.size(), 1u) << "the secret's directory is the kept-only one";
  const HiddenDir& h = plan->dirs[0];
  EXPECT_EQ(names(h), (std::vector<std::string>{"sandboxes", "sandboxes/run-1"}));
  EXPECT_FALSE(h.entries[0].bind);
  EXPECT_TRUE(h.entries[1].bind);
  EXPECT_NE(h.tmpfsOptions.find("mode=0755"), std::string::npos) << h.tmpfsOptions;
  // A kept-only directory that does not exist is nothing to hide.
  plan = planHiding({}, {KeepOnly{dir_ + "/absent", {}}});
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->dirs.empty());
}

}  // namespace
}  // namespace egressd::sandbox
