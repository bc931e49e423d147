#include "daemon/proxy_runtime.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include "audit/audit_log.h"
#include "dns/resolver.h"
#include "loader/maps.h"
#include "metrics/metrics.h"
#include "metrics/server.h"
#include "policy/cidr.h"
#include "policy/host_policy.h"
#include "proxy/dns_server.h"
#include "proxy/sandbox_context.h"
#include "proxy/server.h"
#include "sandbox/socket_reaper.h"
#include "tls/certificate_authority.h"
#include "tls/contexts.h"

namespace egressd::daemon {

namespace {

// Name-based allow rules' entries in the pinned allow tries (one /32 or /128 key per
// address, protocol and port, valued with the rule's id).
class PinnedNameRules : public proxy::NameRuleSink {
 public:
  explicit PinnedNameRules(const loader::PinnedMaps& maps) : maps_(maps) {}

  Status add(uint32_t slot, const std::vector<policy::NameRuleEntry>& entries) override {
    auto ruleset = maps_.activeRuleset(slot);
    if (!ruleset.ok()) {
      return std::move(ruleset).error();
    }
    if (!ruleset->has_value()) {
      return Error(ENOENT, "sandbox slot " + std::to_string(slot) + " has no live rules");
    }
    for (const policy::NameRuleEntry& e : entries) {
      EGRESSD_TRY(write(**ruleset, e));
    }
    return okStatus();
  }

  Status remove(uint32_t slot, const std::vector<policy::NameRuleEntry>& entries) override {
    for (uint32_t ruleset : {slot * 2, slot * 2 + 1}) {
      for (const policy::NameRuleEntry& e : entries) {
        erase(ruleset, e);
      }
    }
    return okStatus();
  }

 private:
  template <typename Key>
  static Key keyOf(uint32_t ruleset, const policy::NameRuleEntry& e) {
    Key key{};
    key.prefixlen = EGRESSD_RULE_KEY_FIXED_BITS + 8 * sizeof(key.addr);
    key.ruleset = ruleset;
    key.proto = e.proto;
    key.port = e.port;
    std::memcpy(key.addr, e.addr.bytes.data(), sizeof(key.addr));
    return key;
  }

  template <typename Key>
  Status writeKey(const char* map, const Key& key, uint32_t ruleId) {
    const int fd = maps_.fd(map);
    egressd_rule_value found{};
    // A static rule already covering this (protocol, port, address) keeps it: the entry
    // would shadow its rule id, and removing it later would remove the static rule.
    if (bpf_map_lookup_elem(fd, &key, &found) == 0 && found.rule_id != ruleId) {
      return okStatus();
    }
    const egressd_rule_value value{ruleId, 0};
    if (bpf_map_update_elem(fd, &key, &value, BPF_ANY) != 0) {
      return lastSystemError(std::string("add a name-rule entry to ") + map);
    }
    return okStatus();
  }

  template <typename Key>
  void eraseKey(const char* map, const Key& key, uint32_t ruleId) {
    const int fd = maps_.fd(map);
    egressd_rule_value found{};
    if (bpf_map_lookup_elem(fd, &key, &found) == 0 && found.rule_id == ruleId) {
      bpf_map_delete_elem(fd, &key);
    }
  }

  Status write(uint32_t ruleset, const policy::NameRuleEntry& e) {
    if (e.addr.isV4()) {
      return writeKey(EGRESSD_MAP_ALLOW4, keyOf<egressd_rule4_key>(ruleset, e), e.ruleId);
    }
    return writeKey(EGRESSD_MAP_ALLOW6, keyOf<egressd_rule6_key>(ruleset, e), e.ruleId);
  }

  void erase(uint32_t ruleset, const policy::NameRuleEntry& e) {
    if (e.addr.isV4()) {
      eraseKey(EGRESSD_MAP_ALLOW4, keyOf<egressd_rule4_key>(ruleset, e), e.ruleId);
    } else {
      eraseKey(EGRESSD_MAP_ALLOW6, keyOf<egressd_rule6_key>(ruleset, e), e.ruleId);
    }
  }

  const loader::PinnedMaps& maps_;

 public:
  std::vector<policy::NameRuleEntry> inUse(
      const proxy::SandboxContext& sandbox,
      const std::vector<policy::NameRuleEntry>& entries) override {
    std::vector<policy::NameRuleEntry> used;
    if (sandbox.cgroupPath.empty()) {
      return used;
    }
    // When the sockets cannot be listed, every entry counts as used until the next sweep:
    // cutting a legitimate connection is the worse mistake, and the entry was a real answer.
    auto ids = sandbox::cgroupTreeIds(sandbox.cgroupPath);
    if (!ids.ok()) {
      spdlog::warn("sandbox {}: listing its cgroups for name-rule expiry: {}", sandbox.id,
                   ids.error().message());
      return entries;
    }
    // Listed, never destroyed: the predicate only looks.
    auto listed =
        sandbox::destroySockets(sandbox.netnsPath, *ids, [&](const sandbox::SocketInfo& s) {
          const IpAddress remote = s.unmappedRemote();
          const uint8_t proto = s.protocol == IPPROTO_UDP ? EGRESSD_PROTO_UDP : EGRESSD_PROTO_TCP;
          for (const policy::NameRuleEntry& e : entries) {
            if (e.addr == remote && (e.port == 0 || e.port == s.remotePort) &&
                (e.proto == EGRESSD_PROTO_ANY || e.proto == proto) &&
                std::find(used.begin(), used.end(), e) == used.end()) {
              used.push_back(e);
            }
          }
          return false;
        });
    if (!listed.ok()) {
      spdlog::warn("sandbox {}: listing its sockets for name-rule expiry: {}", sandbox.id,
                   listed.error().message());
      return entries;
    }
    return used;
  }
};

}  // namespace

struct ProxyRuntime::Impl {
  ProxyOptions options;
  std::string pinRoot;
  std::optional<loader::PinnedMaps> maps;
  std::unique_ptr<audit::AuditLog> audit;
  metrics::Registry registry;
  std::unique_ptr<metrics::MetricsServer> metricsServer;
  std::unique_ptr<proxy::ProxyServer> proxy;
  std::unique_ptr<PinnedNameRules> nameRules;  // used by dnsServer
  std::unique_ptr<proxy::DnsServer> dnsServer;
  // Shared by every proxy thread; must outlive the proxy (declared before it is reset).
  tls::SslCtxPtr interceptTls;
  tls::SslCtxPtr upstreamTls;
  tls::SslCtxPtr upstreamTlsH2;  // offers h2: the upstreams of HTTP/2 sessions

  std::shared_ptr<handlers::SecretStore> secrets = std::make_shared<handlers::SecretStore>();

  mutable std::mutex mutex;
  std::map<std::string, std::shared_ptr<proxy::SandboxContext>> sandboxes;
  std::map<uint32_t, std::pair<std::string, std::vector<std::string>>> bySlot;  // id, rule names

  // Kernel denials: the pinned ring buffer, drained by one thread.
  std::unique_ptr<ring_buffer, decltype(&ring_buffer__free)> events{nullptr, &ring_buffer__free};
  std::atomic<bool> stopping{false};
  std::thread eventThread;

  static int onEvent(void* ctx, void* data, size_t size) {
    if (size >= sizeof(egressd_event)) {
      static_cast<Impl*>(ctx)->auditKernelEvent(*static_cast<const egressd_event*>(data));
    }
    return 0;
  }
  void auditKernelEvent(const egressd_event& e);

  Result<dns::ResolverConfig> resolverFor(const policy::Policy& p) const {
    std::vector<policy::Endpoint> servers = p.dns.upstream;
    if (!options.upstreamResolver.empty()) {
      auto parsed = policy::parseEndpoint(options.upstreamResolver, 53);
      if (!parsed.ok()) {
        return std::move(parsed).error().wrap("--upstream-resolver");
      }
      servers = {*parsed};
    }
    if (servers.empty()) {
      auto config = dns::Resolver::fromResolvConf();
      if (config.servers.empty()) {
        return Error(ENOENT,
                     "no upstream DNS server: set dns.upstream in the policy, "
                     "--upstream-resolver, or a nameserver in /etc/resolv.conf");
      }
      return config;
    }
    dns::ResolverConfig config;
    for (const policy::Endpoint& server : servers) {
      config.servers.emplace_back(dns::toAsioAddress(IpAddress{server.family, server.bytes}),
                                  server.port);
    }
    return config;
  }

  // Per-sandbox kernel counters (from the pinned per-CPU map), rendered at scrape time.
  void renderKernelCounters(std::string& out) {
    std::vector<std::pair<std::string, uint32_t>> slots;
    {
      std::lock_guard lock(mutex);
      for (const auto& [id, sb] : sandboxes) {
        slots.emplace_back(id, sb->slot);
      }
    }
    metrics::appendFamilyHeader(out, "egressd_kernel_decisions_total",
                                "Kernel verdicts, by sandbox and reason.", "counter");
    for (const auto& [id, slot] : slots) {
      if (!maps) {
        break;
      }
      auto counters = maps->counters(slot);
      if (!counters.ok()) {
        continue;
      }
      for (uint32_t reason = 1; reason < EGRESSD_REASON_MAX; ++reason) {
        metrics::appendSample(out, "egressd_kernel_decisions_total",
                              {{"sandbox", id},
                               {"layer", "kernel"},
                               {"decision", loader::reasonIsDeny(reason) ? "deny" : "allow"},
                               {"reason", loader::reasonName(reason)}},
                              uint64_t{counters->by_reason[reason]});
      }
    }
    metrics::appendFamilyHeader(out, "egressd_proxy_open_connections",
                                "Connections from sandboxes open in the proxy.", "gauge");
    std::lock_guard lock(mutex);
    for (const auto& [id, sb] : sandboxes) {
      metrics::appendSample(out, "egressd_proxy_open_connections", {{"sandbox", id}},
                            static_cast<int64_t>(sb->openConnections.load()));
    }
  }
};

ProxyRuntime::ProxyRuntime(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProxyRuntime::~ProxyRuntime() {
  // The writers first: the proxy's threads and the event thread use the log and registry.
  impl_->stopping = true;
  if (impl_->eventThread.joinable()) {
    impl_->eventThread.join();
  }
  if (impl_->events) {
    ring_buffer__consume(impl_->events.get());
  }
  impl_->proxy.reset();
  impl_->dnsServer.reset();
  impl_->metricsServer.reset();
  // The published CA certificates go with the sandboxes they were for.
  std::vector<std::string> ids;
  {
    std::lock_guard lock(impl_->mutex);
    for (const auto& [id, sb] : impl_->sandboxes) {
      if (sb->leaves) {
        ids.push_back(id);
      }
    }
  }
  for (const std::string& id : ids) {
    removeSandboxFiles(impl_->options.runDir, id);
  }
  if (impl_->audit) {
    impl_->audit->flush();
  }
}

void ProxyRuntime::auditControlEvent(const audit::AuditRecord& record) {
  if (impl_->audit) {
    impl_->audit->write(record);
  }
}

Result<std::unique_ptr<ProxyRuntime>> ProxyRuntime::start(const ProxyOptions& options,
                                                          const std::string& pinRoot) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->pinRoot = pinRoot;
  auto maps = loader::PinnedMaps::open(pinRoot);
  if (!maps.ok()) {
    return std::move(maps).error().wrap("proxy");
  }
  impl->maps.emplace(std::move(*maps));
  if (!options.auditLog.empty()) {
    audit::AuditOptions ao;
    if (options.auditLog == "-") {
      ao.toStdout = true;
    } else {
      ao.filePath = options.auditLog;
    }
    auto log = audit::AuditLog::open(ao);
    if (!log.ok()) {
      return std::move(log).error().wrap("audit log");
    }
    impl->audit = std::move(*log);
  }
  Impl* raw = impl.get();
  impl->events.reset(
      ring_buffer__new(impl->maps->fd(EGRESSD_MAP_EVENTS), &Impl::onEvent, raw, nullptr));
  if (!impl->events) {
    spdlog::warn("kernel denial events unavailable: {}", std::strerror(errno));
  } else {
    impl->eventThread = std::thread([raw] {
      while (!raw->stopping.load()) {
        ring_buffer__poll(raw->events.get(), 100);
      }
    });
  }
  impl->registry.addCollector([raw](std::string& out) { raw->renderKernelCounters(out); });
  if (impl->audit) {
    // A full disk or a stalled audit consumer loses records rather than blocking the proxy
    // (docs/security.md "Faults"): monitoring sees that here, before the next audit line.
    impl->registry.addCollector([raw](std::string& out) {
      metrics::appendFamilyHeader(out, "egressd_audit_records_dropped_total",
                                  "Audit records lost: the audit buffer was full (output stalled) "
                                  "or a write failed (e.g. disk full).",
                                  "counter");
      metrics::appendSample(out, "egressd_audit_records_dropped_total", {}, raw->audit->dropped());
    });
  }
  if (!options.metrics.empty()) {
    auto server = metrics::MetricsServer::start(options.metrics, impl->registry);
    if (!server.ok()) {
      return std::move(server).error().wrap("metrics endpoint " + options.metrics);
    }
    spdlog::info("metrics on {}", (*server)->boundAddress());
    impl->metricsServer = std::move(*server);
  }
  {
    // The sandboxes' resolver runs with or without the proxy: DNS is never left unanswered
    // nor sent anywhere else.
    proxy::DnsServerConfig config;
    config.audit = impl->audit.get();
    config.metrics = &impl->registry;
    impl->nameRules = std::make_unique<PinnedNameRules>(*impl->maps);
    config.nameRules = impl->nameRules.get();
    auto server = proxy::DnsServer::start(config);
    if (!server.ok()) {
      return std::move(server).error().wrap("DNS server");
    }
    impl->dnsServer = std::move(*server);
  }
  if (options.enabled) {
    proxy::ProxyConfig config;
    config.threads = options.threads;
    config.headerTimeout = std::chrono::milliseconds(options.headerTimeoutMs);
    config.idleTimeout = std::chrono::milliseconds(options.idleTimeoutMs);
    config.ioTimeout = std::chrono::milliseconds(options.ioTimeoutMs);
    config.maxConnections = options.maxConnections;
    config.origDstMapFd = impl->maps->fd(EGRESSD_MAP_ORIG_DST);
    config.audit = impl->audit.get();
    config.metrics = &impl->registry;
    auto serverSide = tls::makeInterceptionServerContext();
    if (!serverSide.ok()) {
      return std::move(serverSide).error().wrap("TLS interception");
    }
    auto clientSide = tls::makeUpstreamClientContext(options.upstreamCaFile);
    if (!clientSide.ok()) {
      return std::move(clientSide).error().wrap("upstream TLS");
    }
    auto clientSideH2 = tls::makeUpstreamClientContext(options.upstreamCaFile, true);
    if (!clientSideH2.ok()) {
      return std::move(clientSideH2).error().wrap("upstream TLS");
    }
    impl->interceptTls = std::move(*serverSide);
    impl->upstreamTls = std::move(*clientSide);
    impl->upstreamTlsH2 = std::move(*clientSideH2);
    config.interceptTls = impl->interceptTls.get();
    config.upstreamTls = impl->upstreamTls.get();
    config.upstreamTlsH2 = impl->upstreamTlsH2.get();
    auto server = proxy::ProxyServer::start(config);
    if (!server.ok()) {
      return std::move(server).error();
    }
    impl->proxy = std::move(*server);
  }
  return std::unique_ptr<ProxyRuntime>(new ProxyRuntime(std::move(impl)));
}

Status ProxyRuntime::addSandbox(const std::string& id, uint32_t slot, const policy::Policy& policy,
                                std::vector<std::string> ruleNames,
                                std::optional<proxy::ListenerReservation> listener,
                                std::shared_ptr<const proxy::SandboxPolicyView> view,
                                std::optional<proxy::DnsSockets> dns, std::string cgroupPath,
                                std::string netnsPath) {
  if (!view) {
    auto made = proxy::makePolicyView(policy);
    if (!made.ok()) {
      return std::move(made).error().wrap("sandbox " + id);
    }
    view = std::move(*made);
  }
  auto sb = std::make_shared<proxy::SandboxContext>();
  sb->id = id;
  sb->slot = slot;
  sb->cgroupPath = std::move(cgroupPath);
  sb->netnsPath = std::move(netnsPath);
  sb->secrets = impl_->secrets;
  sb->policy.store(std::move(view));
  auto resolverConfig = impl_->resolverFor(policy);
  if (!resolverConfig.ok()) {
    return std::move(resolverConfig).error().wrap("sandbox " + id);
  }
  sb->resolver = std::make_shared<dns::Resolver>(*resolverConfig);
  if (impl_->proxy) {
    // Made with the sandbox whether its policy intercepts or not, so a reload that turns
    // interception on needs nothing new, and the certificate can be mounted beforehand.
    auto ca = tls::CertificateAuthority::create(id);
    if (!ca.ok()) {
      return std::move(ca).error().wrap("sandbox " + id + ": interception CA");
    }
    auto published = publishSandboxCa(impl_->options.runDir, id, (*ca)->certificatePem());
    if (!published.ok()) {
      return std::move(published).error().wrap("sandbox " + id + ": publishing its CA");
    }
    sb->leaves = std::make_shared<tls::LeafCache>(std::move(*ca));
  }
  const std::vector<std::pair<std::string, std::string>> labels = {{"sandbox", id}};
  sb->requestDuration = &impl_->registry.histogram(
      "egressd_proxy_request_duration_seconds",
      "Time from the first byte of a request to the end of its response.", labels,
      metrics::kLatencyBuckets);
  sb->upstreamConnect = &impl_->registry.histogram("egressd_proxy_upstream_connect_seconds",
                                                   "Time to connect to an upstream.", labels,
                                                   metrics::kLatencyBuckets);
  sb->bytesFromSandbox =
      &impl_->registry.counter("egressd_proxy_request_body_bytes_total",
                               "Request body bytes relayed from sandboxes.", labels);
  sb->bytesToSandbox = &impl_->registry.counter("egressd_proxy_response_bytes_total",
                                                "Response bytes relayed to sandboxes.", labels);
  sb->connectionsAccepted = &impl_->registry.counter(
      "egressd_proxy_connections_total", "Connections accepted from sandboxes.", labels);
  sb->connectionsRefused = &impl_->registry.counter(
      "egressd_proxy_connections_refused_total",
      "Connections refused with a 503: at --max-connections, or out of file descriptors.", labels);
  {
    std::lock_guard lock(impl_->mutex);
    impl_->sandboxes[id] = sb;
    impl_->bySlot[slot] = {id, std::move(ruleNames)};
  }
  if (dns && dns->port != 0) {
    if (auto served = impl_->dnsServer->addSandbox(sb, std::move(*dns)); !served.ok()) {
      return std::move(served).error().wrap("sandbox " + id);
    }
  }
  if (!impl_->proxy || !listener) {
    return okStatus();  // kernel-only mode: events, metrics and DNS only
  }
  return impl_->proxy->addSandbox(sb, std::move(*listener));
}

Status ProxyRuntime::updatePolicy(const std::string& id, const policy::Policy& policy,
                                  std::vector<std::string> ruleNames) {
  auto view = proxy::makePolicyView(policy);
  if (!view.ok()) {
    return std::move(view).error().wrap("sandbox " + id);
  }
  return updateView(id, std::move(*view), std::move(ruleNames));
}

Status ProxyRuntime::updateView(const std::string& id,
                                std::shared_ptr<const proxy::SandboxPolicyView> view,
                                std::vector<std::string> ruleNames) {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->sandboxes.find(id);
  if (it == impl_->sandboxes.end()) {
    return Error(ENOENT, "the proxy serves no sandbox " + id);
  }
  it->second->policy.store(std::move(view), std::memory_order_release);
  impl_->bySlot[it->second->slot].second = std::move(ruleNames);
  return okStatus();
}

void ProxyRuntime::removeSandbox(const std::string& id) {
  impl_->dnsServer->removeSandbox(id);
  if (impl_->proxy) {
    impl_->proxy->removeSandbox(id);
    removeSandboxFiles(impl_->options.runDir, id);
  }
  {
    std::lock_guard lock(impl_->mutex);
    auto it = impl_->sandboxes.find(id);
    if (it != impl_->sandboxes.end()) {
      impl_->bySlot.erase(it->second->slot);
      impl_->sandboxes.erase(it);
    }
  }
  // A deleted sandbox's series would otherwise be scraped (and kept) forever.
  impl_->registry.dropSeries("sandbox", id);
}

std::vector<proxy::NameRuleState> ProxyRuntime::nameRuleEntries(const std::string& id) const {
  return impl_->dnsServer->nameRuleEntries(id);
}

const std::shared_ptr<handlers::SecretStore>& ProxyRuntime::secrets() const {
  return impl_->secrets;
}

uint64_t ProxyRuntime::openConnections(const std::string& id) const {
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->sandboxes.find(id);
  return it == impl_->sandboxes.end() ? 0 : it->second->openConnections.load();
}

SandboxCaFiles ProxyRuntime::caFiles(const std::string& id) const {
  if (!impl_->proxy) {
    return {};
  }
  return sandboxCaFiles(impl_->options.runDir, id);
}

void ProxyRuntime::Impl::auditKernelEvent(const egressd_event& e) {
  std::string sandboxId;
  std::string ruleName;
  {
    // The ring buffer is shared by every sandbox under the pin root.
    std::lock_guard lock(mutex);
    auto it = bySlot.find(e.sandbox);
    if (it != bySlot.end()) {
      sandboxId = it->second.first;
      if (e.rule_id < it->second.second.size()) {
        ruleName = it->second.second[e.rule_id];
      }
    } else {
      sandboxId = "slot-" + std::to_string(e.sandbox);
    }
  }
  const char* hook = "?";
  switch (e.hook) {
    case EGRESSD_HOOK_CONNECT:
      hook = "connect";
      break;
    case EGRESSD_HOOK_SENDMSG:
      hook = "sendmsg";
      break;
    case EGRESSD_HOOK_SOCK_CREATE:
      hook = "socket";
      break;
    case EGRESSD_HOOK_SETSOCKOPT:
      hook = "setsockopt";
      break;
    case EGRESSD_HOOK_SKB:
      hook = "packet";
      break;
    default:
      break;
  }
  const std::string comm(e.comm, strnlen(e.comm, sizeof(e.comm)));
  spdlog::info("kernel denied: sandbox={} pid={} comm={} hook={} dst={}:{} proto={} reason={}{}",
               sandboxId, e.pid, comm, hook, loader::formatAddr(e.addr), e.port, e.proto,
               loader::reasonName(e.reason), ruleName.empty() ? "" : " rule=" + ruleName);
  if (!audit) {
    return;
  }
  audit::AuditRecord r;
  r.sandbox = sandboxId;
  r.layer = "kernel";
  r.protocol = e.proto == EGRESSD_PROTO_TCP                                              ? "tcp"
               : e.proto == EGRESSD_PROTO_UDP                                            ? "udp"
               : e.hook == EGRESSD_HOOK_SOCK_CREATE || e.hook == EGRESSD_HOOK_SETSOCKOPT ? "socket"
                                                                                         : "ip";
  if (e.hook != EGRESSD_HOOK_SOCK_CREATE && e.hook != EGRESSD_HOOK_SETSOCKOPT) {
    const std::string addr = loader::formatAddr(e.addr);
    r.origDst = (addr.find(':') != std::string::npos ? "[" + addr + "]" : addr) + ":" +
                std::to_string(e.port);
  }
  r.decision = "deny";
  r.reason = loader::reasonName(e.reason);
  r.rule = ruleName;
  r.detail = std::string("hook=") + hook + " pid=" + std::to_string(e.pid) + " comm=" + comm;
  audit->write(r);
  registry
      .counter(
          "egressd_requests_total", "Decisions, by sandbox, layer, decision and reason.",
          {{"sandbox", sandboxId}, {"layer", "kernel"}, {"decision", "deny"}, {"reason", r.reason}})
      .inc();
}

void ProxyRuntime::flush() {
  impl_->stopping = true;
  if (impl_->eventThread.joinable()) {
    impl_->eventThread.join();
  }
  if (impl_->events) {
    ring_buffer__consume(impl_->events.get());
  }
  if (impl_->audit) {
    impl_->audit->flush();
  }
}

}  // namespace egressd::daemon
