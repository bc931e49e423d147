// cgroup/setsockopt: options that would send packets somewhere other than the address the
// hooks judged are refused with EPERM (IPV6_RTHDR with a valid segment routing header,
// IPV6_2292RTHDR, IP_OPTIONS source routing, TCP_REPAIR); ordinary options still work.
#include "world.h"

namespace egressd::e2e {
namespace {

class SetsockoptTest : public E2eTest {};

TEST_F(SetsockoptTest, RoutingAndRepairOptionsAreRefused) {
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(PolicySpec{.enableInternet = true}));
  for (const char* cmd : {"rthdr", "rthdr2292", "ipoptions", "tcprepair"}) {
    EXPECT_PROBE_ERR(sb->probe({cmd}), "EPERM") << cmd;
    // The kernel itself accepts each of them outside the sandbox.
    EXPECT_PROBE_OK(sb->probeOutside({cmd})) << cmd;
  }
  EXPECT_PROBE_OK(sb->probe({"nodelay"}));
}

TEST_F(SetsockoptTest, RoutingHeaderRefusedInContainerSandboxToo) {
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(PolicySpec{.enableInternet = true}, true));
  EXPECT_PROBE_ERR(sb->probe({"rthdr"}), "EPERM");
  EXPECT_PROBE_OK(sb->probeOutside({"rthdr"}));
}

}  // namespace
}  // namespace egressd::e2e
