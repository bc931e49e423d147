// Idle upstream connections kept for the next request to the same host and port, across
// client connections (a sandbox opening a connection per request would otherwise cost an
// upstream connect per request). One pool per event-loop thread: no locks. Keys include
// the sandbox, so a connection opened for one sandbox never carries another's requests.
#pragma once

#include <asio/ip/tcp.hpp>
#include <chrono>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/ip_address.h"

namespace egressd::proxy {

class UpstreamPool {
 public:
  struct Entry {
    asio::ip::tcp::socket socket;
    std::string endpointText;  // "198.18.3.3:80", for audit lines
    IpAddress addr;            // re-checked against the request's allowed addresses
    std::chrono::steady_clock::time_point idleSince;
  };

  static constexpr size_t kMaxPerKey = 64;
  static constexpr size_t kMaxTotal = 4096;
  static constexpr std::chrono::seconds kMaxIdle{30};

  // An idle connection for `key` that the peer has not closed meanwhile, if any.
  std::optional<Entry> take(const std::string& key);
  // Keeps `entry` for `key` (or closes it when the pool is full).
  void put(const std::string& key, Entry entry);
  size_t size() const { return total_; }

 private:
  void dropExpired(std::chrono::steady_clock::time_point now);

  std::unordered_map<std::string, std::vector<Entry>> idle_;
  size_t total_ = 0;
  std::chrono::steady_clock::time_point lastSweep_{};
};

}  // namespace egressd::proxy
