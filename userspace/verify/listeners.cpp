#include "verify/listeners.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/netns.h"

namespace egressd::verify {
namespace {

constexpr size_t kMaxRecorded = 16 * 1024;  // per connection: heads, tokens; never bodies

Result<UniqueFd> bindSocket(const std::string& ip, uint16_t port, bool udp) {
  sockaddr_storage ss{};
  socklen_t len = 0;
  auto* in4 = reinterpret_cast<sockaddr_in*>(&ss);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (::inet_pton(AF_INET, ip.c_str(), &in4->sin_addr) == 1) {
    in4->sin_family = AF_INET;
    in4->sin_port = htons(port);
    len = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, ip.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    len = sizeof(sockaddr_in6);
  } else {
    return Error(EINVAL, "listener address " + ip);
  }
  UniqueFd fd(
      ::socket(ss.ss_family, (udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) {
    return lastSystemError("listener socket for " + ip);
  }
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (ss.ss_family == AF_INET6) {
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
  }
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
    return lastSystemError("bind listener " + ip + ":" + std::to_string(port));
  }
  if (!udp && ::listen(fd.get(), 64) != 0) {
    return lastSystemError("listen " + ip + ":" + std::to_string(port));
  }
  return fd;
}

uint16_t boundPort(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (ss.ss_family == AF_INET) {
    return ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  }
  return ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
}

}  // namespace

Listeners::~Listeners() {
  stop();
}

Result<uint16_t> Listeners::add(const std::string& netnsPath, const std::string& ip, uint16_t port,
                                ListenerKind kind, const std::string& role) {
  auto guard = NetnsGuard::enter(netnsPath);
  if (!guard.ok()) {
    return std::move(guard).error().wrap("listener " + role);
  }
  const bool dns = kind == ListenerKind::kDns;
  for (bool udp : {false, true}) {
    const bool wanted = dns || (udp == (kind == ListenerKind::kUdp));
    if (!wanted) {
      continue;
    }
    auto fd = bindSocket(ip, port, udp);
    if (!fd.ok()) {
      return std::move(fd).error();
    }
    // A port-0 DNS listener would get two ports; the callers give DNS a fixed port.
    const uint16_t bound = boundPort(fd->get());
    Socket s;
    s.fd = std::move(*fd);
    s.kind = kind;
    s.udp = udp;
    s.listening = !udp;
    s.label = role + ":" + std::to_string(bound) + (udp ? "/udp" : "/tcp");
    sockets_.push_back(std::move(s));
    port = bound;
  }
  return port;
}

Status Listeners::start() {
  wake_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!wake_) {
    return lastSystemError("eventfd for the listeners");
  }
  thread_ = std::thread([this] { loop(); });
  return okStatus();
}

void Listeners::stop() {
  if (!thread_.joinable()) {
    return;
  }
  stopping_ = true;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof(one));
  thread_.join();
  sockets_.clear();
}

size_t Listeners::record(const std::string& label, const std::string& bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  received_.emplace_back(label, bytes);
  return received_.size() - 1;
}

void Listeners::updateRecord(size_t index, const std::string& bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  received_[index].second = bytes;
}

std::vector<std::string> Listeners::whereSeen(const std::string& token) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<std::string> out;
  for (const auto& [label, bytes] : received_) {
    if (bytes.find(token) != std::string::npos &&
        std::find(out.begin(), out.end(), label) == out.end()) {
      out.push_back(label);
    }
  }
  return out;
}

bool Listeners::labelMatches(const std::string& label, const std::string& role, uint16_t port,
                             bool udp) {
  const std::string proto = udp ? "/udp" : "/tcp";
  if (!label.starts_with(role + ":") || !label.ends_with(proto)) {
    return false;
  }
  if (port == 0) {
    return true;
  }
  return label == role + ":" + std::to_string(port) + proto;
}

std::string Listeners::dnsAnswerFor(const std::string& q) const {
  if (q.size() < 12) {
    return "";
  }
  size_t pos = 12;
  while (pos < q.size() && q[pos] != 0) {
    pos += 1 + static_cast<unsigned char>(q[pos]);
  }
  if (pos + 5 > q.size()) {
    return "";
  }
  const size_t questionEnd = pos + 5;
  const bool typeA = q[pos + 1] == 0 && q[pos + 2] == 1;
  std::string r = q.substr(0, 2);
  r += std::string("\x81\x80\x00\x01\x00", 5);
  r += static_cast<char>(typeA ? 1 : 0);
  r += std::string("\x00\x00\x00\x00", 4);
  r += q.substr(12, questionEnd - 12);
  if (typeA) {
    in_addr a{};
    ::inet_pton(AF_INET, dnsAnswer_.c_str(), &a);
    r += std::string("\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x1e\x00\x04", 12);
    r.append(reinterpret_cast<const char*>(&a.s_addr), 4);
  }
  return r;
}

void Listeners::onReadable(size_t index, std::vector<Socket>& added) {
  Socket& s = sockets_[index];
  char buf[4096];
  if (s.udp) {
    sockaddr_storage from{};
    socklen_t fromLen = sizeof(from);
    ssize_t n =
        ::recvfrom(s.fd.get(), buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &fromLen);
    if (n <= 0) {
      return;
    }
    std::string data(buf, static_cast<size_t>(n));
    record(s.label, data);
    if (s.kind == ListenerKind::kDns) {
      std::string answer = dnsAnswerFor(data);
      if (!answer.empty()) {
        ::sendto(s.fd.get(), answer.data(), answer.size(), 0, reinterpret_cast<sockaddr*>(&from),
                 fromLen);
      }
    }
    return;
  }
  if (s.listening) {
    UniqueFd conn(::accept4(s.fd.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!conn) {
      return;
    }
    Socket c;
    c.fd = std::move(conn);
    c.kind = s.kind;
    c.label = s.label;
    c.record = record(s.label, "");
    added.push_back(std::move(c));
    return;
  }
  ssize_t n = ::recv(s.fd.get(), buf, sizeof(buf), 0);
  if (n <= 0) {
    s.fd.reset();
    return;
  }
  s.buffer.append(buf, static_cast<size_t>(n));
  updateRecord(s.record, s.buffer);
  if (s.kind == ListenerKind::kHttp && !s.answered &&
      s.buffer.find("\r\n\r\n") != std::string::npos) {
    static const std::string kResponse =
        "HTTP/1.1 200 OK\r\nContent-Length: 15\r\nConnection: close\r\n\r\negressd-verify\n";
    [[maybe_unused]] ssize_t w =
        ::send(s.fd.get(), kResponse.data(), kResponse.size(), MSG_NOSIGNAL);
    s.answered = true;
  }
  if (s.kind == ListenerKind::kDns && !s.answered && s.buffer.size() >= 2) {
    size_t len =
        (static_cast<unsigned char>(s.buffer[0]) << 8) | static_cast<unsigned char>(s.buffer[1]);
    if (s.buffer.size() >= 2 + len) {
      std::string answer = dnsAnswerFor(s.buffer.substr(2, len));
      std::string framed;
      framed += static_cast<char>(answer.size() >> 8);
      framed += static_cast<char>(answer.size() & 0xff);
      framed += answer;
      [[maybe_unused]] ssize_t w = ::send(s.fd.get(), framed.data(), framed.size(), MSG_NOSIGNAL);
      s.answered = true;
    }
  }
  if (s.buffer.size() > kMaxRecorded) {
    s.fd.reset();
  }
}

void Listeners::loop() {
  while (!stopping_) {
    std::vector<pollfd> fds;
    fds.push_back({wake_.get(), POLLIN, 0});
    for (const Socket& s : sockets_) {
      fds.push_back({s.fd.get(), POLLIN, 0});
    }
    if (::poll(fds.data(), fds.size(), 500) <= 0) {
      continue;
    }
    std::vector<Socket> added;
    for (size_t i = 1; i < fds.size(); ++i) {
      if ((fds[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        onReadable(i - 1, added);
      }
    }
    std::erase_if(sockets_, [](const Socket& s) { return !s.fd; });
    for (Socket& s : added) {
      sockets_.push_back(std::move(s));
    }
  }
}

}  // namespace egressd::verify
