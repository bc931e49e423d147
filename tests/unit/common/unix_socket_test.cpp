#include "common/unix_socket.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>

namespace egressd {
namespace {

class UnixSocketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/egressd-sock-test-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    path_ = dir_ + "/api.sock";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
  std::string path_;
};

bool canConnect(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  path.copy(addr.sun_path, path.size());
  return ::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
}

TEST_F(UnixSocketTest, ListensWithMode0600) {
  auto fd = listenOnUnixSocket(path_, "test socket", 4);
  ASSERT_TRUE(fd.ok()) << fd.error().message();
  struct stat st {};
  ASSERT_EQ(::lstat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(canConnect(path_));
}

TEST_F(UnixSocketTest, RefusesASocketSomeoneStillServes) {
  auto first = listenOnUnixSocket(path_, "test socket", 4);
  ASSERT_TRUE(first.ok());
  auto second = listenOnUnixSocket(path_, "test socket", 4);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code(), EADDRINUSE);
  EXPECT_EQ(second.error().message(), "test socket " + path_ + " is in use by another process");
  EXPECT_TRUE(canConnect(path_));  // the live one is untouched
}

TEST_F(UnixSocketTest, ReplacesAStaleSocket) {
  {
    auto dead = listenOnUnixSocket(path_, "test socket", 4);
    ASSERT_TRUE(dead.ok());
  }  // closed: the file stays, nobody accepts
  ASSERT_FALSE(canConnect(path_));
  auto fresh = listenOnUnixSocket(path_, "test socket", 4);
  ASSERT_TRUE(fresh.ok()) << fresh.error().message();
  EXPECT_TRUE(canConnect(path_));
}

TEST_F(UnixSocketTest, NeverReplacesARegularFile) {
  std::ofstream(path_) << "precious";
  auto fd = listenOnUnixSocket(path_, "test socket", 4);
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.error().code(), EEXIST);
  std::ifstream in(path_);
  std::string text;
  in >> text;
  EXPECT_EQ(text, "precious");
}

TEST_F(UnixSocketTest, RefusesAPathLongerThanSunPath) {
  auto fd = listenOnUnixSocket(dir_ + "/" + std::string(120, 'a'), "test socket", 4);
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.error().code(), ENAMETOOLONG);
}

}  // namespace
}  // namespace egressd
