// Asynchronous stub resolver for Asio coroutines: how the proxy resolves a host name
// itself, so that the sandbox never chooses where a host-decided request goes.
//
// Anti-spoofing: every query has a random 16-bit id and goes out on a fresh connected UDP
// socket (a random ephemeral source port); a reply counts only if it comes from the
// server's address and port and echoes our id and question. Anything else is dropped and
// the wait goes on until the attempt's deadline.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/ip/address.hpp>
#include <asio/ip/udp.hpp>

#include "common/ip_address.h"
#include "common/result.h"
#include "dns/message.h"

namespace egressd::dns {

struct ResolverConfig {
  std::vector<asio::ip::udp::endpoint> servers;  // tried in order on each attempt
  std::chrono::milliseconds timeout{2000};       // per attempt and server (UDP, or TCP retry)
  int attempts = 2;                              // rounds over all servers
  uint32_t minTtl = 1;                           // cached answer lifetimes are clamped to
  uint32_t maxTtl = 300;                         // [minTtl, maxTtl] seconds
  uint32_t negativeTtl = 5;                      // NXDOMAIN and "no such record" answers
  size_t maxCacheEntries = 10000;                // one entry per (name, A|AAAA)
  // For tests: the clock cache expiry is measured with.
  std::function<std::chrono::steady_clock::time_point()> clock = std::chrono::steady_clock::now;
};

// Conversions between egressd's and Asio's address types (v4-mapped -> IPv4).
IpAddress fromAsioAddress(const asio::ip::address& address);
asio::ip::address toAsioAddress(const IpAddress& address);

// forward()'s result: an upstream's whole answer to egressd's own query for the question.
struct Forwarded {
  std::shared_ptr<const std::vector<uint8_t>> message;  // as the upstream sent it
  ParsedAnswer answer;  // rcode, TC, addresses (A/AAAA, along the CNAME chain), TTLs
  bool cached = false;
  std::string server;  // "198.18.3.2:53" ("" from the cache)
};

namespace detail {
struct ResolverState;  // config and cache, shared with every resolve() in progress
}  // namespace detail

// One instance may be shared by several threads running io_contexts: the cache is guarded
// by a mutex, and each resolve() creates its sockets on the executor of the coroutine that
// awaits it. A resolve() in progress keeps the resolver's state alive, so replacing or
// destroying the Resolver (e.g. on a policy reload) never pulls it out from under one.
class Resolver {
 public:
  explicit Resolver(ResolverConfig config);
  Resolver(const Resolver&) = delete;
  Resolver& operator=(const Resolver&) = delete;

  // A and AAAA are queried concurrently over UDP (retried over TCP when TC is set), each
  // with config.timeout per attempt. Answers are cached for their TTL (clamped); NXDOMAIN
  // and no-data answers for negativeTtl; failures are not cached. Returns the IPv4
  // addresses first, then the IPv6 ones, without duplicates. `name` may end with a dot and
  // is matched case-insensitively; an IP literal is returned as is without a query.
  // Errors name the server and the cause:
  //   ETIMEDOUT "no answer from 198.18.3.2:53 after 2 attempts for example.test A (...)"
  //   ENOENT    "NXDOMAIN for example.test"
  //   ENODATA   "no A or AAAA records for example.test"
  //   EIO       "SERVFAIL from 198.18.3.2:53 for example.test A", malformed answers
  //   EINVAL    a name that cannot be put in a query; ENXIO: no servers configured
  // Never throws. Concurrent resolves of one uncached name each query the server.
  asio::awaitable<Result<std::vector<IpAddress>>> resolve(std::string name);

  // One question of any type, for a sandbox's resolver (proxy/dns_server.h): egressd's own
  // query (fresh id and port, RD, no EDNS) to the servers in order; the first NOERROR or
  // NXDOMAIN answer is returned whole (and cached for its smallest record TTL, clamped, or
  // negativeTtl), else the last other rcode (SERVFAIL, REFUSED: not cached). TC answers
  // are retried over TCP. `name` as buildQuery takes it. Errors: EINVAL (a name that
  // cannot be put in a query), ENXIO (no servers), ETIMEDOUT (no server answered).
  asio::awaitable<Result<Forwarded>> forward(std::string name, uint16_t qtype);

  // The "nameserver" lines of a resolv.conf (IPv4 or IPv6, port 53; at most 3, as glibc
  // reads them; link-local addresses with a %zone are skipped) and its "options timeout:N
  // attempts:N". A missing or empty file yields no servers: resolve() then fails with a
  // message saying so rather than guessing at 127.0.0.1.
  static ResolverConfig fromResolvConf(const std::string& path = "/etc/resolv.conf");

  const ResolverConfig& config() const;
  void clearCache();
  size_t cacheSize() const;

 private:
  std::shared_ptr<detail::ResolverState> state_;
};

}  // namespace egressd::dns
