// Idle upstream connections kept for the next request to the same host and port, across
// client connections (a sandbox opening a connection per request would otherwise cost an
// upstream connect - and for HTTPS a TLS handshake - per request). One pool per event-loop
// thread and connection kind: no locks. Keys include the sandbox, so a connection opened
// for one sandbox never carries another's requests.
#pragma once

#include <sys/socket.h>

#include <asio/ip/tcp.hpp>
#include <cerrno>
#include <chrono>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/ip_address.h"
#include "proxy/stream_ops.h"

namespace egressd::proxy {

template <typename Stream>
class BasicUpstreamPool {
 public:
  struct Entry {
    Stream socket;
    std::string endpointText;  // "198.18.3.3:80", for audit lines
    IpAddress addr;            // re-checked against the request's allowed addresses
    std::chrono::steady_clock::time_point idleSince;
  };

  static constexpr size_t kMaxPerKey = 64;
  static constexpr size_t kMaxTotal = 4096;
  static constexpr std::chrono::seconds kMaxIdle{30};

  // An idle connection for `key` that the peer has not closed meanwhile, if any.
  std::optional<Entry> take(const std::string& key) {
    const auto now = std::chrono::steady_clock::now();
    auto it = idle_.find(key);
    if (it == idle_.end()) {
      return std::nullopt;
    }
    auto& entries = it->second;
    while (!entries.empty()) {
      Entry entry = std::move(entries.back());
      entries.pop_back();
      --total_;
      if (now - entry.idleSince < kMaxIdle && stillIdle(entry.socket)) {
        if (entries.empty()) {
          idle_.erase(it);
        }
        return entry;
      }
      closeStream(entry.socket);
    }
    idle_.erase(it);
    return std::nullopt;
  }

  // Keeps `entry` for `key` (or closes it when the pool is full).
  void put(const std::string& key, Entry entry) {
    const auto now = std::chrono::steady_clock::now();
    if (now - lastSweep_ > kMaxIdle) {
      dropExpired(now);
      lastSweep_ = now;
    }
    auto& entries = idle_[key];
    if (entries.size() >= kMaxPerKey || total_ >= kMaxTotal) {
      closeStream(entry.socket);
      return;
    }
    entry.idleSince = now;
    entries.push_back(std::move(entry));
    ++total_;
  }

  size_t size() const { return total_; }

 private:
  // An idle HTTP connection has nothing to read: readable means the server closed it (or
  // sent bytes nobody asked for - for TLS, also its close_notify); either way it cannot
  // carry another request.
  static bool stillIdle(Stream& stream) {
    char byte;
    const ssize_t n =
        ::recv(lowestLayer(stream).native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  void dropExpired(std::chrono::steady_clock::time_point now) {
    for (auto it = idle_.begin(); it != idle_.end();) {
      auto& entries = it->second;
      std::erase_if(entries, [&](Entry& e) {
        if (now - e.idleSince < kMaxIdle) {
          return false;
        }
        closeStream(e.socket);
        --total_;
        return true;
      });
      it = entries.empty() ? idle_.erase(it) : std::next(it);
    }
  }

  std::unordered_map<std::string, std::vector<Entry>> idle_;
  size_t total_ = 0;
  std::chrono::steady_clock::time_point lastSweep_{};
};

using UpstreamPool = BasicUpstreamPool<asio::ip::tcp::socket>;
using TlsUpstreamPool = BasicUpstreamPool<TlsStream>;

// The pools of one event-loop thread.
struct UpstreamPools {
  UpstreamPool plain;
  TlsUpstreamPool tls;
};

}  // namespace egressd::proxy
