#include "proxy/upstream_pool.h"

#include <sys/socket.h>

#include <cerrno>

namespace egressd::proxy {

namespace {

// An idle HTTP connection has nothing to read: readable means the server closed it (or
// sent bytes nobody asked for); either way it cannot carry another request.
bool stillIdle(asio::ip::tcp::socket& socket) {
  char byte;
  const ssize_t n = ::recv(socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

std::optional<UpstreamPool::Entry> UpstreamPool::take(const std::string& key) {
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
    asio::error_code ignored;
    entry.socket.close(ignored);
  }
  idle_.erase(it);
  return std::nullopt;
}

void UpstreamPool::put(const std::string& key, Entry entry) {
  const auto now = std::chrono::steady_clock::now();
  if (now - lastSweep_ > kMaxIdle) {
    dropExpired(now);
    lastSweep_ = now;
  }
  auto& entries = idle_[key];
  if (entries.size() >= kMaxPerKey || total_ >= kMaxTotal) {
    asio::error_code ignored;
    entry.socket.close(ignored);
    return;
  }
  entry.idleSince = now;
  entries.push_back(std::move(entry));
  ++total_;
}

void UpstreamPool::dropExpired(std::chrono::steady_clock::time_point now) {
  for (auto it = idle_.begin(); it != idle_.end();) {
    auto& entries = it->second;
    std::erase_if(entries, [&](Entry& e) {
      if (now - e.idleSince < kMaxIdle) {
        return false;
      }
      asio::error_code ignored;
      e.socket.close(ignored);
      --total_;
      return true;
    });
    it = entries.empty() ? idle_.erase(it) : std::next(it);
  }
}

}  // namespace egressd::proxy
