// Test helpers for the DNS unit tests: a response encoder (no compression unless a test
// writes pointers itself) and a scripted DNS server on 127.0.0.1 (UDP and TCP on one port)
// running in a thread, so the Resolver is exercised over real sockets.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/udp.hpp>

#include "common/unique_fd.h"

namespace egressd::dns::testing {

struct Rr {
  std::string owner;
  uint16_t type = 1;
  uint32_t ttl = 60;
  std::vector<uint8_t> rdata;
  uint16_t cls = 1;
};

struct Response {
  uint16_t id = 0;
  uint16_t flags = 0x8180;  // QR, RD, RA, NOERROR
  std::string qname;
  uint16_t qtype = 1;
  uint16_t qclass = 1;
  std::vector<Rr> answers;
};

void appendName(std::vector<uint8_t>& out, const std::string& name);
std::vector<uint8_t> encode(const Response& response);
std::vector<uint8_t> aRdata(const std::string& ipv4);
std::vector<uint8_t> aaaaRdata(const std::string& ipv6);
std::vector<uint8_t> nameRdata(const std::string& name);

// A response to `query` (its id and question) with `answers` and `rcode`.
struct Query {
  uint16_t id = 0;
  std::string name;  // as the client wrote it (case preserved)
  uint16_t qtype = 0;
  bool tcp = false;
};
Response answerTo(const Query& query, std::vector<Rr> answers = {}, int rcode = 0);

// What the server does with one query.
struct Reply {
  std::vector<std::vector<uint8_t>> messages;  // sent in order; none = stay silent
  // Sent first from a different socket (another source port), as an off-path spoofer would.
  std::vector<std::vector<uint8_t>> spoofed;
  std::chrono::milliseconds delay{0};  // before the messages go out
};

class FakeDnsServer {
 public:
  using Handler = std::function<Reply(const Query&)>;

  explicit FakeDnsServer(Handler handler);
  ~FakeDnsServer();
  FakeDnsServer(const FakeDnsServer&) = delete;
  FakeDnsServer& operator=(const FakeDnsServer&) = delete;

  asio::ip::udp::endpoint endpoint() const;
  uint16_t port() const { return port_; }
  // Queries seen for (name lowercased, qtype), over `tcp` or UDP.
  int count(const std::string& name, uint16_t qtype, bool tcp = false) const;
  int total() const;

 private:
  struct Pending {
    std::chrono::steady_clock::time_point due;
    std::vector<uint8_t> message;
    sockaddr_storage peer;
    socklen_t peerLength;
  };

  void run();
  void handleUdp();
  void handleTcp();
  void record(const Query& query);

  Handler handler_;
  UniqueFd udp_;
  UniqueFd spoofUdp_;
  UniqueFd tcp_;
  UniqueFd stopRead_;
  UniqueFd stopWrite_;
  uint16_t port_ = 0;
  std::vector<Pending> pending_;
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, int> counts_;  // key: name, qtype (+1000 for TCP)
  std::thread thread_;
};

// Runs `awaitable` to completion on `io` (which must have nothing else queued forever).
template <typename T>
T runOn(asio::io_context& io, asio::awaitable<T> awaitable) {
  std::optional<T> result;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { result.emplace(co_await std::move(awaitable)); },
      asio::detached);
  io.restart();
  io.run();
  return std::move(*result);
}

}  // namespace egressd::dns::testing
