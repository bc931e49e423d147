#include "common/fs.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>

namespace egressd {
namespace {

class FsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/egressd-fs-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(FsTest, AtomicWriteReplacesTheFileWholeWithTheGivenMode) {
  const std::string path = dir_ + "/state.json";
  ASSERT_TRUE(writeFileAtomic(path, "old contents", 0644).ok());
  ASSERT_TRUE(writeFileAtomic(path, "new", 0600).ok());
  auto text = readFile(path);
  ASSERT_TRUE(text.ok()) << text.error().message();
  EXPECT_EQ(*text, "new");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // No temp file is left beside it.
  size_t entries = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator(dir_)) {
    ++entries;
  }
  EXPECT_EQ(entries, 1u);
}

TEST_F(FsTest, AtomicWriteIntoAMissingDirectoryNamesThePath) {
  const std::string path = dir_ + "/missing/state.json";
  auto written = writeFileAtomic(path, "x", 0600);
  ASSERT_FALSE(written.ok());
  EXPECT_NE(written.error().message().find(dir_ + "/missing/state.json.tmp."), std::string::npos)
      << written.error().message();
}

TEST_F(FsTest, AtomicWriteOfARelativePathSyncsTheCurrentDirectory) {
  const auto cwd = std::filesystem::current_path();
  std::filesystem::current_path(dir_);
  auto written = writeFileAtomic("relative.txt", "data", 0644);
  std::filesystem::current_path(cwd);
  ASSERT_TRUE(written.ok()) << written.error().message();
  EXPECT_EQ(*readFile(dir_ + "/relative.txt"), "data");
}

}  // namespace
}  // namespace egressd
