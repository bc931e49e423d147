#include "dns_test_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace egressd::dns::testing {

namespace {

void put16(std::vector<uint8_t>& out, uint16_t value) {
  out.push_back(static_cast<uint8_t>(value >> 8));
  out.push_back(static_cast<uint8_t>(value & 0xff));
}

void put32(std::vector<uint8_t>& out, uint32_t value) {
  put16(out, static_cast<uint16_t>(value >> 16));
  put16(out, static_cast<uint16_t>(value & 0xffff));
}

std::string lower(std::string text) {
  for (char& c : text) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
  }
  return text;
}

// Parses the header and question of a query (uncompressed, as every stub writes it).
bool parseQuery(const uint8_t* data, size_t length, Query& query) {
  if (length < 12) {
    return false;
  }
  query.id = static_cast<uint16_t>((data[0] << 8) | data[1]);
  size_t pos = 12;
  query.name.clear();
  while (pos < length && data[pos] != 0) {
    const size_t label = data[pos];
    if (label > 63 || pos + 1 + label > length) {
      return false;
    }
    if (!query.name.empty()) {
      query.name += '.';
    }
    query.name.append(reinterpret_cast<const char*>(data + pos + 1), label);
    pos += 1 + label;
  }
  if (pos + 5 > length) {
    return false;
  }
  query.qtype = static_cast<uint16_t>((data[pos + 1] << 8) | data[pos + 2]);
  return true;
}

bool readFully(int fd, uint8_t* data, size_t length) {
  size_t done = 0;
  while (done < length) {
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, 2000) <= 0) {
      return false;
    }
    const ssize_t n = ::read(fd, data + done, length - done);
    if (n <= 0) {
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

void writeFully(int fd, const uint8_t* data, size_t length) {
  size_t done = 0;
  while (done < length) {
    const ssize_t n = ::send(fd, data + done, length - done, MSG_NOSIGNAL);
    if (n <= 0) {
      return;
    }
    done += static_cast<size_t>(n);
  }
}

}  // namespace

void appendName(std::vector<uint8_t>& out, const std::string& name) {
  size_t start = 0;
  while (start < name.size()) {
    size_t end = name.find('.', start);
    if (end == std::string::npos) {
      end = name.size();
    }
    out.push_back(static_cast<uint8_t>(end - start));
    out.insert(out.end(), name.begin() + static_cast<std::ptrdiff_t>(start),
               name.begin() + static_cast<std::ptrdiff_t>(end));
    start = end + 1;
  }
  out.push_back(0);
}

std::vector<uint8_t> encode(const Response& response) {
  std::vector<uint8_t> out;
  put16(out, response.id);
  put16(out, response.flags);
  put16(out, 1);
  put16(out, static_cast<uint16_t>(response.answers.size()));
  put16(out, 0);
  put16(out, 0);
  appendName(out, response.qname);
  put16(out, response.qtype);
  put16(out, response.qclass);
  for (const Rr& rr : response.answers) {
    appendName(out, rr.owner);
    put16(out, rr.type);
    put16(out, rr.cls);
    put32(out, rr.ttl);
    put16(out, static_cast<uint16_t>(rr.rdata.size()));
    out.insert(out.end(), rr.rdata.begin(), rr.rdata.end());
  }
  return out;
}

std::vector<uint8_t> aRdata(const std::string& ipv4) {
  std::vector<uint8_t> out(4);
  if (inet_pton(AF_INET, ipv4.c_str(), out.data()) != 1) {
    throw std::invalid_argument(ipv4);
  }
  return out;
}

std::vector<uint8_t> aaaaRdata(const std::string& ipv6) {
  std::vector<uint8_t> out(16);
  if (inet_pton(AF_INET6, ipv6.c_str(), out.data()) != 1) {
    throw std::invalid_argument(ipv6);
  }
  return out;
}

std::vector<uint8_t> nameRdata(const std::string& name) {
  std::vector<uint8_t> out;
  appendName(out, name);
  return out;
}

Response answerTo(const Query& query, std::vector<Rr> answers, int rcode) {
  Response response;
  response.id = query.id;
  response.flags = static_cast<uint16_t>(0x8180 | (rcode & 0xf));
  response.qname = query.name;
  response.qtype = query.qtype;
  response.answers = std::move(answers);
  return response;
}

FakeDnsServer::FakeDnsServer(Handler handler) : handler_(std::move(handler)) {
  // UDP and TCP on the same port, like a real server; retry if TCP's twin is taken.
  for (int tries = 0; tries < 20 && port_ == 0; ++tries) {
    UniqueFd udp(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (!udp || ::bind(udp.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      throw std::runtime_error("binding the test DNS server's UDP socket");
    }
    socklen_t length = sizeof(addr);
    ::getsockname(udp.get(), reinterpret_cast<sockaddr*>(&addr), &length);
    UniqueFd tcp(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    const int one = 1;
    ::setsockopt(tcp.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(tcp.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(tcp.get(), 16) != 0) {
      continue;
    }
    udp_ = std::move(udp);
    tcp_ = std::move(tcp);
    port_ = ntohs(addr.sin_port);
  }
  if (port_ == 0) {
    throw std::runtime_error("no free UDP+TCP port pair for the test DNS server");
  }
  spoofUdp_.reset(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  int pipeFds[2];
  if (::pipe2(pipeFds, O_CLOEXEC) != 0) {
    throw std::runtime_error("pipe2");
  }
  stopRead_.reset(pipeFds[0]);
  stopWrite_.reset(pipeFds[1]);
  thread_ = std::thread([this] { run(); });
}

FakeDnsServer::~FakeDnsServer() {
  const char byte = 'x';
  [[maybe_unused]] ssize_t ignored = ::write(stopWrite_.get(), &byte, 1);
  thread_.join();
}

asio::ip::udp::endpoint FakeDnsServer::endpoint() const {
  return asio::ip::udp::endpoint(asio::ip::make_address_v4("127.0.0.1"), port_);
}

int FakeDnsServer::count(const std::string& name, uint16_t qtype, bool tcp) const {
  std::lock_guard lock(mutex_);
  auto it = counts_.find({lower(name), qtype + (tcp ? 1000 : 0)});
  return it == counts_.end() ? 0 : it->second;
}

int FakeDnsServer::total() const {
  std::lock_guard lock(mutex_);
  int sum = 0;
  for (const auto& [key, value] : counts_) {
    sum += value;
  }
  return sum;
}

void FakeDnsServer::record(const Query& query) {
  std::lock_guard lock(mutex_);
  ++counts_[{lower(query.name), query.qtype + (query.tcp ? 1000 : 0)}];
}

void FakeDnsServer::run() {
  while (true) {
    int timeoutMs = -1;
    const auto now = std::chrono::steady_clock::now();
    for (const Pending& item : pending_) {
      const auto wait =
          std::chrono::duration_cast<std::chrono::milliseconds>(item.due - now).count();
      const int waitMs = static_cast<int>(std::max<long long>(0, wait));
      timeoutMs = timeoutMs < 0 ? waitMs : std::min(timeoutMs, waitMs);
    }
    pollfd fds[3] = {
        {udp_.get(), POLLIN, 0}, {tcp_.get(), POLLIN, 0}, {stopRead_.get(), POLLIN, 0}};
    ::poll(fds, 3, timeoutMs);
    if (fds[2].revents != 0) {
      return;
    }
    const auto after = std::chrono::steady_clock::now();
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->due <= after) {
        ::sendto(udp_.get(), it->message.data(), it->message.size(), 0,
                 reinterpret_cast<const sockaddr*>(&it->peer), it->peerLength);
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
    if (fds[0].revents & POLLIN) {
      handleUdp();
    }
    if (fds[1].revents & POLLIN) {
      handleTcp();
    }
  }
}

void FakeDnsServer::handleUdp() {
  uint8_t buffer[4096];
  sockaddr_storage peer{};
  socklen_t peerLength = sizeof(peer);
  const ssize_t n = ::recvfrom(udp_.get(), buffer, sizeof(buffer), 0,
                               reinterpret_cast<sockaddr*>(&peer), &peerLength);
  Query query;
  if (n <= 0 || !parseQuery(buffer, static_cast<size_t>(n), query)) {
    return;
  }
  record(query);
  const Reply reply = handler_(query);
  for (const auto& message : reply.spoofed) {
    ::sendto(spoofUdp_.get(), message.data(), message.size(), 0,
             reinterpret_cast<const sockaddr*>(&peer), peerLength);
  }
  const auto due = std::chrono::steady_clock::now() + reply.delay;
  for (const auto& message : reply.messages) {
    pending_.push_back(Pending{due, message, peer, peerLength});
  }
  // Sent right away when there is no delay, in order.
  if (reply.delay.count() == 0) {
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->due <= due) {
        ::sendto(udp_.get(), it->message.data(), it->message.size(), 0,
                 reinterpret_cast<const sockaddr*>(&it->peer), it->peerLength);
        it = pending_.erase(it);
      } else {
        ++it;
      }
    }
  }
}

void FakeDnsServer::handleTcp() {
  UniqueFd conn(::accept4(tcp_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!conn) {
    return;
  }
  uint8_t prefix[2];
  if (!readFully(conn.get(), prefix, 2)) {
    return;
  }
  std::vector<uint8_t> message(static_cast<size_t>((prefix[0] << 8) | prefix[1]));
  if (!readFully(conn.get(), message.data(), message.size())) {
    return;
  }
  Query query;
  if (!parseQuery(message.data(), message.size(), query)) {
    return;
  }
  query.tcp = true;
  record(query);
  const Reply reply = handler_(query);
  for (const auto& answer : reply.messages) {
    const uint8_t length[2] = {static_cast<uint8_t>(answer.size() >> 8),
                               static_cast<uint8_t>(answer.size() & 0xff)};
    writeFully(conn.get(), length, 2);
    writeFully(conn.get(), answer.data(), answer.size());
  }
}

}  // namespace egressd::dns::testing
