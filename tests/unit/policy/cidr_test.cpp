// CIDR, address and endpoint parsing: edge prefixes, the v4-mapped normalization the kernel
// relies on, and the inputs that must be refused rather than guessed at.
#include "policy/cidr.h"

#include <gtest/gtest.h>

#include <string>

namespace egressd::policy {
namespace {

Cidr cidrOk(std::string_view text) {
  auto cidr = parseCidr(text);
  EXPECT_TRUE(cidr.ok()) << text << ": " << cidr.error().message();
  return cidr.ok() ? *cidr : Cidr{};
}

std::string cidrError(std::string_view text) {
  auto cidr = parseCidr(text);
  EXPECT_FALSE(cidr.ok()) << text << " parsed as " << cidr->toString();
  if (cidr.ok()) {
    return "";
  }
  EXPECT_EQ(cidr.error().code(), EINVAL);
  return cidr.error().message();
}

AddrBytes v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
  return AddrBytes{a, b, c, d};
}

TEST(CidrTest, ParsesIpv4Cidr) {
  const Cidr cidr = cidrOk("10.0.0.0/8");
  EXPECT_EQ(cidr.family, AF_INET);
  EXPECT_EQ(cidr.bytes, v4(10, 0, 0, 0));
  EXPECT_EQ(cidr.prefixLen, 8);
  EXPECT_EQ(cidr.toString(), "10.0.0.0/8");
}

TEST(CidrTest, BareIpv4AddressIsSlash32) {
  const Cidr cidr = cidrOk("10.0.0.5");
  EXPECT_EQ(cidr.family, AF_INET);
  EXPECT_EQ(cidr.bytes, v4(10, 0, 0, 5));
  EXPECT_EQ(cidr.prefixLen, 32);
  EXPECT_EQ(cidr.toString(), "10.0.0.5/32");
}

TEST(CidrTest, EdgePrefixes) {
  EXPECT_EQ(cidrOk("0.0.0.0/0").prefixLen, 0);
  EXPECT_EQ(cidrOk("255.255.255.255/32").bytes, v4(255, 255, 255, 255));
  EXPECT_EQ(cidrOk("255.255.255.255/32").prefixLen, 32);
  EXPECT_EQ(cidrOk("::/0").family, AF_INET6);
  EXPECT_EQ(cidrOk("::/0").prefixLen, 0);
  const Cidr one = cidrOk("::1/128");
  EXPECT_EQ(one.prefixLen, 128);
  EXPECT_EQ(one.bytes[15], 1);
  EXPECT_EQ(cidrOk("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128").bytes[0], 0xff);
  EXPECT_EQ(cidrOk("128.0.0.0/1").prefixLen, 1);
}

TEST(CidrTest, ParsesIpv6Cidr) {
  const Cidr cidr = cidrOk("2001:db8::/32");
  EXPECT_EQ(cidr.family, AF_INET6);
  EXPECT_EQ(cidr.prefixLen, 32);
  EXPECT_EQ(cidr.bytes, (AddrBytes{0x20, 0x01, 0x0d, 0xb8}));
  EXPECT_EQ(cidr.toString(), "2001:db8::/32");
}

TEST(CidrTest, BareAndBracketedIpv6Addresses) {
  const Cidr bare = cidrOk("::1");
  EXPECT_EQ(bare.family, AF_INET6);
  EXPECT_EQ(bare.prefixLen, 128);
  EXPECT_EQ(bare.toString(), "::1/128");
  EXPECT_EQ(cidrOk("[::1]"), bare);
  auto addr = parseAddress("[2001:db8::5]");
  ASSERT_TRUE(addr.ok()) << addr.error().message();
  EXPECT_EQ(addr->toString(), "2001:db8::5/128");
}

TEST(CidrTest, V4MappedNormalizesToIpv4) {
  const Cidr net = cidrOk("::ffff:10.0.0.0/104");
  EXPECT_EQ(net.family, AF_INET);
  EXPECT_EQ(net.bytes, v4(10, 0, 0, 0));
  EXPECT_EQ(net.prefixLen, 8);
  EXPECT_EQ(net.toString(), "10.0.0.0/8");

  const Cidr host = cidrOk("::ffff:10.0.0.5");
  EXPECT_EQ(host.family, AF_INET);
  EXPECT_EQ(host.bytes, v4(10, 0, 0, 5));
  EXPECT_EQ(host.prefixLen, 32);
  EXPECT_EQ(cidrOk("[::ffff:10.0.0.5]"), host);
  EXPECT_EQ(cidrOk("::ffff:a00:5/128"), host);

  const Cidr all = cidrOk("::ffff:0:0/96");
  EXPECT_EQ(all.family, AF_INET);
  EXPECT_EQ(all.prefixLen, 0);
  EXPECT_EQ(all.toString(), "0.0.0.0/0");
}

TEST(CidrTest, V4MappedPrefixShorterThan96IsRejected) {
  EXPECT_EQ(cidrError("::ffff:0:0/95"),
            "\"::ffff:0:0/95\": an IPv4-mapped prefix must be /96 or longer");
}

TEST(CidrTest, NonMappedIpv6IsNotNormalized) {
  // v4-compatible (::a.b.c.d) and NAT64 addresses stay IPv6: the kernel denies them unless
  // an IPv6 rule allows them, so turning them into IPv4 rules would open a hole.
  EXPECT_EQ(cidrOk("::10.0.0.5").family, AF_INET6);
  EXPECT_EQ(cidrOk("64:ff9b::10.0.0.5").family, AF_INET6);
}

TEST(CidrTest, HostBitsAreRejectedWithSuggestion) {
  EXPECT_EQ(cidrError("10.0.0.1/8"), "\"10.0.0.1/8\" has host bits set (did you mean 10.0.0.0/8?)");
  EXPECT_EQ(cidrError("2001:db8::1/32"),
            "\"2001:db8::1/32\" has host bits set (did you mean 2001:db8::/32?)");
  EXPECT_EQ(cidrError("::ffff:10.0.0.1/104"),
            "\"::ffff:10.0.0.1/104\" has host bits set (did you mean 10.0.0.0/8?)");
  EXPECT_EQ(cidrError("0.0.0.1/0"), "\"0.0.0.1/0\" has host bits set (did you mean 0.0.0.0/0?)");
}

TEST(CidrTest, MalformedInputIsRejected) {
  EXPECT_EQ(cidrError("10.0.0.300"), "\"10.0.0.300\" is not a valid IP address");
  EXPECT_EQ(cidrError("10.0.0"), "\"10.0.0\" is not a valid IP address");
  EXPECT_EQ(cidrError("010.0.0.1"), "\"010.0.0.1\" is not a valid IP address");
  EXPECT_EQ(cidrError(" 10.0.0.1"), "\" 10.0.0.1\" is not a valid IP address");
  EXPECT_EQ(cidrError("github.com"), "\"github.com\" is not a valid IP address");
  EXPECT_EQ(cidrError(""), "\"\" has no address");
  EXPECT_EQ(cidrError("/8"), "\"/8\" has no address");
  EXPECT_EQ(cidrError("[::1"), "\"[::1\" has an unbalanced '['");
  EXPECT_EQ(cidrError("fe80::1%eth0"),
            "\"fe80::1%eth0\": IPv6 zone ids (%iface) are not supported");
  EXPECT_EQ(cidrError("10.0.*.*"),
            "\"10.0.*.*\": wildcards are not supported in IP addresses; use a CIDR such as "
            "10.0.0.0/24");
}

TEST(CidrTest, BadPrefixLengthsAreRejected) {
  for (const char* text : {"10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/+8", "10.0.0.0/ 8",
                           "10.0.0.0/8/8", "10.0.0.0/0x8"}) {
    EXPECT_EQ(cidrError(text),
              "\"" + std::string(text) + "\" has an invalid prefix length (expected 0..32)");
  }
  EXPECT_EQ(cidrError("::/129"), "\"::/129\" has an invalid prefix length (expected 0..128)");
}

TEST(CidrTest, Contains) {
  const Cidr net = cidrOk("10.1.0.0/16");
  EXPECT_TRUE(net.contains(AF_INET, v4(10, 1, 200, 3)));
  EXPECT_FALSE(net.contains(AF_INET, v4(10, 2, 0, 0)));
  EXPECT_FALSE(net.contains(AF_INET6, v4(10, 1, 0, 0)));
  EXPECT_TRUE(cidrOk("0.0.0.0/0").contains(AF_INET, v4(1, 2, 3, 4)));
  EXPECT_TRUE(cidrOk("2001:db8::/32").contains(AF_INET6, cidrOk("2001:db8:1::1").bytes));
  EXPECT_FALSE(cidrOk("2001:db8::/32").contains(AF_INET6, cidrOk("2001:db9::1").bytes));
}

TEST(EndpointTest, ParsesIpv4WithPort) {
  auto endpoint = parseEndpoint("127.0.0.53:53", 1);
  ASSERT_TRUE(endpoint.ok()) << endpoint.error().message();
  EXPECT_EQ(endpoint->family, AF_INET);
  EXPECT_EQ(endpoint->bytes, v4(127, 0, 0, 53));
  EXPECT_EQ(endpoint->port, 53);
  EXPECT_EQ(endpoint->toString(), "127.0.0.53:53");
}

TEST(EndpointTest, ParsesBracketedIpv6WithPort) {
  auto endpoint = parseEndpoint("[::1]:5353", 53);
  ASSERT_TRUE(endpoint.ok()) << endpoint.error().message();
  EXPECT_EQ(endpoint->family, AF_INET6);
  EXPECT_EQ(endpoint->bytes[15], 1);
  EXPECT_EQ(endpoint->port, 5353);
  EXPECT_EQ(endpoint->toString(), "[::1]:5353");
}

TEST(EndpointTest, DefaultPortWhenOmitted) {
  for (const char* text : {"10.0.0.1", "::1", "[::1]", "2001:db8::53"}) {
    auto endpoint = parseEndpoint(text, 53);
    ASSERT_TRUE(endpoint.ok()) << text << ": " << endpoint.error().message();
    EXPECT_EQ(endpoint->port, 53) << text;
  }
  EXPECT_EQ(parseEndpoint("::1", 53)->family, AF_INET6);
}

TEST(EndpointTest, V4MappedNormalizesToIpv4) {
  auto endpoint = parseEndpoint("[::ffff:127.0.0.1]:53", 1);
  ASSERT_TRUE(endpoint.ok()) << endpoint.error().message();
  EXPECT_EQ(endpoint->family, AF_INET);
  EXPECT_EQ(endpoint->bytes, v4(127, 0, 0, 1));
  EXPECT_EQ(endpoint->toString(), "127.0.0.1:53");
}

TEST(EndpointTest, RejectsBadInput) {
  const std::pair<const char*, const char*> cases[] = {
      {"127.0.0.1:0", "\"127.0.0.1:0\" has an invalid port (expected 1..65535)"},
      {"127.0.0.1:65536", "\"127.0.0.1:65536\" has an invalid port (expected 1..65535)"},
      {"127.0.0.1:", "\"127.0.0.1:\" has an invalid port (expected 1..65535)"},
      {"127.0.0.1:dns", "\"127.0.0.1:dns\" has an invalid port (expected 1..65535)"},
      {"[::1]53", "\"[::1]53\": expected ':PORT' after ']'"},
      {"[::1:53", "\"[::1:53\" has an unbalanced '['"},
      {"10.0.0.0/8:53", "\"10.0.0.0/8:53\": expected an address, not a CIDR"},
      {"resolver:53", "\"resolver:53\" is not a valid IP address"},
      {"", "\"\" has no address"},
  };
  for (const auto& [text, message] : cases) {
    auto endpoint = parseEndpoint(text, 53);
    ASSERT_FALSE(endpoint.ok()) << text;
    EXPECT_EQ(endpoint.error().message(), message);
  }
}

TEST(LooksLikeIpTest, SplitsHostsFromAddresses) {
  for (const char* ip : {"10.0.0.1", "10.0.0.0/8", "::1", "[::1]", "2001:db8::/32", "10.0.*.*",
                         "1.2.3", "10.0.0.300"}) {
    EXPECT_TRUE(looksLikeIpOrCidr(ip)) << ip;
  }
  for (const char* host :
       {"github.com", "*.npmjs.org", "*", "1password.com", "x1.2", "cafe", "localhost", ""}) {
    EXPECT_FALSE(looksLikeIpOrCidr(host)) << host;
  }
}

TEST(AbiAddrTest, Ipv4IsStoredV4Mapped) {
  const egressd_addr addr = toAbiAddr(cidrOk("10.1.2.3"));
  const uint8_t expected[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3};
  EXPECT_EQ(0, std::memcmp(addr.bytes, expected, 16));
}

TEST(AbiAddrTest, Ipv6IsCopied) {
  const Cidr cidr = cidrOk("2001:db8::1");
  const egressd_addr addr = toAbiAddr(cidr);
  EXPECT_EQ(0, std::memcmp(addr.bytes, cidr.bytes.data(), 16));
  EXPECT_EQ(addr.bytes[0], 0x20);
  EXPECT_EQ(addr.bytes[15], 1);
}

TEST(AbiAddrTest, EndpointUsesSameLayout) {
  auto endpoint = parseEndpoint("127.0.0.53:53", 53);
  ASSERT_TRUE(endpoint.ok());
  const egressd_addr addr = toAbiAddr(*endpoint);
  EXPECT_EQ(addr.bytes[10], 0xff);
  EXPECT_EQ(addr.bytes[11], 0xff);
  EXPECT_EQ(addr.bytes[12], 127);
  EXPECT_EQ(addr.bytes[15], 53);
}

}  // namespace
}  // namespace egressd::policy
