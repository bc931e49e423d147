#include "proxy/upstream_choice.h"

#include "proxy/stream_ops.h"

#include <optional>
#include <tuple>
#include <utility>

namespace egressd::proxy {

asio::awaitable<ConnectOutcome> connectFirst(asio::ip::tcp::socket& socket,
                                             const std::vector<IpAddress>& addrs, uint16_t port,
                                             const bool& timedOut) {
  ConnectOutcome out;
  for (const IpAddress& a : addrs) {
    const asio::ip::tcp::endpoint ep(dns::toAsioAddress(a), port);
    std::error_code ec;
    socket.open(ep.protocol(), ec);
    if (!ec) {
      std::tie(ec) = co_await socket.async_connect(ep, kNoThrow);
    }
    out.addr = a;
    out.endpointText = a.toString(port);
    if (!ec) {
      out.connected = true;
      co_return out;
    }
    out.errors += (out.errors.empty() ? "" : "; ") + out.endpointText + ": " +
                  (timedOut ? std::string("timed out") : ec.message());
    std::error_code ignored;
    socket.close(ignored);
    if (timedOut) {
      break;
    }
  }
  co_return out;
}

asio::awaitable<UpstreamChoice> chooseUpstream(const SandboxPolicyView& view,
                                               dns::Resolver& resolver,
                                               const policy::NormalizedHost& host, uint16_t port,
                                               const ResolvedAddresses* resolved) {
  co_return co_await resolveUpstream(view, resolver, host, port, view.hosts.decide(host, port),
                                     resolved);
}

std::optional<UpstreamChoice> requireResolved(const SandboxPolicyView& view,
                                              const ResolvedAddresses* resolved,
                                              const IpAddress& addr) {
  if (!view.dns.requireResolved || (resolved != nullptr && resolved->contains(addr))) {
    return std::nullopt;
  }
  UpstreamChoice choice;
  choice.decision = "deny";
  choice.reason = "unresolved_address";
  choice.rule = "dns.requireResolved";
  choice.detail = addr.toString() + " was not answered to this sandbox for an allowed name";
  return choice;
}

policy::HostDecision handlerDecision(const policy::NormalizedHost& host,
                                     const std::string& handler) {
  policy::HostDecision decision;
  decision.rule = "handler " + handler;
  decision.byName = !host.ip.has_value();
  decision.matchedAllowGlob = false;
  if (host.ip) {
    switch (policy::classifyAddress(*host.ip)) {
      case policy::AddressClass::kOrdinary:
        break;
      case policy::AddressClass::kPrivate:
        decision.reason = "private_destination";
        return decision;
      case policy::AddressClass::kEmbeddedV4:
        decision.reason = "embedded_v4_destination";
        return decision;
      case policy::AddressClass::kSpecial:
        decision.reason = "special_destination";
        return decision;
    }
  }
  decision.verdict = policy::HostVerdict::kAllow;
  decision.reason = "handler";
  return decision;
}

asio::awaitable<UpstreamChoice> resolveUpstream(const SandboxPolicyView& view,
                                                dns::Resolver& resolver,
                                                const policy::NormalizedHost& host, uint16_t port,
                                                const policy::HostDecision& decision,
                                                const ResolvedAddresses* answered) {
  UpstreamChoice choice;
  choice.reason = decision.reason;
  choice.rule = decision.rule;
  if (!decision.allowed()) {
    choice.decision = "deny";
    co_return choice;
  }
  if (host.ip) {
    if (auto refused = requireResolved(view, answered, *host.ip)) {
      co_return std::move(*refused);
    }
    choice.addrs.push_back(*host.ip);
    co_return choice;
  }
  auto resolved = co_await resolver.resolve(host.name);
  if (!resolved.ok()) {
    choice.decision = "error";
    choice.reason = "resolve_failed";
    choice.detail = resolved.error().message();
    co_return choice;
  }
  std::optional<std::pair<policy::HostDecision, IpAddress>> firstRefusal;
  for (const IpAddress& a : *resolved) {
    auto judged = view.hosts.judgeResolvedAddress(a, port, decision);
    if (judged.allowed()) {
      choice.addrs.push_back(a);
    } else if (!firstRefusal) {
      firstRefusal.emplace(std::move(judged), a);
    }
  }
  if (choice.addrs.empty() && firstRefusal) {
    choice.decision = "deny";
    choice.reason = firstRefusal->first.reason;
    choice.rule = firstRefusal->first.rule;
    choice.detail = host.name + " resolves to " + firstRefusal->second.toString() +
                    ", which the policy does not allow";
  }
  co_return choice;
}

}  // namespace egressd::proxy
