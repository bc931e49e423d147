// Finding container cgroups by id (sandbox/container_cgroup.h) on a temporary directory tree
// laid out as the container runtimes lay out their cgroups under the systemd and cgroupfs
// drivers; and reading a process's cgroup v2 path from /proc/PID/cgroup contents.
#include "sandbox/container_cgroup.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <string>
#include <vector>

#include "common/fs.h"
#include "temp_dir.h"
#include "test_util.h"

namespace egressd::sandbox {
namespace {

// A 64-hex id that starts with `head` (padded with a digit of its own).
std::string idStartingWith(const std::string& head, char fill) {
  return head + std::string(kContainerIdLength - head.size(), fill);
}

struct Layout {
  const char* description;
  std::string relativeDir;  // the container's cgroup, below the cgroup2 mount
  std::string id;
};

std::vector<Layout> everyLayout() {
  return {
      {"docker, systemd driver", "system.slice/docker-" + idStartingWith("d0c0", '1') + ".scope",
       idStartingWith("d0c0", '1')},
      {"docker, cgroupfs driver", "docker/" + idStartingWith("d0c1", '2'),
       idStartingWith("d0c1", '2')},
      {"containerd CRI (k8s), systemd driver",
       "kubepods.slice/kubepods-burstable.slice/"
       "kubepods-burstable-pod0b3e5b0c_1f27_4d0a_9d4c_5d1f4a1b2c3d.slice/cri-containerd-" +
           idStartingWith("c0d0", '3') + ".scope",
       idStartingWith("c0d0", '3')},
      {"containerd CRI (k8s), cgroupfs driver",
       "kubepods/besteffort/pod0b3e5b0c-1f27-4d0a-9d4c-5d1f4a1b2c3e/" + idStartingWith("c0d1", '4'),
       idStartingWith("c0d1", '4')},
      {"k8s guaranteed QoS, cgroupfs driver",
       "kubepods/pod0b3e5b0c-1f27-4d0a-9d4c-5d1f4a1b2c3f/" + idStartingWith("c0d2", '5'),
       idStartingWith("c0d2", '5')},
      {"docker as the k8s runtime, systemd driver",
       "kubepods.slice/kubepods-pod0b3e5b0c_1f27_4d0a_9d4c_5d1f4a1b2c40.slice/docker-" +
           idStartingWith("c0d3", '6') + ".scope",
       idStartingWith("c0d3", '6')},
      {"cri-o, systemd driver",
       "kubepods.slice/kubepods-besteffort.slice/"
       "kubepods-besteffort-pod0b3e5b0c_1f27_4d0a_9d4c_5d1f4a1b2c41.slice/crio-" +
           idStartingWith("c0d4", '7') + ".scope",
       idStartingWith("c0d4", '7')},
      {"containerd (ctr), cgroupfs driver", "default/" + idStartingWith("c0d5", '8'),
       idStartingWith("c0d5", '8')},
      {"podman, systemd driver",
       "user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" +
           idStartingWith("90d0", '9') + ".scope",
       idStartingWith("90d0", '9')},
      {"podman, cgroupfs driver", "libpod_parent/libpod-" + idStartingWith("90d1", 'a'),
       idStartingWith("90d1", 'a')},
  };
}

class ContainerCgroupTree : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const Layout& l : everyLayout()) {
      ASSERT_OK(makeDirs(root() + "/" + l.relativeDir));
    }
    // Things that look close to a container and are not one.
    const std::string podmanId = idStartingWith("90d0", '9');
    ASSERT_OK(makeDirs(root() + "/machine.slice/libpod-conmon-" + podmanId + ".scope"));
    ASSERT_OK(makeDirs(root() + "/system.slice/docker.service"));
    ASSERT_OK(makeDirs(root() + "/system.slice/docker-" + std::string(63, 'e') + ".scope"));
    // podman puts the container's processes in a child of its scope: the scope is the
    // container, the child is not searched.
    ASSERT_OK(makeDirs(root() + "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" +
                       podmanId + ".scope/container"));
  }

  const std::string& root() const { return dir_.path(); }

  test::TempDir dir_ = test::TempDir::createOrThrow();
};

TEST(ContainerIdFromCgroupName, RecognisesEveryRuntimeForm) {
  const std::string id = idStartingWith("abc", '0');
  for (const std::string& name : std::vector<std::string>{
           "docker-" + id + ".scope", "cri-containerd-" + id + ".scope", "crio-" + id + ".scope",
           "libpod-" + id + ".scope", "libpod-" + id, id}) {
    EXPECT_EQ(containerIdFromCgroupName(name).value_or("(none)"), id) << name;
  }
}

TEST(ContainerIdFromCgroupName, RefusesLookAlikes) {
  const std::string id = idStartingWith("abc", '0');
  for (const std::string& name : std::vector<std::string>{
           "libpod-conmon-" + id + ".scope", "docker.service", "docker-" + id.substr(1) + ".scope",
           "docker-" + id + "0.scope", "docker-" + idStartingWith("ABC", '0') + ".scope",
           "session-" + id + ".scope", id + ".scope", "docker-" + id, id.substr(1),
           std::string("init.scope"), std::string("")}) {
    EXPECT_FALSE(containerIdFromCgroupName(name).has_value()) << name;
  }
}

TEST_F(ContainerCgroupTree, FindsEachLayoutByFullIdAndBy12DigitPrefix) {
  for (const Layout& l : everyLayout()) {
    SCOPED_TRACE(l.description);
    for (const std::string& query : {l.id, l.id.substr(0, kMinContainerIdPrefix)}) {
      ASSERT_OK_AND_ASSIGN(ContainerCgroup found, findContainerCgroup(root(), query));
      EXPECT_EQ(found.id, l.id);
      EXPECT_EQ(found.path, root() + "/" + l.relativeDir);
    }
  }
}

TEST_F(ContainerCgroupTree, AcceptsUpperCaseDigits) {
  const Layout l = everyLayout().front();
  std::string upper = l.id.substr(0, 20);
  for (char& c : upper) {
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  ASSERT_OK_AND_ASSIGN(ContainerCgroup found, findContainerCgroup(root(), upper));
  EXPECT_EQ(found.id, l.id);
}

TEST_F(ContainerCgroupTree, AmbiguousPrefixListsEveryCandidate) {
  // Two containers whose ids share their first 20 digits, under different runtimes.
  const std::string shared = "feedfacefeedfacefeed";
  const std::string first = idStartingWith(shared + "1", '0');
  const std::string second = idStartingWith(shared + "2", '0');
  ASSERT_OK(makeDirs(root() + "/system.slice/docker-" + first + ".scope"));
  ASSERT_OK(makeDirs(root() + "/libpod_parent/libpod-" + second));

  auto found = findContainerCgroup(root(), shared);
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.error().code(), ENOTUNIQ);
  EXPECT_NE(found.error().message().find("matches 2 containers"), std::string::npos)
      << found.error().message();
  EXPECT_NE(found.error().message().find(first + "  " + root() + "/system.slice/docker-" + first +
                                         ".scope"),
            std::string::npos)
      << found.error().message();
  EXPECT_NE(
      found.error().message().find(second + "  " + root() + "/libpod_parent/libpod-" + second),
      std::string::npos)
      << found.error().message();

  // One more digit settles it.
  ASSERT_OK_AND_ASSIGN(ContainerCgroup one, findContainerCgroup(root(), shared + "2"));
  EXPECT_EQ(one.id, second);
}

TEST_F(ContainerCgroupTree, UnknownIdSaysWhatWasLookedFor) {
  auto found = findContainerCgroup(root(), "0123456789ab");
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.error().code(), ENOENT);
  EXPECT_NE(found.error().message().find("docker-ID.scope"), std::string::npos)
      << found.error().message();
}

TEST_F(ContainerCgroupTree, RefusesShortOrNonHexPrefixes) {
  for (const std::string& bad : {std::string("d0c0111"), std::string("d0c011111111").substr(0, 11),
                                 std::string("docker-d0c01111111"), std::string("zzzzzzzzzzzzzz"),
                                 std::string(65, 'a'), std::string("")}) {
    auto found = findContainerCgroup(root(), bad);
    ASSERT_FALSE(found.ok()) << bad;
    EXPECT_EQ(found.error().code(), EINVAL) << bad;
    EXPECT_NE(found.error().message().find("at least 12"), std::string::npos)
        << found.error().message();
  }
}

TEST_F(ContainerCgroupTree, PodmanChildCgroupIsNotASecondMatch) {
  const std::string podmanId = idStartingWith("90d0", '9');
  ASSERT_OK(makeDirs(root() + "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" +
                     podmanId + ".scope/container/" + podmanId));  // nested runtime's cgroup
  ASSERT_OK_AND_ASSIGN(std::vector<ContainerCgroup> all, findContainerCgroups(root(), podmanId));
  ASSERT_EQ(all.size(), 1U);
  EXPECT_EQ(all[0].path, root() +
                             "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" +
                             podmanId + ".scope");
}

TEST(CgroupV2PathFromProcFile, UnifiedHost) {
  ASSERT_OK_AND_ASSIGN(std::string path,
                       cgroupV2PathFromProcFile("0::/system.slice/docker-abc.scope\n"));
  EXPECT_EQ(path, "/system.slice/docker-abc.scope");
}

TEST(CgroupV2PathFromProcFile, HybridHostListsV1HierarchiesToo) {
  const std::string content =
      "12:pids:/user.slice/user-0.slice/session-3.scope\n"
      "11:memory:/user.slice/user-0.slice/session-3.scope\n"
      "1:name=systemd:/user.slice/user-0.slice/session-3.scope\n"
      "0::/egressd-test-x/docker-1.scope\n";
  ASSERT_OK_AND_ASSIGN(std::string path, cgroupV2PathFromProcFile(content));
  EXPECT_EQ(path, "/egressd-test-x/docker-1.scope");
}

TEST(CgroupV2PathFromProcFile, RootCgroupAndNoV2Line) {
  ASSERT_OK_AND_ASSIGN(std::string root, cgroupV2PathFromProcFile("0::/"));
  EXPECT_EQ(root, "/");
  auto none = cgroupV2PathFromProcFile("1:name=systemd:/init.scope\n");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), ENOENT);
}

TEST(CgroupV2PathFromProcFile, DeletedCgroupIsRefused) {
  auto gone = cgroupV2PathFromProcFile("0::/egressd-test-x/gone (deleted)\n");
  ASSERT_FALSE(gone.ok());
  EXPECT_NE(gone.error().message().find("has been removed"), std::string::npos);
}

TEST(CgroupDirOfPid, JoinsTheV2PathToTheMount) {
  test::TempDir proc = test::TempDir::createOrThrow();
  ASSERT_OK(makeDirs(proc.path() + "/4242"));
  ASSERT_OK(proc.writeFile("4242/cgroup", "1:name=systemd:/x\n0::/a/b.scope\n"));
  ASSERT_OK_AND_ASSIGN(std::string dir,
                       cgroupDirOfPid(4242, "/sys/fs/cgroup/unified", proc.path()));
  EXPECT_EQ(dir, "/sys/fs/cgroup/unified/a/b.scope");

  ASSERT_OK(makeDirs(proc.path() + "/1"));
  ASSERT_OK(proc.writeFile("1/cgroup", "0::/\n"));
  ASSERT_OK_AND_ASSIGN(std::string rootDir, cgroupDirOfPid(1, "/sys/fs/cgroup", proc.path()));
  EXPECT_EQ(rootDir, "/sys/fs/cgroup");

  auto missing = cgroupDirOfPid(4243, "/sys/fs/cgroup", proc.path());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ESRCH);
  EXPECT_NE(missing.error().message().find("pid 4243: no such process"), std::string::npos)
      << missing.error().message();
}

TEST(CgroupDirOfPid, ThisProcessOnThisHost) {
  // The real /proc: this test process's own cgroup exists under the real mount.
  ASSERT_OK_AND_ASSIGN(std::string dir, cgroupDirOfPid(::getpid(), "/mnt-x"));
  EXPECT_EQ(dir.rfind("/mnt-x", 0), 0U) << dir;
}

}  // namespace
}  // namespace egressd::sandbox
