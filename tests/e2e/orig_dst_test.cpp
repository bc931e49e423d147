// The original destination of a proxied connection, published by sockops in the pinned
// egressd_orig_dst map for the proxy to read back: keyed by what the proxy sees on accept
// (its netns cookie, the client's address and port), valued with the address and port the
// sandbox asked for and the sandbox's slot. The daemon runs with --no-proxy: nobody
// accepts, so the entries stay in the map for the test to read (the proxy consumes them on
// accept) and the connection is refused - and never reaches the origin directly.
#include <arpa/inet.h>

#include <cstring>
#include <regex>

#include "world.h"

namespace egressd::e2e {
namespace {

using nlohmann::json;

std::vector<int> bytesOfLiteral(const std::string& literal) {
  unsigned char b[16] = {};
  in_addr v4{};
  if (::inet_pton(AF_INET, literal.c_str(), &v4) == 1) {
    b[10] = b[11] = 0xff;  // v4-mapped, as everywhere in the maps
    std::memcpy(b + 12, &v4, 4);
  } else if (::inet_pton(AF_INET6, literal.c_str(), b) != 1) {
    ADD_FAILURE() << "bad address literal " << literal;
  }
  return std::vector<int>(b, b + 16);
}

std::vector<int> bytesOf(const json& addr) {
  std::vector<int> out;
  if (addr.is_object() && addr.contains("bytes")) {
    for (const auto& b : addr["bytes"]) {
      out.push_back(b.get<int>());
    }
  }
  return out;
}

// The "local_port=N" note of `tcp --show-local`, or -1.
int localPortOf(const RunResult& r) {
  std::smatch m;
  static const std::regex re("local_port=([0-9]+)");
  return std::regex_search(r.out, m, re) ? std::stoi(m[1].str()) : -1;
}

class OrigDstTest : public E2eTest {};

TEST_F(OrigDstTest, ProxiedConnectPublishesTheOriginalDestination) {
  PolicySpec spec;
  spec.enableInternet = true;  // a direct connection would be allowed if it were not proxied
  ASSERT_OK_AND_ASSIGN(auto sb, Sandbox::start(spec, SandboxOptions{.ownNetns = true,
                                                                    .daemonArgs = {"--no-proxy"}}));
  ASSERT_OK_AND_ASSIGN(auto status, sandboxStatus(*sb));
  const uint32_t slot = status.at("slot").get<uint32_t>();
  const std::string pin = sb->daemon().pinRoot();

  // The proxy's netns cookie, as armed in the sandbox's configuration.
  ASSERT_OK_AND_ASSIGN(auto configs, bpftoolMapDump(pin + "/egressd_sandboxes"));
  uint64_t netnsCookie = 0;
  for (const auto& e : configs) {
    const json& v = e.at("formatted").at("value");
    if (v.value("id", "") == sb->daemon().sandboxId() && (v.value("flags", 0U) & 1U) != 0U) {
      netnsCookie = v.at("netns_cookie").get<uint64_t>();
    }
  }
  ASSERT_NE(netnsCookie, 0u) << "no active configuration with a netns cookie for the sandbox";

  struct Case {
    std::string host;
    int port;
    std::string client;  // the proxy target's address family seen by the proxy
    std::string origin;  // servers.py's name for the origin endpoint
  };
  const std::vector<Case> cases = {
      {w().ip4(3), kHttp, "127.0.0.1", w().ip4(3) + ":80"},
      {w().ip6(3), kHttps, "::1", "[" + w().ip6(3) + "]:443"},
  };
  std::vector<size_t> before;
  for (const auto& c : cases) {
    before.push_back(w().serverEventsFor(c.origin));
  }
  std::vector<int> clientPorts;
  for (const auto& c : cases) {
    auto r = sb->probe({"tcp", c.host, std::to_string(c.port), "--show-local"});
    EXPECT_PROBE_ERR(r, "ECONNREFUSED") << c.origin;
    clientPorts.push_back(localPortOf(r));
    EXPECT_GT(clientPorts.back(), 0) << r.describe();
  }

  ASSERT_OK_AND_ASSIGN(auto entries, bpftoolMapDump(pin + "/egressd_orig_dst"));
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const json* found = nullptr;
    for (const auto& e : entries) {
      const json& k = e.at("formatted").at("key");
      if (k.value("client_port", -1) == clientPorts[i] &&
          bytesOf(k.at("client_addr")) == bytesOfLiteral(c.client)) {
        found = &e;
      }
    }
    ASSERT_NE(found, nullptr) << "no egressd_orig_dst entry for client [" << c.client
                              << "]:" << clientPorts[i] << " (" << c.origin << "):\n"
                              << entries.dump(1);
    const json& k = found->at("formatted").at("key");
    const json& v = found->at("formatted").at("value");
    EXPECT_EQ(k.value("netns_cookie", uint64_t{0}), netnsCookie) << found->dump();
    EXPECT_EQ(bytesOf(v.at("addr")), bytesOfLiteral(c.host)) << found->dump();
    EXPECT_EQ(v.value("port", -1), c.port) << found->dump();
    EXPECT_EQ(v.value("sandbox", uint32_t{0xffffffff}), slot) << found->dump();
    EXPECT_NE(v.value("cookie", uint64_t{0}), 0u) << found->dump();
  }

  // Never direct: the origins saw nothing ...
  for (size_t i = 0; i < cases.size(); ++i) {
    EXPECT_EQ(w().serverEventsFor(cases[i].origin), before[i])
        << cases[i].origin << " was reached directly:\n"
        << w().servers->log();
  }
  // ... though they answer a process outside the sandbox cgroup.
  EXPECT_PROBE_OK(sb->probeOutside({"tcp", w().ip4(3), std::to_string(kHttp)}));
  EXPECT_EQ(w().serverEventsFor(cases[0].origin), before[0] + 1);
  // A non-proxied connection publishes nothing.
  auto direct = sb->probe({"tcp", w().ip4(3), std::to_string(kTcpA), "--show-local"});
  ASSERT_PROBE_OK(direct);
  ASSERT_OK_AND_ASSIGN(auto after, bpftoolMapDump(pin + "/egressd_orig_dst"));
  EXPECT_EQ(after.size(), entries.size()) << after.dump(1);
}

}  // namespace
}  // namespace egressd::e2e
