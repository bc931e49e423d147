// Internal to egressd_dns. The resolver's shared state (config and caches, kept alive by every
// resolve() in progress) and its TTL caches: answers kept for their TTL clamped to
// [minTtl, maxTtl], negative answers for negativeTtl, TTL 0 and truncated answers never,
// and a bounded size (expired entries go first, then an arbitrary tenth).
#pragma once

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/ip_address.h"
#include "dns/message.h"
#include "dns/resolver.h"

namespace egressd::dns {

// One (name, type) lookup's result, as cached and as combined by resolve().
struct Lookup {
  enum class Outcome { kAddresses, kNxDomain, kNoData, kFailure };
  Outcome outcome = Outcome::kFailure;
  std::vector<IpAddress> addresses;
  uint32_t ttl = 0;
  int errorCode = EIO;
  std::string error;
};

// Everything a resolve() needs; shared with every resolve() in progress.
namespace detail {
struct ResolverState {
  struct CacheEntry {
    std::vector<IpAddress> addresses;
    Lookup::Outcome outcome = Lookup::Outcome::kNoData;
    std::chrono::steady_clock::time_point expires;
  };

  ResolverConfig config;
  mutable std::mutex cacheMutex;
  std::unordered_map<std::string, CacheEntry> cache;
  // forward(): whole answers by "TYPE name", for the sandboxes' own queries.
  struct ForwardEntry {
    std::shared_ptr<const std::vector<uint8_t>> message;
    ParsedAnswer answer;
    std::chrono::steady_clock::time_point expires;
  };
  std::unordered_map<std::string, ForwardEntry> forwardCache;

  // forward()'s cache, by "TYPE name".
  bool forwardCached(const std::string& key, Forwarded& out);
  void storeForward(const std::string& key, const Forwarded& forwarded);
  // resolve()'s cache, by "TYPE name" (A and AAAA).
  bool cached(const std::string& key, Lookup& out);
  void store(const std::string& key, const Lookup& lookup);
};
}  // namespace detail

}  // namespace egressd::dns
