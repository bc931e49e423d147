#include "common/ascii.h"

#include <gtest/gtest.h>

namespace egressd {
namespace {

TEST(AsciiTest, LowercasesOnlyAsciiLetters) {
  EXPECT_EQ(toLowerAscii("HeLLo-World_09.Z"), "hello-world_09.z");
  // UTF-8 bytes (here "Ä") pass through untouched whatever the locale.
  EXPECT_EQ(toLowerAscii("\xC3\x84X"), "\xC3\x84x");
  EXPECT_EQ(toLowerAscii(""), "");
}

TEST(AsciiTest, HexDigitValue) {
  EXPECT_EQ(hexDigitValue('0'), 0);
  EXPECT_EQ(hexDigitValue('9'), 9);
  EXPECT_EQ(hexDigitValue('a'), 10);
  EXPECT_EQ(hexDigitValue('F'), 15);
  for (char c : std::string_view("gG/:@`\x7f ")) {
    EXPECT_EQ(hexDigitValue(c), -1) << static_cast<int>(c);
  }
}

TEST(AsciiTest, EqualsIgnoreCase) {
  EXPECT_TRUE(equalsIgnoreCase("Content-Length", "content-length"));
  EXPECT_FALSE(equalsIgnoreCase("a", "ab"));
  EXPECT_FALSE(equalsIgnoreCase("[", "{"));  // 0x5b vs 0x7b differ by the case bit only
}

}  // namespace
}  // namespace egressd
