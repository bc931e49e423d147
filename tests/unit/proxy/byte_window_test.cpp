#include "proxy/byte_window.h"

#include <gtest/gtest.h>

#include <string>

namespace egressd::proxy {
namespace {

void fill(ByteWindow& w, const std::string& text) {
  asio::mutable_buffer space = w.writable();
  ASSERT_GE(space.size(), text.size());
  std::memcpy(space.data(), text.data(), text.size());
  w.commit(text.size());
}

std::string unread(const ByteWindow& w) {
  return std::string(w.readPtr(), w.readable());
}

TEST(ByteWindowTest, ReadsWhatWasCommittedAndRewindsWhenEmpty) {
  ByteWindow w(8);
  fill(w, "abcdef");
  EXPECT_EQ(unread(w), "abcdef");
  w.consume(2);
  EXPECT_EQ(unread(w), "cdef");
  EXPECT_EQ(w.writable().size(), 2u) << "no compaction while there is room at the end";
  w.consume(4);
  EXPECT_EQ(w.readable(), 0u);
  EXPECT_EQ(w.writable().size(), 8u) << "an empty window starts over at 0";
}

TEST(ByteWindowTest, CompactsOnlyWhenTheEndIsReached) {
  ByteWindow w(8);
  fill(w, "abcdefgh");
  EXPECT_TRUE(w.full());
  EXPECT_EQ(w.writable().size(), 0u);
  w.consume(3);
  EXPECT_FALSE(w.full());
  asio::mutable_buffer space = w.writable();  // moves "defgh" to the front
  EXPECT_EQ(space.size(), 3u);
  EXPECT_EQ(unread(w), "defgh");
  fill(w, "xyz");
  EXPECT_EQ(unread(w), "defghxyz");
  EXPECT_TRUE(w.full());
}

}  // namespace
}  // namespace egressd::proxy
