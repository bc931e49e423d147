// Policy -> kernel map entries, checked byte for byte against bpf/abi.h: prefix lengths
// include the 64 fixed key bits, addresses are network order, ports host order, and rule
// ids are stable and deduplicated.
#include "policy/compile.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <array>
#include <bit>
#include <cstddef>
#include <cstring>

#include "test_util.h"

namespace egressd::policy {
namespace {

using testing::parseOk;

KernelRules compileOk(std::string_view yaml) {
  auto rules = compileKernelRules(parseOk(yaml));
  EXPECT_TRUE(rules.ok()) << rules.error().message();
  return rules.ok() ? std::move(rules).value() : KernelRules{};
}

template <typename Key>
std::vector<uint16_t> portsOf(const std::vector<std::pair<Key, egressd_rule_value>>& table) {
  std::vector<uint16_t> ports;
  for (const auto& [key, value] : table) {
    ports.push_back(key.port);
  }
  return ports;
}

TEST(CompileTest, DesignExample) {
  const KernelRules rules = compileOk(R"(name: agent-default
allowedHosts: ["github.com", "*.npmjs.org", "10.20.0.0/16"]
deniedHosts: ["*.evil.example", "141.101.64.0/18"]
allow:
  - { cidr: 10.0.5.0/24, ports: [5432] }
)");
  ASSERT_EQ(rules.ruleNames.size(), 4u);
  EXPECT_EQ(rules.ruleNames[0], "");
  EXPECT_EQ(rules.ruleNames[1], "allow[0] 10.0.5.0/24 any/5432");
  EXPECT_EQ(rules.ruleNames[2], "allowedHosts[2] 10.20.0.0/16");
  EXPECT_EQ(rules.ruleNames[3], "deniedHosts[1] 141.101.64.0/18");

  ASSERT_EQ(rules.allow4.size(), 2u);
  const auto& [db, dbValue] = rules.allow4[0];
  EXPECT_EQ(db.prefixlen, 64u + 24u);
  EXPECT_EQ(db.ruleset, 0u);
  EXPECT_EQ(db.proto, EGRESSD_PROTO_ANY);
  EXPECT_EQ(db.pad, 0);
  EXPECT_EQ(db.port, 5432);
  EXPECT_EQ(db.addr[0], 10);
  EXPECT_EQ(db.addr[1], 0);
  EXPECT_EQ(db.addr[2], 5);
  EXPECT_EQ(db.addr[3], 0);
  EXPECT_EQ(dbValue.rule_id, 1u);
  EXPECT_EQ(dbValue.pad, 0u);

  const auto& [net, netValue] = rules.allow4[1];
  EXPECT_EQ(net.prefixlen, 64u + 16u);
  EXPECT_EQ(net.proto, EGRESSD_PROTO_ANY);
  EXPECT_EQ(net.port, 0);
  EXPECT_EQ(net.addr[0], 10);
  EXPECT_EQ(net.addr[1], 20);
  EXPECT_EQ(netValue.rule_id, 2u);

  ASSERT_EQ(rules.deny4.size(), 1u);
  const auto& [deny, denyValue] = rules.deny4[0];
  EXPECT_EQ(deny.prefixlen, 64u + 18u);
  EXPECT_EQ(deny.proto, 0);
  EXPECT_EQ(deny.port, 0);
  const std::array<uint8_t, 4> denyAddr = {141, 101, 64, 0};
  EXPECT_EQ(0, std::memcmp(deny.addr, denyAddr.data(), 4));
  EXPECT_EQ(denyValue.rule_id, 3u);

  EXPECT_TRUE(rules.allow6.empty());
  EXPECT_TRUE(rules.deny6.empty());
}

TEST(CompileTest, KeyBytesMatchTheLpmLayout) {
  const KernelRules rules =
      compileOk("name: x\nallow:\n  - { cidr: 192.168.1.0/24, ports: [5432], protocol: tcp }\n");
  ASSERT_EQ(rules.allow4.size(), 1u);
  std::array<uint8_t, sizeof(egressd_rule4_key)> bytes;
  std::memcpy(bytes.data(), &rules.allow4[0].first, bytes.size());
  // prefixlen (host order u32) = 88, ruleset 0, proto 6, pad 0, port 5432 in host order,
  // then the address in network order.
  uint32_t prefixlen = 0;
  std::memcpy(&prefixlen, bytes.data(), 4);
  EXPECT_EQ(prefixlen, 88u);
  EXPECT_EQ(bytes[offsetof(egressd_rule4_key, proto)], 6);
  EXPECT_EQ(bytes[offsetof(egressd_rule4_key, pad)], 0);
  const size_t portAt = offsetof(egressd_rule4_key, port);
  if constexpr (std::endian::native == std::endian::little) {
    EXPECT_EQ(bytes[portAt], 0x38);  // 5432 = 0x1538
    EXPECT_EQ(bytes[portAt + 1], 0x15);
  }
  EXPECT_NE(rules.allow4[0].first.port, htons(5432));
  const size_t addrAt = offsetof(egressd_rule4_key, addr);
  EXPECT_EQ(bytes[addrAt], 192);
  EXPECT_EQ(bytes[addrAt + 1], 168);
  EXPECT_EQ(bytes[addrAt + 2], 1);
  EXPECT_EQ(bytes[addrAt + 3], 0);
}

TEST(CompileTest, PortRangesExpandToOneKeyPerPort) {
  const KernelRules rules = compileOk(
      "name: x\nallow:\n  - { cidr: 10.0.0.0/8, ports: [\"8000-8002\", 9000], protocol: tcp }\n");
  EXPECT_EQ(portsOf(rules.allow4), (std::vector<uint16_t>{8000, 8001, 8002, 9000}));
  for (const auto& [key, value] : rules.allow4) {
    EXPECT_EQ(key.proto, EGRESSD_PROTO_TCP);
    EXPECT_EQ(key.prefixlen, 72u);
    EXPECT_EQ(value.rule_id, 1u);
  }
  ASSERT_EQ(rules.ruleNames.size(), 2u);
  EXPECT_EQ(rules.ruleNames[1], "allow[0] 10.0.0.0/8 tcp/8000-8002,9000");
}

TEST(CompileTest, RangeEndingAt65535Terminates) {
  const KernelRules rules =
      compileOk("name: x\nallow:\n  - { cidr: 10.0.0.0/8, ports: [65530-65535] }\n");
  EXPECT_EQ(portsOf(rules.allow4),
            (std::vector<uint16_t>{65530, 65531, 65532, 65533, 65534, 65535}));
}

TEST(CompileTest, NoPortsMeansPortZeroAndUdpProto) {
  const KernelRules rules = compileOk(
      "name: x\nallow:\n  - { cidr: 10.0.0.0/8, protocol: udp }\n  - { cidr: 10.1.0.0/16 }\n");
  ASSERT_EQ(rules.allow4.size(), 2u);
  EXPECT_EQ(rules.allow4[0].first.port, 0);
  EXPECT_EQ(rules.allow4[0].first.proto, EGRESSD_PROTO_UDP);
  EXPECT_EQ(rules.allow4[1].first.port, 0);
  EXPECT_EQ(rules.allow4[1].first.proto, EGRESSD_PROTO_ANY);
  EXPECT_EQ(rules.ruleNames[1], "allow[0] 10.0.0.0/8 udp/*");
  EXPECT_EQ(rules.ruleNames[2], "allow[1] 10.1.0.0/16 any/*");
}

TEST(CompileTest, Ipv6AndEdgePrefixes) {
  const KernelRules rules = compileOk(R"(name: x
allow:
  - { cidr: "2001:db8::/32", ports: [443], protocol: udp }
  - { cidr: "::/0", ports: [22] }
  - { cidr: "::1", ports: [8080] }
  - { cidr: 0.0.0.0/0, ports: [22] }
  - { cidr: 10.9.8.7, ports: [22] }
deniedHosts: ["fd00::/8", "::ffff:169.254.0.0/112"]
)");
  ASSERT_EQ(rules.allow6.size(), 3u);
  const auto& doc = rules.allow6[0].first;
  EXPECT_EQ(doc.prefixlen, 64u + 32u);
  EXPECT_EQ(doc.proto, EGRESSD_PROTO_UDP);
  EXPECT_EQ(doc.port, 443);
  const std::array<uint8_t, 16> docAddr = {0x20, 0x01, 0x0d, 0xb8};
  EXPECT_EQ(0, std::memcmp(doc.addr, docAddr.data(), 16));
  EXPECT_EQ(rules.allow6[1].first.prefixlen, 64u);
  EXPECT_EQ(rules.allow6[2].first.prefixlen, 64u + 128u);
  EXPECT_EQ(rules.allow6[2].first.addr[15], 1);

  ASSERT_EQ(rules.allow4.size(), 2u);
  EXPECT_EQ(rules.allow4[0].first.prefixlen, 64u);
  EXPECT_EQ(rules.allow4[1].first.prefixlen, 64u + 32u);
  EXPECT_EQ(rules.allow4[1].first.addr[3], 7);

  // The mapped deny lands in the IPv4 table, where the kernel looks for mapped destinations.
  ASSERT_EQ(rules.deny6.size(), 1u);
  EXPECT_EQ(rules.deny6[0].first.prefixlen, 64u + 8u);
  EXPECT_EQ(rules.deny6[0].first.addr[0], 0xfd);
  ASSERT_EQ(rules.deny4.size(), 1u);
  EXPECT_EQ(rules.deny4[0].first.prefixlen, 64u + 16u);
  EXPECT_EQ(rules.deny4[0].first.addr[0], 169);
  EXPECT_EQ(rules.deny4[0].first.addr[1], 254);
  EXPECT_EQ(rules.deny4[0].second.rule_id, 7u);
  EXPECT_EQ(rules.ruleNames[7], "deniedHosts[1] 169.254.0.0/16");
}

TEST(CompileTest, V4MappedAllowGoesToIpv4Table) {
  const KernelRules rules =
      compileOk("name: x\nallow:\n  - { cidr: \"::ffff:10.0.0.0/104\", ports: [22] }\n");
  EXPECT_TRUE(rules.allow6.empty());
  ASSERT_EQ(rules.allow4.size(), 1u);
  EXPECT_EQ(rules.allow4[0].first.prefixlen, 64u + 8u);
  EXPECT_EQ(rules.allow4[0].first.addr[0], 10);
  EXPECT_EQ(rules.ruleNames[1], "allow[0] 10.0.0.0/8 any/22");
}

TEST(CompileTest, DuplicateKeysKeepTheFirstRuleId) {
  const KernelRules rules = compileOk(R"(name: x
allowedHosts: ["10.1.0.0/16"]
allow:
  - { cidr: 10.0.0.0/8, ports: [22], protocol: tcp }
  - { cidr: 10.0.0.0/8, ports: ["20-25"], protocol: tcp }
  - { cidr: 10.1.0.0/16 }
deniedHosts: ["1.2.3.4", "1.2.3.4/32"]
)");
  // allow[0]=1, allow[1]=2, allow[2]=3, allowedHosts[0]=4, deniedHosts[0]=5, deniedHosts[1]=6.
  ASSERT_EQ(rules.ruleNames.size(), 7u);
  EXPECT_EQ(portsOf(rules.allow4), (std::vector<uint16_t>{22, 20, 21, 23, 24, 25, 0}));
  EXPECT_EQ(rules.allow4[0].second.rule_id, 1u);
  for (size_t i = 1; i <= 5; ++i) {
    EXPECT_EQ(rules.allow4[i].second.rule_id, 2u) << i;
  }
  EXPECT_EQ(rules.allow4[6].second.rule_id, 3u);  // allowedHosts[0] collapsed into allow[2]
  ASSERT_EQ(rules.deny4.size(), 1u);
  EXPECT_EQ(rules.deny4[0].second.rule_id, 5u);
}

TEST(CompileTest, CompilationIsDeterministic) {
  const char* yaml = R"(name: x
allow:
  - { cidr: 10.0.0.0/8, ports: ["100-200"] }
  - { cidr: "2001:db8::/48", ports: [22, 23] }
deniedHosts: ["192.0.2.0/24"]
)";
  const KernelRules a = compileOk(yaml);
  const KernelRules b = compileOk(yaml);
  ASSERT_EQ(a.allow4.size(), b.allow4.size());
  ASSERT_EQ(a.allow4.size(), 101u);
  EXPECT_EQ(0,
            std::memcmp(a.allow4.data(), b.allow4.data(), a.allow4.size() * sizeof(a.allow4[0])));
  EXPECT_EQ(a.ruleNames, b.ruleNames);
}

TEST(CompileTest, TooManyRulesIsAnError) {
  // 257 entries x 1024 ports > EGRESSD_MAX_RULES (262144) keys in egressd_allow4.
  std::string yaml = "name: big\nallow:\n";
  for (int i = 0; i < 257; ++i) {
    yaml += "  - { cidr: 10." + std::to_string(i / 256) + "." + std::to_string(i % 256) +
            ".0/24, ports: [\"1-1024\"] }\n";
  }
  auto rules = compileKernelRules(parseOk(yaml));
  ASSERT_FALSE(rules.ok());
  EXPECT_EQ(rules.error().code(), E2BIG);
  EXPECT_EQ(rules.error().message(),
            "policy expands to 263168 IPv4 and 0 IPv6 kernel rules; a table holds at "
            "most 262144 (narrow the port ranges)");
}

TEST(KnobsTest, DefaultsAndFlags) {
  const SandboxKnobs defaults = kernelKnobs(parseOk("name: x\n"));
  EXPECT_FALSE(defaults.enableInternet);
  EXPECT_EQ(defaults.proxyPorts, (std::vector<uint16_t>{80, 443}));
  EXPECT_FALSE(defaults.allowPing);
  EXPECT_FALSE(defaults.allowRaw);
  EXPECT_FALSE(defaults.allowOtherL4);
  EXPECT_EQ(defaults.sandboxFlags(), 0u);

  const SandboxKnobs knobs = kernelKnobs(parseOk(R"(name: x
enableInternet: true
proxyPorts: [8080, 443]
dns: { resolver: "10.0.0.2:5353" }
sockets: { ping: true, raw: true, other: true }
)"));
  EXPECT_TRUE(knobs.enableInternet);
  EXPECT_EQ(knobs.proxyPorts, (std::vector<uint16_t>{8080, 443}));
  EXPECT_TRUE(knobs.allowPing);
  EXPECT_TRUE(knobs.allowRaw);
  EXPECT_TRUE(knobs.allowOtherL4);
  EXPECT_EQ(knobs.sandboxFlags(),
            static_cast<uint32_t>(EGRESSD_SB_ENABLE_INTERNET | EGRESSD_SB_ALLOW_PING |
                                  EGRESSD_SB_ALLOW_RAW | EGRESSD_SB_ALLOW_OTHER_L4));
  const SandboxKnobs pingOnly = kernelKnobs(parseOk("name: x\nsockets: { ping: true }\n"));
  EXPECT_EQ(pingOnly.sandboxFlags(), static_cast<uint32_t>(EGRESSD_SB_ALLOW_PING));
}

TEST(CompileTest, ExamplesCompile) {
  for (const char* name : {"agent-default", "locked-down", "open-internet"}) {
    auto policy = loadPolicyFile(std::string(EGRESSD_POLICY_EXAMPLES_DIR) + "/" + name + ".yaml");
    ASSERT_TRUE(policy.ok()) << policy.error().message();
    auto rules = compileKernelRules(*policy);
    ASSERT_TRUE(rules.ok()) << rules.error().message();
    EXPECT_EQ(rules->ruleNames.size(), 1 + policy->allow.size() +
                                           policy->allowedHosts.cidrs.size() +
                                           policy->deniedHosts.cidrs.size())
        << name;
  }
}

TEST(NameRuleTest, HostRulesMakeNoStaticEntriesButKeepTheirIds) {
  const Policy p = parseOk(R"(name: x
allow:
  - { host: "*.db.example", ports: [5432, "6000-6001"], protocol: tcp }
  - { cidr: 10.0.0.0/8, ports: [22] }
  - { host: cache.example }
)");
  auto rules = compileKernelRules(p);
  ASSERT_TRUE(rules.ok()) << rules.error().message();
  EXPECT_EQ(rules->allow4.size(), 1u);  // the CIDR rule only
  ASSERT_EQ(rules->ruleNames.size(), 4u);
  EXPECT_EQ(rules->ruleNames[1], "allow[0] *.db.example tcp/5432,6000-6001");
  EXPECT_EQ(rules->ruleNames[2], "allow[1] 10.0.0.0/8 any/22");
  EXPECT_EQ(rules->ruleNames[3], "allow[2] cache.example any/*");
  EXPECT_EQ(rules->allow4[0].second.rule_id, 2u);

  const std::vector<AllowRule> named = nameRules(p);
  ASSERT_EQ(named.size(), 2u);
  const IpAddress addr = *IpAddress::parse("192.0.2.10");
  auto entries = nameRuleEntries(named, "pg.db.example", addr);
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0], (NameRuleEntry{addr, EGRESSD_PROTO_TCP, 5432, 1}));
  EXPECT_EQ(entries[2], (NameRuleEntry{addr, EGRESSD_PROTO_TCP, 6001, 1}));
  entries = nameRuleEntries(named, "cache.example", addr);
  ASSERT_EQ(entries.size(), 1u);
  EXPECT_EQ(entries[0], (NameRuleEntry{addr, EGRESSD_PROTO_ANY, 0, 3}));
  EXPECT_TRUE(nameRuleEntries(named, "db.example", addr).empty());
  EXPECT_EQ(matchNameRule(named, "a.db.example"), &named[0]);
  EXPECT_EQ(matchNameRule(named, "other.example"), nullptr);

  // The lookups their entries need are on from the start.
  EXPECT_EQ(
      kernelKnobs(p).sandboxFlags() & (EGRESSD_SB_HAS_ALLOW_PROTO_PORT | EGRESSD_SB_HAS_ALLOW_ANY),
      static_cast<uint32_t>(EGRESSD_SB_HAS_ALLOW_PROTO_PORT | EGRESSD_SB_HAS_ALLOW_ANY));
  EXPECT_EQ(p.dns.nameRuleGraceSeconds, 60u);
}

TEST(NameRuleTest, ParseErrors) {
  auto error = [](const std::string& yaml) {
    auto p = parsePolicy(yaml, "t.yaml");
    return p.ok() ? std::string("ok") : p.error().message();
  };
  EXPECT_NE(error("name: x\nallow: [{ host: a.example, cidr: 10.0.0.0/8 }]\n")
                .find("either 'cidr' or 'host'"),
            std::string::npos);
  EXPECT_NE(error("name: x\nallow: [{ host: 10.0.0.1 }]\n").find("belongs in 'cidr'"),
            std::string::npos);
  EXPECT_NE(error("name: x\nallow: [{ ports: [1] }]\n").find("missing required key 'cidr'"),
            std::string::npos);
  EXPECT_EQ(error("name: x\ndns: { nameRuleGrace: 5 }\n"), "ok");
}

}  // namespace
}  // namespace egressd::policy
