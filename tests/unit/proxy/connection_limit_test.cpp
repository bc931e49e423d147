// The default connection limit derived from the descriptor limit (--max-connections 0).
#include <gtest/gtest.h>

#include "proxy/server.h"

namespace egressd::proxy {
namespace {

TEST(ConnectionLimitTest, KeepsTheReserveAndFourDescriptorsPerConnection) {
  // 20,000 (this CI host's hard limit): (20000 - 256) / 4.
  EXPECT_EQ(connectionLimitFor(20000), 4936u);
  EXPECT_EQ(connectionLimitFor(1024), (1024u - kReservedFds) / kFdsPerConnection);
  EXPECT_EQ(connectionLimitFor(1048576), (1048576u - kReservedFds) / kFdsPerConnection);
}

TEST(ConnectionLimitTest, NeverBelowSixteen) {
  EXPECT_EQ(connectionLimitFor(0), 16u);
  EXPECT_EQ(connectionLimitFor(kReservedFds), 16u);
  EXPECT_EQ(connectionLimitFor(kReservedFds + 4 * 16), 16u);
  EXPECT_EQ(connectionLimitFor(kReservedFds + 4 * 17), 17u);
}

}  // namespace
}  // namespace egressd::proxy
