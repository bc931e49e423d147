// Policy YAML loading: field values and defaults, the example files, and bad input, where
// the exact "FILE:LINE:COL: field: reason" text is part of the contract.
#include "policy/policy.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "test_util.h"

namespace egressd::policy {
namespace {

using testing::parseError;
using testing::parseOk;

constexpr const char* kDesignExample = R"(name: agent-default
enableInternet: false
interceptHttps: true
proxyPorts: [80, 443]
allowedHosts: ["github.com", "*.npmjs.org", "10.20.0.0/16"]
deniedHosts: ["*.evil.example", "141.101.64.0/18"]
allow:
  - { cidr: 10.0.5.0/24, ports: [5432] }
dns: { resolver: 127.0.0.53:53 }
secrets:
  GITHUB_TOKEN: { file: /etc/egressd/secrets/github }
outboundByHost:
  github.com: authenticatedGithub
  my.kv: { handler: kv }
outbound: readOnly
outboundHandlers:
  authenticatedGithub:
    - setHeader: { name: Authorization, value: "Bearer ${secret:GITHUB_TOKEN}" }
  readOnly:
    - deny: { status: 405, unless: { method: [GET, HEAD] } }
  kv:
    - reroute: { upstream: "unix:/run/kv.sock" }
)";

TEST(PolicyTest, ParsesDesignExample) {
  const Policy p = parseOk(kDesignExample);
  EXPECT_EQ(p.name, "agent-default");
  EXPECT_EQ(p.sourceName, "t.yaml");
  EXPECT_FALSE(p.enableInternet);
  EXPECT_TRUE(p.interceptHttps.all);
  EXPECT_EQ(p.proxyPorts, (std::vector<uint16_t>{80, 443}));

  ASSERT_EQ(p.allowedHosts.globs.size(), 2u);
  EXPECT_TRUE(p.allowedHosts.present);
  EXPECT_EQ(p.allowedHosts.globs[0].pattern, "github.com");
  EXPECT_EQ(p.allowedHosts.globs[1].pattern, "*.npmjs.org");
  ASSERT_EQ(p.allowedHosts.cidrs.size(), 1u);
  EXPECT_EQ(p.allowedHosts.cidrs[0].cidr.toString(), "10.20.0.0/16");
  EXPECT_EQ(p.allowedHosts.cidrs[0].text, "10.20.0.0/16");
  EXPECT_EQ(p.allowedHosts.cidrs[0].index, 2u);
  EXPECT_EQ(p.allowedHosts.cidrs[0].pos.line, 5);

  ASSERT_EQ(p.deniedHosts.globs.size(), 1u);
  EXPECT_EQ(p.deniedHosts.globs[0].pattern, "*.evil.example");
  ASSERT_EQ(p.deniedHosts.cidrs.size(), 1u);
  EXPECT_EQ(p.deniedHosts.cidrs[0].cidr.toString(), "141.101.64.0/18");
  EXPECT_EQ(p.deniedHosts.cidrs[0].index, 1u);

  ASSERT_EQ(p.allow.size(), 1u);
  EXPECT_EQ(p.allow[0].cidr.toString(), "10.0.5.0/24");
  EXPECT_EQ(p.allow[0].protocol, Protocol::kAny);
  ASSERT_EQ(p.allow[0].ports.size(), 1u);
  EXPECT_EQ(p.allow[0].ports[0].first, 5432);
  EXPECT_EQ(p.allow[0].ports[0].last, 5432);
  EXPECT_EQ(p.allow[0].pos.line, 8);

  ASSERT_EQ(p.dns.upstream.size(), 1u);
  EXPECT_EQ(p.dns.upstream[0].toString(), "127.0.0.53:53");

  ASSERT_EQ(p.secrets.count("GITHUB_TOKEN"), 1u);
  EXPECT_EQ(p.secrets.at("GITHUB_TOKEN").kind, SecretSource::Kind::kFile);
  EXPECT_EQ(p.secrets.at("GITHUB_TOKEN").value, "/etc/egressd/secrets/github");

  ASSERT_EQ(p.outboundByHost.size(), 2u);
  EXPECT_EQ(p.outboundByHost[0].host.pattern, "github.com");
  EXPECT_EQ(p.outboundByHost[0].ref.handler, "authenticatedGithub");
  EXPECT_EQ(p.outboundByHost[0].ref.params, nlohmann::json::object());
  EXPECT_EQ(p.outboundByHost[1].host.pattern, "my.kv");
  EXPECT_EQ(p.outboundByHost[1].ref.handler, "kv");
  ASSERT_TRUE(p.outbound.has_value());
  EXPECT_EQ(p.outbound->handler, "readOnly");

  ASSERT_EQ(p.outboundHandlers.size(), 3u);
  const Handler& github = p.outboundHandlers.at("authenticatedGithub");
  ASSERT_EQ(github.actions.size(), 1u);
  EXPECT_EQ(github.actions[0].kind(), "setHeader");
  EXPECT_EQ(github.actions[0].args()["value"], "Bearer ${secret:GITHUB_TOKEN}");
  EXPECT_EQ(github.actions[0].pos.line, 18);
  const Handler& readOnly = p.outboundHandlers.at("readOnly");
  EXPECT_EQ(
      readOnly.actions[0].action,
      nlohmann::json::parse(R"({"deny": {"status": 405, "unless": {"method": ["GET", "HEAD"]}}})"));
  EXPECT_TRUE(p.warnings.empty());
}

TEST(PolicyTest, DefaultsForMinimalPolicy) {
  const Policy p = parseOk("name: minimal\n");
  EXPECT_EQ(p.name, "minimal");
  EXPECT_FALSE(p.enableInternet);
  EXPECT_FALSE(p.interceptHttps.all);
  EXPECT_TRUE(p.interceptHttps.hosts.empty());
  EXPECT_EQ(p.proxyPorts, (std::vector<uint16_t>{80, 443}));
  EXPECT_FALSE(p.allowedHosts.present);
  EXPECT_TRUE(p.allowedHosts.empty());
  EXPECT_FALSE(p.deniedHosts.present);
  EXPECT_TRUE(p.allow.empty());
  EXPECT_TRUE(p.dns.upstream.empty());
  EXPECT_EQ(p.dns.deniedAnswer, DnsDeniedAnswer::kNxDomain);
  EXPECT_EQ(p.dns.limits, DnsLimits{});
  EXPECT_FALSE(p.sockets.ping);
  EXPECT_FALSE(p.sockets.raw);
  EXPECT_FALSE(p.sockets.other);
  EXPECT_EQ(p.denyStatus, 403);
  EXPECT_TRUE(p.secrets.empty());
  EXPECT_FALSE(p.outbound.has_value());
}

TEST(PolicyTest, EmptyAllowedHostsIsPresent) {
  // "allowedHosts: []" is a deliberate "no host is allowed", unlike leaving it out.
  const Policy p = parseOk("name: x\nallowedHosts: []\n");
  EXPECT_TRUE(p.allowedHosts.present);
  EXPECT_TRUE(p.allowedHosts.empty());
}

TEST(PolicyTest, HostGlobsAreNormalized) {
  const Policy p = parseOk(R"(name: x
allowedHosts:
  - GitHub.COM.
  - "*"
  - "api.*.example.org"
  - ::ffff:10.1.0.0/112
  - "[2001:db8::1]"
)");
  ASSERT_EQ(p.allowedHosts.globs.size(), 3u);
  EXPECT_EQ(p.allowedHosts.globs[0].pattern, "github.com");
  EXPECT_EQ(p.allowedHosts.globs[0].text, "GitHub.COM.");
  EXPECT_EQ(p.allowedHosts.globs[0].pos.line, 3);
  EXPECT_EQ(p.allowedHosts.globs[0].pos.column, 5);
  EXPECT_EQ(p.allowedHosts.globs[1].pattern, "*");
  EXPECT_EQ(p.allowedHosts.globs[2].pattern, "api.*.example.org");
  ASSERT_EQ(p.allowedHosts.cidrs.size(), 2u);
  EXPECT_EQ(p.allowedHosts.cidrs[0].cidr.family, AF_INET);
  EXPECT_EQ(p.allowedHosts.cidrs[0].cidr.toString(), "10.1.0.0/16");
  EXPECT_EQ(p.allowedHosts.cidrs[0].index, 3u);
  EXPECT_EQ(p.allowedHosts.cidrs[1].cidr.toString(), "2001:db8::1/128");
  EXPECT_EQ(p.allowedHosts.cidrs[1].index, 4u);
}

TEST(PolicyTest, AllowRulePortsAndProtocols) {
  const Policy p = parseOk(R"(name: x
proxyPorts: [8080]
allow:
  - cidr: 10.0.0.0/8
    ports: [22, "8000-8099", 9000 - 9001]
    protocol: tcp
  - cidr: 2001:db8::/32
    ports: 5353
    protocol: UDP
  - cidr: 192.168.1.1
)");
  ASSERT_EQ(p.allow.size(), 3u);
  const AllowRule& first = p.allow[0];
  EXPECT_EQ(first.protocol, Protocol::kTcp);
  ASSERT_EQ(first.ports.size(), 3u);
  EXPECT_EQ(first.ports[0].first, 22);
  EXPECT_EQ(first.ports[0].last, 22);
  EXPECT_EQ(first.ports[1].first, 8000);
  EXPECT_EQ(first.ports[1].last, 8099);
  EXPECT_EQ(first.ports[2].first, 9000);
  EXPECT_EQ(first.ports[2].last, 9001);
  EXPECT_EQ(p.allow[1].protocol, Protocol::kUdp);
  ASSERT_EQ(p.allow[1].ports.size(), 1u);
  EXPECT_EQ(p.allow[1].ports[0].first, 5353);
  EXPECT_EQ(p.allow[1].cidr.family, AF_INET6);
  EXPECT_EQ(p.allow[2].protocol, Protocol::kAny);
  EXPECT_TRUE(p.allow[2].ports.empty());
  EXPECT_EQ(p.allow[2].cidr.toString(), "192.168.1.1/32");
  EXPECT_EQ(p.allow[2].index, 2u);
  EXPECT_EQ(p.allow[2].pos.line, 10);
  EXPECT_EQ(p.proxyPorts, (std::vector<uint16_t>{8080}));
}

TEST(PolicyTest, KnobsSocketsDenyStatusAndSecrets) {
  const Policy p = parseOk(R"(name: knobs
enableInternet: true
interceptHttps: ["*.github.com", "API.example.com"]
proxyPorts: []
dns: { resolver: "[::1]" }
sockets: { ping: true, raw: false, other: true }
denyStatus: 451
secrets:
  FROM_FILE: { file: /run/secrets/a }
  from_env_2: { env: MY_TOKEN }
)");
  EXPECT_TRUE(p.enableInternet);
  EXPECT_FALSE(p.interceptHttps.all);
  ASSERT_EQ(p.interceptHttps.hosts.size(), 2u);
  EXPECT_EQ(p.interceptHttps.hosts[1].pattern, "api.example.com");
  EXPECT_TRUE(p.proxyPorts.empty());
  ASSERT_EQ(p.dns.upstream.size(), 1u);
  EXPECT_EQ(p.dns.upstream[0].toString(), "[::1]:53");
  EXPECT_TRUE(p.sockets.ping);
  EXPECT_FALSE(p.sockets.raw);
  EXPECT_TRUE(p.sockets.other);
  EXPECT_EQ(p.denyStatus, 451);
  ASSERT_EQ(p.secrets.size(), 2u);
  EXPECT_EQ(p.secrets.at("FROM_FILE").kind, SecretSource::Kind::kFile);
  EXPECT_EQ(p.secrets.at("from_env_2").kind, SecretSource::Kind::kEnv);
  EXPECT_EQ(p.secrets.at("from_env_2").value, "MY_TOKEN");
}

TEST(PolicyTest, HandlerParamsKeepYamlTypes) {
  const Policy p = parseOk(R"(name: x
outbound: { handler: h, params: { status: 405, code: "405", ratio: 0.5, on: yes, off: false,
                                  none: ~, list: [1, two], nested: { a: { b: c } } } }
outboundByHost:
  "*.Example.COM": { handler: h }
outboundHandlers:
  h: []
)");
  ASSERT_TRUE(p.outbound.has_value());
  const nlohmann::json expected = nlohmann::json::parse(R"({
    "status": 405, "code": "405", "ratio": 0.5, "on": "yes", "off": false, "none": null,
    "list": [1, "two"], "nested": {"a": {"b": "c"}}})");
  EXPECT_EQ(p.outbound->params, expected);
  EXPECT_TRUE(p.outbound->params["status"].is_number_integer());
  EXPECT_EQ(p.outbound->pos.line, 2);
  ASSERT_EQ(p.outboundByHost.size(), 1u);
  EXPECT_EQ(p.outboundByHost[0].host.pattern, "*.example.com");
  EXPECT_TRUE(p.outboundHandlers.at("h").actions.empty());
}

TEST(PolicyTest, WarnsAboutAllowRulesThatCannotApply) {
  const Policy p = parseOk(R"(name: x
allow:
  - { cidr: 10.0.0.0/8, ports: [443], protocol: tcp }
  - { cidr: 10.0.0.0/8, ports: ["50-60"] }
  - { cidr: 10.0.0.0/8, ports: [443], protocol: udp }
)");
  ASSERT_EQ(p.warnings.size(), 2u);
  EXPECT_EQ(p.warnings[0],
            "t.yaml:3:5: allow[0]: TCP port 443 is in proxyPorts and always goes through the "
            "proxy, where this rule only opens requests to the address itself (an IP-literal "
            "Host, TLS without a server name)");
  EXPECT_EQ(p.warnings[1],
            "t.yaml:4:5: allow[1]: port 53 always goes to the pinned DNS resolver; this rule "
            "never applies to it");
}

TEST(PolicyTest, ExampleFilesLoad) {
  std::set<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(EGRESSD_POLICY_EXAMPLES_DIR)) {
    if (entry.path().extension() != ".yaml") {
      continue;
    }
    auto policy = loadPolicyFile(entry.path().string());
    ASSERT_TRUE(policy.ok()) << policy.error().message();
    EXPECT_TRUE(policy->warnings.empty()) << policy->warnings.front();
    EXPECT_EQ(policy->name + ".yaml", entry.path().filename().string())
        << "an example's name should match its file name";
    names.insert(policy->name);
  }
  for (const char* required : {"agent-default", "locked-down", "open-internet"}) {
    EXPECT_EQ(names.count(required), 1u) << required;
  }
}

TEST(PolicyTest, AgentDefaultExampleIsTheDesignExample) {
  auto file = loadPolicyFile(std::string(EGRESSD_POLICY_EXAMPLES_DIR) + "/agent-default.yaml");
  ASSERT_TRUE(file.ok()) << file.error().message();
  const Policy inline_ = parseOk(kDesignExample);
  EXPECT_EQ(file->allow.size(), inline_.allow.size());
  EXPECT_EQ(file->allowedHosts.cidrs.size(), inline_.allowedHosts.cidrs.size());
  EXPECT_EQ(file->outboundHandlers.size(), inline_.outboundHandlers.size());
  EXPECT_EQ(file->dns.upstream, inline_.dns.upstream);
  // Loading records where the secret lives and must not try to read it.
  EXPECT_EQ(file->secrets.at("GITHUB_TOKEN").value, "/etc/egressd/secrets/github");
}

TEST(PolicyTest, LockedDownAndOpenInternetExamples) {
  auto locked = loadPolicyFile(std::string(EGRESSD_POLICY_EXAMPLES_DIR) + "/locked-down.yaml");
  ASSERT_TRUE(locked.ok()) << locked.error().message();
  EXPECT_FALSE(locked->enableInternet);
  EXPECT_TRUE(locked->allow.empty());
  EXPECT_TRUE(locked->allowedHosts.empty());
  EXPECT_FALSE(locked->dns.upstream.empty());

  auto open = loadPolicyFile(std::string(EGRESSD_POLICY_EXAMPLES_DIR) + "/open-internet.yaml");
  ASSERT_TRUE(open.ok()) << open.error().message();
  EXPECT_TRUE(open->enableInternet);
  bool deniesMetadata = false;
  for (const HostCidr& host : open->deniedHosts.cidrs) {
    deniesMetadata |= host.cidr.contains(AF_INET, AddrBytes{169, 254, 169, 254});
  }
  EXPECT_TRUE(deniesMetadata);
}

// ---- bad input: the exact message, with 1-based line and column ----

TEST(PolicyErrorTest, YamlSyntaxError) {
  EXPECT_EQ(parseError("name: x\nallow: [ { cidr: 10.0.0.0/8 }\n"),
            "t.yaml:3:1: YAML syntax error: end of sequence flow not found");
  EXPECT_EQ(parseError("name: x\n\tenableInternet: true\n"),
            "t.yaml:2:1: YAML syntax error: illegal tab when looking for indentation");
}

TEST(PolicyErrorTest, StrayCommaAtDocumentLevelIsAnErrorNotAHang) {
  // yaml-cpp 0.7's LoadAll loops forever on these; the parser must answer.
  EXPECT_EQ(parseError(",name: x\n"), "t.yaml:1:1: YAML syntax error: unexpected ','");
  EXPECT_EQ(parseError("- a\n,\n"), "t.yaml:2:1: YAML syntax error: unexpected ','");
}

TEST(PolicyErrorTest, UnknownTopLevelKey) {
  EXPECT_EQ(parseError("name: x\nenableInternett: true\n"),
            "t.yaml:2:1: unknown key 'enableInternett' (did you mean 'enableInternet'?)");
  EXPECT_EQ(parseError("name: x\nfirewall: {}\n"), "t.yaml:2:1: unknown key 'firewall'");
}

TEST(PolicyErrorTest, UnknownNestedKeys) {
  EXPECT_EQ(parseError("name: x\nallow:\n  - cidr: 10.0.0.0/8\n    port: 22\n"),
            "t.yaml:4:5: allow[0]: unknown key 'port' (did you mean 'ports'?)");
  EXPECT_EQ(parseError("name: x\ndns: { resolvr: 127.0.0.1 }\n"),
            "t.yaml:2:8: dns: unknown key 'resolvr' (did you mean 'resolver'?)");
  EXPECT_EQ(parseError("name: x\nsockets: { icmp: true }\n"),
            "t.yaml:2:12: sockets: unknown key 'icmp'");
}

TEST(PolicyErrorTest, BadCidr) {
  EXPECT_EQ(parseError("name: x\nallow:\n  - cidr: 10.0.0.300\n"),
            "t.yaml:3:11: allow[0].cidr: \"10.0.0.300\" is not a valid IP address");
  EXPECT_EQ(parseError("name: x\ndeniedHosts: [github.com, 10.0.0.0/33]\n"),
            "t.yaml:2:27: deniedHosts[1]: \"10.0.0.0/33\" has an invalid prefix length "
            "(expected 0..32)");
  EXPECT_EQ(parseError("name: x\ndeniedHosts: [\"10.0.*.*\"]\n"),
            "t.yaml:2:15: deniedHosts[0]: \"10.0.*.*\": wildcards are not supported in IP "
            "addresses; use a CIDR such as 10.0.0.0/24");
}

TEST(PolicyErrorTest, HostBitsSet) {
  EXPECT_EQ(parseError("name: x\nenableInternet: false\nallow:\n  - { cidr: 10.0.0.1/8 }\n"),
            "t.yaml:4:13: allow[0].cidr: \"10.0.0.1/8\" has host bits set (did you mean "
            "10.0.0.0/8?)");
  EXPECT_EQ(parseError("name: x\nallowedHosts:\n  - 10.20.0.1/16\n"),
            "t.yaml:3:5: allowedHosts[0]: \"10.20.0.1/16\" has host bits set (did you mean "
            "10.20.0.0/16?)");
}

TEST(PolicyErrorTest, BadPorts) {
  EXPECT_EQ(parseError("name: x\nallow:\n  - cidr: 10.0.0.0/8\n    ports: [22, 70000]\n"),
            "t.yaml:4:17: allow[0].ports[1]: expected an integer in 1..65535, got \"70000\"");
  EXPECT_EQ(parseError("name: x\nallow:\n  - { cidr: 10.0.0.0/8, ports: [0] }\n"),
            "t.yaml:3:33: allow[0].ports[0]: expected an integer in 1..65535, got \"0\"");
  EXPECT_EQ(parseError("name: x\nallow:\n  - { cidr: 10.0.0.0/8, ports: [ssh] }\n"),
            "t.yaml:3:33: allow[0].ports[0]: expected an integer in 1..65535, got \"ssh\"");
  EXPECT_EQ(parseError("name: x\nallow:\n  - { cidr: 10.0.0.0/8, ports: [] }\n"),
            "t.yaml:3:32: allow[0].ports: empty list; omit 'ports' to allow every port");
  EXPECT_EQ(parseError("name: x\nallow:\n  - { cidr: 10.0.0.0/8, ports: [\"90-80\"] }\n"),
            "t.yaml:3:33: allow[0].ports[0]: port range \"90-80\" is reversed");
  EXPECT_EQ(parseError("name: x\nallow:\n  - { cidr: 10.0.0.0/8, ports: [\"1-99999\"] }\n"),
            "t.yaml:3:33: allow[0].ports[0]: invalid port range \"1-99999\" (ports are "
            "1..65535)");
}

TEST(PolicyErrorTest, PortRangeTooWide) {
  EXPECT_EQ(parseError("name: x\nallow:\n  - cidr: 10.0.0.0/8\n    ports:\n      - 1000-2024\n"),
            "t.yaml:5:9: allow[0].ports[0]: port range \"1000-2024\" spans 1025 ports; at most "
            "1024 per entry (omit 'ports' to allow every port)");
  // Exactly 1024 wide is fine.
  EXPECT_EQ(parseOk("name: x\nallow:\n  - { cidr: 10.0.0.0/8, ports: [1000-2023] }\n")
                .allow[0]
                .ports[0]
                .last,
            2023);
}

TEST(PolicyErrorTest, ProxyPorts) {
  EXPECT_EQ(parseError("name: x\nproxyPorts: [1, 2, 3, 4, 5, 6, 7, 8, 9]\n"),
            "t.yaml:2:13: proxyPorts: 9 ports listed; at most 8 are supported");
  EXPECT_EQ(parseError("name: x\nproxyPorts: [80, 53]\n"),
            "t.yaml:2:18: proxyPorts[1]: port 53 cannot be proxied: DNS always goes to the "
            "pinned resolver");
  EXPECT_EQ(parseError("name: x\nproxyPorts: [80, 80]\n"),
            "t.yaml:2:18: proxyPorts[1]: port 80 is listed twice");
  EXPECT_EQ(parseError("name: x\nproxyPorts: 80\n"),
            "t.yaml:2:13: proxyPorts: expected a list of ports");
}

TEST(PolicyErrorTest, UnknownHandlerReference) {
  EXPECT_EQ(parseError(R"(name: x
outboundByHost:
  github.com: { handler: githubAuth }
outbound: readOnly
outboundHandlers:
  githubAuth: []
)"),
            "t.yaml:4:11: outbound: unknown handler 'readOnly' (not in outboundHandlers)");
  EXPECT_EQ(parseError(R"(name: x
outboundHandlers:
  authenticatedGithub: []
outboundByHost:
  github.com: authenticatedGitub
)"),
            "t.yaml:5:15: outboundByHost[\"github.com\"]: unknown handler 'authenticatedGitub' "
            "(not in outboundHandlers) (did you mean 'authenticatedGithub'?)");
}

TEST(PolicyErrorTest, BadGlob) {
  EXPECT_EQ(parseError("name: x\nallowedHosts: [\"github..com\"]\n"),
            "t.yaml:2:16: allowedHosts[0]: empty label in host glob \"github..com\"");
  EXPECT_EQ(parseError("name: x\nallowedHosts: [git_hub.com]\n"),
            "t.yaml:2:16: allowedHosts[0]: invalid character in host glob \"git_hub.com\" "
            "(allowed: letters, digits, '-', '.', '*')");
  EXPECT_EQ(parseError("name: x\nallowedHosts: [\".\"]\n"),
            "t.yaml:2:16: allowedHosts[0]: empty host name");
  EXPECT_EQ(parseError("name: x\ndeniedHosts:\n  - .evil.example\n"),
            "t.yaml:3:5: deniedHosts[0]: empty label in host glob \".evil.example\"");
  EXPECT_EQ(parseError("name: x\ninterceptHttps: [\"bücher.de\"]\n"),
            "t.yaml:2:18: interceptHttps[0]: invalid character in host glob \"bücher.de\" "
            "(allowed: letters, digits, '-', '.', '*'); write internationalized names in their "
            "xn-- form");
  EXPECT_EQ(parseError("name: x\noutboundByHost:\n  \"a b.com\": h\noutboundHandlers: { h: [] }\n"),
            "t.yaml:3:3: outboundByHost[\"a b.com\"]: invalid character in host glob \"a b.com\" "
            "(allowed: letters, digits, '-', '.', '*')");
}

TEST(PolicyErrorTest, DuplicateKeys) {
  EXPECT_EQ(parseError("name: x\nenableInternet: false\nenableInternet: true\n"),
            "t.yaml:3:1: enableInternet: duplicate key (first at line 2)");
  EXPECT_EQ(parseError("name: x\noutboundByHost:\n  github.com: h\n  GITHUB.com.: h\n"
                       "outboundHandlers: { h: [] }\n"),
            "t.yaml:4:3: outboundByHost[\"GITHUB.com.\"]: same host as line 3");
}

TEST(PolicyErrorTest, StrictScalars) {
  EXPECT_EQ(parseError("name: x\nenableInternet: yes\n"),
            "t.yaml:2:17: enableInternet: expected true or false, got \"yes\"");
  EXPECT_EQ(parseError("name: x\nenableInternet:\n"),
            "t.yaml:2:1: enableInternet: missing value (expected true or false)");
  EXPECT_EQ(parseError("name: x\ndenyStatus: 200\n"),
            "t.yaml:2:13: denyStatus: expected an integer in 400..599, got \"200\"");
  EXPECT_EQ(parseError("name: x\nallow:\n  - { cidr: 10.0.0.0/8, protocol: icmp }\n"),
            "t.yaml:3:35: allow[0].protocol: expected tcp, udp or any, got \"icmp\"");
  EXPECT_EQ(parseError("name: [x]\n"), "t.yaml:1:7: name: expected a name");
}

TEST(PolicyErrorTest, StructuralErrors) {
  EXPECT_EQ(parseError(""), "t.yaml: the policy is empty");
  EXPECT_EQ(parseError("# only a comment\n"), "t.yaml: the policy is empty");
  EXPECT_EQ(parseError("- name: x\n"),
            "t.yaml:1:1: a policy must be a mapping of keys such as name, enableInternet, "
            "allow");
  EXPECT_EQ(parseError("enableInternet: true\n"), "t.yaml:1:1: missing required key 'name'");
  EXPECT_EQ(parseError("name: x\n---\nname: y\n"),
            "t.yaml:2:1: only one YAML document is allowed in a policy file");
  EXPECT_EQ(parseError("---\n---\nname: y\n"),
            "t.yaml:2:1: only one YAML document is allowed in a policy file");
  EXPECT_TRUE(parsePolicy("name: x\n---\n", testing::kSource).ok());
  EXPECT_EQ(parseError("name: x\nallow:\n  - { ports: [22] }\n"),
            "t.yaml:3:5: allow[0]: missing required key 'cidr' (or 'host' for a name-based rule)");
  EXPECT_EQ(parseError("name: x\nallow: { cidr: 10.0.0.0/8 }\n"),
            "t.yaml:2:8: allow: expected a list of rules {cidr, ports, protocol}");
  EXPECT_EQ(parseError("name: 'bad name'\n"),
            "t.yaml:1:7: name: policy names are 1-64 letters, digits, '_', '-' or '.'");
}

TEST(PolicyErrorTest, Secrets) {
  EXPECT_EQ(parseError("name: x\nsecrets:\n  GITHUB-TOKEN: { env: T }\n"),
            "t.yaml:3:3: secrets.GITHUB-TOKEN: secret names may contain only letters, digits "
            "and '_'");
  EXPECT_EQ(parseError("name: x\nsecrets:\n  T: { file: secrets/t }\n"),
            "t.yaml:3:14: secrets.T.file: secret files need an absolute path, got "
            "\"secrets/t\"");
  EXPECT_EQ(parseError("name: x\nsecrets:\n  T: { file: /a, env: B }\n"),
            "t.yaml:3:6: secrets.T: expected exactly one of 'file' or 'env'");
  EXPECT_EQ(parseError("name: x\nsecrets:\n  T: { env: 1BAD }\n"),
            "t.yaml:3:13: secrets.T.env: invalid environment variable name \"1BAD\"");
}

TEST(PolicyErrorTest, HandlerShapes) {
  EXPECT_EQ(parseError("name: x\noutboundHandlers:\n  h:\n    - setHeader: {}\n      deny: {}\n"),
            "t.yaml:4:7: outboundHandlers.h[0]: an action is a mapping with exactly one key, "
            "e.g. setHeader: { name: ..., value: ... }");
  EXPECT_EQ(
      parseError("name: x\noutbound: { handler: h, params: [1] }\noutboundHandlers: { h: [] }\n"),
      "t.yaml:2:33: outbound.params: expected a mapping of parameters");
  EXPECT_EQ(parseError("name: x\noutbound: { params: {} }\n"),
            "t.yaml:2:11: outbound: missing required key 'handler'");
}

TEST(PolicyErrorTest, SelfReferentialAliasIsRejectedNotFollowed) {
  const std::string message =
      parseError("name: x\noutboundHandlers:\n  h:\n    - respond: &a [*a]\n");
  EXPECT_NE(message.find("nested more than 32 levels deep"), std::string::npos) << message;
  EXPECT_EQ(message.rfind("t.yaml:4:", 0), 0u) << message;
}

class PolicyFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/egressd-policy-test-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string write(const std::string& name, const std::string& content) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << content;
    return path;
  }

  std::string dir_;
};

TEST_F(PolicyFileTest, ErrorsNameTheFile) {
  const std::string path = write("bad.yaml", "name: bad\nallow:\n  - cidr: 10.0.0.1/8\n");
  auto policy = loadPolicyFile(path);
  ASSERT_FALSE(policy.ok());
  EXPECT_EQ(policy.error().message(),
            path +
                ":3:11: allow[0].cidr: \"10.0.0.1/8\" has host bits set (did you mean "
                "10.0.0.0/8?)");
}

TEST_F(PolicyFileTest, LoadsAndRecordsSource) {
  const std::string path = write("ok.yaml", "name: ok\nenableInternet: true\n");
  auto policy = loadPolicyFile(path);
  ASSERT_TRUE(policy.ok()) << policy.error().message();
  EXPECT_EQ(policy->sourceName, path);
  EXPECT_TRUE(policy->enableInternet);
}

TEST_F(PolicyFileTest, MissingFile) {
  const std::string path = dir_ + "/missing.yaml";
  auto policy = loadPolicyFile(path);
  ASSERT_FALSE(policy.ok());
  EXPECT_EQ(policy.error().code(), ENOENT);
  EXPECT_NE(policy.error().message().find(path), std::string::npos) << policy.error().message();
}

TEST(HostGlobTest, Normalize) {
  EXPECT_EQ(*normalizeHostGlob("WWW.Example.com."), "www.example.com");
  EXPECT_EQ(*normalizeHostGlob("*"), "*");
  EXPECT_EQ(*normalizeHostGlob("*.a-b.example"), "*.a-b.example");
  EXPECT_FALSE(normalizeHostGlob("").ok());
  EXPECT_FALSE(normalizeHostGlob("a..b").ok());
  EXPECT_FALSE(normalizeHostGlob("a.b..").ok());
  EXPECT_FALSE(normalizeHostGlob(std::string(64, 'a') + ".com").ok());
  EXPECT_TRUE(normalizeHostGlob(std::string(63, 'a') + ".com").ok());
  EXPECT_FALSE(normalizeHostGlob(std::string(250, 'a') + ".com").ok());
}

TEST(PolicyTest, DnsBlock) {
  const Policy p = parseOk(R"(name: x
dns:
  upstream: ["10.0.0.2", "[2001:db8::53]:5353"]
  deniedAnswer: refused
  requireResolved: true
  limits: { qps: 5, burst: 10, maxNameLength: 100, maxLabelLength: 40,
            uniqueNamesPerMinute: 20, queryBytesPerMinute: 4096 }
)");
  ASSERT_EQ(p.dns.upstream.size(), 2u);
  EXPECT_EQ(p.dns.upstream[0].toString(), "10.0.0.2:53");
  EXPECT_EQ(p.dns.upstream[1].toString(), "[2001:db8::53]:5353");
  EXPECT_EQ(p.dns.deniedAnswer, DnsDeniedAnswer::kRefused);
  EXPECT_TRUE(p.dns.requireResolved);
  EXPECT_EQ(p.dns.limits.qps, 5u);
  EXPECT_EQ(p.dns.limits.burst, 10u);
  EXPECT_EQ(p.dns.limits.maxNameLength, 100u);
  EXPECT_EQ(p.dns.limits.maxLabelLength, 40u);
  EXPECT_EQ(p.dns.limits.uniqueNamesPerMinute, 20u);
  EXPECT_EQ(p.dns.limits.queryBytesPerMinute, 4096u);

  // The old spelling still works, alone.
  const Policy old = parseOk("name: x\ndns: { resolver: 127.0.0.53 }\n");
  ASSERT_EQ(old.dns.upstream.size(), 1u);
  EXPECT_EQ(old.dns.upstream[0].toString(), "127.0.0.53:53");
}

TEST(PolicyTest, DnsBlockErrors) {
  auto expectError = [](const std::string& yaml, const std::string& needle) {
    const std::string message = parseError(yaml);
    EXPECT_NE(message.find("t.yaml:2:"), std::string::npos) << message;
    EXPECT_NE(message.find(needle), std::string::npos) << message;
  };
  expectError("name: x\ndns: { resolver: 1.1.1.1, upstream: 1.1.1.1 }\n", "write only one of them");
  expectError("name: x\ndns: { deniedAnswer: servfail }\n", "expected nxdomain or refused");
  expectError("name: x\ndns: { limits: { qps: 0 } }\n", "expected an integer in 1..1000000");
  expectError("name: x\ndns: { limits: { maxLabelLength: 64 } }\n", "1..63");
  expectError("name: x\ndns: { limits: { maxQps: 3 } }\n", "unknown key 'maxQps'");
  expectError("name: x\ndns: { upstream: [] }\n", "at least one address");
  expectError("name: x\ndns: { upstream: not-an-address }\n", "dns.upstream");
}

}  // namespace
}  // namespace egressd::policy

namespace egressd::policy {
namespace {

using testing::parseError;
using testing::parseOk;

// --- http: / tls: (docs/security.md) ---------------------------------------------------

TEST(PolicyRequestRulesTest, DefaultsAreTheSafeChoice) {
  const Policy p = parseOk("name: x\n");
  EXPECT_EQ(p.http.allowUpgrades, (std::vector<std::string>{"websocket"}));
  EXPECT_FALSE(p.http.allowTrace);
  EXPECT_EQ(p.http.forwarded, ForwardedMode::kStrip);
  EXPECT_FALSE(p.tls.requireSni.has_value());
  EXPECT_FALSE(requiresSni(p)) << "no allowedHosts: requireSni defaults to false";
  EXPECT_TRUE(requiresSni(parseOk("name: x\nallowedHosts: []\n")))
      << "allowedHosts written (even empty): requireSni defaults to true";
  EXPECT_FALSE(requiresSni(parseOk("name: x\nallowedHosts: [a.b]\ntls: { requireSni: false }\n")));
  EXPECT_TRUE(requiresSni(parseOk("name: x\nenableInternet: true\ntls: { requireSni: true }\n")));
}

TEST(PolicyRequestRulesTest, ParsesHttpRules) {
  const Policy p = parseOk(R"(name: x
http:
  allowUpgrades: [WebSocket, my-proto, websocket]
  allowTrace: true
  forwarded: sandbox
)");
  EXPECT_EQ(p.http.allowUpgrades, (std::vector<std::string>{"websocket", "my-proto"}))
      << "lowercased, duplicates dropped";
  EXPECT_TRUE(p.http.allowTrace);
  EXPECT_EQ(p.http.forwarded, ForwardedMode::kSandbox);
  EXPECT_TRUE(parseOk("name: x\nhttp: { allowUpgrades: [] }\n").http.allowUpgrades.empty())
      << "an empty list refuses every Upgrade, websocket included";
  EXPECT_EQ(parseOk("name: x\nhttp: { forwarded: strip }\n").http.forwarded, ForwardedMode::kStrip);
}

TEST(PolicyRequestRulesTest, RejectsBadHttpAndTlsRules) {
  EXPECT_EQ(parseError("name: x\nhttp: { allowUpgrades: [h2c] }\n"),
            "t.yaml:2:25: http.allowUpgrades[0]: h2c cannot be allowed: HTTP/2 over cleartext is "
            "never forwarded");
  EXPECT_EQ(parseError("name: x\nhttp: { allowUpgrades: [websocket/13] }\n"),
            "t.yaml:2:25: http.allowUpgrades[0]: expected a protocol name such as websocket (a "
            "token, without /version)");
  EXPECT_EQ(parseError("name: x\nhttp: { forwarded: keep }\n"),
            "t.yaml:2:20: http.forwarded: expected strip or sandbox, got \"keep\"");
  EXPECT_EQ(parseError("name: x\nhttp: { allowTrace: yes }\n").substr(0, 30),
            "t.yaml:2:21: http.allowTrace: ");
  EXPECT_NE(parseError("name: x\nhttp: { allowUpgrade: [websocket] }\n").find("allowUpgrade"),
            std::string::npos);
  EXPECT_NE(parseError("name: x\ntls: { requireSNI: true }\n").find("requireSNI"),
            std::string::npos);
  EXPECT_EQ(parseError("name: x\ntls: { requireSni: 1 }\n").substr(0, 27),
            "t.yaml:2:20: tls.requireSni");
}

TEST(PolicyRequestRulesTest, WarnsAboutFrontingCdnNamesUnderPassthrough) {
  const Policy p = parseOk(R"(name: x
allowedHosts:
  - "d111abc.cloudfront.net"
  - "*.azureedge.net"
  - "storage.googleapis.com"
  - "github.com"
  - "*.net"
  - "10.0.0.0/8"
  - "x.appspot.com"
interceptHttps: ["x.appspot.com"]
)");
  ASSERT_EQ(p.warnings.size(), 4u) << ::testing::PrintToString(p.warnings);
  EXPECT_EQ(p.warnings[0].rfind("t.yaml:3:5: allowedHosts: \"d111abc.cloudfront.net\" allows "
                                "names on cloudfront.net, a CDN that routes on the Host header",
                                0),
            0u)
      << p.warnings[0];
  EXPECT_NE(p.warnings[0].find("domain fronting"), std::string::npos);
  EXPECT_EQ(p.warnings[1].rfind("t.yaml:4:5: allowedHosts: \"*.azureedge.net\"", 0), 0u);
  EXPECT_EQ(p.warnings[2].rfind("t.yaml:5:5: allowedHosts: \"storage.googleapis.com\"", 0), 0u);
  EXPECT_EQ(p.warnings[3].rfind("t.yaml:7:5: allowedHosts: \"*.net\"", 0), 0u)
      << "a glob wide enough to take in a CDN's names";

  // Intercepted (everything, a matching list entry, a handler's name, a catch-all handler):
  // no warning.
  EXPECT_TRUE(parseOk("name: x\nallowedHosts: [\"*.cloudfront.net\"]\ninterceptHttps: true\n")
                  .warnings.empty());
  EXPECT_TRUE(parseOk("name: x\nallowedHosts: [\"*.cloudfront.net\"]\n"
                      "interceptHttps: [\"*.cloudfront.net\"]\n")
                  .warnings.empty());
  EXPECT_TRUE(parseOk("name: x\nallowedHosts: [a.fastly.net]\noutboundByHost: { \"*.fastly.net\": "
                      "h }\noutboundHandlers: { h: [ { forward: {} } ] }\n")
                  .warnings.empty());
  EXPECT_TRUE(parseOk("name: x\nallowedHosts: [a.fastly.net]\noutbound: h\n"
                      "outboundHandlers: { h: [ { forward: {} } ] }\n")
                  .warnings.empty());
  // A name that only ends like a CDN's is not one.
  EXPECT_TRUE(parseOk("name: x\nallowedHosts: [notcloudfront.net]\n").warnings.empty());
}

}  // namespace
}  // namespace egressd::policy

// egressd validate reports every independent mistake in one pass, each with its place.
TEST(PolicyCheckTest, ReportsEveryErrorWithItsPosition) {
  const char* yaml =
      "name: bad\n"
      "enableInternt: false\n"
      "allow:\n"
      "  - cidr: 10.0.0.0/33\n"
      "    ports: [80]\n"
      "  - cidr: 10.0.0.1\n"
      "    prots: [80]\n"
      "denyStatus: 200\n";
  const egressd::policy::PolicyCheck check = egressd::policy::checkPolicy(yaml, "t.yaml");
  EXPECT_FALSE(check.policy.has_value());
  std::vector<std::string> texts;
  for (const auto& d : check.errors) {
    texts.push_back(d.text());
  }
  EXPECT_EQ(texts, (std::vector<std::string>{
                       "t.yaml:2:1: unknown key 'enableInternt' (did you mean 'enableInternet'?)",
                       "t.yaml:4:11: allow[0].cidr: \"10.0.0.0/33\" has an invalid prefix length "
                       "(expected 0..32)",
                       "t.yaml:7:5: allow[1]: unknown key 'prots' (did you mean 'ports'?)",
                       "t.yaml:8:13: denyStatus: expected an integer in 400..599, got \"200\""}));
  ASSERT_EQ(check.errors.size(), 4U);
  EXPECT_EQ(check.errors[2].pos.line, 7);
  EXPECT_EQ(check.errors[2].path, "allow[1]");
  // The one-Error form carries all of them, the first on the first line.
  auto parsed = egressd::policy::parsePolicy(yaml, "t.yaml");
  ASSERT_FALSE(parsed.ok());
  EXPECT_EQ(parsed.error().message(),
            texts[0] + "\n" + texts[1] + "\n" + texts[2] + "\n" + texts[3]);
}

TEST(PolicyCheckTest, ValidPolicyHasNoErrorsAndKeepsWarnings) {
  const egressd::policy::PolicyCheck check = egressd::policy::checkPolicy(
      "name: ok\nallow:\n  - cidr: 10.0.0.1\n    ports: [80]\n", "t.yaml");
  ASSERT_TRUE(check.policy.has_value());
  EXPECT_TRUE(check.errors.empty());
  EXPECT_EQ(check.policy->name, "ok");
  EXPECT_EQ(check.warnings, check.policy->warnings);
}

TEST(PolicyCheckTest, SyntaxErrorAndUnreadableFile) {
  const auto syntax = egressd::policy::checkPolicy("name: [x\n", "t.yaml");
  ASSERT_EQ(syntax.errors.size(), 1U);
  EXPECT_NE(syntax.errors[0].message.find("YAML syntax error"), std::string::npos);
  EXPECT_FALSE(syntax.unreadable);
  const auto missing = egressd::policy::checkPolicyFile("/nonexistent/egressd-test.yaml");
  EXPECT_TRUE(missing.unreadable);
  ASSERT_EQ(missing.errors.size(), 1U);
  EXPECT_NE(missing.errors[0].text().find("/nonexistent/egressd-test.yaml"), std::string::npos);
}
