#include "proxy/upstream_choice.h"

#include <optional>
#include <utility>

namespace egressd::proxy {

asio::awaitable<UpstreamChoice> chooseUpstream(const SandboxPolicyView& view,
                                               dns::Resolver& resolver,
                                               const policy::NormalizedHost& host, uint16_t port) {
  UpstreamChoice choice;
  const policy::HostDecision decision = view.hosts.decide(host, port);
  choice.reason = decision.reason;
  choice.rule = decision.rule;
  if (!decision.allowed()) {
    choice.decision = "deny";
    co_return choice;
  }
  if (host.ip) {
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
