#include "proxy/dns_limits.h"

#include <libpsl.h>

#include <algorithm>

namespace egressd::proxy {

namespace {

constexpr auto kWindow = std::chrono::seconds(60);
// Domains tracked at once before expired windows are swept (the qps limit bounds how many
// a minute can add).
constexpr size_t kSweepAt = 4096;

std::string lastTwoLabels(std::string_view name) {
  const size_t last = name.rfind('.');
  if (last == std::string_view::npos || last == 0) {
    return std::string(name);
  }
  const size_t previous = name.rfind('.', last - 1);
  return std::string(previous == std::string_view::npos ? name : name.substr(previous + 1));
}

}  // namespace

std::string registeredDomain(std::string_view name) {
  static const psl_ctx_t* psl = [] {
    const psl_ctx_t* latest = psl_latest(nullptr);
    return latest != nullptr ? latest : psl_builtin();
  }();
  std::string text(name);
  if (psl != nullptr) {
    if (const char* domain = psl_registrable_domain(psl, text.c_str())) {
      return domain;
    }
    return text;  // a public suffix itself (or a single label)
  }
  return lastTwoLabels(name);  // no list at all: eTLD+1 approximated by the last two labels
}

QueryLimiter::QueryLimiter(Clock clock) : clock_(std::move(clock)) {}

std::string_view QueryLimiter::admitQuery(const policy::DnsLimits& limits) {
  const auto now = clock_();
  std::lock_guard lock(mutex_);
  const double capacity = static_cast<double>(std::max(limits.burst, limits.qps));
  if (!started_) {
    started_ = true;
    tokens_ = capacity;
    refilled_ = now;
    bytesWindow_ = now;
  }
  const std::chrono::duration<double> elapsed = now - refilled_;
  refilled_ = now;
  tokens_ = std::min(capacity, tokens_ + elapsed.count() * limits.qps);
  if (tokens_ < 1.0) {
    return "rate_limited";
  }
  tokens_ -= 1.0;
  return "";
}

std::string_view QueryLimiter::admitForward(const policy::DnsLimits& limits, std::string_view name,
                                            size_t bytes) {
  const auto now = clock_();
  std::string domain = registeredDomain(name);
  std::lock_guard lock(mutex_);
  if (!started_) {
    started_ = true;
    tokens_ = static_cast<double>(std::max(limits.burst, limits.qps));
    refilled_ = now;
    bytesWindow_ = now;
  }
  if (now - bytesWindow_ >= kWindow) {
    bytesWindow_ = now;
    bytes_ = 0;
  }
  if (bytes_ + bytes > limits.queryBytesPerMinute) {
    return "query_bytes_limited";
  }
  if (domains_.size() >= kSweepAt) {
    std::erase_if(domains_, [now](const auto& item) { return now - item.second.start >= kWindow; });
  }
  DomainWindow& window = domains_[domain];
  if (window.names.empty() || now - window.start >= kWindow) {
    window.start = now;
    window.names.clear();
  }
  const std::string key(name);
  if (window.names.count(key) == 0) {
    if (window.names.size() >= limits.uniqueNamesPerMinute) {
      return "unique_names_limited";
    }
    window.names.insert(key);
  }
  bytes_ += bytes;
  return "";
}

}  // namespace egressd::proxy
