// The resolver's TTL caches (see resolver_cache.h): lookups and stores under the cache mutex,
// TTL clamping, and the bound on the number of entries.
#include "dns/resolver_cache.h"

#include <algorithm>

namespace egressd::dns::detail {

namespace {

// Both caches: a live entry of `key` (an expired one is erased), and a bounded insert.
template <typename Map>
const typename Map::mapped_type* findLive(Map& map, const std::string& key,
                                          std::chrono::steady_clock::time_point now) {
  auto it = map.find(key);
  if (it == map.end()) {
    return nullptr;
  }
  if (it->second.expires <= now) {
    map.erase(it);
    return nullptr;
  }
  return &it->second;
}

template <typename Map>
void insertBounded(Map& map, const std::string& key, typename Map::mapped_type entry,
                   std::chrono::steady_clock::time_point now, size_t limit) {
  if (map.size() >= limit && map.find(key) == map.end()) {
    std::erase_if(map, [now](const auto& item) { return item.second.expires <= now; });
    if (map.size() >= limit) {
      // Still full of live entries (a flood of distinct names): drop an arbitrary tenth
      // rather than grow without bound or evict one entry per insert.
      const size_t keep = limit - std::max<size_t>(1, limit / 10);
      while (map.size() > keep) {
        map.erase(map.begin());
      }
    }
  }
  map[key] = std::move(entry);
}

}  // namespace

bool ResolverState::forwardCached(const std::string& key, Forwarded& out) {
  const auto now = config.clock();
  std::lock_guard lock(cacheMutex);
  const ForwardEntry* entry = findLive(forwardCache, key, now);
  if (entry == nullptr) {
    return false;
  }
  out.message = entry->message;
  out.answer = entry->answer;
  out.cached = true;
  return true;
}

void ResolverState::storeForward(const std::string& key, const Forwarded& forwarded) {
  uint32_t ttl = 0;
  const ParsedAnswer& a = forwarded.answer;
  if (a.truncated) {
    return;
  }
  if (a.rcode == kRcodeNoError && a.answerCount > 0) {
    ttl = std::clamp(a.minRecordTtl, config.minTtl, config.maxTtl);
    if (a.minRecordTtl == 0) {
      return;  // TTL 0 means "do not cache"
    }
  } else if (a.rcode == kRcodeNoError || a.rcode == kRcodeNxDomain) {
    ttl = config.negativeTtl;
  }
  if (ttl == 0 || config.maxCacheEntries == 0) {
    return;
  }
  const auto now = config.clock();
  std::lock_guard lock(cacheMutex);
  insertBounded(forwardCache, key,
                ForwardEntry{forwarded.message, forwarded.answer, now + std::chrono::seconds(ttl)},
                now, config.maxCacheEntries);
}

bool ResolverState::cached(const std::string& key, Lookup& out) {
  const auto now = config.clock();
  std::lock_guard lock(cacheMutex);
  const CacheEntry* entry = findLive(cache, key, now);
  if (entry == nullptr) {
    return false;
  }
  out.outcome = entry->outcome;
  out.addresses = entry->addresses;
  return true;
}

void ResolverState::store(const std::string& key, const Lookup& lookup) {
  uint32_t ttl = 0;
  switch (lookup.outcome) {
    case Lookup::Outcome::kAddresses:
      ttl = std::clamp(lookup.ttl, config.minTtl, config.maxTtl);
      break;
    case Lookup::Outcome::kNxDomain:
    case Lookup::Outcome::kNoData:
      ttl = config.negativeTtl;
      break;
    case Lookup::Outcome::kFailure:
      return;
  }
  if (ttl == 0 || config.maxCacheEntries == 0) {
    return;
  }
  const auto now = config.clock();
  CacheEntry entry{lookup.addresses, lookup.outcome, now + std::chrono::seconds(ttl)};

  std::lock_guard lock(cacheMutex);
  insertBounded(cache, key, std::move(entry), now, config.maxCacheEntries);
}

}  // namespace egressd::dns::detail
