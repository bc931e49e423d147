// Host policy: host normalization (the proxy's 400s), glob matching against a reference
// matcher, the name/IP precedence and rule names, and the checks on addresses the proxy
// resolved itself (special ranges, DNS rebinding into private ranges).
#include "policy/host_policy.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <string>
#include <vector>

#include "common/ip_address.h"
#include "policy/compile.h"
#include "test_util.h"

namespace egressd::policy {
namespace {

// Policies in these tests only differ in their host rules; the name is boilerplate.
Policy parseOk(const std::string& yaml) {
  return testing::parseOk("name: t\n" + yaml);
}

NormalizedHost hostOk(std::string_view text) {
  auto host = normalizeHost(text);
  EXPECT_TRUE(host.ok()) << text << ": " << host.error().message();
  return host.ok() ? *host : NormalizedHost{};
}

std::string hostError(std::string_view text) {
  auto host = normalizeHost(text);
  EXPECT_FALSE(host.ok()) << "\"" << text << "\" normalized to " << host->name;
  if (host.ok()) {
    return "";
  }
  EXPECT_EQ(host.error().code(), EINVAL);
  return host.error().message();
}

IpAddress ip(std::string_view text) {
  auto addr = IpAddress::parse(text);
  EXPECT_TRUE(addr.has_value()) << text;
  return addr.value_or(IpAddress{});
}

// ---- IpAddress -------------------------------------------------------------------------

TEST(IpAddressTest, ParsesBothFamiliesAndBrackets) {
  const IpAddress v4 = ip("192.0.2.7");
  EXPECT_EQ(v4.family, AF_INET);
  EXPECT_EQ(v4, IpAddress::v4(192, 0, 2, 7));
  EXPECT_EQ(v4.toString(), "192.0.2.7");

  const IpAddress v6 = ip("[2001:DB8:0:0::1]");
  EXPECT_EQ(v6.family, AF_INET6);
  EXPECT_EQ(v6.bytes[0], 0x20);
  EXPECT_EQ(v6.bytes[15], 1);
  EXPECT_EQ(v6.toString(), "2001:db8::1");
  EXPECT_EQ(v6.toString(443), "[2001:db8::1]:443");
  EXPECT_EQ(v4.toString(80), "192.0.2.7:80");
}

TEST(IpAddressTest, MappedIpv6BecomesIpv4) {
  EXPECT_EQ(ip("::ffff:10.0.0.1"), IpAddress::v4(10, 0, 0, 1));
  EXPECT_EQ(ip("[::ffff:a00:1]"), IpAddress::v4(10, 0, 0, 1));
  // ::a.b.c.d (v4-compatible) is not mapped: it stays IPv6 and is judged as such.
  EXPECT_EQ(ip("::10.0.0.1").family, AF_INET6);
}

TEST(IpAddressTest, RejectsLegacyAndDecoratedForms) {
  for (const char* text :
       {"", "127.1", "0x7f.0.0.1", "2130706433", "1.2.3.4:80", "[1.2.3.4]", "fe80::1%eth0", "[::1",
        "::1]", "10.0.0.0/8", " 1.2.3.4", "1.2.3.04x", "example.com", "1.2.3.256"}) {
    EXPECT_FALSE(IpAddress::parse(text).has_value()) << text;
  }
}

TEST(IpAddressTest, SockaddrRoundTrip) {
  for (const char* text : {"198.18.0.1", "2001:db8::53"}) {
    const IpAddress addr = ip(text);
    sockaddr_storage storage;
    const socklen_t length = addr.toSockaddr(5353, storage);
    ASSERT_GT(length, 0u);
    EXPECT_EQ(IpAddress::fromSockaddr(reinterpret_cast<const sockaddr*>(&storage)), addr);
    const auto* in = reinterpret_cast<const sockaddr_in*>(&storage);
    EXPECT_EQ(ntohs(in->sin_port), 5353);  // sin_port and sin6_port share the offset
  }
  sockaddr_in6 mapped{};
  mapped.sin6_family = AF_INET6;
  ASSERT_EQ(inet_pton(AF_INET6, "::ffff:198.18.0.9", &mapped.sin6_addr), 1);
  EXPECT_EQ(IpAddress::fromSockaddr(reinterpret_cast<const sockaddr*>(&mapped)),
            IpAddress::v4(198, 18, 0, 9));
  sockaddr unix_addr{};
  unix_addr.sa_family = AF_UNIX;
  EXPECT_EQ(IpAddress::fromSockaddr(&unix_addr).family, AF_UNSPEC);
}

// ---- normalizeHost ---------------------------------------------------------------------

TEST(NormalizeHostTest, LowercasesAndStripsTrailingDotAndPort) {
  const NormalizedHost host = hostOk("GitHub.COM.:8080");
  EXPECT_EQ(host.name, "github.com");
  EXPECT_FALSE(host.ip.has_value());
  ASSERT_TRUE(host.port.has_value());
  EXPECT_EQ(*host.port, 8080);

  const NormalizedHost plain = hostOk("api.example.com");
  EXPECT_EQ(plain.name, "api.example.com");
  EXPECT_FALSE(plain.port.has_value());
  EXPECT_EQ(hostOk(" \tapi.example.com \t").name, "api.example.com");
  EXPECT_EQ(hostOk("_dmarc.example.com").name, "_dmarc.example.com");
  EXPECT_EQ(hostOk("localhost").name, "localhost");
}

TEST(NormalizeHostTest, EmptyPortMeansTheDefault) {
  const NormalizedHost host = hostOk("example.com:");
  EXPECT_EQ(host.name, "example.com");
  EXPECT_FALSE(host.port.has_value());
}

TEST(NormalizeHostTest, IpLiterals) {
  const NormalizedHost v4 = hostOk("10.0.0.1:80");
  ASSERT_TRUE(v4.ip.has_value());
  EXPECT_EQ(*v4.ip, IpAddress::v4(10, 0, 0, 1));
  EXPECT_EQ(v4.name, "10.0.0.1");
  EXPECT_EQ(v4.port, 80);
  EXPECT_EQ(*hostOk("10.0.0.1.").ip, IpAddress::v4(10, 0, 0, 1));

  const NormalizedHost v6 = hostOk("[2001:DB8::1]:443");
  ASSERT_TRUE(v6.ip.has_value());
  EXPECT_EQ(v6.ip->family, AF_INET6);
  EXPECT_EQ(v6.name, "2001:db8::1");
  EXPECT_EQ(v6.port, 443);

  const NormalizedHost mapped = hostOk("[::ffff:10.0.0.1]");
  ASSERT_TRUE(mapped.ip.has_value());
  EXPECT_EQ(*mapped.ip, IpAddress::v4(10, 0, 0, 1));
  EXPECT_EQ(mapped.name, "10.0.0.1");

  const NormalizedHost bare = hostOk("2001:db8::2");
  ASSERT_TRUE(bare.ip.has_value());
  EXPECT_EQ(bare.name, "2001:db8::2");
  EXPECT_FALSE(bare.port.has_value());
}

TEST(NormalizeHostTest, InternationalizedNamesBecomePunycode) {
  EXPECT_EQ(hostOk("bücher.example").name, "xn--bcher-kva.example");
  EXPECT_EQ(hostOk("BÜCHER.Example:8443").name, "xn--bcher-kva.example");
  EXPECT_EQ(hostOk("BÜCHER.Example:8443").port, 8443);
  // Non-transitional (IDNA 2008): ß stays ß instead of becoming "ss".
  EXPECT_EQ(hostOk("faß.de").name, "xn--fa-hia.de");
  // Already-converted names are kept, only lowercased.
  EXPECT_EQ(hostOk("XN--BCHER-KVA.example").name, "xn--bcher-kva.example");
}

TEST(NormalizeHostTest, IdnMappingToAnAddressIsAnAddress) {
  // Fullwidth digits and ideographic full stops map to "127.0.0.1": it must be judged as
  // the address it is, not matched as a name.
  const NormalizedHost host = hostOk(
      "\xef\xbc\x91\xef\xbc\x92\xef\xbc\x97\xe3\x80\x82"
      "\xef\xbc\x90\xe3\x80\x82\xef\xbc\x90\xe3\x80\x82"
      "\xef\xbc\x91");
  ASSERT_TRUE(host.ip.has_value()) << host.name;
  EXPECT_EQ(*host.ip, IpAddress::v4(127, 0, 0, 1));
}

TEST(NormalizeHostTest, LengthLimits) {
  const std::string label63(63, 'a');
  EXPECT_EQ(hostOk(label63 + ".com").name, label63 + ".com");
  EXPECT_NE(hostError(std::string(64, 'a') + ".com").find("longer than 63"), std::string::npos);

  // 4 * 63 + 3 dots = 255: trim to exactly 253.
  std::string name = label63 + "." + label63 + "." + label63 + "." + std::string(61, 'b');
  ASSERT_EQ(name.size(), 253u);
  EXPECT_EQ(hostOk(name).name, name);
  EXPECT_EQ(hostOk(name + ".").name, name);
  EXPECT_NE(hostError(name + "b").find("longer than 253"), std::string::npos);
}

TEST(NormalizeHostTest, RejectsMalformedHosts) {
  EXPECT_EQ(hostError(""), "empty host");
  EXPECT_EQ(hostError("  "), "empty host");
  EXPECT_NE(hostError(":80").find("empty host name"), std::string::npos);
  EXPECT_NE(hostError(".").find("empty host name"), std::string::npos);
  EXPECT_NE(hostError("a..b").find("empty label"), std::string::npos);
  EXPECT_NE(hostError(".example.com").find("empty label"), std::string::npos);
  EXPECT_NE(hostError("example.com..").find("empty label"), std::string::npos);
  for (const char* bad : {"exa mple.com", "user@example.com", "example.com/path", "*.example.com",
                          "ex%61mple.com", "example.com\r\nX-y", "a\"b.com"}) {
    EXPECT_NE(hostError(bad).find("invalid character"), std::string::npos) << bad;
  }
  EXPECT_NE(hostError(std::string_view("exa\0mple.com", 12)).find("invalid character"),
            std::string::npos);
}

TEST(NormalizeHostTest, RejectsBadPorts) {
  for (const char* bad : {"example.com:0", "example.com:65536", "example.com:8o", "example.com:+80",
                          "example.com:123456", "[::1]:x", "[::1]:-1"}) {
    EXPECT_NE(hostError(bad).find("invalid port"), std::string::npos) << bad;
  }
  EXPECT_EQ(hostOk("example.com:65535").port, 65535);
}

TEST(NormalizeHostTest, RejectsUnbalancedOrMisusedBrackets) {
  EXPECT_NE(hostError("[::1").find("unbalanced '['"), std::string::npos);
  EXPECT_NE(hostError("::1]").find("unbalanced ']'"), std::string::npos);
  EXPECT_NE(hostError("example.com]").find("unbalanced ']'"), std::string::npos);
  EXPECT_NE(hostError("[::1]x").find("after ']'"), std::string::npos);
  EXPECT_NE(hostError("[1.2.3.4]").find("not a valid IPv6"), std::string::npos);
  EXPECT_NE(hostError("[example.com]").find("not a valid IPv6"), std::string::npos);
  EXPECT_NE(hostError("[fe80::1%25eth0]").find("not a valid IPv6"), std::string::npos);
  EXPECT_NE(hostError("2001:db8::1:zz").find("brackets"), std::string::npos);
}

TEST(NormalizeHostTest, RejectsNamesThatParsersReadAsAddresses) {
  for (const char* bad : {"127.1", "0x7f.1", "2130706433", "0x7f000001", "10.0.0.300",
                          "example.123", "1.2.3.4.5", "0X7F.0.0.1"}) {
    EXPECT_NE(hostError(bad).find("last label is a number"), std::string::npos) << bad;
  }
  // A number elsewhere is fine, and so is a last label that merely starts with digits.
  EXPECT_EQ(hostOk("123.example.com").name, "123.example.com");
  EXPECT_EQ(hostOk("example.1a").name, "example.1a");
  EXPECT_EQ(hostOk("example.0xg").name, "example.0xg");
}

TEST(NormalizeHostTest, RejectsInvalidInternationalizedNames) {
  EXPECT_NE(hostError("\xff\xfe.example").find("invalid internationalized host name"),
            std::string::npos);
  // Quoted safely: the control bytes of hostile input never reach a log line raw.
  const std::string message = hostError("\x01\xc3\xa9.com");
  EXPECT_EQ(message.find('\x01'), std::string::npos) << message;
}

TEST(NormalizeHostTest, RandomBytesNeverCrashAndResultsAreWellFormed) {
  std::mt19937 rng(1234);
  const std::string alphabet = "aZ09-._:[]*.@%\xc3\xa9\xff \x00";
  for (int i = 0; i < 5000; ++i) {
    std::string text;
    const int length = static_cast<int>(rng() % 24);
    for (int j = 0; j < length; ++j) {
      text += alphabet[rng() % alphabet.size()];
    }
    auto host = normalizeHost(text);
    if (!host.ok()) {
      continue;
    }
    ASSERT_FALSE(host->name.empty()) << text;
    ASSERT_LE(host->name.size(), 253u) << text;
    if (!host->ip) {
      for (char c : host->name) {
        ASSERT_TRUE((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
                    c == '_')
            << text;
      }
    }
  }
}

// ---- globs -----------------------------------------------------------------------------

// Textbook dynamic-programming matcher, the oracle for the fast one.
bool referenceGlob(std::string_view pattern, std::string_view host) {
  std::vector<std::vector<bool>> match(pattern.size() + 1,
                                       std::vector<bool>(host.size() + 1, false));
  match[0][0] = true;
  for (size_t p = 1; p <= pattern.size(); ++p) {
    match[p][0] = match[p - 1][0] && pattern[p - 1] == '*';
    for (size_t h = 1; h <= host.size(); ++h) {
      if (pattern[p - 1] == '*') {
        match[p][h] = match[p - 1][h] || match[p][h - 1];
      } else {
        match[p][h] = match[p - 1][h - 1] && pattern[p - 1] == host[h - 1];
      }
    }
  }
  return match[pattern.size()][host.size()];
}

// Request hosts and policy globs share one syntax check; they differ only where they must.
TEST(HostSyntaxTest, NamesAndGlobsDifferOnlyInStarAndUnderscore) {
  auto check = [](std::string_view text, HostSyntax syntax) {
    auto out = checkHostSyntax(std::string(text), text, syntax);
    return out.ok() ? *out : "error: " + out.error().message();
  };
  EXPECT_EQ(check("API.Example.COM.", HostSyntax::kName), "api.example.com");
  EXPECT_EQ(check("*.Example.COM.", HostSyntax::kGlob), "*.example.com");
  EXPECT_EQ(check("_dmarc.example.com", HostSyntax::kName), "_dmarc.example.com");
  EXPECT_NE(check("_dmarc.example.com", HostSyntax::kGlob).find("invalid character"),
            std::string::npos);
  EXPECT_NE(check("*.example.com", HostSyntax::kName).find("invalid character"), std::string::npos);
  // A starred glob label stands for labels of any length; a plain one is held to 63.
  const std::string long64(64, 'a');
  EXPECT_EQ(check("*" + long64 + ".com", HostSyntax::kGlob), "*" + long64 + ".com");
  EXPECT_NE(check(long64 + ".com", HostSyntax::kGlob).find("longer than 63"), std::string::npos);
  // Hostile bytes reach error messages (and logs) escaped, for globs as for hosts.
  const std::string control = check(std::string("a") + '\x1b' + ".com", HostSyntax::kGlob);
  EXPECT_NE(control.find("\"a\\x1b.com\""), std::string::npos) << control;
  EXPECT_EQ(control.find('\x1b'), std::string::npos) << control;
}

TEST(HostGlobTest, Basics) {
  EXPECT_TRUE(hostGlobMatches("*.example.com", "a.example.com"));
  EXPECT_TRUE(hostGlobMatches("*.example.com", "a.b.example.com"));
  EXPECT_FALSE(hostGlobMatches("*.example.com", "example.com"));
  EXPECT_FALSE(hostGlobMatches("*.example.com", "badexample.com"));
  EXPECT_TRUE(hostGlobMatches("*example.com", "badexample.com"));
  EXPECT_TRUE(hostGlobMatches("*", "anything.at.all"));
  EXPECT_TRUE(hostGlobMatches("git*.com", "github.com"));
  EXPECT_FALSE(hostGlobMatches("git*.com", "github.org"));
  EXPECT_TRUE(hostGlobMatches("api.*.example.com", "api.eu.example.com"));
  EXPECT_TRUE(hostGlobMatches("a*b*c", "abc"));
  EXPECT_FALSE(hostGlobMatches("a*b*c", "acb"));
  EXPECT_TRUE(hostGlobMatches("a**c", "ac"));
  EXPECT_TRUE(hostGlobMatches("github.com", "GitHub.COM"));
  EXPECT_FALSE(hostGlobMatches("github.com", "github.co"));
  EXPECT_FALSE(hostGlobMatches("ab*ba", "aba"));  // head and tail may not overlap
}

TEST(HostGlobTest, AgreesWithReferenceOnRandomInputs) {
  std::mt19937 rng(42);
  const std::string patternAlphabet = "ab.*";
  const std::string hostAlphabet = "ab.";
  for (int i = 0; i < 20000; ++i) {
    std::string pattern;
    std::string host;
    for (unsigned j = rng() % 8; j > 0; --j) {
      pattern += patternAlphabet[rng() % patternAlphabet.size()];
    }
    for (unsigned j = rng() % 10; j > 0; --j) {
      host += hostAlphabet[rng() % hostAlphabet.size()];
    }
    ASSERT_EQ(hostGlobMatches(pattern, host), referenceGlob(pattern, host))
        << "pattern \"" << pattern << "\" host \"" << host << "\"";
  }
}

TEST(HostGlobTest, PathologicalPatternIsFast) {
  const std::string host(253, 'a');
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; ++i) {
    ASSERT_FALSE(hostGlobMatches("*a*a*a*a*a*a*a*a*a*a*b", host));
  }
  const auto elapsed = std::chrono::steady_clock::now() - start;
  // Backtracking matchers take minutes here; this one takes microseconds per call.
  EXPECT_LT(elapsed, std::chrono::milliseconds(500));
}

// ---- HostPolicy: names -----------------------------------------------------------------

HostDecision decideHost(const HostPolicy& policy, std::string_view text, uint16_t port = 443) {
  return policy.decide(hostOk(text), port);
}

void expectDecision(const HostDecision& decision, HostVerdict verdict, std::string_view reason,
                    std::string_view rule) {
  EXPECT_EQ(decision.verdict, verdict) << decision.reason << " " << decision.rule;
  EXPECT_EQ(decision.reason, reason);
  EXPECT_EQ(decision.rule, rule);
}

TEST(HostPolicyTest, DeniedHostsWinOverAllowedHosts) {
  const HostPolicy policy = HostPolicy::fromPolicy(parseOk(R"(
allowedHosts: ["*.example.com", "github.com"]
deniedHosts: ["203.0.113.0/24", "*.evil.example.com", "bad.example.com"]
)"));
  expectDecision(decideHost(policy, "x.evil.example.com"), HostVerdict::kDeny, "denied_host",
                 "deniedHosts[1] *.evil.example.com");
  expectDecision(decideHost(policy, "BAD.example.com."), HostVerdict::kDeny, "denied_host",
                 "deniedHosts[2] bad.example.com");
  const HostDecision allowed = decideHost(policy, "api.example.com");
  expectDecision(allowed, HostVerdict::kAllow, "allowed_host", "allowedHosts[0] *.example.com");
  EXPECT_TRUE(allowed.byName);
  EXPECT_TRUE(allowed.matchedAllowGlob);
  expectDecision(decideHost(policy, "github.com:443"), HostVerdict::kAllow, "allowed_host",
                 "allowedHosts[1] github.com");
}

TEST(HostPolicyTest, RuleNamesUseListIndicesAcrossGlobsAndCidrs) {
  const Policy parsed = parseOk(R"(
allowedHosts: ["10.20.0.0/16", "github.com", "2001:db8:5::/48", "*.npmjs.org"]
)");
  const HostPolicy policy = HostPolicy::fromPolicy(parsed);
  expectDecision(decideHost(policy, "github.com"), HostVerdict::kAllow, "allowed_host",
                 "allowedHosts[1] github.com");
  expectDecision(decideHost(policy, "registry.npmjs.org"), HostVerdict::kAllow, "allowed_host",
                 "allowedHosts[3] *.npmjs.org");
  expectDecision(decideHost(policy, "10.20.1.1"), HostVerdict::kAllow, "allowed_cidr",
                 "allowedHosts[0] 10.20.0.0/16");
}

TEST(HostPolicyTest, FirstListedGlobDecidesWhicheverTableFindsIt) {
  const HostPolicy policy = HostPolicy::fromPolicy(parseOk(R"(
allowedHosts: ["api.*", "*.example.com", "api.example.com", "*"]
)"));
  EXPECT_EQ(decideHost(policy, "api.example.com").rule, "allowedHosts[0] api.*");
  EXPECT_EQ(decideHost(policy, "www.example.com").rule, "allowedHosts[1] *.example.com");
  EXPECT_EQ(decideHost(policy, "other.org").rule, "allowedHosts[3] *");

  const HostPolicy exactFirst = HostPolicy::fromPolicy(parseOk(R"(
allowedHosts: ["api.example.com", "*.example.com", "*"]
)"));
  EXPECT_EQ(decideHost(exactFirst, "api.example.com").rule, "allowedHosts[0] api.example.com");
}

TEST(HostPolicyTest, AllowedHostsMakesEverythingElseDeniedEvenWithInternet) {
  for (const char* internet : {"true", "false"}) {
    const HostPolicy policy = HostPolicy::fromPolicy(
        parseOk(std::string("enableInternet: ") + internet + "\nallowedHosts: [github.com]\n"));
    const HostDecision decision = decideHost(policy, "example.org");
    expectDecision(decision, HostVerdict::kDeny, "not_in_allowed_hosts", "");
    EXPECT_TRUE(decision.byName);
    EXPECT_TRUE(policy.hasAllowList());
  }
  // Written but empty still counts as written.
  const HostPolicy empty =
      HostPolicy::fromPolicy(parseOk("enableInternet: true\nallowedHosts: []\n"));
  expectDecision(decideHost(empty, "example.org"), HostVerdict::kDeny, "not_in_allowed_hosts", "");
}

TEST(HostPolicyTest, WithoutAllowedHostsEnableInternetDecides) {
  const HostPolicy open = HostPolicy::fromPolicy(parseOk("enableInternet: true\n"));
  const HostDecision allowed = decideHost(open, "example.org");
  expectDecision(allowed, HostVerdict::kAllow, "enable_internet", "");
  EXPECT_TRUE(allowed.byName);
  EXPECT_FALSE(allowed.matchedAllowGlob);
  EXPECT_TRUE(open.enableInternet());

  const HostPolicy closed = HostPolicy::fromPolicy(parseOk("enableInternet: false\n"));
  expectDecision(decideHost(closed, "example.org"), HostVerdict::kDeny, "internet_disabled", "");
  EXPECT_FALSE(closed.enableInternet());

  const HostPolicy defaults;
  expectDecision(defaults.decideName("example.org"), HostVerdict::kDeny, "internet_disabled", "");
  expectDecision(defaults.decideName(""), HostVerdict::kDeny, "invalid_host", "");
}

TEST(HostPolicyTest, CopiesShareTheCompiledPolicy) {
  HostPolicy copy;
  {
    const HostPolicy original = HostPolicy::fromPolicy(parseOk("allowedHosts: [github.com]\n"));
    copy = original;
  }
  EXPECT_TRUE(decideHost(copy, "github.com").allowed());
}

// ---- HostPolicy: IP literals -----------------------------------------------------------

TEST(HostPolicyTest, IpLiteralsFollowTheKernelOrder) {
  const Policy parsed = parseOk(R"(
enableInternet: true
deniedHosts: ["10.0.0.0/8", "10.1.0.0/16", "*.evil.example"]
allowedHosts: ["127.0.0.0/8", "*"]
allow:
  - { cidr: 10.9.0.0/16, ports: [80] }
  - { cidr: 169.254.169.254, ports: [80], protocol: udp }
  - { cidr: 192.168.0.0/16, protocol: tcp }
)");
  const HostPolicy policy = HostPolicy::fromPolicy(parsed);
  // Longest prefix names the rule, as the kernel's LPM lookup does.
  expectDecision(decideHost(policy, "10.1.2.3", 80), HostVerdict::kDeny, "denied_cidr",
                 "deniedHosts[1] 10.1.0.0/16");
  expectDecision(decideHost(policy, "10.2.2.3", 80), HostVerdict::kDeny, "denied_cidr",
                 "deniedHosts[0] 10.0.0.0/8");
  // Mapped IPv6 literals are judged as the IPv4 address.
  expectDecision(decideHost(policy, "[::ffff:10.2.2.3]", 80), HostVerdict::kDeny, "denied_cidr",
                 "deniedHosts[0] 10.0.0.0/8");
  // A deny CIDR beats an allow rule.
  expectDecision(decideHost(policy, "10.9.0.1", 80), HostVerdict::kDeny, "denied_cidr",
                 "deniedHosts[0] 10.0.0.0/8");
  // allowedHosts CIDRs open special ranges on every port.
  const HostDecision loopback = decideHost(policy, "127.0.0.1", 8080);
  expectDecision(loopback, HostVerdict::kAllow, "allowed_cidr", "allowedHosts[0] 127.0.0.0/8");
  EXPECT_FALSE(loopback.byName);
  // A udp rule does not open TCP.
  expectDecision(decideHost(policy, "169.254.169.254", 80), HostVerdict::kDeny,
                 "special_destination", "");
  expectDecision(decideHost(policy, "192.168.1.1", 443), HostVerdict::kAllow, "allowed_cidr",
                 "allow[2] 192.168.0.0/16 tcp/*");
  // Host globs never match IP literals ("*" is in allowedHosts): the CIDR rules decide, and
  // an IP that no CIDR allows is outside allowedHosts.
  expectDecision(decideHost(policy, "198.18.0.1", 80), HostVerdict::kDeny, "not_in_allowed_hosts",
                 "");
}

TEST(HostPolicyTest, AllowRulesMatchPortAndRankLikeTheKernel) {
  const HostPolicy policy = HostPolicy::fromPolicy(parseOk(R"(
allow:
  - { cidr: 10.0.0.0/8 }
  - { cidr: 10.0.5.0/24, ports: [8080, "9000-9010"] }
  - { cidr: 10.0.0.0/8, ports: [8080], protocol: tcp }
)"));
  // (tcp, port) first: allow[2] even though allow[1] is a longer prefix.
  EXPECT_EQ(decideHost(policy, "10.0.5.1", 8080).rule, "allow[2] 10.0.0.0/8 tcp/8080");
  // (any, port) before (any, any).
  EXPECT_EQ(decideHost(policy, "10.0.5.1", 9005).rule, "allow[1] 10.0.5.0/24 any/8080,9000-9010");
  EXPECT_EQ(decideHost(policy, "10.0.5.1", 9011).rule, "allow[0] 10.0.0.0/8 any/*");
  expectDecision(decideHost(policy, "11.0.0.1", 8080), HostVerdict::kDeny, "internet_disabled", "");
}

TEST(HostPolicyTest, RuleNamesMatchTheKernelRuleNames) {
  const Policy parsed = parseOk(R"(
allowedHosts: ["10.20.0.0/16", "github.com", "2001:db8::/32"]
deniedHosts: ["*.evil.example", "141.101.64.0/18"]
allow:
  - { cidr: 10.0.5.0/24, ports: [5432, "6000-6001"], protocol: tcp }
  - { cidr: "::1", protocol: udp }
)");
  auto kernel = compileKernelRules(parsed);
  ASSERT_TRUE(kernel.ok()) << kernel.error().message();
  const HostPolicy policy = HostPolicy::fromPolicy(parsed);
  const auto inKernel = [&](const std::string& rule) {
    return std::find(kernel->ruleNames.begin(), kernel->ruleNames.end(), rule) !=
           kernel->ruleNames.end();
  };
  for (const auto& [host, port] : std::vector<std::pair<std::string, uint16_t>>{
           {"10.20.3.4", 80}, {"[2001:db8::9]", 443}, {"141.101.64.1", 80}, {"10.0.5.9", 5432}}) {
    const HostDecision decision = decideHost(policy, host, port);
    EXPECT_FALSE(decision.rule.empty()) << host;
    EXPECT_TRUE(inKernel(decision.rule)) << host << ": " << decision.rule;
  }
}

TEST(HostPolicyTest, SpecialAndEmbeddedDestinationsNeedARuleEvenWithInternet) {
  const HostPolicy policy = HostPolicy::fromPolicy(parseOk("enableInternet: true\n"));
  for (const char* special :
       {"127.0.0.1", "0.1.2.3", "169.254.169.254", "224.0.0.1", "240.0.0.1", "255.255.255.255",
        "[::]", "[::1]", "[fe80::1]", "[fec0::1]", "[ff02::1]"}) {
    expectDecision(decideHost(policy, special, 80), HostVerdict::kDeny, "special_destination", "");
  }
  for (const char* embedded : {"[64:ff9b::a00:1]", "[64:ff9b:1::1]", "[2002:a00:1::1]",
                               "[2001:0:a00:1::1]", "[::10.0.0.1]"}) {
    expectDecision(decideHost(policy, embedded, 80), HostVerdict::kDeny, "embedded_v4_destination",
                   "");
  }
  // The test networks the end-to-end suite uses are ordinary destinations.
  for (const char* ordinary : {"198.18.0.1", "198.19.255.254", "[2001:db8::1]", "10.0.0.1",
                               "[2001:1::1]", "100.63.255.255"}) {
    expectDecision(decideHost(policy, ordinary, 80), HostVerdict::kAllow, "enable_internet", "");
  }
}

TEST(HostPolicyTest, ClassifiesAddresses) {
  EXPECT_EQ(classifyAddress(ip("198.18.0.1")), AddressClass::kOrdinary);
  EXPECT_EQ(classifyAddress(ip("2001:db8::1")), AddressClass::kOrdinary);
  EXPECT_EQ(classifyAddress(ip("8.8.8.8")), AddressClass::kOrdinary);
  EXPECT_EQ(classifyAddress(ip("172.15.255.255")), AddressClass::kOrdinary);
  EXPECT_EQ(classifyAddress(ip("172.32.0.0")), AddressClass::kOrdinary);
  EXPECT_EQ(classifyAddress(ip("100.128.0.0")), AddressClass::kOrdinary);
  EXPECT_EQ(classifyAddress(ip("fe00::1")), AddressClass::kOrdinary);
  for (const char* privateAddr : {"10.0.0.1", "172.16.0.1", "172.31.255.255", "192.168.0.1",
                                  "100.64.0.1", "100.127.255.255", "fc00::1", "fdff::1"}) {
    EXPECT_EQ(classifyAddress(ip(privateAddr)), AddressClass::kPrivate) << privateAddr;
  }
  EXPECT_EQ(classifyAddress(ip("::ffff:127.0.0.1")), AddressClass::kSpecial);
  EXPECT_EQ(classifyAddress(ip("fe80::1")), AddressClass::kSpecial);
  EXPECT_EQ(classifyAddress(ip("febf::1")), AddressClass::kSpecial);
  EXPECT_EQ(classifyAddress(ip("2002::1")), AddressClass::kEmbeddedV4);
  IpAddress unspecified;
  unspecified.family = AF_UNSPEC;
  EXPECT_EQ(classifyAddress(unspecified), AddressClass::kSpecial);
}

// ---- judgeResolvedAddress ----------------------------------------------------------------

TEST(JudgeResolvedAddressTest, NamesAllowedOnlyByInternetCannotRebindIntoPrivateRanges) {
  const HostPolicy policy = HostPolicy::fromPolicy(parseOk(R"(
enableInternet: true
allow:
  - { cidr: 10.0.5.0/24, ports: [80] }
)"));
  const HostDecision name = decideHost(policy, "rebind.example");
  ASSERT_TRUE(name.allowed());
  for (const char* privateAddr :
       {"10.0.0.5", "172.16.3.4", "192.168.1.1", "100.64.0.1", "fd00::1", "fc00::5"}) {
    const HostDecision decision = policy.judgeResolvedAddress(ip(privateAddr), 80, name);
    expectDecision(decision, HostVerdict::kDeny, "private_destination", "");
    EXPECT_TRUE(decision.byName);
  }
  for (const char* special : {"127.0.0.1", "169.254.169.254", "::1", "0.0.0.0"}) {
    expectDecision(policy.judgeResolvedAddress(ip(special), 80, name), HostVerdict::kDeny,
                   "special_destination", "");
  }
  expectDecision(policy.judgeResolvedAddress(ip("64:ff9b::7f00:1"), 80, name), HostVerdict::kDeny,
                 "embedded_v4_destination", "");
  // An allow rule for the port opens its range; another port stays closed.
  expectDecision(policy.judgeResolvedAddress(ip("10.0.5.7"), 80, name), HostVerdict::kAllow,
                 "enable_internet", "");
  expectDecision(policy.judgeResolvedAddress(ip("10.0.5.7"), 443, name), HostVerdict::kDeny,
                 "private_destination", "");
  // Ordinary and test-network addresses pass with the name's own decision.
  for (const char* ordinary : {"198.18.0.5", "2001:db8::5", "93.184.216.34"}) {
    expectDecision(policy.judgeResolvedAddress(ip(ordinary), 443, name), HostVerdict::kAllow,
                   "enable_internet", "");
  }
}

TEST(JudgeResolvedAddressTest, NamedHostsMayResolvePrivateButNotSpecial) {
  const HostPolicy policy = HostPolicy::fromPolicy(parseOk(R"(
allowedHosts: ["*.corp.example", "127.0.0.0/8"]
deniedHosts: ["10.66.0.0/16"]
)"));
  const HostDecision name = decideHost(policy, "git.corp.example");
  ASSERT_TRUE(name.matchedAllowGlob);
  const std::string rule = "allowedHosts[0] *.corp.example";
  expectDecision(policy.judgeResolvedAddress(ip("10.1.2.3"), 443, name), HostVerdict::kAllow,
                 "allowed_host", rule);
  expectDecision(policy.judgeResolvedAddress(ip("fd12::1"), 443, name), HostVerdict::kAllow,
                 "allowed_host", rule);
  // Loopback is covered by the allowedHosts CIDR; link-local is not.
  expectDecision(policy.judgeResolvedAddress(ip("127.0.0.2"), 443, name), HostVerdict::kAllow,
                 "allowed_host", rule);
  const HostDecision metadata = policy.judgeResolvedAddress(ip("169.254.169.254"), 80, name);
  expectDecision(metadata, HostVerdict::kDeny, "special_destination", "");
  EXPECT_TRUE(metadata.matchedAllowGlob);
  // Deny CIDRs apply to resolved addresses too.
  expectDecision(policy.judgeResolvedAddress(ip("10.66.1.1"), 443, name), HostVerdict::kDeny,
                 "denied_cidr", "deniedHosts[0] 10.66.0.0/16");
}

TEST(JudgeResolvedAddressTest, DeniedNamesStayDenied) {
  const HostPolicy policy = HostPolicy::fromPolicy(parseOk("allowedHosts: [github.com]\n"));
  const HostDecision name = decideHost(policy, "example.org");
  ASSERT_FALSE(name.allowed());
  expectDecision(policy.judgeResolvedAddress(ip("198.18.0.1"), 443, name), HostVerdict::kDeny,
                 "not_in_allowed_hosts", "");
  IpAddress unspecified;
  unspecified.family = AF_UNSPEC;
  expectDecision(policy.judgeResolvedAddress(unspecified, 443, decideHost(policy, "github.com")),
                 HostVerdict::kDeny, "invalid_host", "");
}

TEST(JudgeResolvedAddressTest, IpLiteralDecisionsAreNotSecondGuessed) {
  // A private IP literal allowed by enableInternet: the kernel would let a direct
  // connection through, so the proxy does too (rebinding needs a name).
  const HostPolicy policy = HostPolicy::fromPolicy(parseOk("enableInternet: true\n"));
  const HostDecision literal = decideHost(policy, "10.0.0.7", 80);
  ASSERT_TRUE(literal.allowed());
  EXPECT_FALSE(literal.byName);
  expectDecision(policy.judgeResolvedAddress(ip("10.0.0.7"), 80, literal), HostVerdict::kAllow,
                 "enable_internet", "");
}

// tls.requireSni: a hello without a name needs a rule naming the address and the port.
TEST(HostPolicyTest, ExplicitAddressRuleNamesTheAddressAndThePort) {
  const HostPolicy h = HostPolicy::fromPolicy(parseOk(R"(allowedHosts: ["a.test", "10.1.0.0/16"]
deniedHosts: ["10.1.9.0/24"]
allow:
  - { cidr: 10.2.0.0/16 }
  - { cidr: 10.3.0.0/16, ports: [443, 8443], protocol: tcp }
  - { cidr: 10.4.0.0/16, ports: [443], protocol: udp }
  - { cidr: 10.5.0.0/16, ports: ["8000-9000"] }
)"));
  EXPECT_EQ(h.explicitAddressRule(ip("10.1.2.3"), 443), "allowedHosts[1] 10.1.0.0/16");
  EXPECT_EQ(h.explicitAddressRule(ip("10.1.9.3"), 443), std::nullopt) << "a deny CIDR wins";
  EXPECT_EQ(h.explicitAddressRule(ip("10.2.0.1"), 443), std::nullopt)
      << "a rule for every port names no port";
  EXPECT_TRUE(h.decideAddress(ip("10.2.0.1"), 443).allowed()) << "yet it allows the address";
  EXPECT_EQ(h.explicitAddressRule(ip("10.3.0.1"), 8443), "allow[1] 10.3.0.0/16 tcp/443,8443");
  EXPECT_EQ(h.explicitAddressRule(ip("10.3.0.1"), 444), std::nullopt);
  EXPECT_EQ(h.explicitAddressRule(ip("10.4.0.1"), 443), std::nullopt) << "UDP only";
  EXPECT_TRUE(h.explicitAddressRule(ip("10.5.0.1"), 8443).has_value());
  EXPECT_EQ(h.explicitAddressRule(ip("192.0.2.1"), 443), std::nullopt);
}

}  // namespace
}  // namespace egressd::policy
