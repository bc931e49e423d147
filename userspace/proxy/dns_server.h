// egressd's resolver for sandboxes (docs/dns.md): the kernel rewrites every DNS query of a
// sandbox (UDP and TCP port 53, any address, IPv4 and IPv6) to this server's per-sandbox
// loopback port (ListenerReservation::dnsPort, in the sandbox's netns for --netns
// sandboxes). A query is judged by the sandbox's current policy view (the same view
// pointer the proxy reads, so a runtime allow-host applies to the next query) in
// dns_query_judge.h: the name by the proxy's host rules, the type by a fixed list, the
// sandbox's rate by dns.limits.
// Only allowed queries are forwarded, through the sandbox's dns::Resolver (egressd's own
// query, never the sandbox's bytes); the rest are answered here and audited, so a denied
// name never leaves the machine. Addresses an answer gives that the policy refuses
// (loopback, link-local, deniedHosts CIDRs) are dropped from it.
//
// Runs on its own io_context thread, in the daemon's process, outside every sandbox cgroup:
// its upstream queries pass no sandbox's BPF programs.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "proxy/dns_name_rules.h"
#include "proxy/listener_reservation.h"
#include "proxy/sandbox_context.h"

namespace egressd::audit {
class AuditLog;
}
namespace egressd::metrics {
class Registry;
}

namespace egressd::proxy {

struct DnsServerConfig {
  audit::AuditLog* audit = nullptr;      // may be null
  metrics::Registry* metrics = nullptr;  // may be null
  // A TCP connection with no complete query for this long is closed.
  std::chrono::milliseconds tcpIdleTimeout{10000};
  // Queries of one sandbox waiting for an upstream at once; more are answered SERVFAIL.
  size_t maxPendingPerSandbox = 512;
  // DNS-over-TCP connections of one sandbox open at once; more are closed at accept.
  size_t maxTcpPerSandbox = 64;
  // Name-based allow rules' kernel entries (null: such rules only make names resolvable).
  NameRuleSink* nameRules = nullptr;
  // How often expired name-rule entries are removed (and live ones re-asserted in the live
  // rule generation, which a policy swap replaced).
  std::chrono::milliseconds nameRuleSweep{500};
};

class DnsServer {
 public:
  static Result<std::unique_ptr<DnsServer>> start(DnsServerConfig config);
  ~DnsServer();
  DnsServer(const DnsServer&) = delete;
  DnsServer& operator=(const DnsServer&) = delete;

  // Serves `sandbox` on its resolver sockets (TCP ones start listening here). Its policy
  // view and resolver are read per query.
  Status addSandbox(const std::shared_ptr<SandboxContext>& sandbox, DnsSockets sockets);
  // Stops serving the sandbox (its sockets close: later queries fail, never go direct).
  void removeSandbox(const std::string& id);
  // The sandbox's live name-derived kernel entries.
  std::vector<NameRuleState> nameRuleEntries(const std::string& id) const;

  struct Impl;

 private:
  explicit DnsServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace egressd::proxy
