// The listeners of verify's test network: plain TCP, HTTP, TLS (a TCP reader), UDP and DNS
// (UDP and TCP) on addresses inside namespaces verify created, plus one TCP listener on
// loopback in the sandbox's own netns. They record every byte they receive, so the
// battery can ask "did case X's token arrive at listener Y" (server-side evidence, which a
// lying client result cannot fake). The DNS listener answers every A query with the origin
// address, so egressd's proxy resolves allowed names to the origin.
// One thread polls every socket; sockets are created in their netns (a socket keeps the
// namespace it was created in), so the thread itself needs none.
#pragma once

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"

namespace egressd::verify {

enum class ListenerKind { kTcp, kHttp, kUdp, kDns };

class Listeners {
 public:
  Listeners() = default;
  ~Listeners();
  Listeners(const Listeners&) = delete;
  Listeners& operator=(const Listeners&) = delete;

  // Binds `ip`:`port` (port 0 = any; the bound port is returned) in `netnsPath`. `role` and
  // the port name the listener in sink labels ("other:7001/tcp"). kDns binds UDP and TCP.
  Result<uint16_t> add(const std::string& netnsPath, const std::string& ip, uint16_t port,
                       ListenerKind kind, const std::string& role);
  // The A record the DNS listeners answer with (IPv4 text).
  void setDnsAnswer(const std::string& ipv4) { dnsAnswer_ = ipv4; }
  Status start();
  void stop();

  // Labels ("role:port/proto") of the listeners that received `token`.
  std::vector<std::string> whereSeen(const std::string& token) const;
  // The label matches role (and port, unless 0) and protocol.
  static bool labelMatches(const std::string& label, const std::string& role, uint16_t port,
                           bool udp);

 private:
  struct Socket {
    UniqueFd fd;
    ListenerKind kind;
    bool udp = false;
    bool listening = false;
    std::string label;
    std::string buffer;  // accepted TCP connections: bytes so far
    size_t record = 0;   // accepted TCP connections: their entry in received_
    bool answered = false;
  };
  void loop();
  void onReadable(size_t index, std::vector<Socket>& added);
  // Appends an entry (bytes of one datagram or connection) and returns its index.
  size_t record(const std::string& label, const std::string& bytes);
  void updateRecord(size_t index, const std::string& bytes);
  std::string dnsAnswerFor(const std::string& query) const;

  std::vector<Socket> sockets_;
  std::string dnsAnswer_ = "0.0.0.0";
  UniqueFd wake_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  std::vector<std::pair<std::string, std::string>> received_;  // label, bytes
};

}  // namespace egressd::verify
