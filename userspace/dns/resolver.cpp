// Every network operation races a deadline with Asio's awaitable `||`, which cancels the
// loser and resumes only once both have finished, so no handler outlives the socket it
// refers to. Operations use as_tuple: I/O errors are values here, never exceptions.
#include "dns/resolver.h"

#include <sys/random.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <fstream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <span>
#include <sstream>
#include <tuple>
#include <unordered_map>
#include <utility>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "common/ascii.h"
#include "dns/message.h"
#include "dns/resolver_cache.h"

namespace egressd::dns {

using asio::experimental::awaitable_operators::operator||;
using asio::experimental::awaitable_operators::operator&&;

namespace {

constexpr auto kAsTuple = asio::experimental::as_tuple(asio::use_awaitable);
constexpr size_t kMaxResolvConfServers = 3;  // glibc's MAXNS

// Query ids come from the kernel's CSPRNG: an off-path attacker must guess id and port.
uint16_t randomQueryId() {
  thread_local std::array<uint8_t, 256> pool;
  thread_local size_t used = pool.size();
  if (used + 2 > pool.size()) {
    if (getrandom(pool.data(), pool.size(), 0) != static_cast<ssize_t>(pool.size())) {
      std::random_device device;
      for (uint8_t& byte : pool) {
        byte = static_cast<uint8_t>(device());
      }
    }
    used = 0;
  }
  const auto id = static_cast<uint16_t>((pool[used] << 8) | pool[used + 1]);
  used += 2;
  return id;
}

std::string endpointText(const asio::ip::udp::endpoint& endpoint) {
  return fromAsioAddress(endpoint.address()).toString(endpoint.port());
}

std::string lowercaseWithoutDot(std::string name) {
  name = toLowerAscii(name);
  if (!name.empty() && name.back() == '.') {
    name.pop_back();
  }
  return name;
}

// The outcome of one query to one server.
struct Exchange {
  bool answered = false;
  ParsedAnswer answer;
  std::vector<uint8_t> message;  // the answer as received
  std::string failure;           // when !answered: "timed out after 2000 ms", "connection refused"
};

Exchange noAnswer(std::string failure) {
  Exchange exchange;
  exchange.failure = std::move(failure);
  return exchange;
}

std::string timeoutText(std::chrono::milliseconds timeout) {
  return "timed out after " + std::to_string(timeout.count()) + " ms";
}

asio::awaitable<Exchange> udpExchange(asio::ip::udp::endpoint server, uint16_t id, std::string name,
                                      uint16_t qtype, std::chrono::milliseconds timeout) {
  const std::vector<uint8_t> query = buildQuery(id, name, qtype);
  auto executor = co_await asio::this_coro::executor;
  asio::ip::udp::socket socket(executor);
  std::error_code error;
  socket.open(server.protocol(), error);
  if (error) {
    co_return noAnswer("opening a UDP socket: " + error.message());
  }
  // A connected socket gets a fresh random ephemeral port and the kernel drops datagrams
  // from any other source; the sender check below is the belt to those braces.
  socket.connect(server, error);
  if (error) {
    co_return noAnswer("connecting a UDP socket: " + error.message());
  }
  asio::steady_timer deadline(executor, timeout);
  auto sent =
      co_await (socket.async_send(asio::buffer(query), kAsTuple) || deadline.async_wait(kAsTuple));
  if (sent.index() == 1) {
    co_return noAnswer(timeoutText(timeout));
  }
  if (auto [sendError, bytes] = std::get<0>(sent); sendError) {
    co_return noAnswer("sending: " + sendError.message());
  }

  std::vector<uint8_t> buffer(65536);
  std::string ignored;
  while (true) {
    asio::ip::udp::endpoint sender;
    auto received = co_await (socket.async_receive_from(asio::buffer(buffer), sender, kAsTuple) ||
                              deadline.async_wait(kAsTuple));
    if (received.index() == 1) {
      co_return noAnswer(timeoutText(timeout) +
                         (ignored.empty() ? "" : "; ignored a reply: " + ignored));
    }
    auto [receiveError, length] = std::get<0>(received);
    if (receiveError) {
      co_return noAnswer(receiveError.message());  // e.g. ECONNREFUSED: nothing listens
    }
    if (sender != server) {
      continue;
    }
    auto parsed = parseResponse(std::span<const uint8_t>(buffer.data(), length), id, name, qtype);
    if (!parsed.ok()) {
      ignored = parsed.error().message();  // forged, late or garbled: keep waiting
      continue;
    }
    Exchange exchange;
    exchange.answered = true;
    exchange.answer = std::move(parsed).value();
    exchange.message.assign(buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(length));
    co_return exchange;
  }
}

asio::awaitable<Exchange> tcpExchange(asio::ip::udp::endpoint server, uint16_t id, std::string name,
                                      uint16_t qtype, std::chrono::milliseconds timeout) {
  const std::vector<uint8_t> query = buildQuery(id, name, qtype);
  auto executor = co_await asio::this_coro::executor;
  asio::ip::tcp::socket socket(executor);
  asio::steady_timer deadline(executor, timeout);
  const asio::ip::tcp::endpoint endpoint(server.address(), server.port());

  auto connected =
      co_await (socket.async_connect(endpoint, kAsTuple) || deadline.async_wait(kAsTuple));
  if (connected.index() == 1) {
    co_return noAnswer("TCP " + timeoutText(timeout));
  }
  if (auto [connectError] = std::get<0>(connected); connectError) {
    co_return noAnswer("TCP connect: " + connectError.message());
  }

  std::vector<uint8_t> framed;
  framed.reserve(query.size() + 2);
  framed.push_back(static_cast<uint8_t>(query.size() >> 8));
  framed.push_back(static_cast<uint8_t>(query.size() & 0xff));
  framed.insert(framed.end(), query.begin(), query.end());
  auto written = co_await (asio::async_write(socket, asio::buffer(framed), kAsTuple) ||
                           deadline.async_wait(kAsTuple));
  if (written.index() == 1) {
    co_return noAnswer("TCP " + timeoutText(timeout));
  }
  if (auto [writeError, bytes] = std::get<0>(written); writeError) {
    co_return noAnswer("TCP send: " + writeError.message());
  }

  std::array<uint8_t, 2> lengthPrefix{};
  auto header = co_await (asio::async_read(socket, asio::buffer(lengthPrefix), kAsTuple) ||
                          deadline.async_wait(kAsTuple));
  if (header.index() == 1) {
    co_return noAnswer("TCP " + timeoutText(timeout));
  }
  if (auto [readError, bytes] = std::get<0>(header); readError) {
    co_return noAnswer("TCP receive: " + readError.message());
  }
  std::vector<uint8_t> message(static_cast<size_t>((lengthPrefix[0] << 8) | lengthPrefix[1]));
  auto body = co_await (asio::async_read(socket, asio::buffer(message), kAsTuple) ||
                        deadline.async_wait(kAsTuple));
  if (body.index() == 1) {
    co_return noAnswer("TCP " + timeoutText(timeout));
  }
  if (auto [readError, bytes] = std::get<0>(body); readError) {
    co_return noAnswer("TCP receive: " + readError.message());
  }
  auto parsed = parseResponse(message, id, name, qtype);
  if (!parsed.ok()) {
    co_return noAnswer("TCP: " + parsed.error().message());
  }
  Exchange exchange;
  exchange.answered = true;
  exchange.answer = std::move(parsed).value();
  exchange.message = std::move(message);
  co_return exchange;
}

asio::awaitable<Lookup> queryServers(std::shared_ptr<detail::ResolverState> state, std::string name,
                                     uint16_t qtype);

}  // namespace

IpAddress fromAsioAddress(const asio::ip::address& address) {
  if (address.is_v4()) {
    const auto bytes = address.to_v4().to_bytes();
    return IpAddress::v4(bytes[0], bytes[1], bytes[2], bytes[3]);
  }
  const auto bytes = address.to_v6().to_bytes();
  sockaddr_in6 in6{};
  in6.sin6_family = AF_INET6;
  std::copy(bytes.begin(), bytes.end(), in6.sin6_addr.s6_addr);
  return IpAddress::fromSockaddr(reinterpret_cast<const sockaddr*>(&in6));
}

asio::ip::address toAsioAddress(const IpAddress& address) {
  if (address.family == AF_INET6) {
    asio::ip::address_v6::bytes_type bytes;
    std::copy(address.bytes.begin(), address.bytes.end(), bytes.begin());
    return asio::ip::address_v6(bytes);
  }
  return asio::ip::address_v4(asio::ip::address_v4::bytes_type{address.bytes[0], address.bytes[1],
                                                               address.bytes[2], address.bytes[3]});
}

Resolver::Resolver(ResolverConfig config) : state_(std::make_shared<detail::ResolverState>()) {
  state_->config = std::move(config);
  ResolverConfig& c = state_->config;
  if (!c.clock) {
    c.clock = std::chrono::steady_clock::now;
  }
  c.attempts = std::max(c.attempts, 1);
  c.minTtl = std::min(c.minTtl, c.maxTtl);
}

const ResolverConfig& Resolver::config() const {
  return state_->config;
}

void Resolver::clearCache() {
  std::lock_guard lock(state_->cacheMutex);
  state_->cache.clear();
  state_->forwardCache.clear();
}

size_t Resolver::cacheSize() const {
  std::lock_guard lock(state_->cacheMutex);
  return state_->cache.size() + state_->forwardCache.size();
}

namespace {

asio::awaitable<Lookup> lookup(std::shared_ptr<detail::ResolverState> state, std::string name,
                               uint16_t qtype) {
  const std::string key = typeName(qtype) + " " + name;
  Lookup result;
  if (state->cached(key, result)) {
    co_return result;
  }
  result = co_await queryServers(state, name, qtype);
  state->store(key, result);
  co_return result;
}

asio::awaitable<Lookup> queryServers(std::shared_ptr<detail::ResolverState> state, std::string name,
                                     uint16_t qtype) {
  const ResolverConfig& config = state->config;
  Lookup result;
  if (config.servers.empty()) {
    result.errorCode = ENXIO;
    result.error = "no DNS servers configured to resolve " + name;
    co_return result;
  }
  std::string serverList;
  for (const auto& server : config.servers) {
    serverList += (serverList.empty() ? "" : ", ") + endpointText(server);
  }
  std::string lastFailure;
  std::string serverError;  // a server answered, but with SERVFAIL/REFUSED/...
  for (int attempt = 0; attempt < config.attempts; ++attempt) {
    for (const auto& server : config.servers) {
      Exchange exchange =
          co_await udpExchange(server, randomQueryId(), name, qtype, config.timeout);
      if (exchange.answered && exchange.answer.truncated) {
        exchange = co_await tcpExchange(server, randomQueryId(), name, qtype, config.timeout);
      }
      if (!exchange.answered) {
        lastFailure =
            (config.servers.size() > 1 ? endpointText(server) + ": " : "") + exchange.failure;
        continue;
      }
      const ParsedAnswer& answer = exchange.answer;
      if (answer.rcode == kRcodeNoError) {
        result.outcome =
            answer.addresses.empty() ? Lookup::Outcome::kNoData : Lookup::Outcome::kAddresses;
        result.addresses = answer.addresses;
        result.ttl = answer.ttl;
        co_return result;
      }
      if (answer.rcode == kRcodeNxDomain) {
        result.outcome = Lookup::Outcome::kNxDomain;
        co_return result;
      }
      serverError = rcodeName(answer.rcode) + " from " + endpointText(server) + " for " + name +
                    " " + typeName(qtype);
    }
  }
  if (!serverError.empty()) {
    result.errorCode = EIO;
    result.error = serverError;
  } else {
    result.errorCode = ETIMEDOUT;
    result.error = "no answer from " + serverList + " after " + std::to_string(config.attempts) +
                   (config.attempts == 1 ? " attempt" : " attempts") + " for " + name + " " +
                   typeName(qtype) + " (" + lastFailure + ")";
  }
  co_return result;
}

asio::awaitable<Result<std::vector<IpAddress>>> resolveWith(
    std::shared_ptr<detail::ResolverState> state, std::string name) {
  try {
    name = lowercaseWithoutDot(std::move(name));
    if (auto literal = IpAddress::parse(name)) {
      co_return std::vector<IpAddress>{*literal};
    }
    if (buildQuery(0, name, kTypeA).empty()) {
      co_return Error(EINVAL, "cannot resolve \"" + name + "\": not a valid host name");
    }
    // Both answers cached (the proxy's steady state: a lookup per request): no parallel
    // group, no coroutine per type, no allocation beyond the result.
    Lookup v4;
    Lookup v6;
    if (!state->cached(typeName(kTypeA) + " " + name, v4) ||
        !state->cached(typeName(kTypeAaaa) + " " + name, v6)) {
      std::tie(v4, v6) = co_await (lookup(state, name, kTypeA) && lookup(state, name, kTypeAaaa));
    }

    std::vector<IpAddress> addresses = v4.addresses;
    for (const IpAddress& address : v6.addresses) {
      if (std::find(addresses.begin(), addresses.end(), address) == addresses.end()) {
        addresses.push_back(address);
      }
    }
    if (!addresses.empty()) {
      co_return addresses;
    }
    using Outcome = Lookup::Outcome;
    if (v4.outcome == Outcome::kNxDomain || v6.outcome == Outcome::kNxDomain) {
      co_return Error(ENOENT, "NXDOMAIN for " + name);
    }
    if (v4.outcome == Outcome::kFailure) {
      co_return Error(v4.errorCode, v4.error);
    }
    if (v6.outcome == Outcome::kFailure) {
      co_return Error(v6.errorCode, v6.error);
    }
    co_return Error(ENODATA, "no A or AAAA records for " + name);
  } catch (const std::exception& e) {
    co_return Error(EIO, "resolving " + name + ": " + e.what());
  }
}

}  // namespace

namespace {

asio::awaitable<Result<Forwarded>> forwardWith(std::shared_ptr<detail::ResolverState> state,
                                               std::string name, uint16_t qtype) {
  try {
    if (buildQuery(0, name, qtype).empty()) {
      co_return Error(EINVAL, "cannot query \"" + name + "\": not a valid name");
    }
    const std::string key = typeName(qtype) + " " + name;
    Forwarded out;
    if (state->forwardCached(key, out)) {
      co_return out;
    }
    const ResolverConfig& config = state->config;
    if (config.servers.empty()) {
      co_return Error(ENXIO, "no DNS servers configured to resolve " + name);
    }
    std::string lastFailure;
    std::optional<Forwarded> serverError;  // SERVFAIL/REFUSED/...: relayed if nothing better
    for (int attempt = 0; attempt < config.attempts; ++attempt) {
      for (const auto& server : config.servers) {
        Exchange exchange =
            co_await udpExchange(server, randomQueryId(), name, qtype, config.timeout);
        if (exchange.answered && exchange.answer.truncated) {
          exchange = co_await tcpExchange(server, randomQueryId(), name, qtype, config.timeout);
        }
        if (!exchange.answered) {
          lastFailure = endpointText(server) + ": " + exchange.failure;
          continue;
        }
        Forwarded answered;
        answered.answer = std::move(exchange.answer);
        answered.message =
            std::make_shared<const std::vector<uint8_t>>(std::move(exchange.message));
        answered.server = endpointText(server);
        if (answered.answer.rcode == kRcodeNoError || answered.answer.rcode == kRcodeNxDomain) {
          state->storeForward(key, answered);
          co_return answered;
        }
        serverError = std::move(answered);
      }
    }
    if (serverError) {
      co_return std::move(*serverError);
    }
    co_return Error(ETIMEDOUT, "no answer after " + std::to_string(config.attempts) +
                                   (config.attempts == 1 ? " attempt" : " attempts") + " for " +
                                   name + " " + typeName(qtype) + " (" + lastFailure + ")");
  } catch (const std::exception& e) {
    co_return Error(EIO, "forwarding " + name + ": " + e.what());
  }
}

}  // namespace

asio::awaitable<Result<Forwarded>> Resolver::forward(std::string name, uint16_t qtype) {
  return forwardWith(state_, lowercaseWithoutDot(std::move(name)), qtype);
}

asio::awaitable<Result<std::vector<IpAddress>>> Resolver::resolve(std::string name) {
  // Not a coroutine itself: the state is copied into the coroutine's frame right here.
  return resolveWith(state_, std::move(name));
}

ResolverConfig Resolver::fromResolvConf(const std::string& path) {
  ResolverConfig config;
  std::ifstream file(path);
  std::string line;
  while (std::getline(file, line)) {
    std::istringstream words(line);
    std::string keyword;
    if (!(words >> keyword) || keyword[0] == '#' || keyword[0] == ';') {
      continue;
    }
    if (keyword == "nameserver") {
      std::string address;
      words >> address;
      auto parsed = IpAddress::parse(address);
      if (parsed && config.servers.size() < kMaxResolvConfServers) {
        config.servers.emplace_back(toAsioAddress(*parsed), 53);
      }
    } else if (keyword == "options") {
      std::string option;
      while (words >> option) {
        auto value = [&](std::string_view prefix, int maxValue) -> std::optional<int> {
          if (option.rfind(prefix, 0) != 0) {
            return std::nullopt;
          }
          const std::string digits = option.substr(prefix.size());
          if (digits.empty() || digits.size() > 3 ||
              !std::all_of(digits.begin(), digits.end(),
                           [](char c) { return c >= '0' && c <= '9'; })) {
            return std::nullopt;
          }
          return std::clamp(std::stoi(digits), 1, maxValue);
        };
        // glibc's caps: RES_MAXRETRANS 30 s, RES_MAXRETRY 5.
        if (auto seconds = value("timeout:", 30)) {
          config.timeout = std::chrono::seconds(*seconds);
        } else if (auto attempts = value("attempts:", 5)) {
          config.attempts = *attempts;
        }
      }
    }
  }
  return config;
}

}  // namespace egressd::dns
