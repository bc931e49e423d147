// Per-sandbox exfiltration limits of egressd's resolver (policy dns.limits, docs/dns.md): a
// token bucket over every query, and, over the queries egressd would forward, distinct
// names per registered domain per minute and query bytes per minute. One QueryLimiter per
// sandbox; the limits are passed on each call, so a policy change applies to the next query.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "policy/policy.h"

namespace egressd::proxy {

// The registered domain (eTLD+1) of a normalized name, from the Public Suffix List (libpsl:
// the newer of its built-in list and Debian's /usr/share/publicsuffix): "a.b.example.co.uk"
// -> "example.co.uk". A name that is itself a public suffix, or has one label, is its own.
std::string registeredDomain(std::string_view name);

class QueryLimiter {
 public:
  using Clock = std::function<std::chrono::steady_clock::time_point()>;
  explicit QueryLimiter(Clock clock = std::chrono::steady_clock::now);

  // Every query takes a token: qps per second, up to `burst` saved. "" = admitted, else the
  // reason ("rate_limited").
  std::string_view admitQuery(const policy::DnsLimits& limits);
  // A query egressd would forward (`name` normalized, `bytes` the size of egressd's query):
  // "" = admitted and counted, else "unique_names_limited" / "query_bytes_limited". A name
  // already seen in the current minute of its registered domain does not count again.
  std::string_view admitForward(const policy::DnsLimits& limits, std::string_view name,
                                size_t bytes);

 private:
  struct DomainWindow {
    std::chrono::steady_clock::time_point start;
    std::unordered_set<std::string> names;
  };
  Clock clock_;
  std::mutex mutex_;
  bool started_ = false;
  double tokens_ = 0;
  std::chrono::steady_clock::time_point refilled_;
  std::chrono::steady_clock::time_point bytesWindow_;
  uint64_t bytes_ = 0;
  std::unordered_map<std::string, DomainWindow> domains_;
};

}  // namespace egressd::proxy
