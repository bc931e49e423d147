// cgroup/sock_create: an allowlist of INET/INET6 TCP and UDP sockets. Raw sockets, ICMP
// ping sockets, MPTCP, UDP-Lite and SCTP are refused with EPERM unless the policy's
// `sockets:` section enables them. Ping sockets are tested in the sandbox netns, where the
// test opened net.ipv4.ping_group_range (the host's range is left alone).
#include <netinet/in.h>
#include <sys/socket.h>

#include "world.h"

namespace egressd::e2e {
namespace {

class SockCreateTest : public E2eTest {};

TEST_F(SockCreateTest, RawSocketCreationIsRefused) {
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(PolicySpec{.enableInternet = true}));
  EXPECT_PROBE_ERR(sb->probe({"raw"}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"raw6"}), "EPERM");
  // Root outside the sandbox can create them, so the refusal is the policy's.
  EXPECT_PROBE_OK(sb->probeOutside({"raw"}));
  EXPECT_PROBE_OK(sb->probeOutside({"raw6"}));
  // TCP and UDP sockets of both families are still fine.
  for (int family : {AF_INET, AF_INET6}) {
    for (int type : {SOCK_STREAM, SOCK_DGRAM}) {
      EXPECT_PROBE_OK(sb->probe({"socket", std::to_string(family), std::to_string(type), "0"}))
          << family << "/" << type;
    }
  }
}

TEST_F(SockCreateTest, PingSocketCreationIsRefused) {
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(PolicySpec{.enableInternet = true}, true));
  EXPECT_PROBE_ERR(sb->probe({"ping"}), "EPERM");
  EXPECT_PROBE_ERR(sb->probe({"ping6"}), "EPERM");
  EXPECT_PROBE_OK(sb->probeOutside({"ping"}));
  EXPECT_PROBE_OK(sb->probeOutside({"ping6"}));
}

TEST_F(SockCreateTest, OtherInetProtocolsAreRefused) {
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(PolicySpec{.enableInternet = true}));
  struct Kind {
    const char* name;
    int family, type, proto;
  };
  int checked = 0;
  for (const Kind& k : {Kind{"MPTCP", AF_INET, SOCK_STREAM, IPPROTO_MPTCP},
                        Kind{"MPTCP6", AF_INET6, SOCK_STREAM, IPPROTO_MPTCP},
                        Kind{"UDP-Lite", AF_INET, SOCK_DGRAM, IPPROTO_UDPLITE},
                        Kind{"SCTP", AF_INET, SOCK_STREAM, IPPROTO_SCTP}}) {
    std::vector<std::string> args{"socket", std::to_string(k.family), std::to_string(k.type),
                                  std::to_string(k.proto)};
    auto outside = sb->probeOutside(args);
    if (!ProbeOk(outside)) {
      // Not available on this kernel at all: nothing for the policy to refuse.
      std::printf("note: %s sockets unavailable outside the sandbox here: %s", k.name,
                  outside.out.c_str());
      continue;
    }
    ++checked;
    EXPECT_PROBE_ERR(sb->probe(args), "EPERM") << k.name;
  }
  if (checked == 0) {
    GTEST_SKIP() << "needs one of MPTCP, UDP-Lite, SCTP in the kernel (none can be created "
                    "outside the sandbox here)";
  }
}

TEST_F(SockCreateTest, PolicyCanEnableRawAndPingSockets) {
  PolicySpec spec{.enableInternet = true};
  spec.extraYaml = "sockets:\n  ping: true\n  raw: true\n";
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec, true));
  EXPECT_PROBE_OK(sb->probe({"raw"}));
  EXPECT_PROBE_OK(sb->probe({"ping"}));
  EXPECT_PROBE_OK(sb->probe({"ping6"}));
}

}  // namespace
}  // namespace egressd::e2e
