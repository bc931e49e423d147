// The Resolver against a scripted DNS server on 127.0.0.1: concurrency of A and AAAA,
// caching and expiry (with a fake clock), negative answers, timeouts, TCP fallback, and
// replies that must be ignored (wrong id, wrong source port).
#include "dns/resolver.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <thread>

#include <asio/steady_timer.hpp>

#include "dns/message.h"
#include "dns_test_util.h"

namespace egressd::dns {
namespace {

using namespace std::chrono_literals;
using testing::aaaaRdata;
using testing::answerTo;
using testing::aRdata;
using testing::encode;
using testing::FakeDnsServer;
using testing::nameRdata;
using testing::Query;
using testing::Reply;
using testing::Rr;
using testing::runOn;

IpAddress ip(const std::string& text) {
  return IpAddress::parse(text).value();
}

// Answers with fixed records: A 198.18.0.10 and AAAA 2001:db8::10 for "both.test",
// NXDOMAIN for "nx.test", no records for "empty.test", SERVFAIL for "broken.test", a CNAME
// for "alias.test", and nothing at all for "silent.test".
Reply standardZone(const Query& query) {
  const std::string name = query.name;
  const uint16_t type = query.qtype;
  auto reply = [](const testing::Response& response) { return Reply{{encode(response)}, {}, 0ms}; };
  if (name == "silent.test") {
    return Reply{};
  }
  if (name == "nx.test") {
    return reply(answerTo(query, {}, kRcodeNxDomain));
  }
  if (name == "broken.test") {
    return reply(answerTo(query, {}, kRcodeServFail));
  }
  if (name == "alias.test" && type == kTypeA) {
    return reply(answerTo(query, {Rr{name, kTypeCname, 60, nameRdata("both.test")},
                                  Rr{"both.test", kTypeA, 60, aRdata("198.18.0.10")}}));
  }
  if ((name == "both.test" || name == "BOTH.test") && type == kTypeA) {
    return reply(answerTo(query, {Rr{name, kTypeA, 30, aRdata("198.18.0.10")},
                                  Rr{name, kTypeA, 30, aRdata("198.18.0.11")}}));
  }
  if ((name == "both.test" || name == "BOTH.test") && type == kTypeAaaa) {
    return reply(answerTo(query, {Rr{name, kTypeAaaa, 30, aaaaRdata("2001:db8::10")}}));
  }
  return reply(answerTo(query));  // NOERROR, no records
}

struct FakeClock {
  std::shared_ptr<std::atomic<int64_t>> offsetMs = std::make_shared<std::atomic<int64_t>>(0);
  std::chrono::steady_clock::time_point base = std::chrono::steady_clock::now();

  std::function<std::chrono::steady_clock::time_point()> function() const {
    return [offset = offsetMs, start = base] {
      return start + std::chrono::milliseconds(offset->load());
    };
  }
  void advance(std::chrono::milliseconds by) { *offsetMs += by.count(); }
};

class ResolverTest : public ::testing::Test {
 protected:
  ResolverConfig configFor(const FakeDnsServer& server) {
    ResolverConfig config;
    config.servers = {server.endpoint()};
    config.timeout = 150ms;
    config.attempts = 2;
    config.clock = clock.function();
    return config;
  }

  Result<std::vector<IpAddress>> resolve(Resolver& resolver, const std::string& name) {
    return runOn(io, resolver.resolve(name));
  }

  asio::io_context io;
  FakeClock clock;
};

TEST_F(ResolverTest, ResolvesAAndAaaaIpv4First) {
  FakeDnsServer server(standardZone);
  Resolver resolver(configFor(server));
  auto result = resolve(resolver, "both.test");
  ASSERT_TRUE(result.ok()) << result.error().message();
  EXPECT_EQ(*result,
            (std::vector<IpAddress>{ip("198.18.0.10"), ip("198.18.0.11"), ip("2001:db8::10")}));
  EXPECT_EQ(server.count("both.test", kTypeA), 1);
  EXPECT_EQ(server.count("both.test", kTypeAaaa), 1);
}

TEST_F(ResolverTest, QueriesAAndAaaaConcurrently) {
  FakeDnsServer server([](const Query& query) {
    Reply reply = standardZone(query);
    reply.delay = 300ms;
    return reply;
  });
  ResolverConfig config = configFor(server);
  config.timeout = 1000ms;
  Resolver slowServer(config);
  const auto start = std::chrono::steady_clock::now();
  auto result = resolve(slowServer, "both.test");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(result.ok()) << result.error().message();
  EXPECT_EQ(result->size(), 3u);
  // One after the other would take at least 600 ms.
  EXPECT_LT(elapsed, 550ms) << "A and AAAA were not queried concurrently";
}

TEST_F(ResolverTest, CachesAnswers) {
  FakeDnsServer server(standardZone);
  Resolver resolver(configFor(server));
  ASSERT_TRUE(resolve(resolver, "both.test").ok());
  auto again = resolve(resolver, "BOTH.test.");  // same name, other spelling
  ASSERT_TRUE(again.ok()) << again.error().message();
  EXPECT_EQ(again->size(), 3u);
  EXPECT_EQ(server.count("both.test", kTypeA), 1);
  EXPECT_EQ(server.count("both.test", kTypeAaaa), 1);
  EXPECT_EQ(resolver.cacheSize(), 2u);
  resolver.clearCache();
  EXPECT_EQ(resolver.cacheSize(), 0u);
}

TEST_F(ResolverTest, CacheEntriesExpireWithTheirTtl) {
  FakeDnsServer server(standardZone);  // TTL 30 for both.test
  Resolver resolver(configFor(server));
  ASSERT_TRUE(resolve(resolver, "both.test").ok());
  clock.advance(29s);
  ASSERT_TRUE(resolve(resolver, "both.test").ok());
  EXPECT_EQ(server.count("both.test", kTypeA), 1);
  clock.advance(2s);
  ASSERT_TRUE(resolve(resolver, "both.test").ok());
  EXPECT_EQ(server.count("both.test", kTypeA), 2);
}

TEST_F(ResolverTest, TtlsAreClamped) {
  FakeDnsServer server([](const Query& query) {
    const uint32_t ttl = query.name == "zero.test" ? 0 : 86400;
    return Reply{{encode(answerTo(query, {Rr{query.name, query.qtype, ttl,
                                             query.qtype == kTypeA ? aRdata("198.18.1.1")
                                                                   : aaaaRdata("2001:db8::1")}}))},
                 {},
                 0ms};
  });
  ResolverConfig config = configFor(server);
  config.minTtl = 5;
  config.maxTtl = 60;
  Resolver resolver(config);
  ASSERT_TRUE(resolve(resolver, "zero.test").ok());
  ASSERT_TRUE(resolve(resolver, "long.test").ok());
  clock.advance(4s);
  ASSERT_TRUE(resolve(resolver, "zero.test").ok());
  EXPECT_EQ(server.count("zero.test", kTypeA), 1) << "TTL 0 was not raised to minTtl";
  clock.advance(57s);
  ASSERT_TRUE(resolve(resolver, "long.test").ok());
  EXPECT_EQ(server.count("long.test", kTypeA), 2) << "TTL 86400 was not capped at maxTtl";
}

TEST_F(ResolverTest, NxDomainIsAnErrorAndCachedNegatively) {
  FakeDnsServer server(standardZone);
  ResolverConfig config = configFor(server);
  config.negativeTtl = 5;
  Resolver resolver(config);
  auto result = resolve(resolver, "nx.test");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code(), ENOENT);
  EXPECT_EQ(result.error().message(), "NXDOMAIN for nx.test");
  ASSERT_FALSE(resolve(resolver, "nx.test").ok());
  EXPECT_EQ(server.count("nx.test", kTypeA), 1);
  clock.advance(6s);
  ASSERT_FALSE(resolve(resolver, "nx.test").ok());
  EXPECT_EQ(server.count("nx.test", kTypeA), 2);
}

TEST_F(ResolverTest, NoRecordsIsAnError) {
  FakeDnsServer server(standardZone);
  Resolver resolver(configFor(server));
  auto result = resolve(resolver, "empty.test");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code(), ENODATA);
  EXPECT_EQ(result.error().message(), "no A or AAAA records for empty.test");
  ASSERT_FALSE(resolve(resolver, "empty.test").ok());
  EXPECT_EQ(server.count("empty.test", kTypeA), 1) << "no-data answers are cached too";
}

TEST_F(ResolverTest, FollowsCnames) {
  FakeDnsServer server(standardZone);
  Resolver resolver(configFor(server));
  auto result = resolve(resolver, "alias.test");
  ASSERT_TRUE(result.ok()) << result.error().message();
  EXPECT_EQ(*result, std::vector<IpAddress>{ip("198.18.0.10")});
}

TEST_F(ResolverTest, SilentServerTimesOutWithAClearMessage) {
  FakeDnsServer server(standardZone);
  Resolver resolver(configFor(server));  // 150 ms, 2 attempts
  const auto start = std::chrono::steady_clock::now();
  auto result = resolve(resolver, "silent.test");
  const auto elapsed = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code(), ETIMEDOUT);
  const std::string expected =
      "no answer from 127.0.0.1:" + std::to_string(server.port()) + " after 2 attempts";
  EXPECT_NE(result.error().message().find(expected), std::string::npos) << result.error().message();
  EXPECT_NE(result.error().message().find("timed out after 150 ms"), std::string::npos)
      << result.error().message();
  EXPECT_EQ(server.count("silent.test", kTypeA), 2);
  EXPECT_EQ(server.count("silent.test", kTypeAaaa), 2);
  EXPECT_GE(elapsed, 300ms);
  EXPECT_LT(elapsed, 2000ms);
  // Failures are not cached.
  ASSERT_FALSE(resolve(resolver, "silent.test").ok());
  EXPECT_EQ(server.count("silent.test", kTypeA), 4);
}

TEST_F(ResolverTest, ServerFailureIsReportedWithTheServer) {
  FakeDnsServer server(standardZone);
  Resolver resolver(configFor(server));
  auto result = resolve(resolver, "broken.test");
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.error().code(), EIO);
  EXPECT_NE(result.error().message().find(
                "SERVFAIL from 127.0.0.1:" + std::to_string(server.port()) + " for broken.test"),
            std::string::npos)
      << result.error().message();
}

TEST_F(ResolverTest, RefusedConnectionFailsFast) {
  uint16_t closedPort = 0;
  {
    FakeDnsServer gone(standardZone);
    closedPort = gone.port();
  }
  ResolverConfig config;
  config.servers = {asio::ip::udp::endpoint(asio::ip::make_address_v4("127.0.0.1"), closedPort)};
  config.timeout = 1000ms;
  Resolver resolver(config);
  const auto start = std::chrono::steady_clock::now();
  auto result = resolve(resolver, "both.test");
  ASSERT_FALSE(result.ok());
  EXPECT_LT(std::chrono::steady_clock::now() - start, 900ms);
  EXPECT_NE(result.error().message().find("no answer from 127.0.0.1:" + std::to_string(closedPort) +
                                          " after 2 attempts"),
            std::string::npos)
      << result.error().message();
  EXPECT_NE(result.error().message().find("refused"), std::string::npos)
      << result.error().message();
}

TEST_F(ResolverTest, TruncatedAnswerIsRetriedOverTcp) {
  FakeDnsServer server([](const Query& query) {
    testing::Response response = answerTo(query);
    if (!query.tcp) {
      response.flags |= 0x0200;  // TC
    } else if (query.qtype == kTypeA) {
      for (int i = 1; i <= 40; ++i) {  // more than fits in 512 bytes
        response.answers.push_back(
            Rr{query.name, kTypeA, 60, aRdata("198.18.2." + std::to_string(i))});
      }
    }
    return Reply{{encode(response)}, {}, 0ms};
  });
  Resolver resolver(configFor(server));
  auto result = resolve(resolver, "big.test");
  ASSERT_TRUE(result.ok()) << result.error().message();
  EXPECT_EQ(result->size(), 40u);
  EXPECT_EQ(result->front(), ip("198.18.2.1"));
  EXPECT_EQ(server.count("big.test", kTypeA, false), 1);
  EXPECT_EQ(server.count("big.test", kTypeA, true), 1);
}

TEST_F(ResolverTest, IgnoresRepliesWithWrongIdOrFromAnotherPort) {
  FakeDnsServer server([](const Query& query) {
    const bool isA = query.qtype == kTypeA;
    auto poisoned = [&](uint16_t id) {
      testing::Response response =
          answerTo(query, {Rr{query.name, query.qtype, 3600,
                              isA ? aRdata("6.6.6.6") : aaaaRdata("2001:db8::666")}});
      response.id = id;
      return encode(response);
    };
    Reply reply;
    // From another source port with the right id: the connected socket never sees it.
    reply.spoofed = {poisoned(query.id)};
    // From the server's port with a wrong id: read and dropped.
    reply.messages = {
        poisoned(static_cast<uint16_t>(query.id ^ 0x5a5a)),
        encode(answerTo(query, {Rr{query.name, query.qtype, 60,
                                   isA ? aRdata("198.18.3.3") : aaaaRdata("2001:db8::3")}}))};
    return reply;
  });
  Resolver resolver(configFor(server));
  auto result = resolve(resolver, "target.test");
  ASSERT_TRUE(result.ok()) << result.error().message();
  EXPECT_EQ(*result, (std::vector<IpAddress>{ip("198.18.3.3"), ip("2001:db8::3")}));
}

TEST_F(ResolverTest, OnlyTheFirstServerThatAnswersCounts) {
  FakeDnsServer silent([](const Query&) { return Reply{}; });
  FakeDnsServer working(standardZone);
  ResolverConfig config = configFor(silent);
  config.servers.push_back(working.endpoint());
  config.timeout = 100ms;
  Resolver resolver(config);
  auto result = resolve(resolver, "both.test");
  ASSERT_TRUE(result.ok()) << result.error().message();
  EXPECT_EQ(result->size(), 3u);
  EXPECT_EQ(silent.count("both.test", kTypeA), 1);
  EXPECT_EQ(working.count("both.test", kTypeA), 1);
}

TEST_F(ResolverTest, IpLiteralsAndBadNamesNeedNoQuery) {
  FakeDnsServer server(standardZone);
  Resolver resolver(configFor(server));
  auto literal = resolve(resolver, "198.18.9.9");
  ASSERT_TRUE(literal.ok());
  EXPECT_EQ(*literal, std::vector<IpAddress>{ip("198.18.9.9")});
  auto v6 = resolve(resolver, "[2001:db8::9]");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(*v6, std::vector<IpAddress>{ip("2001:db8::9")});
  auto bad = resolve(resolver, "a..b");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), EINVAL);
  EXPECT_EQ(server.total(), 0);

  Resolver noServers(ResolverConfig{});
  auto none = resolve(noServers, "both.test");
  ASSERT_FALSE(none.ok());
  EXPECT_EQ(none.error().code(), ENXIO);
  EXPECT_NE(none.error().message().find("no DNS servers configured"), std::string::npos);
}

TEST_F(ResolverTest, ResolveOutlivesTheResolver) {
  FakeDnsServer server([](const Query& query) {
    Reply reply = standardZone(query);
    reply.delay = 150ms;
    return reply;
  });
  ResolverConfig config = configFor(server);
  config.timeout = 1000ms;
  auto resolver = std::make_unique<Resolver>(config);
  std::optional<Result<std::vector<IpAddress>>> result;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> { result.emplace(co_await resolver->resolve("both.test")); },
      asio::detached);
  // Destroyed while the queries are out, as a policy reload may replace it.
  asio::steady_timer replace(io, 30ms);
  replace.async_wait([&](std::error_code) { resolver.reset(); });
  io.run();
  ASSERT_FALSE(resolver);
  ASSERT_TRUE(result.has_value());
  ASSERT_TRUE(result->ok()) << result->error().message();
  EXPECT_EQ((*result)->size(), 3u);
}

TEST_F(ResolverTest, SharedAcrossThreads) {
  FakeDnsServer server(standardZone);
  Resolver resolver(configFor(server));
  std::atomic<int> succeeded{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      asio::io_context threadIo;
      for (int i = 0; i < 20; ++i) {
        auto result = runOn(threadIo, resolver.resolve(i % 2 == 0 ? "both.test" : "alias.test"));
        if (result.ok() && !result->empty()) {
          ++succeeded;
        }
      }
    });
  }
  for (auto& thread : threads) {
    thread.join();
  }
  EXPECT_EQ(succeeded.load(), 80);
  // Concurrent first lookups may each query; after that, the cache answers.
  EXPECT_LE(server.count("both.test", kTypeA), 4);
}

TEST(ResolvConfTest, ReadsNameserversAndOptions) {
  char path[] = "/tmp/egressd-resolv-XXXXXX";
  const int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  {
    std::ofstream out(path);
    out << "# comment\n"
        << "search example.test\n"
        << "nameserver 198.18.3.2\n"
        << "nameserver fe80::1%eth0\n"
        << "nameserver 2001:db8::53\n"
        << "  nameserver\t198.18.3.3  \n"
        << "nameserver 198.18.3.4\n"
        << "nameserver 198.18.3.5\n"
        << "options ndots:2 timeout:3 attempts:4\n";
  }
  const ResolverConfig config = Resolver::fromResolvConf(path);
  std::remove(path);
  ASSERT_EQ(config.servers.size(), 3u);
  EXPECT_EQ(config.servers[0].address().to_string(), "198.18.3.2");
  EXPECT_EQ(config.servers[0].port(), 53);
  EXPECT_EQ(config.servers[1].address().to_string(), "2001:db8::53");
  EXPECT_EQ(config.servers[2].address().to_string(), "198.18.3.3");
  EXPECT_EQ(config.timeout, 3000ms);
  EXPECT_EQ(config.attempts, 4);

  const ResolverConfig missing = Resolver::fromResolvConf("/nonexistent/resolv.conf");
  EXPECT_TRUE(missing.servers.empty());
}

TEST(AsioAddressTest, ConvertsBothWays) {
  for (const char* text : {"198.18.0.1", "2001:db8::1"}) {
    const IpAddress addr = ip(text);
    EXPECT_EQ(toAsioAddress(addr).to_string(), text);
    EXPECT_EQ(fromAsioAddress(toAsioAddress(addr)), addr);
  }
  EXPECT_EQ(fromAsioAddress(asio::ip::make_address("::ffff:10.1.2.3")), IpAddress::v4(10, 1, 2, 3));
}

}  // namespace
}  // namespace egressd::dns
